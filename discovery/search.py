"""The stages of discovery: the energy from the physics-aware network, further invariants from
the network's heads and a library search, and a description of the latent space.

discover.py runs them top to bottom; `args` below is its DiscoverFlags. Blind by construction:
the data come through data/loader.py (no truth_* arrays) and nothing here depends on which
system the data hold.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import sympy as sp

from data.derivatives import derivative_noise_variance, time_derivatives
from data.loader import Trajectories
from discovery.engines import ENGINES, Settings
from discovery.expressions import (Candidate, Inputs, build_library, complexity,
                                   evaluate_exprs, front_json, make_inputs, pareto, to_latex,
                                   to_text)
from discovery.laws import (conserved_search, gradient_rank, hamiltonian_residual,
                            refit_conserved, refit_hamiltonian)
from runs import TrainedModel
from utils import conservation_ratio, parse_expression

# An energy formula is a law only if its implied motion explains all but this share of the
# observed, noise-free motion (and it is conserved: see the threshold in build_context()).
MAX_UNEXPLAINED = 0.05


@dataclass
class Context:
    args: object                   # discover.py's DiscoverFlags
    data: Trajectories
    inputs: Inputs
    library: list
    rng: np.random.Generator
    train_states: np.ndarray       # (n, D) sampled training states
    val_traj: np.ndarray           # (Nv, T, D) held-out trajectories
    val_derivs: np.ndarray         # (Nv, T, D)
    fit_states: np.ndarray         # (m, D) training states for re-estimating coefficients
    fit_derivs: np.ndarray
    noise_var: np.ndarray          # (D,) variance observation noise adds to each derivative
    threshold: float               # conservation ratio below which a quantity is a law
    baseline: float
    engines: list[str]
    log: callable


def sample_rows(arr: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    flat = arr.reshape(-1, arr.shape[-1])
    return flat[rng.choice(len(flat), size=min(n, len(flat)), replace=False)]


def ratio_on(ctx: Context, expr: sp.Expr) -> float:
    nv, T, D = ctx.val_traj.shape
    values = evaluate_exprs([expr], ctx.inputs, ctx.val_traj.reshape(-1, D)).reshape(nv, T)
    return conservation_ratio(values) if np.isfinite(values).all() else float("inf")


def distill(ctx: Context, y: np.ndarray, states: np.ndarray, budget_scale: float = 1.0
            ) -> list[Candidate]:
    """Pareto front of formulas for network outputs y on states, from the chosen engines."""
    a = ctx.args
    settings = Settings(library=ctx.library, max_terms=2 * a.max_terms,
                        budget=int(a.budget * budget_scale), generations=10 * a.niterations,
                        niterations=a.niterations, seed=a.seed, threads=a.threads)
    cands: list[Candidate] = []
    for name, engine in ENGINES.items():        # a fixed order: ties on the front go first-come
        if name in ctx.engines:
            cands += engine.front(states, y, ctx.inputs, settings)
    return pareto(cands)


def discover_energy(ctx: Context, net: TrainedModel, q_idx, p_idx) -> tuple[dict | None, dict | None]:
    start = time.perf_counter()
    y = net.energy(ctx.train_states)
    front = distill(ctx, y, ctx.train_states)
    pairs = np.concatenate([interior(ctx.val_traj), interior(ctx.val_derivs)], axis=-1)
    val_states, val_derivs = np.split(sample_rows(pairs, ctx.args.n_samples, ctx.rng), 2, axis=1)
    scored = []
    for cand in with_term_dropped(front):
        refit = refit_hamiltonian(cand.expr, ctx.inputs, q_idx, p_idx, ctx.fit_states,
                                     ctx.fit_derivs)
        expr = refit if refit is not None else cand.expr
        resid, floor, scale = hamiltonian_residual(expr, ctx.inputs, q_idx, p_idx,
                                                      val_states, val_derivs, ctx.noise_var)
        if refit is None:
            expr = sp.Float(scale) * expr
        expr = drop_constant(expr)
        if not np.isfinite(resid) or not expr.free_symbols:
            continue
        # the share of the noise-free motion that the formula leaves unexplained
        excess = max(resid - floor, 0.0) / max(1.0 - floor, 1e-12)
        cand.extra.update(residual=resid, floor=floor, excess=excess, refit=refit is not None,
                          formula=expr)
        scored.append(cand)
    if not scored:
        return None, {"kind": "energy", "name": "E", "reason": "no candidate formula"}
    best = min(c.extra["excess"] for c in scored)
    chosen = min((c for c in scored if c.extra["excess"] <= 2 * best + 5e-3),
                 key=lambda c: (c.complexity, c.extra["excess"]))
    expr = chosen.extra["formula"]
    ratio = ratio_on(ctx, expr)
    fitted = evaluate_exprs([expr], ctx.inputs, ctx.train_states)[:, 0]
    network_r2 = float(np.corrcoef(fitted, y)[0, 1] ** 2) if np.std(fitted) > 0 else 0.0
    verification = {"method": "Hamilton's equations vs observed derivatives (held-out)",
                    "derivative_residual": chosen.extra["residual"],
                    "noise_floor": chosen.extra["floor"],
                    "unexplained_motion": chosen.extra["excess"],
                    "coefficients_from": "least squares on Hamilton's equations (train split)"
                    if chosen.extra["refit"] else "network fit, scaled",
                    "network_affine_r2": network_r2,
                    "conservation_ratio_heldout": ratio, "threshold": ctx.threshold,
                    "baseline_ratio": ctx.baseline}
    # The reported formula (coefficients from Hamilton's equations) joins the front as the
    # chosen point; its loss is measured against the network like every other member.
    final = Candidate(expr, 1.0 - network_r2, f"{chosen.source}, refitted")
    shown = sorted(front + [final], key=lambda c: (c.complexity, c.loss))
    entry = equation_entry(ctx, "energy", "E", expr, shown, final, ratio, verification,
                           time.perf_counter() - start)
    problems = []
    if chosen.extra["excess"] > MAX_UNEXPLAINED:
        problems.append(f"its implied motion leaves {chosen.extra['excess']:.1%} of the "
                        "observed (noise-free) motion unexplained")
    if not ratio <= ctx.threshold:
        problems.append(f"conservation ratio {ratio:.2e} above the threshold {ctx.threshold:.2e}")
    if problems:
        entry["verification"]["passed"] = False
        return None, {**entry, "reason": "; ".join(problems)}
    entry["verification"]["passed"] = True
    return entry, None


def with_term_dropped(front: list[Candidate]) -> list[Candidate]:
    """The front plus, for each member that is a sum of terms, the variants with one term left
    out (their coefficients are re-estimated afterwards): a greedy fit can carry a term that
    only made up for another, and the data should decide whether it is needed."""
    out, seen = list(front), {sp.srepr(c.expr) for c in front}
    for cand in front:
        terms = sp.Add.make_args(sp.expand(cand.expr))
        if len(terms) < 3:
            continue
        for i in range(len(terms)):
            expr = sp.Add(*(terms[:i] + terms[i + 1:]))
            key = sp.srepr(expr)
            if key not in seen and expr.free_symbols:
                seen.add(key)
                out.append(Candidate(expr, cand.loss, cand.source + " (term dropped)"))
    return out


def interior(traj: np.ndarray) -> np.ndarray:
    """Drop the first and last 3 steps, where finite-difference derivatives are one-sided."""
    return traj[:, 3:-3] if traj.shape[1] > 8 else traj


def drop_constant(expr: sp.Expr) -> sp.Expr:
    expr = sp.expand(expr)
    return sp.Add(*[t for t in sp.Add.make_args(expr) if t.free_symbols])


def equation_entry(ctx, kind, name, expr, front, chosen, ratio, verification, seconds):
    return {"kind": kind, "name": name, "expression": to_text(expr),
            "latex": to_latex(expr, ctx.inputs.symbols),
            "complexity": complexity(expr), "conservation_ratio": ratio,
            "verification": verification, "seconds": round(seconds, 2),
            "pareto": front_json(front, chosen, ctx.inputs.symbols)}


def head_candidates(ctx: Context, net: TrainedModel) -> list[Candidate]:
    """Each conserved-quantity head distilled; the front member most conserved on held-out
    trajectories (simplest within a factor 2 of the best) re-estimated by conservation."""
    out = []
    values = net.invariants(ctx.train_states)
    for k in range(values.shape[1]):
        front = distill(ctx, values[:, k], ctx.train_states, budget_scale=0.5)
        for cand in front:
            cand.extra["ratio"] = ratio_on(ctx, cand.expr)
        finite = [c for c in front if np.isfinite(c.extra["ratio"])]
        if not finite:
            continue
        best = min(c.extra["ratio"] for c in finite)
        chosen = min((c for c in finite if c.extra["ratio"] <= 2 * best + 1e-12),
                     key=lambda c: c.complexity)
        train = ctx.data.subset("train").states[:400]
        expr = drop_constant(refit_conserved(chosen.expr, ctx.inputs, train))
        out.append(Candidate(expr, ratio_on(ctx, expr), f"head {k + 1}",
                                extra={"front": front, "chosen": chosen,
                                       "terms": len(sp.Add.make_args(expr))}))
    return out


def library_candidates(ctx: Context) -> list[Candidate]:
    train = ctx.data.subset("train").states
    train = train[ctx.rng.permutation(len(train))[:400]]
    n, T, D = train.shape
    values = evaluate_exprs(ctx.library, ctx.inputs, train.reshape(-1, D)).reshape(n, T, -1)
    cands = conserved_search(values, ctx.library, max_terms=ctx.args.max_terms)
    # within/total on training data is the search's loss; the law test uses held-out data.
    cands = [c for c in cands if c.loss < ctx.threshold]
    for c in cands:
        c.source = "library search"
        c.extra["ratio"] = ratio_on(ctx, c.expr)
    return [c for c in cands if c.extra["ratio"] <= ctx.threshold]


def discover_invariants(ctx: Context, kept: list[sp.Expr], pool: list[Candidate],
                        rejected: list[dict]) -> list[dict]:
    """Greedy: simplest candidates first, kept when they raise the gradient rank."""
    D = ctx.data.dim
    probe = sample_rows(ctx.val_traj, 500, ctx.rng)
    entries = []
    pool = sorted(pool, key=lambda c: (c.extra.get("terms", 1), c.complexity,
                                       c.extra.get("ratio", c.loss)))
    for cand in pool:
        if len(kept) >= D - 1:     # an autonomous flow in D dimensions has at most D-1
            break
        ratio = cand.extra.get("ratio", ratio_on(ctx, cand.expr))
        if not ratio <= ctx.threshold:
            if cand.source.startswith("head"):
                rejected.append({"kind": "invariant", "name": cand.source,
                                 "expression": to_text(cand.expr),
                                 "reason": f"conservation ratio {ratio:.2e} above the "
                                           f"threshold {ctx.threshold:.2e}"})
            continue
        if gradient_rank(kept + [cand.expr], ctx.inputs, probe) <= len(kept):
            continue
        kept.append(cand.expr)
        name = f"I{len(entries) + 1}"
        cand.loss = ratio
        front = cand.extra.get("front") or related_front(pool, cand)
        verification = {"method": "conservation on held-out trajectories",
                        "conservation_ratio_heldout": ratio, "threshold": ctx.threshold,
                        "baseline_ratio": ctx.baseline, "source": cand.source,
                        "independent": True, "passed": True}
        entries.append(equation_entry(ctx, "invariant", name, cand.expr, front,
                                      cand.extra.get("chosen", cand), ratio, verification, 0.0))
    return entries


def related_front(pool: list[Candidate], chosen: Candidate) -> list[Candidate]:
    """Front for a searched invariant: the candidates that share a term with it (best held-out
    conservation ratio per complexity), with the chosen one always on it."""
    terms = {t.as_coeff_Mul()[1] for t in sp.Add.make_args(chosen.expr)}
    related = [Candidate(c.expr, c.extra.get("ratio", c.loss), c.source) for c in pool
               if c is not chosen and terms & {t.as_coeff_Mul()[1]
                                               for t in sp.Add.make_args(c.expr)}]
    front = [c for c in pareto(related) if c.complexity != chosen.complexity]
    return sorted(front + [chosen], key=lambda c: c.complexity)


def discover_latent(ctx: Context, net: TrainedModel) -> list[dict]:
    from sklearn.decomposition import PCA

    entries = []
    if ctx.args.latent_pcs == 0:
        return entries
    val = ctx.val_traj
    z = net.latent(val)                                     # (Nv, T, L)
    flat = z.reshape(-1, z.shape[-1])
    pcs = min(ctx.args.latent_pcs, flat.shape[1])
    pca = PCA(n_components=pcs, random_state=ctx.args.seed).fit(flat)
    idx = ctx.rng.choice(len(flat), size=min(ctx.args.n_samples, len(flat)), replace=False)
    states = val.reshape(-1, val.shape[-1])[idx]
    scores = pca.transform(flat[idx])
    for k in range(pcs):
        start = time.perf_counter()
        front = distill(ctx, scores[:, k], states, budget_scale=0.25)
        if not front:
            continue
        best = min(c.loss for c in front)
        chosen = min((c for c in front if c.loss <= best + 0.02),
                     key=lambda c: c.complexity)
        verification = {"method": "fit of the principal component as a function of the "
                                  "state (descriptive, not a law)",
                        "r2": 1 - chosen.loss,
                        "explained_variance": float(pca.explained_variance_ratio_[k])}
        entries.append(equation_entry(ctx, "latent", f"z_pc{k + 1}", chosen.expr, front, chosen,
                                      ratio_on(ctx, chosen.expr), verification,
                                      time.perf_counter() - start))
    return entries


def build_context(args, data: Trajectories, engines: list[str], rng: np.random.Generator,
                  log) -> Context:
    """Inputs, library, the sampled training states, held-out trajectories, their derivatives
    and the law threshold of one discovery run."""
    inputs = make_inputs(data.names, data.canonical)
    library = build_library(inputs)
    derivs = time_derivatives(data.states, data.t)
    tr, va = data.indices("train"), data.indices("val")
    if len(va) < 2:
        va = data.indices("test") if len(data.indices("test")) >= 2 else tr
    train_states = sample_rows(data.states[tr], args.n_samples, rng)
    inner_states, inner_derivs = interior(data.states[tr]), interior(derivs[tr])
    fit_idx = rng.choice(inner_states.shape[0] * inner_states.shape[1],
                         size=min(20_000, inner_states.shape[0] * inner_states.shape[1]),
                         replace=False)
    D = data.dim
    nv, T = len(va), data.states.shape[1]
    baseline = float(np.median([conservation_ratio(v) for v in np.moveaxis(
        evaluate_exprs(library, inputs, data.states[va].reshape(-1, D)).reshape(nv, T, -1),
        -1, 0)]))
    return Context(args, data, inputs, library, rng, train_states, data.states[va], derivs[va],
                   inner_states.reshape(-1, D)[fit_idx], inner_derivs.reshape(-1, D)[fit_idx],
                   noise_var=derivative_noise_variance(data.states[tr], data.t[tr]),
                   threshold=min(0.1, 0.01 * baseline), baseline=baseline, engines=engines,
                   log=log)


def discover_laws(ctx: Context, net: TrainedModel) -> tuple[list[dict], list[dict], int]:
    """Energy (with canonical labels and a trained energy head), then invariants; returns
    (equations, rejected, number of independent laws)."""
    equations, rejected, kept = [], [], []
    pairs = ctx.data.canonical_pairs()
    if pairs and net.energy_trained:
        entry, failure = discover_energy(ctx, net, *pairs)
        if entry:
            equations.append(entry)
            kept.append(parse_expression(entry["expression"], ctx.inputs.symbols))
        if failure:
            rejected.append(failure)
    else:
        ctx.log("no trained energy head (no canonical labels or energy weight 0): energy skipped")
    pool = (head_candidates(ctx, net) if net.n_invariants else []) + library_candidates(ctx)
    equations += discover_invariants(ctx, kept, pool, rejected)
    return equations, rejected, len(kept)
