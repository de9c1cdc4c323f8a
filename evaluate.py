"""Evaluate the pipeline against ground truth: discovered laws, rollout energy drift, training,
latent space, ablations; write results/metrics.json, plots/ and the dashboard's data file.

    python evaluate.py --systems projectile spring orbit
    python evaluate.py --systems spring --prefix 20 --quiet
    python evaluate.py --systems spring-noise0.01 data/my_measurements.csv   # any trajectory file
    python evaluate.py --hnn-table="--quick"   # run models/hnn_experiment.py first (its flags)
    python evaluate.py --readme                # README.md results section from results/metrics.json

This is the one script (besides the tests) that reads ground truth: the truth_* arrays of the
simulated files (true invariants on clean states, the clean states of noisy files, the system's
parameters) and the simulators' registry (the true energy of predicted states). Data without
truth (users' files) get the data-based checks only: conservation on held-out trajectories.

Metric definitions (../shared/SCIENCE.md):
  conservation ratio  mean within-trajectory variance / variance of per-trajectory means
  affine R^2          R^2 of the best a*H_true + b for a discovered H, on held-out clean states
  functional R^2      R^2 of the best degree-5 polynomial of H_true (H a function of H_true);
                      failing both, a quadratic polynomial of 2, 3, ... true invariants
                      together (H a function of several, e.g. vy^2/2g + y of E and px)
  structural match    H = a*H_true + b term by term: the expanded terms of H (derived inputs
                      such as r replaced by their definitions) are the true terms, every
                      coefficient within 2 % of a times the true one (a: the coefficient ratio
                      of one shared term, so one wrong coefficient cannot hide in the fit's a;
                      the largest relative error is reported)
  energy drift        |E(t) - E(0)| / |E(0)| of the TRUE energy along a PhysicsNet rollout from
                      the first --prefix observed steps, mean over predicted steps and trajectories
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import sympy as sp

from data.loader import DEFAULT_SYSTEMS, Trajectories, load_trajectories
from utils import (PLOTS_DIR, RESULTS_DIR, ROOT, UsageError, atomic_write_json,
                   atomic_write_text, cli, environment_info, fail, read_json, to_jsonable)

STRUCTURE_TOL = 0.02        # relative coefficient tolerance of the structural match
MATCH_R2 = 0.99             # R^2 above which a discovered quantity "matches" a true invariant
NEGLIGIBLE = 1e-3           # a term whose spread is below this fraction of the whole is noise
FUNCTIONAL_DEGREE = 5
DRIFT_TARGET = 10.0         # physics-aware drift must be at least this many times smaller
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
LOSS_TERMS = ("total", "prediction", "reconstruction", "hamiltonian", "energy_conservation",
              "energy_keeping", "smoothness")


@dataclass
class Args:
    """Flags of evaluate.py (argparse is built from the same names)."""

    systems: list[str] = field(default_factory=lambda: list(DEFAULT_SYSTEMS))
    data_dir: str = str(ROOT / "data")       # folder of the built-in systems' .npz files
    results_dir: str = str(RESULTS_DIR)      # runs/, discovered_equations.json; metrics.json
    plots_dir: str = str(PLOTS_DIR)          # PNGs go here
    dashboard_file: str = str(ROOT / "dashboard" / "dashboard_data.js")
    prefix: int = 10                         # observed steps a rollout starts from
    max_traj: int = 200                      # held-out trajectories rolled out per run
    n_show: int = 3                          # trajectories drawn in the plots
    n_dashboard: int = 5                     # trajectories written to the dashboard file
    seed: int = 0                            # sub-sampling of latent points
    hnn_table: str | None = None             # run models.hnn_experiment.main with these flags
    readme: bool = False                     # only rewrite README.md's results section
    readme_file: str = str(ROOT / "README.md")
    quiet: bool = False


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2 (utils.cli), no usage dump
        raise UsageError(f"{message} (see --help)")


def parse_args(argv: list[str] | None = None) -> Args:
    d = Args()
    ap = _Parser(description=__doc__.split("\n\n")[0],
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=d.systems,
                    help="built-in system names or trajectory files (.npz/.csv)")
    ap.add_argument("--data-dir", default=d.data_dir)
    ap.add_argument("--results-dir", default=d.results_dir)
    ap.add_argument("--plots-dir", default=d.plots_dir)
    ap.add_argument("--dashboard-file", default=d.dashboard_file,
                    help="the dashboard's data script (format: dashboard/DATA.md)")
    ap.add_argument("--prefix", type=int, default=d.prefix,
                    help="observed steps each rollout starts from")
    ap.add_argument("--max-traj", type=int, default=d.max_traj,
                    help="held-out trajectories rolled out per run")
    ap.add_argument("--n-show", type=int, default=d.n_show, help="trajectories per plot")
    ap.add_argument("--n-dashboard", type=int, default=d.n_dashboard,
                    help="trajectories written to the dashboard file")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--hnn-table", nargs="?", const="", default=None, metavar="FLAGS",
                    help="first run models/hnn_experiment.py (optionally with its FLAGS in one "
                         "quoted string, e.g. \"--quick\"); its results/hnn_table.json goes "
                         "into the dashboard data")
    ap.add_argument("--readme", action="store_true",
                    help="only rewrite the README section between the results markers from "
                         "<results-dir>/metrics.json")
    ap.add_argument("--readme-file", default=d.readme_file)
    ap.add_argument("--quiet", action="store_true")
    ns = ap.parse_args(argv)
    args = Args(**vars(ns))
    for name in ("max_traj", "n_show", "n_dashboard"):
        value = getattr(args, name)
        if value < 1:
            fail(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.prefix < 1:
        fail(f"--prefix must be at least 1, got {args.prefix}")
    return args


# ============================================================================ ground truth

def truth_expressions(system: str, params: dict) -> dict[str, str]:
    """Sympy-parsable strings of a built-in system's true invariants, in its state variable
    names, with the parameters substituted (the same formulas as data/simulate.py's registry;
    tests/test_evaluate.py checks them against it numerically). Unknown system -> {}."""
    p = {k: float(v) for k, v in params.items() if isinstance(v, (int, float))}
    if system == "projectile":
        g = p["g"]
        return {"E": f"0.5*vx**2 + 0.5*vy**2 + {g!r}*y", "px": "vx",
                "x + vx*vy/g": f"x + vx*vy/{g!r}"}
    if system in ("spring", "damped-spring"):
        return {"E": f"0.5*v**2/{p['m']!r} + 0.5*{p['k']!r}*x**2"}
    if system == "orbit":
        gm = p["GM"]
        lrl_x, lrl_y = (f"vy*(x*vy - y*vx) - {gm!r}*x/sqrt(x**2 + y**2)",
                        f"-vx*(x*vy - y*vx) - {gm!r}*y/sqrt(x**2 + y**2)")
        return {"E": f"0.5*vx**2 + 0.5*vy**2 - {gm!r}/sqrt(x**2 + y**2)",
                "L": "x*vy - y*vx", "A_angle": f"atan2({lrl_y}, {lrl_x})",
                "A_x": lrl_x, "A_y": lrl_y}
    if system == "pendulum":
        m, g, l = p["m"], p["g"], p["l"]
        return {"E": f"{2 * m * g * l!r}*(1 - cos(q)) + {l**2 / (2 * m)!r}*p**2"}
    if system == "two-body":
        m1, m2, G = p["m1"], p["m2"], p["G"]
        return {"E": f"(px1**2 + py1**2)/{2 * m1!r} + (px2**2 + py2**2)/{2 * m2!r}"
                     f" - {G * m1 * m2!r}/sqrt((x2 - x1)**2 + (y2 - y1)**2)",
                "Px": "px1 + px2", "Py": "py1 + py2",
                "L": "x1*py1 - y1*px1 + x2*py2 - y2*px2"}
    return {}


@dataclass
class Truth:
    """What evaluate.py knows about one data file beyond the observations."""

    system: str | None                   # registry name (None: not a built-in system)
    params: dict
    names: list[str]                     # K true invariant names
    values: np.ndarray | None            # (N, T, K) true invariants on clean states
    clean: np.ndarray                    # (N, T, D) clean states (observed when no truth)
    expressions: dict[str, str]          # name -> sympy string (structural match)
    energy_fn: Callable[[np.ndarray], np.ndarray] | None  # true energy of any states (..., D)

    @property
    def available(self) -> bool:
        return self.values is not None


def read_truth(data: Trajectories) -> Truth:
    tr = data.truth or {}
    if "invariants" not in tr:
        return Truth(None, {}, [], None, data.states, {}, None)
    meta = tr.get("meta") or {}
    params = dict(meta.get("params") or {})
    system = data.meta.get("system")
    names = [str(n) for n in np.asarray(tr.get("invariant_names", [])).ravel()]
    values = np.asarray(tr["invariants"], dtype=np.float64)
    if values.ndim == 2:
        values = values[..., None]
    clean = np.asarray(tr.get("clean_states", data.states), dtype=np.float64)
    energy_fn = None
    from data.simulate import SYSTEMS

    if system in SYSTEMS:
        reg = SYSTEMS[system]
        params = {**reg.params, **params}
        first = next(iter(reg.invariants))          # the registry lists the energy first
        energy_fn = lambda s, f=reg.invariants[first], p=params: f(np.asarray(s, float), p)
    return Truth(system, params, names or [f"I{k}" for k in range(values.shape[-1])], values,
                 clean, truth_expressions(system, params) if system else {}, energy_fn)


# ============================================================================ metric functions

def conservation_ratio(values: np.ndarray) -> float:
    """Mean within-trajectory variance / variance of the per-trajectory means; values (N, T).
    0 = perfectly conserved; inf when every trajectory has the same mean."""
    values = np.asarray(values, dtype=np.float64)
    within = float(values.var(axis=1).mean())
    between = float(values.mean(axis=1).var())
    if between > 0:
        return within / between
    return 0.0 if within == 0 else float("inf")


def affine_fit(h: np.ndarray, target: np.ndarray) -> tuple[float | None, float, float]:
    """Best h ~ a * target + b: returns (R^2, a, b); R^2 None when h or target is constant."""
    h, x = np.ravel(h).astype(np.float64), np.ravel(target).astype(np.float64)
    ok = np.isfinite(h) & np.isfinite(x)
    h, x = h[ok], x[ok]
    if len(h) < 3 or h.var() == 0 or x.var() == 0:
        return None, float("nan"), float("nan")
    xc, hc = x - x.mean(), h - h.mean()
    a = float((xc @ hc) / (xc @ xc))
    b = float(h.mean() - a * x.mean())
    r2 = 1.0 - float(((hc - a * xc) ** 2).sum() / (hc @ hc))
    return r2, a, b


def functional_r2(h: np.ndarray, target: np.ndarray, degree: int = FUNCTIONAL_DEGREE
                  ) -> float | None:
    """R^2 of the best polynomial of `target` (degree `degree`) fitted to h: close to 1 when
    h is a smooth function of the true invariant (vx^2 of px, a curved function of E)."""
    h, x = np.ravel(h).astype(np.float64), np.ravel(target).astype(np.float64)
    ok = np.isfinite(h) & np.isfinite(x)
    h, x = h[ok], x[ok]
    if len(h) <= degree + 1 or h.var() == 0 or x.var() == 0:
        return None
    poly = np.polynomial.Polynomial.fit(x, h, deg=degree)   # rescales x: well conditioned
    resid = h - poly(x)
    return 1.0 - float(resid.var() / h.var())


def joint_r2(h: np.ndarray, targets: np.ndarray, degree: int = 2) -> float | None:
    """R^2 of the best polynomial (total degree <= `degree`) of several true invariants
    together, targets (n, K): close to 1 when h is a function of them jointly, e.g. the
    projectile's vy^2/(2g) + y = (E - px^2/2)/g."""
    from itertools import combinations_with_replacement

    h = np.ravel(h).astype(np.float64)
    X = np.asarray(targets, dtype=np.float64).reshape(len(h), -1)
    ok = np.isfinite(h) & np.isfinite(X).all(axis=1)
    h, X = h[ok], X[ok]
    if len(h) < 3 or h.var() == 0:
        return None
    sd = X.std(0)
    X = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    cols = [np.ones(len(h))]
    for d in range(1, degree + 1):
        cols += [np.prod(X[:, list(c)], axis=1) for c in
                 combinations_with_replacement(range(X.shape[1]), d)]
    A = np.column_stack(cols)
    coef, *_ = np.linalg.lstsq(A, h, rcond=None)
    return 1.0 - float(((h - A @ coef) ** 2).mean() / h.var())


def joint_match(h: np.ndarray, targets: np.ndarray, names: list[str], n_traj: int,
                threshold: float = MATCH_R2) -> tuple[list[str] | None, float | None]:
    """The fewest true invariants (2, then 3, ...) that h is a quadratic function of, with
    R^2 >= threshold, and that R^2; (None, best R^2 of all of them) when there are none.
    Subsets whose polynomial has more than n_traj / 5 terms are not tried (a conserved
    quantity has only n_traj distinct values to fit)."""
    from itertools import combinations

    K = len(names)
    best_all = None
    for size in range(2, K + 1):
        n_terms = 1 + size + size * (size + 1) // 2
        if n_terms > max(1, n_traj // 5):
            break
        scored = [(joint_r2(h, targets[:, list(c)]), c) for c in combinations(range(K), size)]
        scored = [(r2, c) for r2, c in scored if r2 is not None]
        if not scored:
            continue
        r2, c = max(scored)
        best_all = r2
        if r2 >= threshold:
            return [names[i] for i in c], r2
    return None, best_all


def relative_drift(energy: np.ndarray, e0: np.ndarray, start: int = 0) -> dict:
    """Energy drift of trajectories energy (N, T) from their true initial energies e0 (N,),
    over steps >= start: mean and max of |E(t) - E0| / |E0|, max |E(t) - E0|, final mean."""
    energy = np.asarray(energy, dtype=np.float64)[:, start:]
    e0 = np.asarray(e0, dtype=np.float64)[:, None]
    dev = np.abs(energy - e0)
    rel = dev / np.abs(e0)
    finite = np.isfinite(rel)
    if not finite.any():
        return {"mean": None, "max": None, "max_abs": None, "final_mean": None,
                "n_nonfinite": int(rel.size)}
    return {"mean": float(rel[finite].mean()), "max": float(rel[finite].max()),
            "max_abs": float(dev[finite].max()),
            "final_mean": float(np.nanmean(np.where(finite, rel, np.nan)[:, -1])),
            "n_nonfinite": int((~finite).sum())}


# ---------------------------------------------------------------------------- expressions

def state_symbols(names: list[str]) -> dict[str, sp.Symbol]:
    return {n: sp.Symbol(n, real=True) for n in names}


def parse_expression(text: str, variables: list[str], derived: dict[str, str] | None = None
                     ) -> sp.Expr:
    """A discovered (or true) expression string -> sympy in the STATE symbols only: derived
    inputs (e.g. r: sqrt(x**2 + y**2)) are replaced by their definitions."""
    syms = state_symbols(variables)
    local = dict(syms)
    subs = {}
    for name, definition in (derived or {}).items():
        dsym = sp.Symbol(name, positive=True)
        local[name] = dsym
        subs[dsym] = sp.parse_expr(str(definition), local_dict=dict(syms))
    try:
        expr = sp.parse_expr(str(text), local_dict=local)
    except (SyntaxError, TypeError, ValueError, sp.SympifyError) as err:
        raise ValueError(f"cannot parse expression {text!r}: {err}") from None
    # Derived symbols may also appear in a form sympify built itself (e.g. with default
    # assumptions); replace by name so both forms go.
    by_name = {s.name: subs[s] for s in subs}
    expr = expr.xreplace(subs)
    expr = expr.xreplace({s: by_name[s.name] for s in expr.free_symbols if s.name in by_name})
    unknown = sorted(s.name for s in expr.free_symbols if s.name not in syms)
    if unknown:
        raise ValueError(f"expression {text!r} uses unknown symbol(s) {unknown}")
    return expr


def evaluate_expression(expr: sp.Expr, variables: list[str], states: np.ndarray) -> np.ndarray:
    """expr (in the state symbols) on states (..., D) -> (...); non-finite where undefined."""
    syms = state_symbols(variables)
    fn = sp.lambdify([syms[n] for n in variables], expr, "numpy")
    states = np.asarray(states, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = fn(*np.moveaxis(states, -1, 0))
    return np.broadcast_to(np.asarray(out, dtype=np.float64), states.shape[:-1]).copy()


def _integer_exponents(expr: sp.Expr) -> sp.Expr:
    """x**2.0 -> x**2, r**(-0.5) -> r**(-1/2): float exponents from a regression engine would
    otherwise make the same monomial look like a different term."""
    def fix(e):
        return sp.Pow(e.base, sp.nsimplify(e.exp, tolerance=1e-9, rational=True))

    return expr.replace(lambda e: e.is_Pow and e.exp.is_Float, fix)


def expression_terms(expr: sp.Expr) -> dict[sp.Expr, float]:
    """Expanded expression -> {term without its numeric coefficient: coefficient}; the
    constant term is left out (an invariant is defined up to an additive constant)."""
    expr = sp.expand(_integer_exponents(sp.expand(expr)))
    terms: dict[sp.Expr, float] = {}
    for term in sp.Add.make_args(expr):
        if not term.free_symbols:
            continue
        coeff, rest = term.as_independent(*term.free_symbols, as_Add=False)
        terms[rest] = terms.get(rest, 0.0) + float(coeff)
    return {k: v for k, v in terms.items() if v != 0.0}


def structure_match(discovered: sp.Expr, truth: sp.Expr, scale: float | None = None,
                    variables: list[str] | None = None, states: np.ndarray | None = None,
                    tol: float = STRUCTURE_TOL) -> dict:
    """Does `discovered` equal a * truth + const term by term (coefficients within tol)?

    Both are sympy expressions in the state symbols (derived inputs already substituted).
    scale: the a to compare with; None (the default) takes a from the coefficients: the ratio
    discovered/true of one shared term, the one that makes the largest error smallest. A data
    fit of a would spread an error in one coefficient over the others (a 3 % error in one of
    three terms looks like 1-2 % in each), so it is reported beside the match, not used.
    With variables and states (n, D), discovered terms whose spread on the states is below
    NEGLIGIBLE of the whole expression's are set aside as negligible (reported) instead of
    failing the match.
    Returns {match, max_rel_error, scale, missing, extra, negligible, errors {term: error}}.
    """
    found, true = expression_terms(discovered), expression_terms(truth)
    negligible = []
    if states is not None and variables is not None and found:
        total = np.nanstd(evaluate_expression(discovered, variables, states))
        for term in [t for t in found if t not in true]:
            spread = np.nanstd(found[term] * evaluate_expression(term, variables, states))
            if total > 0 and spread < NEGLIGIBLE * total:
                negligible.append(sp.sstr(term))
                del found[term]
    missing = sorted(sp.sstr(t) for t in true if t not in found)
    extra = sorted(sp.sstr(t) for t in found if t not in true)
    shared = [t for t in true if t in found]
    ratios = np.array([found[t] / true[t] for t in shared])

    def rel_errors(a: float) -> np.ndarray:
        return np.abs(ratios - a) / abs(a)

    if scale is None and len(shared):
        scale = float(min(ratios, key=lambda a: rel_errors(a).max()))
    errors = {}
    if len(shared) and scale is not None and np.isfinite(scale) and scale != 0:
        errors = {sp.sstr(t): float(e) for t, e in zip(shared, rel_errors(scale))}
    max_err = max(errors.values()) if errors else None
    match = (not missing and not extra and max_err is not None and max_err <= tol)
    return {"match": bool(match), "max_rel_error": max_err, "scale": scale, "missing": missing,
            "extra": extra, "negligible": negligible, "errors": errors}


# ============================================================================ runs and rollouts

@dataclass
class Run:
    dir: Path
    flags: dict
    config: dict
    summary: dict | None
    mtime: float

    @property
    def tag(self) -> str:
        return str(self.flags.get("tag", "?"))

    @property
    def beta(self) -> float:
        return float(self.flags.get("beta", 0.0) or 0.0)

    @property
    def latent_dim(self) -> int | None:
        return self.flags.get("latent_dim")


def find_runs(results_dir: Path, data_name: str) -> list[Run]:
    """Every PhysicsNet run of this data file that has a checkpoint, oldest first."""
    runs = []
    for cfg_path in sorted((results_dir / "runs").glob("*/config.json")):
        cfg = read_json(cfg_path, {}) or {}
        flags = cfg.get("flags", {})
        if flags.get("model", "physicsnet") != "physicsnet":
            continue
        if cfg.get("data", {}).get("name") != data_name:
            continue
        ckpt = cfg_path.parent / "checkpoint.pt"
        if not ckpt.exists():
            continue
        runs.append(Run(cfg_path.parent, flags, cfg, read_json(cfg_path.parent / "summary.json"),
                        ckpt.stat().st_mtime))
    return sorted(runs, key=lambda r: (r.mtime, r.dir.name))


def pick_run(runs: list[Run], physics: bool) -> Run | None:
    """Standard (energy weight 0) or physics-aware (> 0) run: the tag 'standard' /
    'physics-aware' first, then the newest."""
    wanted = "physics-aware" if physics else "standard"
    pool = [r for r in runs if (r.beta > 0) == physics]
    if not pool:
        return None
    return max(pool, key=lambda r: (r.tag == wanted, r.summary is not None, r.mtime))


class Model:
    """A trained PhysicsNet run, loaded once; rollouts and latents as numpy."""

    def __init__(self, run: Run):
        import torch

        from models.physics_net import load_run

        # Rollouts are many tiny sequential steps: on a shared 2-core machine one thread was
        # 20-30x faster than two (0.1 s vs 2-3 s for 30 trajectories x 90 steps).
        torch.set_num_threads(1)
        self.torch = torch
        self.run = run
        self.net, self.ckpt = load_run(run.dir, device="cpu")

    def rollout(self, states: np.ndarray, prefix: int, project: bool, chunk: int = 256
                ) -> np.ndarray:
        """From the first `prefix` steps of states (N, T, D) -> (N, T, D) (prefix + rollout)."""
        torch = self.torch
        N, T, D = states.shape
        out = []
        for i in range(0, N, chunk):
            block = torch.as_tensor(states[i:i + chunk, :prefix], dtype=torch.float32)
            with torch.no_grad():
                out.append(self.net.rollout(block, T - prefix, project=project).double().numpy())
        return np.concatenate(out)

    def energy(self, states: np.ndarray) -> np.ndarray:
        """The energy head E_hat of states (..., D) -> (...)."""
        torch = self.torch
        with torch.no_grad():
            return self.net.energy(torch.as_tensor(states, dtype=torch.float32)).double().numpy()

    def latent(self, states: np.ndarray, chunk: int = 256) -> np.ndarray:
        torch = self.torch
        out = []
        for i in range(0, len(states), chunk):
            with torch.no_grad():
                z = self.net.encode(torch.as_tensor(states[i:i + chunk], dtype=torch.float32))
            out.append(z.double().numpy())
        return np.concatenate(out)


def training_rows(run: Run) -> list[dict]:
    """metrics.jsonl rows of a run ([] when missing)."""
    path = run.dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue    # a run still being written: its last line may be partial
    return rows


def training_summary(run: Run) -> dict:
    s = run.summary or {}
    rows = training_rows(run)
    last = rows[-1] if rows else {}
    final = s.get("final") or {k: v for k, v in last.items() if "/" in k}
    seconds = s.get("train_seconds")
    if seconds is None and rows:
        seconds = float(sum(r.get("epoch_seconds") or 0 for r in rows))
    return {"run": run.dir.name, "tag": run.tag, "beta": run.beta, "latent_dim": run.latent_dim,
            "seed": run.flags.get("seed"), "epochs": s.get("epochs", last.get("epoch")),
            "epochs_asked": run.flags.get("epochs"), "device": s.get("device",
                                                                      run.config.get("device")),
            "parameters": s.get("parameters"), "train_seconds": seconds,
            "train_cpu_seconds": s.get("train_cpu_seconds"),
            "wall_seconds": s.get("wall_seconds"),
            "final_train_loss": final.get("train/total"), "final_val_loss": final.get("val/total"),
            "final": final, "finished": run.summary is not None}


# ============================================================================ per-system evaluation

@dataclass
class SystemResult:
    """Metrics (JSON) and the arrays the plots and the dashboard draw."""

    name: str
    metrics: dict
    data: Trajectories
    truth: Truth
    test_idx: np.ndarray                       # indices of the evaluated held-out trajectories
    rollouts: dict = field(default_factory=dict)        # "standard"/"physics" -> (N, T, D)
    energies: dict = field(default_factory=dict)        # "true"/"standard"/"physics" -> (N, T)
    runs: dict = field(default_factory=dict)            # "standard"/"physics" -> Run
    latent: dict | None = None                          # {"scores", "color", ...}
    discovered: dict | None = None
    energy_label: str | None = None                     # what res.energies measure


def check_inputs(args: Args) -> list[tuple[str, Trajectories, dict, list[Run]]]:
    """Load every system's data, discovered equations and runs first, so that a missing
    piece is reported (with the command that makes it) before any long computation."""
    results_dir = Path(args.results_dir)
    disc_path = results_dir / "discovered_equations.json"
    discovered = read_json(disc_path, None)
    out = []
    for system in args.systems:
        data = load_trajectories(system, args.data_dir, with_truth=True)
        runs = find_runs(results_dir, data.name)
        if not runs:
            fail(f"no trained PhysicsNet run for '{data.name}' in {results_dir}/runs: run "
                 f"`python train.py --system {system} --tag physics-aware` and "
                 f"`python train.py --system {system} --energy-weight 0.0 --tag standard` first")
        if discovered is None:
            fail(f"no {disc_path}: run `python discover.py --system {system}` first")
        if data.name not in discovered:
            fail(f"{disc_path} has no entry for '{data.name}': run "
                 f"`python discover.py --system {system}` first")
        disc = discovered[data.name]
        if list(disc.get("variables") or []) != list(data.names):
            fail(f"{disc_path}: the entry for '{data.name}' has variables "
                 f"{disc.get('variables')} but the data has {data.names}: run "
                 f"`python discover.py --system {system}` again")
        out.append((system, data, disc, runs))
    return out


def assess_equation(eq: dict, disc: dict, truth: Truth, test_clean: np.ndarray,
                    test_truth: np.ndarray | None, sample_idx: np.ndarray) -> dict:
    """Everything we know about one discovered equation (see the module docstring)."""
    variables = disc.get("variables") or []
    out = {"kind": eq.get("kind"), "name": eq.get("name"), "expression": eq.get("expression"),
           "latex": eq.get("latex"), "complexity": eq.get("complexity"),
           "conservation_ratio_discover": eq.get("conservation_ratio"),
           "conservation_ratio": None, "matched": None, "relation": None, "r2": None,
           "functional_r2": None, "joint_r2": None, "scale": None, "offset": None,
           "per_invariant": {}, "structure_match": None, "max_coef_error": None,
           "structure": None, "error": None}
    try:
        expr = parse_expression(eq["expression"], variables, disc.get("derived_inputs"))
    except (ValueError, KeyError) as err:
        out["error"] = str(err)
        return out
    N, T, D = test_clean.shape
    values = evaluate_expression(expr, variables, test_clean)         # (N, T)
    finite = np.isfinite(values).all(axis=1)
    if finite.any():
        out["conservation_ratio"] = conservation_ratio(values[finite])
    if test_truth is None:
        return out
    h = values.reshape(-1)[sample_idx]
    targets = test_truth.reshape(-1, test_truth.shape[-1])[sample_idx]
    # A conserved quantity varies only between trajectories: on N held-out trajectories a
    # polynomial of degree >= N - 1 fits any other one exactly, so the degree stays well below N.
    degree = int(min(FUNCTIONAL_DEGREE, max(1, N // 5)))
    per = {}
    for k, name in enumerate(truth.names):
        r2, a, b = affine_fit(h, targets[:, k])
        per[name] = {"r2": r2, "functional_r2": functional_r2(h, targets[:, k], degree),
                     "scale": a, "offset": b}
    out["per_invariant"] = per
    out["functional_degree"] = degree
    val = lambda v: v if v is not None else -np.inf
    # The true invariant it is the best FUNCTION of (vx^2 is a function of px, and only
    # affinely close to E on a few trajectories); an affine relation breaks ties.
    ref = max(per, key=lambda n: (round(val(per[n]["functional_r2"]), 6), val(per[n]["r2"])))
    if val(per[ref]["r2"]) >= MATCH_R2:
        out["matched"], out["relation"] = ref, "affine"
    elif val(per[ref]["functional_r2"]) >= MATCH_R2:
        out["matched"], out["relation"] = ref, "function"
    elif len(truth.names) > 1:
        several, out["joint_r2"] = joint_match(h, targets, truth.names, N)
        if several:
            out["matched"], out["relation"] = f"f({', '.join(several)})", "joint"
    out["best"] = ref
    out["r2"] = per[ref]["r2"]
    out["functional_r2"] = per[ref]["functional_r2"]
    out["scale"], out["offset"] = per[ref]["scale"], per[ref]["offset"]
    if ref in truth.expressions and out["scale"] is not None and out["kind"] != "latent":
        true_expr = parse_expression(truth.expressions[ref], variables)
        states = test_clean.reshape(-1, D)[sample_idx]
        s = structure_match(expr, true_expr, None, variables, states)
        s["truth"] = truth.expressions[ref]
        out["structure"] = s
        out["structure_match"] = s["match"]
        # A largest coefficient error means something only when the terms are the same.
        out["max_coef_error"] = (s["max_rel_error"] if not (s["missing"] or s["extra"])
                                 else None)
    return out


def evaluate_system(system: str, data: Trajectories, disc: dict, runs: list[Run], args: Args,
                    log) -> SystemResult:
    truth = read_truth(data)
    test = data.indices("test")
    if len(test) == 0:
        test = data.indices("val")
    test = test[:args.max_traj]
    T = data.states.shape[1]
    prefix = args.prefix
    if prefix >= T - 1:
        fail(f"--prefix {prefix} leaves nothing to predict in {data.name} ({T} steps per "
             "trajectory)")
    rng = np.random.default_rng(args.seed)
    clean = truth.clean[test]                                       # (N, T, D)
    observed = data.states[test]
    test_truth = truth.values[test] if truth.available else None
    n_flat = clean.shape[0] * T
    sample_idx = np.sort(rng.choice(n_flat, size=min(20_000, n_flat), replace=False))
    res = SystemResult(data.name, {}, data, truth, test, discovered=disc)

    # 1. discovered equations vs truth
    equations = [assess_equation(eq, disc, truth, clean, test_truth, sample_idx)
                 for eq in disc.get("equations", [])]

    # 2. rollouts and energy drift
    std_run, phys_run = pick_run(runs, physics=False), pick_run(runs, physics=True)
    for kind, run, cmd in (("standard", std_run, "--energy-weight 0.0 --tag standard"),
                           ("physics", phys_run, "--tag physics-aware")):
        if run is None:
            log(f"  {data.name}: no {kind} run; make one with "
                f"`python train.py --system {system} {cmd}`")
    models: dict[str, Model] = {}
    rolled: dict[str, np.ndarray] = {}

    def model_of(run: Run) -> Model:
        key = str(run.dir)
        if key not in models:
            models[key] = Model(run)
        return models[key]

    def rollout_of(run: Run) -> np.ndarray:
        key = str(run.dir)
        if key not in rolled:
            rolled[key] = model_of(run).rollout(observed, prefix, project=run.beta > 0)
        return rolled[key]

    # Without ground truth the drift is measured with the discovered energy (if any): a
    # data-based check, labelled as such and kept out of the dashboard's true-energy fields.
    energy_fn, energy_label = truth.energy_fn, "true energy (simulator registry)"
    if energy_fn is None:
        energy_fn = discovered_energy_fn(disc)
        energy_label = "discovered energy (no ground truth)" if energy_fn else None
    res.energy_label = energy_label
    drift: dict = {"prefix": prefix, "n_traj": int(len(test)), "standard": None, "physics": None,
                   "data": None, "ratio": None, "target": DRIFT_TARGET, "target_met": None,
                   "energy": energy_label}
    e_true = None
    if energy_fn is not None:
        e_true = energy_fn(clean)                                    # (N, T)
        res.energies["true"] = e_true
        drift["data"] = relative_drift(e_true, e_true[:, 0], prefix)   # the data's own
    state_scale = data.states.reshape(-1, data.dim).std(axis=0)
    state_scale = np.where(state_scale > 0, state_scale, 1.0)
    for kind, run in (("standard", std_run), ("physics", phys_run)):
        if run is None:
            continue
        res.runs[kind] = run
        traj = rollout_of(run)
        res.rollouts[kind] = traj
        err = (traj[:, prefix:] - clean[:, prefix:]) / state_scale
        row = {"run": run.dir.name, "tag": run.tag, "beta": run.beta, "projected": run.beta > 0,
               "state_nrmse": float(np.sqrt(np.nanmean(err ** 2)))}
        if e_true is not None:
            e_pred = energy_fn(traj)
            res.energies[kind] = e_pred
            row.update(relative_drift(e_pred, e_true[:, 0], prefix))
            row["energy_mse"] = float(np.nanmean((e_pred[:, prefix:] - e_true[:, prefix:]) ** 2))
            if run.beta > 0:
                # A projected rollout keeps E_hat, so its drift in E is bounded by how well
                # E_hat follows E: the residual of the best affine map, in units of E's spread.
                e_hat = model_of(run).energy(clean)
                r2, a, b = affine_fit(e_hat, e_true)
                resid = (e_hat - a * e_true - b).std() if r2 else None
                row["energy_head"] = {"r2": r2, "residual_over_spread":
                                      float(resid / (abs(a) * e_true.std())) if r2 else None}
        drift[kind] = row
    s, p = drift["standard"], drift["physics"]
    if s and p and s.get("mean") is not None and p.get("mean") is not None:
        drift["ratio"] = s["mean"] / p["mean"] if p["mean"] > 0 else float("inf")
        drift["target_met"] = bool(drift["ratio"] >= DRIFT_TARGET)

    # 3. training
    training = [training_summary(r) for r in runs]

    # 4. latent space of the physics-aware run (or whatever run there is)
    lat_run = phys_run or std_run
    latent = None
    if lat_run is not None:
        latent, res.latent = latent_analysis(model_of(lat_run), observed, truth, test_truth,
                                             equations, disc, clean, rng)
        latent["run"] = lat_run.dir.name

    # 5. ablations: every run of this data file
    ablation = []
    if len(runs) > 1:
        for run in runs:
            row = {"run": run.dir.name, "tag": run.tag, "beta": run.beta,
                   "latent_dim": run.latent_dim, "seed": run.flags.get("seed"),
                   "epochs": (run.summary or {}).get("epochs"),
                   "final_val_loss": training_summary(run)["final_val_loss"],
                   "drift_mean": None, "state_nrmse": None, "energy_r2": None,
                   "energy_structure_match": None, "n_conserved": None}
            traj = rollout_of(run)
            err = (traj[:, prefix:] - clean[:, prefix:]) / state_scale
            row["state_nrmse"] = float(np.sqrt(np.nanmean(err ** 2)))
            if e_true is not None:
                row["drift_mean"] = relative_drift(energy_fn(traj), e_true[:, 0],
                                                   prefix)["mean"]
            own = read_json(run.dir / "discovered.json", None)
            if own is None and disc.get("run") and Path(disc["run"]).name == run.dir.name:
                own = disc
            if own:
                row["n_conserved"] = own.get("n_conserved")
                energy = next((e for e in own.get("equations", []) if e.get("kind") == "energy"),
                              None)
                if energy is not None and test_truth is not None:
                    a = assess_equation(energy, own, truth, clean, test_truth, sample_idx)
                    row["energy_r2"], row["energy_structure_match"] = (a["r2"],
                                                                      a["structure_match"])
            ablation.append(row)

    res.metrics = {
        "source": data.source, "system": truth.system, "has_truth": truth.available,
        "variables": data.names, "canonical": data.canonical,
        "n_test_trajectories": int(len(test)), "steps": int(T),
        "truth": ({"invariants": truth.names, "expressions": truth.expressions,
                   "params": truth.params} if truth.available else None),
        "discovery": {"run": disc.get("run"), "backend": disc.get("backend"),
                      "n_conserved": disc.get("n_conserved"), "threshold": disc.get("threshold"),
                      "derived_inputs": disc.get("derived_inputs"),
                      "rejected": [{"name": r.get("name"), "expression": r.get("expression"),
                                    "reason": r.get("reason")} for r in disc.get("rejected", [])]},
        "equations": equations, "drift": drift, "training": training, "latent": latent,
        "ablation": ablation,
    }
    return res


def discovered_energy_fn(disc: dict) -> Callable[[np.ndarray], np.ndarray] | None:
    """The discovered energy formula as a function of states (..., D), or None."""
    eq = next((e for e in disc.get("equations", []) if e.get("kind") == "energy"), None)
    if eq is None:
        return None
    try:
        expr = parse_expression(eq["expression"], disc["variables"], disc.get("derived_inputs"))
    except (ValueError, KeyError):
        return None
    return lambda states: evaluate_expression(expr, disc["variables"], states)


def latent_analysis(model: Model, observed: np.ndarray, truth: Truth,
                    test_truth: np.ndarray | None, equations: list[dict], disc: dict,
                    clean: np.ndarray, rng: np.random.Generator) -> tuple[dict, dict]:
    """PCA of the latent of held-out trajectories; |corr| of the leading components with each
    true invariant. Returns (metrics, arrays for plots/dashboard)."""
    from sklearn.decomposition import PCA

    z = model.latent(observed)                                     # (N, T, L)
    flat = z.reshape(-1, z.shape[-1])
    n_comp = min(5, flat.shape[1], flat.shape[0])
    pca = PCA(n_components=n_comp, random_state=0).fit(flat)
    scores = pca.transform(flat)                                   # (N*T, n_comp)
    corr = {}
    colours: dict[str, np.ndarray] = {}
    if test_truth is not None:
        inv = test_truth.reshape(-1, test_truth.shape[-1])
        for k, name in enumerate(truth.names):
            colours[f"true {name}" if name != "E" else "true energy"] = inv[:, k]
            corr[name] = [_abs_corr(scores[:, j], inv[:, k]) for j in range(min(3, n_comp))]
    variables = disc.get("variables") or []
    for eq in equations:
        if eq["kind"] not in ("energy", "invariant") or eq.get("error"):
            continue
        try:
            expr = parse_expression(eq["expression"], variables, disc.get("derived_inputs"))
        except ValueError:
            continue
        colours[f"{eq['name']} (discovered)"] = evaluate_expression(
            expr, variables, clean).reshape(-1)
    T = z.shape[1]
    colours.setdefault("time step", np.tile(np.arange(T, dtype=float), z.shape[0]))
    keep = np.sort(rng.choice(len(scores), size=min(1500, len(scores)), replace=False))
    metrics = {"latent_dim": int(z.shape[-1]),
               "explained_variance": pca.explained_variance_ratio_.tolist(),
               "abs_corr": corr}
    arrays = {"scores": scores, "keep": keep, "colours": colours,
              "explained": pca.explained_variance_ratio_}
    return metrics, arrays


def _abs_corr(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return None
    return float(abs(np.corrcoef(a[ok], b[ok])[0, 1]))


# ============================================================================ plots

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLOURS = {"true": "black", "standard": "tab:red", "physics": "tab:blue"}
LABELS = {"true": "true", "standard": "standard (energy weight 0)",
          "physics": "physics-aware (projected)"}


def plot_axes_pair(data: Trajectories) -> tuple[list[tuple[int, int]], str]:
    """Which variables to draw a trajectory in: x-y for 2-D positions (every body of a
    many-body file), q-p (phase portrait) for one coordinate, else the first two variables."""
    q = [i for i, c in enumerate(data.canonical or []) if c == "q"]
    p = [i for i, c in enumerate(data.canonical or []) if c == "p"]
    if len(q) >= 2 and len(q) % 2 == 0:
        return [(q[i], q[i + 1]) for i in range(0, len(q), 2)], "position"
    if len(q) == 1:
        return [(q[0], p[0])], "phase portrait"
    return [(0, 1 if data.dim > 1 else 0)], "state"


def plot_system(res: SystemResult, plots_dir: Path, args: Args) -> dict[str, str]:
    plt = _plt()
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, fn in (("trajectories", _plot_trajectories), ("energy", _plot_energy),
                     ("losses", _plot_losses), ("latent", _plot_latent),
                     ("pareto", _plot_pareto)):
        fig = fn(plt, res, args)
        if fig is None:
            continue
        path = plots_dir / f"{res.name}_{kind}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        out[kind] = str(path)
    return out


def _plot_trajectories(plt, res: SystemResult, args: Args):
    data, n = res.data, min(args.n_show, len(res.test_idx))
    pairs, what = plot_axes_pair(data)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.3), squeeze=False)
    clean = res.truth.clean[res.test_idx]
    labels = {**LABELS, "true": "true" if res.truth.available else "observed"}
    for j, ax in enumerate(axes[0]):
        for kind, traj in [("true", clean)] + list(res.rollouts.items()):
            for b, (ix, iy) in enumerate(pairs):
                style = "-" if kind == "true" else "--"
                ax.plot(traj[j, :, ix], traj[j, :, iy], style, color=COLOURS[kind],
                        lw=1.8 if kind == "true" else 1.4, alpha=1.0 if b == 0 else 0.6,
                        label=labels[kind] if b == 0 else None)
        for b, (ix, iy) in enumerate(pairs):
            ax.plot(clean[j, :args.prefix, ix], clean[j, :args.prefix, iy], color="tab:green",
                    lw=4, alpha=0.5, label="observed prefix" if b == 0 else None)
            ax.plot(clean[j, 0, ix], clean[j, 0, iy], "o", color="tab:green", ms=5)
        ix, iy = pairs[0]
        ax.set_xlabel(data.names[ix] if len(pairs) == 1 else "x (each body)")
        ax.set_ylabel(data.names[iy] if len(pairs) == 1 else "y (each body)")
        ax.set_title(f"test trajectory {int(res.test_idx[j])}")
        ax.grid(alpha=0.3)
        if what != "state" and what == "position":
            ax.set_aspect("equal", adjustable="datalim")
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{res.name}: true vs predicted trajectories ({what}; rollout from the first "
                 f"{args.prefix} observed steps)")
    fig.tight_layout()
    return fig


def _plot_energy(plt, res: SystemResult, args: Args):
    if "true" not in res.energies:
        return None
    known = res.truth.available
    ylabel = "true energy E" if known else "discovered energy E"
    labels = {**LABELS, "true": "true" if known else "observed"}
    n = min(args.n_show, len(res.test_idx))
    t = res.data.t[res.test_idx[0]]
    fig, axes = plt.subplots(1, n + 1, figsize=(4.3 * (n + 1), 3.9), squeeze=False)
    for j in range(n):
        ax = axes[0][j]
        for kind, e in res.energies.items():
            ax.plot(t, e[j], "-" if kind == "true" else "--", color=COLOURS[kind],
                    lw=1.8 if kind == "true" else 1.4, label=labels[kind])
        ax.axvline(t[args.prefix - 1], color="tab:green", ls=":", lw=1, label="end of prefix")
        ax.set_xlabel("t")
        ax.set_ylabel(ylabel)
        ax.set_title(f"test trajectory {int(res.test_idx[j])}")
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9,
               bbox_to_anchor=(0.5, -0.06))
    ax = axes[0][n]
    e0 = res.energies["true"][:, :1]
    for kind, e in res.energies.items():
        rel = np.abs(e - e0) / np.abs(e0)
        mean = np.nanmean(rel, axis=0)
        ax.plot(t[args.prefix:], np.clip(mean[args.prefix:], 1e-12, None), color=COLOURS[kind],
                label=labels[kind])
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("mean |E(t) - E(0)| / |E(0)|")
    ax.set_title(f"relative drift, mean of {len(res.test_idx)} test trajectories")
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{res.name}: true energy along true and predicted trajectories" if known
                 else f"{res.name}: discovered energy (no ground truth) along observed and "
                      "predicted trajectories")
    fig.tight_layout()
    return fig


def _plot_losses(plt, res: SystemResult, args: Args):
    runs = [(k, r) for k, r in (("standard", res.runs.get("standard")),
                                ("physics", res.runs.get("physics"))) if r is not None]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(6.2 * len(runs), 4.3), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (kind, run) in zip(axes[0], runs):
        rows = training_rows(run)
        epochs = np.array([r["epoch"] for r in rows])
        for c, term in enumerate(LOSS_TERMS):
            labelled = False     # one legend entry per term; the line style tells the split
            for split, style in (("train", "-"), ("val", "--")):
                vals = np.array([r.get(f"{split}/{term}", np.nan) for r in rows], dtype=float)
                vals = np.where(vals > 0, vals, np.nan)
                if np.isfinite(vals).any():
                    ax.plot(epochs, vals, style, color=cmap(c), marker="." if len(rows) < 15
                            else None, label=None if labelled else term.replace("_", " "))
                    labelled = True
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(f"{LABELS[kind]}: {run.dir.name}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{res.name}: training losses per term (solid: train, dashed: validation)")
    fig.tight_layout()
    return fig


def _plot_latent(plt, res: SystemResult, args: Args):
    lat = res.latent
    if lat is None:
        return None
    scores, keep = lat["scores"], lat["keep"]
    name = next((k for k in ("true energy", "E (discovered)") if k in lat["colours"]),
                next(iter(lat["colours"])))
    colour = lat["colours"][name]
    corr = res.metrics["latent"].get("abs_corr") or {}
    fig, axes = plt.subplots(1, 2 if corr else 1, figsize=(11.5 if corr else 6, 4.6),
                             squeeze=False)
    ax = axes[0][0]
    if scores.shape[1] >= 2:
        sc = ax.scatter(scores[keep, 0], scores[keep, 1], c=colour[keep], s=6, cmap="viridis")
        ax.set_ylabel(f"PC2 ({lat['explained'][1]:.1%} of variance)")
    else:
        sc = ax.scatter(scores[keep, 0], colour[keep], c=colour[keep], s=6, cmap="viridis")
        ax.set_ylabel(name)
    ax.set_xlabel(f"PC1 ({lat['explained'][0]:.1%} of variance)")
    fig.colorbar(sc, ax=ax, label=name)
    run = res.metrics["latent"]["run"]
    ax.set_title(f"latent PCA ({run}), coloured by {name}", fontsize=9)
    ax.grid(alpha=0.3)
    if corr:
        ax = axes[0][1]
        names = list(corr)
        k = len(next(iter(corr.values())))
        width = 0.8 / k
        x = np.arange(len(names))
        for j in range(k):
            vals = [corr[nm][j] if corr[nm][j] is not None else 0 for nm in names]
            ax.bar(x + (j - (k - 1) / 2) * width, vals, width, label=f"PC{j + 1}")
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=20 if len(names) > 3 else 0)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("true invariant")
        ax.set_ylabel("|correlation| with the component")
        ax.set_title("what the leading components encode")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{res.name}: latent space of held-out trajectories")
    fig.tight_layout()
    return fig


def _plot_pareto(plt, res: SystemResult, args: Args):
    from matplotlib.ticker import MaxNLocator

    eqs = [e for e in (res.discovered or {}).get("equations", []) if e.get("pareto")]
    if not eqs:
        return None
    n = len(eqs)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    assessed = {(e["kind"], e["name"]): e for e in res.metrics["equations"]}
    for ax, eq in zip(axes.ravel(), eqs):
        front = eq["pareto"]
        cx = np.array([f["complexity"] for f in front], dtype=float)
        loss = np.array([f["loss"] if f["loss"] is not None else np.nan for f in front], float)
        floor = np.nanmin(loss[loss > 0]) / 10 if (loss > 0).any() else 1e-12
        loss = np.where(loss > 0, loss, floor)
        ax.plot(cx, loss, "o-", color="tab:gray", ms=4, label="Pareto front")
        chosen = [i for i, f in enumerate(front) if f.get("chosen")]
        if chosen:
            ax.plot(cx[chosen], loss[chosen], "*", color="tab:red", ms=15, label="chosen")
        else:
            ax.text(0.5, 0.04, "no front member is marked chosen", transform=ax.transAxes,
                    ha="center", fontsize=8, color="tab:red")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if cx.max() - cx.min() < 4:
            ax.set_xlim(cx.min() - 2, cx.max() + 2)
        ax.set_xlabel("complexity (expression nodes)")
        ax.set_ylabel("loss")
        a = assessed.get((eq.get("kind"), eq.get("name")), {})
        verdict = ""
        if a.get("matched"):
            verdict = (f": true {a['matched']}, exact structure" if a.get("structure_match")
                       else f": {a.get('relation')} of true {a['matched']}")
        text = eq.get("expression", "")
        text = text if len(text) <= 42 else text[:39] + "..."
        ax.set_title(f"{eq.get('kind')} {eq.get('name')}{verdict}\n{text}", fontsize=8.5)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"{res.name}: symbolic-regression Pareto fronts "
                 f"(backend {res.discovered.get('backend')})")
    fig.tight_layout()
    return fig


# ============================================================================ dashboard data

def _round(x, digits: int = 6):
    """Round floats in nested lists to `digits` significant digits (a smaller file)."""
    if isinstance(x, (list, tuple)):
        return [_round(v, digits) for v in x]
    if isinstance(x, np.ndarray):
        return _round(x.tolist(), digits)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return float(f"{v:.{digits}g}") if np.isfinite(v) else None
    return x


def _down(n: int, limit: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))


def dashboard_entry(res: SystemResult, args: Args) -> dict:
    m = res.metrics
    n = min(args.n_dashboard, len(res.test_idx))
    T = res.data.states.shape[1]
    steps = _down(T, 100)
    clean = res.truth.clean[res.test_idx]
    trajectories, energy = [], []
    for j in range(n):
        t = _round(res.data.t[res.test_idx[j], steps])
        get = lambda arr: _round(arr[j, steps]) if arr is not None else None
        trajectories.append({"id": int(res.test_idx[j]), "t": t, "true": get(clean),
                             "standard": get(res.rollouts.get("standard")),
                             "physics": get(res.rollouts.get("physics"))})
        # DATA.md: energy and drift are the TRUE energy's; null without ground truth.
        energies = res.energies if res.truth.available else {}
        energy.append({"id": int(res.test_idx[j]), "t": t,
                       "true": get(energies.get("true")),
                       "standard": get(energies.get("standard")),
                       "physics": get(energies.get("physics"))})
    drift = {}
    for kind in ("standard", "physics"):
        row = m["drift"].get(kind)
        drift[kind] = ({"mean": row["mean"], "max": row["max"]}
                       if res.truth.available and row and row.get("mean") is not None else None)
    latent = None
    if res.latent is not None:
        keep = res.latent["keep"]
        scores = res.latent["scores"][keep, :2]
        if scores.shape[1] == 1:
            scores = np.column_stack([scores, np.zeros(len(scores))])
        latent = {"explained_variance": _round(res.latent["explained"]),
                  "points": _round(scores, 5),
                  "color_by": {k: _round(v[keep], 5) for k, v in res.latent["colours"].items()}}
    equations = []
    assessed = {(e["kind"], e["name"]): e for e in m["equations"]}
    for eq in res.discovered.get("equations", []):
        a = assessed.get((eq.get("kind"), eq.get("name")), {})
        equations.append({
            "kind": eq.get("kind"), "name": eq.get("name"), "expression": eq.get("expression"),
            "latex": eq.get("latex"), "complexity": eq.get("complexity"),
            "r2": a.get("r2"), "conservation_ratio": a.get("conservation_ratio",
                                                           eq.get("conservation_ratio")),
            "matched": a.get("matched"), "structure_match": a.get("structure_match"),
            "pareto": [{"complexity": f.get("complexity"), "loss": f.get("loss"),
                        "expression": f.get("expression"), "latex": f.get("latex"),
                        "chosen": bool(f.get("chosen"))} for f in eq.get("pareto", [])]})
    return {"variables": list(res.data.names), "canonical": res.data.canonical,
            "has_truth": res.truth.available, "trajectories": trajectories, "energy": energy,
            "drift": drift, "latent": latent, "n_conserved": res.discovered.get("n_conserved"),
            "equations": equations}


def hnn_rows(args: Args) -> list[dict] | None:
    """Rows of <results-dir>/hnn_table.json (models/hnn_experiment.py), or None."""
    hnn = read_json(Path(args.results_dir) / "hnn_table.json", None)
    return (hnn or {}).get("hnn_table") or None


def write_dashboard(path: Path, results: list[SystemResult], args: Args, generated: str) -> Path:
    backends = sorted({str(r.discovered.get("backend")) for r in results
                       if r.discovered.get("backend")})
    payload = {"generated": generated, "backend": "; ".join(backends) or None,
               "systems": {r.name: dashboard_entry(r, args) for r in results},
               "hnn_table": hnn_rows(args)}
    text = json.dumps(to_jsonable(payload), separators=(",", ":"), allow_nan=False)
    return atomic_write_text(path, f"window.DASHBOARD_DATA = {text};\n")


# ============================================================================ tables

def _fmt(v, kind: str = "g") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) and kind == "g":
        return str(v)
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "inf" if v > 0 else "-"
        if kind == "%":
            return f"{100 * v:.0f}%" if abs(v) >= 10 else f"{100 * v:.3g}%"
        if kind == "r2":
            return f"{v:.4f}" if v > 0.9 else f"{v:.3f}"
        if kind == "s":
            return f"{v:.1f}s"
        return f"{v:.3g}"
    return str(v)


def render(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        esc = lambda s: str(s).replace("|", "\\|")
        lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
                 "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _verdict(e: dict) -> str:
    if e.get("error"):
        return "unparsable"
    if e.get("matched") is None:
        return "no match" if e.get("per_invariant") else "n/a (no truth)"
    if e.get("structure_match"):
        return f"= {e['matched']} exactly"
    if e.get("relation") == "joint":
        return f"function of {e['matched'][2:-1]}"
    if e.get("relation") == "function":
        return f"function of {e['matched']}"
    if e.get("max_coef_error") is not None:
        return f"≈ {e['matched']}, a coefficient {100 * e['max_coef_error']:.2g}% off"
    return f"≈ {e['matched']}, other terms"


def equations_table(metrics: dict, markdown: bool = False, code=lambda s: s) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        for e in m["equations"]:
            if markdown and e.get("kind") == "latent":
                continue        # descriptive, not laws: terminal and metrics.json only
            expr = e.get("expression") or ""
            if not markdown and len(expr) > 60:
                expr = expr[:57] + "..."
            func = _fmt(e.get("functional_r2"), "r2")
            if e.get("relation") == "joint":
                func = f"{_fmt(e.get('joint_r2'), 'r2')} (joint)"
            rows.append([name, e.get("kind"), e.get("name"), code(expr), _fmt(e.get("matched")),
                         _fmt(e.get("r2"), "r2"), func,
                         _fmt(e.get("structure_match")), _fmt(e.get("max_coef_error"), "%"),
                         _fmt(e.get("conservation_ratio")), _verdict(e)])
    return render(["system", "kind", "name", "expression", "matches", "affine R²",
                   "functional R²", "structure", "max coef err", "conservation ratio",
                   "verdict"], rows, markdown)


def drift_table(metrics: dict, markdown: bool = False) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        d = m["drift"]
        for kind, label in (("standard", "standard (no physics loss)"),
                            ("physics", "physics-aware (projected)")):
            r = d.get(kind)
            if r is None:
                rows.append([name, label, "-", "-", "-", "-", "-", "-", "(no run)"])
                continue
            head = (r.get("energy_head") or {}).get("residual_over_spread")
            rows.append([name, label, r.get("tag"), _fmt(r.get("mean"), "%"),
                         _fmt(r.get("max"), "%"), _fmt(r.get("max_abs")),
                         _fmt(r.get("state_nrmse")), _fmt(head, "%"), r.get("run")])
        if d.get("energy") and not d["energy"].startswith("true"):
            rows.append([name, f"(drift of the {d['energy']})"] + [""] * 7)
        ratio = d.get("ratio")
        if ratio is not None:
            ok = "met" if d.get("target_met") else "NOT met"
            rows.append([name, f"ratio standard/physics: {ratio:.3g}x (target >= "
                               f"{DRIFT_TARGET:g}x: {ok})"] + [""] * 7)
    return render(["system", "model", "tag", "avg energy drift", "max drift", "max |ΔE|",
                   "state NRMSE", "Ê error", "run"], rows, markdown)


def training_table(metrics: dict, markdown: bool = False) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        for r in m["training"]:
            epochs = r.get("epochs")
            if r.get("epochs_asked") and epochs != r.get("epochs_asked"):
                epochs = f"{epochs}/{r['epochs_asked']}"
            rows.append([name, r.get("tag"), _fmt(r.get("beta")), _fmt(r.get("latent_dim")),
                         _fmt(epochs), _fmt(r.get("train_seconds"), "s"),
                         _fmt(r.get("wall_seconds"), "s"), _fmt(r.get("device")),
                         _fmt(r.get("final_train_loss")), _fmt(r.get("final_val_loss"))])
    return render(["system", "tag", "energy weight", "latent dim", "epochs", "training time",
                   "wall time", "device", "final train loss", "final val loss"], rows, markdown)


def latent_table(metrics: dict) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        lat = m.get("latent")
        if not lat:
            continue
        ev = ", ".join(f"{v:.2f}" for v in lat["explained_variance"][:3])
        corr = "; ".join(f"{inv}: " + "/".join(_fmt(c) for c in cs)
                         for inv, cs in (lat.get("abs_corr") or {}).items())
        rows.append([name, lat.get("run"), lat["latent_dim"], ev, corr or "-"])
    return render(["system", "run", "dim", "explained variance (PC1-3)",
                   "|corr| PC1/PC2/PC3 with true invariants"], rows)


def ablation_table(metrics: dict) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        for r in m.get("ablation") or []:
            rows.append([name, r["tag"], _fmt(r["beta"]), _fmt(r["latent_dim"]),
                         _fmt(r["epochs"]), _fmt(r["final_val_loss"]),
                         _fmt(r["drift_mean"], "%"), _fmt(r["state_nrmse"]),
                         _fmt(r["energy_r2"], "r2"), _fmt(r["energy_structure_match"]),
                         _fmt(r["n_conserved"])])
    return render(["system", "tag", "energy weight", "latent dim", "epochs", "final val loss",
                   "drift", "state NRMSE", "E R²", "E exact", "laws found"], rows)


def print_report(metrics: dict, dashboard: Path | None) -> None:
    print("\n1. Discovered equations vs ground truth (held-out clean states)")
    print(equations_table(metrics))
    print(f"\n2. Energy drift of rollouts (first {metrics['settings']['prefix']} steps observed)")
    print(drift_table(metrics))
    print(textwrap.fill(DRIFT_NOTE, width=100))
    print("\n3. Training")
    print(training_table(metrics))
    if any(m.get("latent") for m in metrics["systems"].values()):
        print("\n4. Latent space (PCA of the physics-aware run's latent)")
        print(latent_table(metrics))
    if any(len(m.get("ablation") or []) > 2 for m in metrics["systems"].values()):
        print("\n5. Ablations (every run of each system)")
        print(ablation_table(metrics))
    if metrics.get("hnn_table"):
        print("\nHamiltonian NN vs baseline (results/hnn_table.json)")
        print(hnn_table(metrics))
    print("\nSummary")
    for name, m in metrics["systems"].items():
        laws = [e for e in m["equations"] if e["kind"] in ("energy", "invariant")]
        n = m['discovery']['n_conserved']
        print(f"  {name}: {n} conserved {'quantity' if n == 1 else 'quantities'} found")
        for e in laws:
            print(f"    {e['name']} = {e['expression']}   [{_verdict(e)}"
                  + (f", R² {e['r2']:.4f}" if e.get("r2") is not None else "") + "]")
        if not laws:
            print("    (no conservation law)")
        d = m["drift"]
        if d.get("ratio") is not None:
            print(f"    drift: standard {_fmt(d['standard']['mean'], '%')}, physics-aware "
                  f"{_fmt(d['physics']['mean'], '%')} -> {d['ratio']:.3g}x smaller "
                  f"({'target met' if d['target_met'] else 'target NOT met'})")
    if dashboard is not None:
        print(f"\ndashboard data: {dashboard}")
        print("view it: open dashboard/index.html, or "
              "python -m http.server 8080 --directory dashboard/ and http://localhost:8080")


# ============================================================================ README

def hnn_table(metrics: dict, markdown: bool = False) -> str:
    rows = [[r.get("task"), r.get("model"), _fmt(r.get("train_loss")), _fmt(r.get("test_loss")),
             _fmt(r.get("energy_mse")) + (f" ± {_fmt(r['energy_mse_std'])}"
                                           if r.get("energy_mse_std") else ""),
             _fmt(r.get("paper_energy_mse"))] for r in metrics.get("hnn_table") or []]
    return render(["task", "model", "train loss", "test loss", "energy MSE (t ≤ 20)",
                   "paper's energy MSE"], rows, markdown)


DRIFT_NOTE = ("avg/max drift: |E(t) - E(0)| / |E(0)| over the predicted steps of held-out "
              "trajectories; state NRMSE: rollout error in units of each variable's spread; "
              "Ê error: the energy head's residual after the best affine map to the true E, "
              "in units of E's spread (a rollout projected onto Ê's level set drifts about "
              "this much).")


def readme_section(metrics: dict) -> str:
    code = lambda s: f"`{s}`" if s else ""
    parts = [f"_From results/metrics.json of {metrics.get('generated', '?')} "
             "(`python evaluate.py --readme`)._", "",
             "#### Discovered equations vs ground truth", "",
             equations_table(metrics, markdown=True, code=code), "",
             f"#### Energy drift of predicted trajectories (rollout from the first "
             f"{metrics['settings']['prefix']} observed steps, true energy)", "",
             drift_table(metrics, markdown=True), "", DRIFT_NOTE, "", "#### Training", "",
             training_table(metrics, markdown=True)]
    if metrics.get("hnn_table"):
        parts += ["", "#### Hamiltonian NN vs baseline (models/hnn_experiment.py)", "",
                  hnn_table(metrics, markdown=True), "",
                  "Energy MSE: the true energy along RK45 rollouts from held-out starts over "
                  "t in [0, 20] (the span of the paper's analysis notebooks), mean ± std over "
                  "3 seeds. `baseline`/`hnn`: last weights (the paper's protocol); `+avg`: a "
                  "moving average (decay 0.999) of the weights of the same training run."]
    return "\n".join(parts)


def rewrite_readme(readme: Path, metrics: dict) -> Path:
    if not readme.exists():
        fail(f"{readme} not found (the results section goes between the markers "
             f"{README_START} and {README_END})")
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0 or end < start:
        fail(f"{readme} lacks the markers {README_START} ... {README_END} (in that order): add "
             "them where the generated results should go")
    new = (text[:start + len(README_START)] + "\n" + readme_section(metrics) + "\n"
           + text[end:])
    return atomic_write_text(readme, new)


# ============================================================================ main

def evaluate(args: Args) -> dict:
    """Run every evaluation; write metrics.json, plots and the dashboard file; return metrics."""
    log = (lambda *a: None) if args.quiet else print
    start = time.perf_counter()
    inputs = check_inputs(args)          # bad input fails before anything is printed
    log("evaluate.py " + json.dumps(asdict(args)))
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    results = []
    for system, data, disc, runs in inputs:
        t0 = time.perf_counter()
        res = evaluate_system(system, data, disc, runs, args, log)
        res.metrics["plots"] = plot_system(res, Path(args.plots_dir), args)
        res.metrics["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{data.name}: evaluated in {res.metrics['seconds']}s "
            f"({len(res.metrics['plots'])} plots)")
        results.append(res)
    metrics = {"generated": generated, "settings": asdict(args),
               "environment": environment_info(),
               "definitions": {"structure_tolerance": STRUCTURE_TOL, "match_r2": MATCH_R2,
                               "functional_degree": FUNCTIONAL_DEGREE,
                               "drift_target": DRIFT_TARGET},
               "systems": {r.name: r.metrics for r in results},
               "hnn_table": hnn_rows(args)}
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_json(Path(args.results_dir) / "metrics.json", metrics)
    dash = write_dashboard(Path(args.dashboard_file), results, args, generated)
    if not args.quiet:
        print_report(metrics, dash)
        print(f"metrics: {Path(args.results_dir) / 'metrics.json'}; plots: {args.plots_dir}/")
    return metrics


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.readme:
        path = Path(args.results_dir) / "metrics.json"
        metrics = read_json(path, None)
        if metrics is None:
            fail(f"no {path}: run `python evaluate.py --systems ...` first")
        rewrite_readme(Path(args.readme_file), metrics)
        if not args.quiet:
            print(f"rewrote the results section of {args.readme_file} from {path}")
        return
    if args.hnn_table is not None:
        from models import hnn_experiment

        flags = shlex.split(args.hnn_table)
        if "--results-dir" not in flags:
            flags += ["--results-dir", args.results_dir]
        if "--plots-dir" not in flags:
            flags += ["--plots-dir", args.plots_dir]
        if args.quiet and "--quiet" not in flags:
            flags.append("--quiet")
        hnn_experiment.main(flags)
    evaluate(args)


if __name__ == "__main__":
    sys.exit(cli(main)())
