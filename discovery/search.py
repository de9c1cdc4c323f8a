"""The stages of discovery: the energy from the physics-aware network, every exact law of the
data-driven library, the network's conserved-quantity heads distilled, and a description of
the latent space.

discover.py runs them top to bottom; `args` below is its DiscoverFlags. Blind by construction:
the data come through data/loader.py (no truth_* arrays) and nothing here depends on which
system the data hold.

Exact or nothing: every candidate, whatever found it, faces the same test (discovery/nullspace
.law_score) on held-out trajectories: its within-trajectory variance must be what the data's
own noise gives it. What passes and is functionally independent of what was kept is a law and
counts; what fails is listed as approximately conserved with its figures, never counted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from data.derivatives import derivative_noise_variance, observation_noise, time_derivatives
from data.loader import Trajectories
from discovery.engines import ENGINES, Settings
from discovery.expressions import (Candidate, CompiledTerms, Inputs, complexity, front_json,
                                   linear_form, make_inputs, pareto, split_terms, term_cost,
                                   to_latex, to_text)
from discovery.dissipation import change_over_records, loss_law
from discovery.hamilton import hamiltonian_pursuit, hamiltonian_residual, refit_hamiltonian
from discovery.library import DataProperties, Exponentials, build_library, data_properties
from discovery.nullspace import (LawFitter, NoiseModel, exact_laws, exact_threshold,
                                 functional_rank, law_gradients, law_score, select_independent)
from discovery.rates import fit_rate
from runs import TrainedModel
from utils import conservation_ratio

# An energy formula must explain all but this share of the observed, noise-free motion through
# Hamilton's equations (and be exactly conserved) to be reported as the energy.
MAX_UNEXPLAINED = 0.05
# Training trajectories the library's laws are fitted on (the held-out ones test them).
FIT_TRAJECTORIES = 600
# Held-out states at which functional independence is measured.
PROBE_STATES = 600
# States at which the terms' gradients give the noise floor, and at which Hamilton's
# equations are checked and fitted.
GRADIENT_STATES = 3000
HAMILTON_STATES = 5000
# Approximately conserved quantities listed (never counted) at most, and the largest
# conservation ratio of one worth listing (a generic function of the state is O(1)).
MAX_APPROXIMATE = 3
APPROXIMATE_RATIO = 1e-2


class TermBank:
    """Values and gradients of formula terms at every set of states discovery measures on,
    computed once per term (the library's in one batch).

    Per term: "fit" (Nf, T) on the training trajectories the laws are fitted on, "fit_grad"
    (m, D) at some of their states, "held" (Nv, T) on the held-out trajectories, "held_grad"
    (m, D) at some of their states, "probe" (p, D) at the independence probe, "ham_val" and
    "ham_fit" (n, D) at the states Hamilton's equations are checked and fitted on.
    """

    def __init__(self, inputs: Inputs, states: dict[str, np.ndarray], steps: np.ndarray):
        self.inputs, self.states, self.steps = inputs, states, steps
        self.cache: dict[sp.Expr, dict[str, np.ndarray]] = {}

    def add(self, exprs: list[sp.Expr]) -> None:
        missing = list(dict.fromkeys(e for e in exprs if e not in self.cache))
        if not missing:
            return
        compiled = CompiledTerms(missing, self.inputs)
        out = {}
        for key, states in self.states.items():
            if key in ("fit", "held"):
                out[key] = np.moveaxis(compiled(states), -1, 0)          # (k, N, T)
            else:
                out[key] = np.moveaxis(compiled.jacobian(states, self.steps), 1, 0)  # (k, n, D)
        for j, e in enumerate(missing):
            self.cache[e] = {key: arr[j] for key, arr in out.items()}

    def stack(self, exprs: list[sp.Expr], key: str) -> np.ndarray:
        """The arrays of `key` of the terms, stacked on the last-but-one axis for gradients
        ((n, k, D)) and on the last axis for values ((N, T, k))."""
        self.add(exprs)
        arrs = [self.cache[e][key] for e in exprs]
        return np.stack(arrs, axis=-1) if key in ("fit", "held") else np.stack(arrs, axis=1)


@dataclass
class Context:
    args: object                   # discover.py's DiscoverFlags
    data: Trajectories
    inputs: Inputs
    props: DataProperties
    library: list                  # F library terms (sympy, input symbols)
    cost: np.ndarray               # (F,) term_cost of each term
    plain: np.ndarray              # (F,) True for terms without functions (monomials, distances)
    rng: np.random.Generator
    train_states: np.ndarray       # (n, D) sampled training states (network fits)
    bank: TermBank
    fitter: LawFitter              # the library's covariances on the fit trajectories
    val_derivs: np.ndarray         # (n, D) observed derivatives at bank.states["ham_val"]
    fit_derivs: np.ndarray         # (n, D) at bank.states["ham_fit"]
    noise: NoiseModel              # observation noise of each variable, measured from the data
    noise_var: np.ndarray          # (D,) variance observation noise adds to each derivative
    val_traj: np.ndarray           # (Nv, T, D) held-out trajectories
    derivs: np.ndarray             # (N, T, D) observed derivatives of every trajectory
    threshold: float               # largest mu of an exact law on the held-out trajectories
    baseline: float                # conservation ratio of a generic library term
    engines: list[str]
    log: callable
    spectrum: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class Found:
    """A candidate law: its formula, how exactly the held-out data conserve it, its gradient at
    the probe states, where it came from, and the front it was picked from."""

    expr: sp.Expr
    score: dict
    grads: np.ndarray                  # (p, D)
    source: str
    front: list = field(default_factory=list)
    n_terms: int = 1
    cost: int = 0

    @property
    def exact(self) -> bool:
        return self.score["exact"]


# ---------------------------------------------------------------------------- context

def sample_rows(arr: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    flat = arr.reshape(-1, arr.shape[-1])
    return flat[rng.choice(len(flat), size=min(n, len(flat)), replace=False)]


def interior(traj: np.ndarray) -> np.ndarray:
    """Drop the first and last 3 steps, where finite-difference derivatives are one-sided."""
    return traj[:, 3:-3] if traj.shape[1] > 8 else traj


def build_context(args, data: Trajectories, engines: list[str], rng: np.random.Generator,
                  log) -> Context:
    """Inputs, library, the states every check is made on, and the noise floor of one
    discovery run."""
    inputs = make_inputs(data.names, data.canonical)
    derivs = time_derivatives(data.states, data.t)
    tr, va = data.indices("train"), data.indices("val")
    if len(va) < 2:
        va = data.indices("test") if len(data.indices("test")) >= 2 else tr
    train_states = sample_rows(data.states[tr], args.n_samples, rng)
    D = data.dim
    fit_pairs = sample_rows(np.concatenate([interior(data.states[tr]), interior(derivs[tr])],
                                           axis=-1), HAMILTON_STATES, rng)
    val_pairs = sample_rows(np.concatenate([interior(data.states[va]), interior(derivs[va])],
                                           axis=-1), HAMILTON_STATES, rng)
    props = data_properties(data.states[tr], data.t[tr], data.names, data.canonical)
    library = build_library(inputs, props)
    spread = data.states[tr].reshape(-1, D).std(axis=0)
    noise = NoiseModel(observation_noise(data.states[tr], data.t[tr]),
                       np.where(spread > 0, spread, 1.0))
    fit = data.states[tr[rng.permutation(len(tr))[:FIT_TRAJECTORIES]]]
    bank = TermBank(inputs, {
        "fit": fit, "fit_grad": sample_rows(fit, GRADIENT_STATES, rng),
        "held": data.states[va], "held_grad": sample_rows(data.states[va], GRADIENT_STATES, rng),
        "probe": sample_rows(data.states[va], PROBE_STATES, rng),
        "ham_val": val_pairs[:, :D], "ham_fit": fit_pairs[:, :D]},
        np.maximum(1e-4 * noise.spread, 1e-12))
    bank.add(library)
    fitter = LawFitter(bank.stack(library, "fit"), bank.stack(library, "fit_grad"), noise)
    exps = Exponentials.of(data.names, props)
    if exps is not None:
        lam = fit_rate(bank, inputs, exps, noise, rng, fitter.threshold,
                       data.canonical_pairs(), fit_pairs[:, D:])
        if lam is not None:
            extra = exps.exprs(inputs.state_symbols, lam)
            bank.add(extra)
            wider = LawFitter(bank.stack(library + extra, "fit"),
                              bank.stack(library + extra, "fit_grad"), noise)
            # The rate makes a law exact among the velocities' monomials; the terms join the
            # library only if they hold more exact laws than the library alone: over a short
            # range, exponentials of a small rate imitate the polynomials already there.
            before, after = fitter.n_exact(), wider.n_exact()
            if after > before:
                log(f"exponential terms exp(+-{lam:.6g} a) of positions and their differences "
                    f"make a law exact: added to the library ({before} -> {after} exact "
                    "directions)")
                library = library + extra
                fitter = wider
            else:
                log(f"exponential terms exp(+-{lam:.6g} a) add no exact law to the library's "
                    f"({before} -> {after} exact directions): not added")
    held = bank.stack(library, "held")
    baseline = float(np.median([conservation_ratio(held[..., j]) for j in range(len(library))]))
    nv, T = len(va), data.states.shape[1]
    return Context(args, data, inputs, props, library,
                   np.array([term_cost(e) for e in library]),
                   np.array([not e.atoms(sp.Function) for e in library]), rng, train_states,
                   bank, fitter, val_pairs[:, D:], fit_pairs[:, D:], noise,
                   derivative_noise_variance(data.states[tr], data.t[tr]), data.states[va],
                   derivs, exact_threshold(nv * (T - 1)), baseline, engines, log)


# ---------------------------------------------------------------------------- scoring

def score_terms(ctx: Context, terms: list[sp.Expr], coef: np.ndarray) -> tuple[dict, np.ndarray]:
    """law_score of sum coef * terms on the held-out trajectories, and its gradient at the
    probe states (p, D)."""
    score = law_score(coef, ctx.bank.stack(terms, "held"), ctx.bank.stack(terms, "held_grad"),
                      ctx.noise)
    return score, law_gradients(coef, ctx.bank.stack(terms, "probe"))


def found(ctx: Context, expr: sp.Expr, source: str, front=None) -> Found:
    """A formula as a candidate law: linear in its terms' coefficients when it is a sum of
    terms, else one term."""
    form = linear_form(expr)
    terms, coef = form if form is not None else ([expr], np.ones(1))
    score, grads = score_terms(ctx, terms, coef)
    return Found(expr, score, grads, source, list(front or []), len(terms),
                 int(sum(term_cost(t) for t in terms)))


def conserve(ctx: Context, terms: list[sp.Expr]) -> tuple[np.ndarray, float]:
    """The best conserved combination of the given terms on the training trajectories:
    coefficients (largest standardised +-1) and training mu."""
    index = {e: i for i, e in enumerate(ctx.library)}
    if all(t in index for t in terms):
        coef, mu = ctx.fitter.best([index[t] for t in terms])
        return coef[[index[t] for t in terms]], mu
    fitter = LawFitter(ctx.bank.stack(terms, "fit"), ctx.bank.stack(terms, "fit_grad"),
                       ctx.noise)
    return fitter.best(list(range(len(terms))))


def combine(terms: list[sp.Expr], coef: np.ndarray, tidy: float = 1e-12) -> sp.Expr:
    """sum c t over the coefficients above `tidy`; sympy's 0 when none is."""
    return sp.Add(*[sp.Float(c) * t for c, t in zip(coef, terms) if abs(c) > tidy])


def unit_form(coef: np.ndarray) -> np.ndarray:
    """An invariant's coefficients scaled so that the largest is +-1 (its scale is free)."""
    return coef / coef[np.argmax(np.abs(coef))] if np.any(coef) else coef


def ratio_on(ctx: Context, expr: sp.Expr) -> float:
    """Conservation ratio of expr on the held-out trajectories (inf where undefined)."""
    values = ctx.bank.stack([expr], "held")[..., 0]
    return conservation_ratio(values) if np.isfinite(values).all() else float("inf")


# ---------------------------------------------------------------------------- engines

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


def with_term_dropped(front: list[Candidate]) -> list[Candidate]:
    """The front plus, for each member that is a sum of terms, the variants with one term left
    out: a greedy fit can carry a term that only made up for another, and the data should
    decide whether it is needed."""
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


def drop_constant(expr: sp.Expr) -> sp.Expr:
    expr = sp.expand(expr)
    return sp.Add(*[t for t in sp.Add.make_args(expr) if t.free_symbols])


# ---------------------------------------------------------------------------- the energy

def discover_energy(ctx: Context, net: TrainedModel, q_idx, p_idx, library_laws: list
                    ) -> tuple[Found | None, dict, list[dict]]:
    """The energy: formulas for the network's energy head, for the observed motion itself (a
    pursuit of Hamilton's equations over the library) and the library's exact laws, each with
    its coefficients from conservation scaled by Hamilton's equations (or from Hamilton's
    equations alone); the simplest that explains the observed motion and is exactly conserved.
    Returns (the law or None, its entry or the rejection, approximate entries)."""
    start = time.perf_counter()
    y = net.energy(ctx.train_states)
    front = distill(ctx, y, ctx.train_states)
    direct = [Candidate(combine([ctx.library[j] for j in idx], coef), float("nan"),
                        "Hamilton's equations")
              for idx, coef in hamiltonian_pursuit(ctx.bank.stack(ctx.library, "ham_fit"),
                                                   q_idx, p_idx, ctx.fit_derivs,
                                                   2 * ctx.args.max_terms)]
    candidates = with_term_dropped(front) + with_term_dropped(direct) + [
        Candidate(law.expr, float("nan"), "library law") for law in library_laws]
    scored, seen = [], set()
    for cand in candidates:
        form = linear_form(cand.expr)
        terms = form[0] if form is not None else [cand.expr]
        key = frozenset(terms)
        if key in seen:
            continue
        seen.add(key)
        for how, coef in energy_coefficients(ctx, terms, form is not None, q_idx, p_idx):
            grad = law_gradients(coef, ctx.bank.stack(terms, "ham_val"))
            resid, floor, a = hamiltonian_residual(grad, q_idx, p_idx, ctx.val_derivs,
                                                   ctx.noise_var)
            coef = a * coef
            expr = combine(terms, coef)
            if not np.isfinite(resid) or expr.is_zero:    # no formula: every coefficient vanished
                continue
            # the share of the noise-free motion that the formula leaves unexplained
            excess = max(resid - floor, 0.0) / max(1.0 - floor, 1e-12)
            score, grads = score_terms(ctx, terms, coef)
            # the cost of what the formula holds (terms whose coefficient vanished cost nothing)
            law = Found(expr, score, grads, cand.source, n_terms=len(terms),
                        cost=term_cost(expr))
            scored.append((cand, law, {"residual": resid, "floor": floor, "excess": excess,
                                       "how": how, "terms": terms}))
    if not scored:
        return None, {"kind": "energy", "name": "E", "reason": "no candidate formula"}, []
    best = min(h["excess"] for _, _, h in scored)
    explains = [s for s in scored if s[2]["excess"] <= 2 * best + 5e-3]
    # the simplest basis first (term_cost: a polynomial before a trig stand-in), then the
    # shortest formula
    pick = lambda pool: min(pool, key=lambda s: (s[1].cost, complexity(s[1].expr),
                                                 s[2]["excess"]))
    exact = [s for s in explains if s[1].exact]
    cand, law, ham = pick(exact) if exact else pick(explains)
    fitted = ctx.bank.stack([law.expr], "fit")                           # (Nf, T, 1)
    head = net.energy(ctx.bank.states["fit"])
    network_r2 = (float(np.corrcoef(fitted.ravel(), head.ravel())[0, 1] ** 2)
                  if np.std(fitted) > 0 else 0.0)
    verification = {"method": "Hamilton's equations vs observed derivatives, and conservation "
                              "to the noise floor (held-out)",
                    "derivative_residual": ham["residual"], "noise_floor": ham["floor"],
                    "unexplained_motion": ham["excess"], "network_affine_r2": network_r2,
                    **law_verification(ctx, law)}
    final = Candidate(law.expr, 1.0 - network_r2, f"{cand.source}, refitted")
    law.front = sorted(front + [final], key=lambda c: (c.complexity, c.loss))
    entry = equation_entry(ctx, "energy", "E", law, final, verification,
                           time.perf_counter() - start)
    problems = []
    if ham["excess"] > MAX_UNEXPLAINED:
        problems.append(f"its implied motion leaves {ham['excess']:.1%} of the observed "
                        "(noise-free) motion unexplained")
    if not law.exact:
        problems.append(not_exact_reason(ctx, law))
    entry["verification"]["passed"] = not problems
    entry["uncertainty"] = energy_spread(ctx, ham, law, q_idx, p_idx)
    if problems:
        approx = []
        if ham["excess"] <= MAX_UNEXPLAINED:
            # it explains the motion but is not conserved: an energy that is lost (friction)
            approx.append({**approximate_entry(ctx, law, "E~", cand.source),
                           "decay": decay(ctx, law), "uncertainty": entry["uncertainty"]})
        return None, {**entry, "reason": "; ".join(problems)}, approx
    return law, entry, []


def decay(ctx: Context, law: Found) -> dict:
    """How an approximately conserved energy changes over each recording and the law of its
    rate of change (discovery/dissipation.py), in terms of the library's and absolute-value
    terms (|v|^3 for air drag)."""
    compiled = CompiledTerms([law.expr], ctx.inputs)
    values = compiled(ctx.data.states)[..., 0]                                    # (N, T)
    flat = ctx.data.states.reshape(-1, ctx.data.dim)
    box = ctx.rng.uniform(flat.min(0), flat.max(0), (20_000, ctx.data.dim))
    lowest = compiled(np.concatenate([box, flat]))[:, 0]
    out = change_over_records(values, ctx.data.meta, float(np.nanmin(lowest)))
    syms = ctx.inputs.state_symbols
    exprs = list(ctx.library) + [sp.Abs(v) ** 3 for v in syms] + [sp.Abs(v) * v for v in syms]
    terms = CompiledTerms(exprs, ctx.inputs)(ctx.data.states)
    fit = loss_law(values, terms, ctx.data.t, ctx.data.meta, exprs)
    if fit is not None:
        chosen = drop_constant(fit["chosen"].expr)
        out.update({"loss_law": f"dE/dt = {to_text(chosen)}",
                    "loss_law_latex": r"\dot E = " + to_latex(chosen, ctx.inputs.symbols),
                    "explained": fit["explained"],
                    "method": "E(t) - E(t0) fitted by integrals of library terms along each "
                              "recording (forward selection)",
                    "pareto": front_json(fit["front"], fit["chosen"], ctx.inputs.symbols)})
    return out


def steps(ctx: Context) -> np.ndarray:
    """Finite-difference steps of each variable for term gradients."""
    return ctx.bank.steps


def energy_spread(ctx: Context, ham: dict, law: Found, q_idx, p_idx, folds: int = 5) -> dict:
    """Uncertainty of the energy's coefficients: their spread (sample standard deviation) over
    FOLDS disjoint parts of the training data, each refitted the way the reported ones were
    (conservation scaled by Hamilton's equations, or Hamilton's equations alone)."""
    terms = ham["terms"]
    form = linear_form(law.expr)
    if form is None or len(terms) < 1:
        return {}
    value = dict(zip(*form))
    grads = ctx.bank.stack(terms, "ham_fit")
    parts = np.array_split(ctx.rng.permutation(len(grads)), folds)
    fit_parts = np.array_split(np.arange(ctx.bank.states["fit"].shape[0]), folds)
    coefs = []
    for part, traj in zip(parts, fit_parts):
        if ham["how"] == "conservation":
            fitter = LawFitter(ctx.bank.stack(terms, "fit")[traj],
                               ctx.bank.stack(terms, "fit_grad"), ctx.noise)
            coef, _ = fitter.best(list(range(len(terms))))
        else:
            coef = refit_hamiltonian(grads[part], q_idx, p_idx, ctx.fit_derivs[part])
        g = law_gradients(coef, grads[part])
        _, _, a = hamiltonian_residual(g, q_idx, p_idx, ctx.fit_derivs[part])
        coefs.append(a * coef)
    spread = np.std(np.array(coefs), axis=0, ddof=1)
    return {"method": f"sample std of the coefficients refitted on {folds} disjoint parts of "
                      "the training data",
            "coefficients": {sp.sstr(t): [float(value[t]), float(e)]
                             for t, e in zip(terms, spread) if t in value}}


def energy_coefficients(ctx: Context, terms: list[sp.Expr], linear: bool, q_idx, p_idx
                        ) -> list[tuple[str, np.ndarray]]:
    """Coefficients of a candidate energy's terms: those that conserve it best on the training
    trajectories (exact where the terms allow), and those Hamilton's equations give (each to be
    scaled by Hamilton's equations). A formula that is not a sum of terms is one term."""
    if not linear:
        return [("as found", np.ones(1))]
    out = []
    if len(terms) >= 2:
        coef, _ = conserve(ctx, terms)
        if np.isfinite(coef).all() and np.abs(coef).sum() > 0:
            out.append(("conservation", coef))
    out.append(("hamilton", refit_hamiltonian(ctx.bank.stack(terms, "ham_fit"), q_idx, p_idx,
                                              ctx.fit_derivs)))
    return out


# ---------------------------------------------------------------------------- invariants

def library_laws(ctx: Context) -> list[Found]:
    """Every sparse exact law the library holds (discovery.nullspace.exact_laws), best first."""
    laws, ctx.spectrum = exact_laws(ctx.fitter, ctx.cost, ctx.plain,
                                    ctx.bank.stack(ctx.library, "held"),
                                    ctx.bank.stack(ctx.library, "held_grad"), ctx.noise)
    probe_grads = ctx.bank.stack(ctx.library, "probe")
    out = []
    for law in laws:
        support = np.flatnonzero(law.coef)
        expr = combine([ctx.library[i] for i in support], unit_form(law.coef[support]))
        out.append(Found(expr, law.score, law_gradients(law.coef, probe_grads), "library",
                         n_terms=law.n_terms, cost=law.cost))
    return out


def head_laws(ctx: Context, net: TrainedModel) -> list[Found]:
    """The network's conserved-quantity heads (and, without canonical labels, its energy head,
    trained there on conservation alone) distilled by the engines; every front member's terms
    re-weighted to conserve best, then scored like any other candidate."""
    heads = []
    if net.n_invariants:
        values = net.invariants(ctx.train_states)
        heads += [(f"head {k + 1}", values[:, k]) for k in range(values.shape[1])]
    if ctx.data.canonical is None and net.energy_head_trained:
        heads.append(("energy head", net.energy(ctx.train_states)))
    out = []
    for name, y in heads:
        front = distill(ctx, y, ctx.train_states, budget_scale=0.5)
        for cand in front:
            terms = split_terms(cand.expr)
            if terms is None:
                expr = drop_constant(cand.expr)
            else:
                coef, _ = conserve(ctx, terms)
                expr = combine(terms, unit_form(coef))
            if expr.free_symbols:
                out.append(found(ctx, expr, name, front))
    return out


def discover_invariants(ctx: Context, kept: list[Found], pool: list[Found]
                        ) -> tuple[list[Found], list[Found]]:
    """Exact candidates that are functionally independent of the kept laws and of one another
    (discovery.nullspace.select_independent), and the best approximately conserved ones that
    are independent of all of them (listed, never counted)."""
    pool = sorted(pool, key=lambda f: (not f.exact, f.n_terms, f.cost, f.score["mu"]))
    n_eff = ctx.val_traj.shape[0] * (ctx.val_traj.shape[1] - 1)
    chosen = select_independent(pool, [f.grads for f in pool], [k.grads for k in kept],
                                ctx.data.dim - 1, n_eff)
    laws = kept + chosen
    approx = []
    base = [law.grads for law in laws]
    for cand in sorted((f for f in pool if not f.exact), key=lambda f: f.score["ratio"]):
        if len(approx) >= MAX_APPROXIMATE or not cand.score["ratio"] <= APPROXIMATE_RATIO:
            break
        if functional_rank(base + [cand.grads]) > len(base):
            approx.append(cand)
            base.append(cand.grads)
    return chosen, approx


# ---------------------------------------------------------------------------- entries

def law_verification(ctx: Context, law: Found) -> dict:
    return {"conservation_ratio_heldout": law.score["ratio"], "mu": law.score["mu"],
            "mu_threshold": law.score.get("threshold", ctx.threshold),
            "exact": law.exact, "source": law.source,
            "noise_std": np.sqrt(ctx.noise.variance).tolist()}


def not_exact_reason(ctx: Context, law: Found) -> str:
    return (f"not exactly conserved: its within-trajectory variance is {law.score['mu']:.3g}x "
            f"what the data's noise gives an exact law (at most "
            f"{law.score.get('threshold', ctx.threshold):.3g}x), conservation ratio "
            f"{law.score['ratio']:.2e}")


def equation_entry(ctx: Context, kind: str, name: str, law: Found, chosen, verification: dict,
                   seconds: float) -> dict:
    return {"kind": kind, "name": name, "expression": to_text(law.expr),
            "latex": to_latex(law.expr, ctx.inputs.symbols),
            "complexity": complexity(law.expr), "conservation_ratio": law.score["ratio"],
            "mu": law.score["mu"], "verification": verification, "seconds": round(seconds, 2),
            "pareto": front_json(law.front, chosen, ctx.inputs.symbols)}


def invariant_entry(ctx: Context, name: str, law: Found, pool: list[Found]) -> dict:
    chosen = Candidate(law.expr, law.score["ratio"], law.source)
    law.front = law.front or related_front(pool, law)
    if not any(c.expr == law.expr for c in law.front):
        law.front = sorted(law.front + [chosen], key=lambda c: c.complexity)
    else:
        chosen = next(c for c in law.front if c.expr == law.expr)
    verification = {"method": "conservation to the noise floor on held-out trajectories",
                    **law_verification(ctx, law), "independent": True, "passed": True}
    return equation_entry(ctx, "invariant", name, law, chosen, verification, 0.0)


def approximate_entry(ctx: Context, law: Found, name: str, source: str) -> dict:
    return {"kind": "approximate", "name": name, "expression": to_text(law.expr),
            "latex": to_latex(law.expr, ctx.inputs.symbols),
            "complexity": complexity(law.expr), "conservation_ratio": law.score["ratio"],
            "mu": law.score["mu"], "source": source, "reason": not_exact_reason(ctx, law)}


def related_front(pool: list[Found], chosen: Found) -> list[Candidate]:
    """Front for a library law: the candidates that share a term with it (best held-out
    conservation ratio per complexity)."""
    terms = {t.as_coeff_Mul()[1] for t in sp.Add.make_args(chosen.expr)}
    related = [Candidate(f.expr, f.score["ratio"], f.source) for f in pool
               if f is not chosen and terms & {t.as_coeff_Mul()[1]
                                               for t in sp.Add.make_args(f.expr)}]
    return [c for c in pareto(related) if c.complexity != complexity(chosen.expr)]


# ---------------------------------------------------------------------------- all laws

def discover_laws(ctx: Context, net: TrainedModel) -> tuple[list[dict], list[dict], int]:
    """Energy (with canonical labels and a trained energy head), then invariants; returns
    (equations, rejected, number of independent laws). Approximately conserved quantities are
    entries of kind "approximate"."""
    equations, rejected, kept, approx = [], [], [], []
    pool = library_laws(ctx)
    pairs = ctx.data.canonical_pairs()
    if pairs and net.energy_trained:
        energy, entry, approx = discover_energy(ctx, net, *pairs,
                                                [f for f in pool if f.exact])
        if energy is not None:
            kept.append(energy)
            equations.append(entry)
        elif not approx:           # an energy that is only lost is reported as approximate
            rejected.append(entry)
    else:
        ctx.log("no trained energy head with canonical labels: energy not singled out")
    pool += head_laws(ctx, net)
    chosen, more = discover_invariants(ctx, kept, pool)
    for k, law in enumerate(chosen):
        equations.append(invariant_entry(ctx, f"I{k + 1}", law, pool))
    for k, law in enumerate(more[:MAX_APPROXIMATE - len(approx)]):
        approx.append(approximate_entry(ctx, law, f"A{k + 1}", law.source))
    return equations + approx, rejected, len(kept) + len(chosen)


def discover_latent(ctx: Context, net: TrainedModel) -> list[dict]:
    """What the leading principal components of the latent encode (descriptive, not laws)."""
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
        law = Found(chosen.expr, {"ratio": ratio_on(ctx, chosen.expr), "mu": float("nan")},
                    np.zeros((1, ctx.data.dim)), "latent", front)
        verification = {"method": "fit of the principal component as a function of the "
                                  "state (descriptive, not a law)",
                        "r2": 1 - chosen.loss,
                        "explained_variance": float(pca.explained_variance_ratio_[k])}
        entries.append(equation_entry(ctx, "latent", f"z_pc{k + 1}", law, chosen, verification,
                                      time.perf_counter() - start))
    return entries
