"""Symbolic regression of what the networks learned: conservation laws as equations.

    python discover.py --system projectile
    python discover.py --system spring --niterations 40
    python discover.py --system data/my_measurements.csv --backend sparse

Blind by construction: reads the trajectory file through data/loader.py (which drops every
truth_* array) and the trained run; it never imports the simulators and nothing here depends
on which system the data hold. For each system it reports

  * the energy: the physics-aware run's energy head Ê distilled into formulas (sparse
    regression over a feature library + Operon genetic programming, one Pareto front); the
    formula is picked by how well the motion it implies through Hamilton's equations matches
    the observed time derivatives of held-out trajectories (not by fit to the network), with
    its coefficients re-estimated from those equations;
  * invariants: every further conserved quantity, from the network's conserved-quantity heads
    (when trained) and from a search for sparse conserved combinations of library features;
    kept only if functionally independent of the laws already kept (gradient-rank test);
  * latent: what the leading principal components of the latent encode (descriptive).
A candidate is a law only if it is conserved on held-out trajectories far better than a
generic function of the state; what fails that check is listed as rejected, never as a law.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from data.loader import Trajectories, load_trajectories
from models import symbolic as sr
from utils import (DATA_DIR, RESULTS_DIR, atomic_write_json, cli, derivative_noise_variance,
                   fail, read_json, seed_everything, time_derivatives, to_jsonable)

# An energy formula is a law only if its implied motion explains all but this share of the
# observed, noise-free motion (and it is conserved: see the threshold in discover()).
MAX_UNEXPLAINED = 0.05


@dataclass
class Args:
    system: str                    # built-in name or trajectory file (.npz/.csv)
    run: str | None = None         # run folder (default: newest physics-aware run of the system)
    backend: str = "auto"          # auto | pysr | operon | sparse
    niterations: int = 40          # PySR iterations; Operon generations = 10 x this
    budget: int = 200_000          # Operon: model evaluations per equation (not wall time)
    max_terms: int = 5             # largest number of terms in library formulas
    n_samples: int = 4000          # states sampled for fitting network outputs
    latent_pcs: int = 2            # principal components of the latent to describe
    seed: int = 0
    threads: int = 2
    data_dir: str = str(DATA_DIR)
    results_dir: str = str(RESULTS_DIR)
    quiet: bool = False


def parse_args(argv=None) -> Args:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", required=True, help="built-in name or .npz/.csv path")
    ap.add_argument("--run", help="run folder under results/runs (default: newest "
                                  "physics-aware PhysicsNet run of the system)")
    ap.add_argument("--backend", default="auto", choices=["auto", "pysr", "operon", "sparse"],
                    help="auto: PySR if usable, else Operon + sparse regression")
    ap.add_argument("--niterations", type=int, default=40,
                    help="PySR iterations (Operon: 10x as many generations at most)")
    ap.add_argument("--budget", type=int, default=200_000,
                    help="Operon model evaluations per equation")
    ap.add_argument("--max-terms", type=int, default=5)
    ap.add_argument("--n-samples", type=int, default=4000)
    ap.add_argument("--latent-pcs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=str(DATA_DIR))
    ap.add_argument("--results-dir", default=str(RESULTS_DIR))
    ap.add_argument("--quiet", action="store_true")
    ns = ap.parse_args(argv)
    args = Args(**{k.replace("-", "_"): v for k, v in vars(ns).items()})
    for name in ("niterations", "budget", "max_terms", "n_samples", "threads"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


# ---------------------------------------------------------------------------- the trained run

def find_run(results_dir: Path, data: Trajectories, system_arg: str) -> Path:
    """The newest PhysicsNet run of this data file, preferring physics-aware ones."""
    runs = []
    for cfg_path in sorted((results_dir / "runs").glob("*/config.json")):
        cfg = read_json(cfg_path, {})
        flags = cfg.get("flags", {})
        if flags.get("model") != "physicsnet" or cfg.get("data", {}).get("name") != data.name:
            continue
        if not (cfg_path.parent / "checkpoint.pt").exists():
            continue
        physics = float(flags.get("beta", 0.0)) > 0
        runs.append((physics, cfg_path.stat().st_mtime, cfg_path.parent))
    if not runs:
        fail(f"no trained PhysicsNet run for '{data.name}' in {results_dir}/runs: run "
             f"`python train.py --system {system_arg}` first")
    return max(runs)[2]


class Network:
    """The trained model's outputs as numpy functions of raw states."""

    def __init__(self, run_dir: Path):
        import torch

        from models.physics_net import load_run

        self.torch = torch
        self.model, self.checkpoint = load_run(run_dir, device="cpu")
        self.model.eval()
        cfg = self.model.config
        energy_weight = float(self.checkpoint.get("flags", {}).get("beta", 0.0))
        self.energy_trained = energy_weight > 0 and getattr(cfg, "q_idx", None) is not None
        self.n_invariants = int(getattr(cfg, "n_invariants", 0) or 0)

    def _apply(self, fn, states: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            out = fn(self.torch.as_tensor(states, dtype=self.torch.float32))
        return out.double().numpy()

    def energy(self, states):
        return self._apply(self.model.energy, states)

    def invariants(self, states):
        return self._apply(self.model.invariants, states)

    def latent(self, trajectories):
        return self._apply(self.model.encode, trajectories)


# ---------------------------------------------------------------------------- discovery

@dataclass
class Context:
    args: Args
    data: Trajectories
    inputs: sr.Inputs
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
    backend: str
    log: callable


def sample_rows(arr: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    flat = arr.reshape(-1, arr.shape[-1])
    return flat[rng.choice(len(flat), size=min(n, len(flat)), replace=False)]


def ratio_on(ctx: Context, expr: sp.Expr) -> float:
    nv, T, D = ctx.val_traj.shape
    values = sr.evaluate_exprs([expr], ctx.inputs, ctx.val_traj.reshape(-1, D)).reshape(nv, T)
    return sr.conservation_ratio(values) if np.isfinite(values).all() else float("inf")


def distill(ctx: Context, y: np.ndarray, states: np.ndarray, budget_scale: float = 1.0
            ) -> list[sr.Candidate]:
    """Pareto front of formulas for network outputs y on states, from the chosen engines."""
    cands: list[sr.Candidate] = []
    a = ctx.args
    if ctx.backend in ("sparse", "operon+sparse", "pysr+sparse"):
        feats = sr.evaluate_exprs(ctx.library, ctx.inputs, states)
        cands += sr.sparse_front(feats, y, ctx.library, max_terms=2 * a.max_terms)
    X = ctx.inputs.evaluate(states)
    if ctx.backend in ("operon", "operon+sparse"):
        cands += sr.operon_front(X, y, ctx.inputs.all_names, ctx.inputs.symbols,
                                 budget=int(a.budget * budget_scale),
                                 generations=10 * a.niterations, seed=a.seed, threads=a.threads)
    if ctx.backend == "pysr+sparse":
        cands += sr.pysr_front(X, y, ctx.inputs.all_names, ctx.inputs.symbols,
                               niterations=a.niterations, seed=a.seed)
    return sr.pareto(cands)


def discover_energy(ctx: Context, net: Network, q_idx, p_idx) -> tuple[dict | None, dict | None]:
    start = time.perf_counter()
    y = net.energy(ctx.train_states)
    front = distill(ctx, y, ctx.train_states)
    pairs = np.concatenate([interior(ctx.val_traj), interior(ctx.val_derivs)], axis=-1)
    val_states, val_derivs = np.split(sample_rows(pairs, ctx.args.n_samples, ctx.rng), 2, axis=1)
    scored = []
    for cand in with_term_dropped(front):
        refit = sr.refit_hamiltonian(cand.expr, ctx.inputs, q_idx, p_idx, ctx.fit_states,
                                     ctx.fit_derivs)
        expr = refit if refit is not None else cand.expr
        resid, floor, scale = sr.hamiltonian_residual(expr, ctx.inputs, q_idx, p_idx,
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
    fitted = sr.evaluate_exprs([expr], ctx.inputs, ctx.train_states)[:, 0]
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
    final = sr.Candidate(expr, 1.0 - network_r2, f"{chosen.source}, refitted")
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


def with_term_dropped(front: list[sr.Candidate]) -> list[sr.Candidate]:
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
                out.append(sr.Candidate(expr, cand.loss, cand.source + " (term dropped)"))
    return out


def interior(traj: np.ndarray) -> np.ndarray:
    """Drop the first and last 3 steps, where finite-difference derivatives are one-sided."""
    return traj[:, 3:-3] if traj.shape[1] > 8 else traj


def drop_constant(expr: sp.Expr) -> sp.Expr:
    expr = sp.expand(expr)
    return sp.Add(*[t for t in sp.Add.make_args(expr) if t.free_symbols])


def equation_entry(ctx, kind, name, expr, front, chosen, ratio, verification, seconds):
    return {"kind": kind, "name": name, "expression": sr.to_text(expr),
            "latex": sr.to_latex(expr, ctx.inputs.symbols),
            "complexity": sr.complexity(expr), "conservation_ratio": ratio,
            "verification": verification, "seconds": round(seconds, 2),
            "pareto": sr.front_json(front, chosen, ctx.inputs.symbols)}


def head_candidates(ctx: Context, net: Network) -> list[sr.Candidate]:
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
        expr = drop_constant(sr.refit_conserved(chosen.expr, ctx.inputs, train))
        out.append(sr.Candidate(expr, ratio_on(ctx, expr), f"head {k + 1}",
                                extra={"front": front, "chosen": chosen,
                                       "terms": len(sp.Add.make_args(expr))}))
    return out


def library_candidates(ctx: Context) -> list[sr.Candidate]:
    train = ctx.data.subset("train").states
    train = train[ctx.rng.permutation(len(train))[:400]]
    n, T, D = train.shape
    values = sr.evaluate_exprs(ctx.library, ctx.inputs, train.reshape(-1, D)).reshape(n, T, -1)
    cands = sr.conserved_search(values, ctx.library, max_terms=ctx.args.max_terms)
    # within/total on training data is the search's loss; the law test uses held-out data.
    cands = [c for c in cands if c.loss < ctx.threshold]
    for c in cands:
        c.source = "library search"
        c.extra["ratio"] = ratio_on(ctx, c.expr)
    return [c for c in cands if c.extra["ratio"] <= ctx.threshold]


def discover_invariants(ctx: Context, kept: list[sp.Expr], pool: list[sr.Candidate],
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
                                 "expression": sr.to_text(cand.expr),
                                 "reason": f"conservation ratio {ratio:.2e} above the "
                                           f"threshold {ctx.threshold:.2e}"})
            continue
        if sr.gradient_rank(kept + [cand.expr], ctx.inputs, probe) <= len(kept):
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


def related_front(pool: list[sr.Candidate], chosen: sr.Candidate) -> list[sr.Candidate]:
    """Front for a searched invariant: the candidates that share a term with it (best held-out
    conservation ratio per complexity), with the chosen one always on it."""
    terms = {t.as_coeff_Mul()[1] for t in sp.Add.make_args(chosen.expr)}
    related = [sr.Candidate(c.expr, c.extra.get("ratio", c.loss), c.source) for c in pool
               if c is not chosen and terms & {t.as_coeff_Mul()[1]
                                               for t in sp.Add.make_args(c.expr)}]
    front = [c for c in sr.pareto(related) if c.complexity != chosen.complexity]
    return sorted(front + [chosen], key=lambda c: c.complexity)


def discover_latent(ctx: Context, net: Network) -> list[dict]:
    from sklearn.decomposition import PCA

    entries = []
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


def choose_backend(requested: str, log) -> str:
    if requested in ("auto", "pysr"):
        usable, why = sr.pysr_usable()
        if usable:
            return "pysr+sparse"
        if requested == "pysr":
            fail(f"--backend pysr: PySR is not usable here ({why}); use --backend operon")
        log(f"PySR not usable ({why}); using the embedded engines (Operon + sparse regression)")
        return "operon+sparse"
    return requested


def discover(args: Args) -> dict:
    """Run discovery for one system; returns its entry of discovered_equations.json."""
    log = (lambda *a: None) if args.quiet else print
    data = load_trajectories(args.system, args.data_dir)
    results_dir = Path(args.results_dir)
    run_dir = Path(args.run) if args.run else find_run(results_dir, data, args.system)
    if not (run_dir / "checkpoint.pt").exists():
        fail(f"no checkpoint in {run_dir}: run `python train.py --system {args.system}` first")
    backend = choose_backend(args.backend, log)
    rng = seed_everything(args.seed)
    net = Network(run_dir)
    inputs = sr.make_inputs(data.names, data.canonical)
    library = sr.build_library(inputs)
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
    baseline = float(np.median([sr.conservation_ratio(v) for v in np.moveaxis(
        sr.evaluate_exprs(library, inputs, data.states[va].reshape(-1, D)).reshape(nv, T, -1),
        -1, 0)]))
    ctx = Context(args, data, inputs, library, rng, train_states, data.states[va], derivs[va],
                  inner_states.reshape(-1, D)[fit_idx], inner_derivs.reshape(-1, D)[fit_idx],
                  noise_var=derivative_noise_variance(data.states[tr], data.t[tr]),
                  threshold=min(0.1, 0.01 * baseline), baseline=baseline, backend=backend,
                  log=log)
    log(f"{data.name}: {data.n_traj} trajectories, variables {data.names}"
        f"{' + ' + ', '.join(inputs.derived) if inputs.derived else ''}; run {run_dir.name}; "
        f"backend {backend}; law threshold: conservation ratio <= {ctx.threshold:.2e} "
        f"(generic function of the state: {baseline:.2e})")
    equations, rejected, kept = [], [], []
    pairs = data.canonical_pairs()
    if pairs and net.energy_trained:
        entry, failure = discover_energy(ctx, net, *pairs)
        if entry:
            equations.append(entry)
            kept.append(sp.sympify(entry["expression"], locals=inputs.symbols))
        if failure:
            rejected.append(failure)
    else:
        log("no trained energy head (no canonical labels or energy weight 0): energy skipped")
    pool = (head_candidates(ctx, net) if net.n_invariants else []) + library_candidates(ctx)
    equations += discover_invariants(ctx, kept, pool, rejected)
    n_conserved = len(kept)
    equations += discover_latent(ctx, net)
    return {"variables": data.names, "derived_inputs": {k: sp.sstr(v) for k, v in
                                                        inputs.derived.items()},
            "canonical": data.canonical, "backend": backend, "run": str(run_dir),
            "data": data.source, "n_conserved": n_conserved, "threshold": ctx.threshold,
            "baseline_ratio": baseline, "equations": equations, "rejected": rejected,
            "settings": asdict(args)}


def print_table(name: str, entry: dict) -> None:
    print(f"\n{name}: {entry['n_conserved']} independent conserved quantities "
          f"(backend {entry['backend']})")
    print(f"  {'kind':<9} {'name':<6} {'cx':>3} {'ratio':>9}  expression")
    for eq in entry["equations"]:
        print(f"  {eq['kind']:<9} {eq['name']:<6} {eq['complexity']:>3} "
              f"{eq['conservation_ratio']:>9.2e}  {eq['expression']}")
    for rej in entry["rejected"]:
        print(f"  rejected  {rej['name']:<6} {rej.get('expression', '')}: {rej['reason']}")
    if not entry["n_conserved"]:
        print("  no conservation law found: nothing is conserved better than a generic "
              "function of the state")


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    entry = discover(args)
    entry["seconds"] = round(time.perf_counter() - start, 1)
    name = Path(entry["data"]).stem
    out = Path(args.results_dir) / "discovered_equations.json"
    merged = read_json(out, {}) or {}
    merged[name] = entry
    atomic_write_json(out, merged)
    atomic_write_json(Path(entry["run"]) / "discovered.json", to_jsonable(entry))
    if not args.quiet:
        print_table(name, entry)
        print(f"\nwrote {out} ({entry['seconds']}s)")


if __name__ == "__main__":
    sys.exit(cli(main)())
