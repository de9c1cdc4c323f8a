"""Symbolic regression engines and the checks that turn candidates into laws.

Engines (all return Pareto fronts of `Candidate`s, i.e. sympy expressions with a complexity and
a loss):
  * sparse  - forward selection over a feature library (monomials of the inputs, 1/r, ...):
              exact and sub-second whenever the true terms are in the library;
  * operon  - pyoperon (C++ Operon genetic programming), budgeted by evaluations, seeded;
  * pysr    - a thin adapter, used only when PySR and its Julia install are usable (checked in
              a subprocess with a timeout: importing pysr can download Julia or hang).
The conserved-quantity search (`conserved_search`) needs no network: it looks for sparse
combinations of library features whose within-trajectory variance is small against their
total variance. Nothing here knows which physical system the data come from.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import sympy as sp


# ---------------------------------------------------------------------------- expressions

@dataclass
class Candidate:
    """One member of a Pareto front."""

    expr: sp.Expr
    loss: float
    source: str
    complexity: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.complexity = self.complexity or complexity(self.expr)


def complexity(expr: sp.Expr) -> int:
    """Number of nodes of the expression tree (PySR's default measure)."""
    return sum(1 for _ in sp.preorder_traversal(expr))


def round_floats(expr: sp.Expr, digits: int = 4) -> sp.Expr:
    """Round every float in `expr` to `digits` significant digits (for display only)."""
    return expr.xreplace({f: sp.Float(float(f"{float(f):.{digits}g}"), 15)
                          for f in expr.atoms(sp.Float)})


def to_text(expr: sp.Expr) -> str:
    return sp.sstr(round_floats(expr, 6))


def to_latex(expr: sp.Expr, symbols: dict[str, sp.Symbol]) -> str:
    names = {s: _latex_name(n) for n, s in symbols.items()}
    return sp.latex(round_floats(expr, 4), symbol_names=names)


def _latex_name(name: str) -> str:
    m = re.fullmatch(r"([A-Za-z]+?)(\d+|[xyz])?", name)
    if m and m.group(2) and len(m.group(1)) <= 2:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    return name if len(name) == 1 else rf"\mathrm{{{name}}}"


# ---------------------------------------------------------------------------- inputs and library

@dataclass
class Inputs:
    """State symbols plus derived inputs that any data with canonical labels allows."""

    names: list[str]                      # state variable names, in file order
    symbols: dict[str, sp.Symbol]         # every input symbol (states and derived)
    derived: dict[str, sp.Expr]           # derived name -> expression in the state symbols
    positions: list[str] = field(default_factory=list)   # names marked "q" (canonical data)

    @property
    def state_symbols(self) -> list[sp.Symbol]:
        return [self.symbols[n] for n in self.names]

    @property
    def all_names(self) -> list[str]:
        return self.names + list(self.derived)

    def expand_derived(self, expr: sp.Expr) -> sp.Expr:
        """Express `expr` in the state variables only."""
        return expr.xreplace({self.symbols[k]: v for k, v in self.derived.items()})

    def evaluate(self, states: np.ndarray) -> np.ndarray:
        """(n, D) states -> (n, D + n_derived) inputs."""
        cols = [states]
        for expr in self.derived.values():
            fn = sp.lambdify(self.state_symbols, expr, "numpy")
            cols.append(np.asarray(fn(*states.T), dtype=np.float64).reshape(-1, 1))
        return np.concatenate(cols, axis=1)


def make_inputs(names: list[str], canonical: list[str] | None) -> Inputs:
    """Derived inputs: the norm of the position vector when the data marks 2 or 3 position
    coordinates, and, for more positions in 2-D blocks, the distance between each pair of
    blocks (the layout of many-body data). Users' files decide; no system is special-cased."""
    symbols = {n: sp.Symbol(n, real=True) for n in names}
    derived: dict[str, sp.Expr] = {}
    if canonical is not None:
        q = [symbols[n] for n, c in zip(names, canonical) if c == "q"]
        taken = set(names)

        def fresh(base: str) -> str:
            name = base
            while name in taken:
                name += "_"
            taken.add(name)
            return name

        if len(q) in (2, 3):
            derived[fresh("r")] = sp.sqrt(sum(s**2 for s in q))
        elif len(q) >= 4 and len(q) % 2 == 0:
            blocks = [q[i:i + 2] for i in range(0, len(q), 2)]
            for (i, a), (j, b) in itertools.combinations(enumerate(blocks, 1), 2):
                derived[fresh(f"r{i}{j}")] = sp.sqrt((a[0] - b[0])**2 + (a[1] - b[1])**2)
    for name in derived:
        symbols[name] = sp.Symbol(name, positive=True)
    positions = [n for n, c in zip(names, canonical or []) if c == "q"]
    return Inputs(list(names), symbols, derived, positions)


def build_library(inputs: Inputs, degree: int | None = None) -> list[sp.Expr]:
    """Feature library (no constant): monomials of the state variables up to `degree`
    (3 for up to 4 variables, 2 above); for each derived distance d: d, 1/d, 1/d^2 and the
    state variables divided by d; for up to 4 variables, cos and sin of each position."""
    states = inputs.state_symbols
    degree = degree or (3 if len(states) <= 4 else 2)
    feats: list[sp.Expr] = []
    for k in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(states, k):
            feats.append(sp.Mul(*combo))
    for name in inputs.derived:
        d = inputs.symbols[name]
        feats += [d, 1 / d, 1 / d**2] + [s / d for s in states]
    if inputs.positions and len(states) <= 4:
        # angles are common coordinates (pendulums, rotors): periodic functions of positions
        feats += [f(inputs.symbols[n]) for n in inputs.positions for f in (sp.cos, sp.sin)]
    return feats


def evaluate_exprs(exprs: list[sp.Expr], inputs: Inputs, states: np.ndarray) -> np.ndarray:
    """Evaluate expressions (in input symbols) on (n, D) states -> (n, len(exprs))."""
    values = inputs.evaluate(states)
    syms = [inputs.symbols[n] for n in inputs.all_names]
    out = np.empty((len(states), len(exprs)))
    for j, e in enumerate(exprs):
        fn = sp.lambdify(syms, e, "numpy")
        out[:, j] = np.broadcast_to(np.asarray(fn(*values.T), dtype=np.float64), len(states))
    return out


def gradient_fn(expr: sp.Expr, inputs: Inputs):
    """Gradient w.r.t. the state variables, as a numpy function (n, D) -> (n, D)."""
    full = inputs.expand_derived(expr)
    grads = [sp.diff(full, s) for s in inputs.state_symbols]
    fns = [sp.lambdify(inputs.state_symbols, g, "numpy") for g in grads]

    def grad(states: np.ndarray) -> np.ndarray:
        return np.stack([np.broadcast_to(np.asarray(f(*states.T), dtype=np.float64),
                                         len(states)) for f in fns], axis=1)

    return grad


# ---------------------------------------------------------------------------- metrics

def conservation_ratio(values: np.ndarray) -> float:
    """Mean within-trajectory variance / variance of the per-trajectory means; values (N, T).
    0 = perfectly conserved; a generic function of the state is O(0.1-10)."""
    within = values.var(axis=1).mean()
    between = values.mean(axis=1).var()
    return float(within / between) if between > 0 else float("inf")


def gradient_rank(exprs: list[sp.Expr], inputs: Inputs, states: np.ndarray,
                  tol: float = 0.05) -> int:
    """Number of functionally independent expressions: rank of their stacked, row-normalised
    gradients, taken as the number of singular values above `tol` at the median state."""
    if not exprs:
        return 0
    grads = np.stack([gradient_fn(e, inputs)(states) for e in exprs], axis=1)  # (n, k, D)
    grads = grads / (np.linalg.norm(grads, axis=2, keepdims=True) + 1e-300)
    sv = np.linalg.svd(grads, compute_uv=False)                                 # (n, k)
    return int((np.median(sv, axis=0) > tol).sum())


# ---------------------------------------------------------------------------- sparse regression

def sparse_front(features: np.ndarray, y: np.ndarray, exprs: list[sp.Expr],
                 max_terms: int = 8) -> list[Candidate]:
    """Forward selection of library terms (with intercept) fitting y; one candidate per size.

    features: (n, F); y: (n,). Loss = residual variance / variance of y.
    """
    mu, sd = features.mean(0), features.std(0)
    sd[sd == 0] = 1.0
    Z = (features - mu) / sd
    yc = y - y.mean()
    var_y = float(yc @ yc) or 1.0
    chosen: list[int] = []
    out = []
    for _ in range(min(max_terms, Z.shape[1])):
        best = None
        for j in range(Z.shape[1]):
            if j in chosen:
                continue
            cols = Z[:, chosen + [j]]
            coef, *_ = np.linalg.lstsq(cols, yc, rcond=None)
            rss = float(np.sum((yc - cols @ coef) ** 2))
            if best is None or rss < best[0]:
                best = (rss, j, coef)
        rss, j, coef = best
        chosen.append(j)
        slope = coef / sd[chosen]
        intercept = y.mean() - float(slope @ mu[chosen])
        expr = sum(sp.Float(c) * exprs[i] for c, i in zip(slope, chosen)) + sp.Float(intercept)
        out.append(Candidate(expr, rss / var_y, "sparse"))
        if rss / var_y < 1e-14:
            break
    return out


def _group_grams(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """values (N, T, F) -> (within, total) covariance matrices (F, F), per sample."""
    n, T, F = values.shape
    flat = values.reshape(-1, F)
    centred = flat - flat.mean(0)
    within = (values - values.mean(axis=1, keepdims=True)).reshape(-1, F)
    return within.T @ within / len(flat), centred.T @ centred / len(flat)


def _min_ratio(W: np.ndarray, S: np.ndarray) -> tuple[float, np.ndarray]:
    """Smallest generalised eigenvalue of (W, S) and its eigenvector (S positive definite)."""
    vals, vecs = _batched_min_ratio(W[None], S[None])
    return float(vals[0]), vecs[0]


def _batched_min_ratio(W: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, k, k) pairs -> smallest generalised eigenvalues (M,) and eigenvectors (M, k)."""
    L = np.linalg.cholesky(S)
    Linv = np.linalg.inv(L)
    C = Linv @ W @ np.swapaxes(Linv, 1, 2)
    vals, vecs = np.linalg.eigh(C)
    vec = np.swapaxes(Linv, 1, 2) @ vecs[:, :, :1]
    return np.clip(vals[:, 0], 0.0, None), vec[:, :, 0]


def conserved_search(values: np.ndarray, exprs: list[sp.Expr], max_terms: int = 5,
                     exhaustive_terms: int = 3, extend_top: int = 60,
                     min_gain: float = 0.1) -> list[Candidate]:
    """Sparse conserved combinations of library features.

    values: (N, T, F) features on training trajectories. A support (set of features) is
    scored by min_c c'Wc / c'Sc, within-trajectory over total variance (a generalised
    eigenproblem on the support). Every support of up to `exhaustive_terms` features is
    scored; the best `extend_top` of the largest size are then grown greedily up to
    `max_terms`. A support is kept only if its ratio is below `min_gain` times the best ratio
    of its subsets one term smaller, so that adding useless terms to a conserved combination
    is not a new candidate. Returns candidates with loss = ratio, sorted by (terms, ratio).
    """
    sd = values.reshape(-1, values.shape[-1]).std(0)
    keep = np.flatnonzero(sd > 0)
    values, exprs, sd = values[..., keep] / sd[keep], [exprs[i] for i in keep], sd[keep]
    W, S = _group_grams(values)
    S = S + 1e-10 * np.eye(len(S))
    F = len(exprs)
    scored: dict[tuple, tuple[float, np.ndarray]] = {}

    def score(supports: list[tuple]) -> None:
        supports = [s for s in supports if s not in scored]
        for lo in range(0, len(supports), 20000):
            block = np.array(supports[lo:lo + 20000])
            ix = block[:, :, None], block[:, None, :]
            vals, vecs = _batched_min_ratio(W[ix], S[ix])
            for s, v, c in zip(map(tuple, block), vals, vecs):
                scored[s] = (float(v), c)

    for k in range(1, min(exhaustive_terms, F) + 1):
        score(list(itertools.combinations(range(F), k)))
    frontier = sorted((s for s in scored if len(s) == min(exhaustive_terms, F)),
                      key=lambda s: scored[s][0])[:extend_top]
    for _ in range(exhaustive_terms, max_terms):
        grown = sorted({tuple(sorted(s + (j,))) for s in frontier for j in range(F)
                        if j not in s})
        score(grown)
        frontier = sorted(grown, key=lambda s: scored[s][0])[:extend_top]
    out = []
    for support, (ratio, vec) in scored.items():
        if len(support) > 1:
            subsets = [scored.get(tuple(x for x in support if x != j)) for j in support]
            best_sub = min(s[0] for s in subsets if s is not None)
            if not ratio < min_gain * best_sub:
                continue
        coef = vec / sd[list(support)]
        coef = coef / coef[np.argmax(np.abs(coef))]
        expr = sum(sp.Float(c) * exprs[i] for c, i in zip(coef, support))
        out.append(Candidate(expr, ratio, "sparse", extra={"terms": len(support)}))
    out.sort(key=lambda c: (c.extra["terms"], c.loss))
    return out


def refit_conserved(expr: sp.Expr, inputs: Inputs, trajectories: np.ndarray) -> sp.Expr:
    """Re-estimate the coefficients of a sum of terms by minimising within/total variance on
    (N, T, D) trajectories (the scale is fixed so the largest coefficient is +-1)."""
    terms = _split_terms(expr)
    if terms is None or len(terms) < 2:
        return expr
    n, T, D = trajectories.shape
    vals = evaluate_exprs(terms, inputs, trajectories.reshape(-1, D)).reshape(n, T, -1)
    sd = vals.reshape(-1, len(terms)).std(0)
    if (sd == 0).any():
        return expr
    W, S = _group_grams(vals / sd)
    _, vec = _min_ratio(W, S + 1e-12 * np.eye(len(S)))
    coef = vec / sd
    coef = coef / coef[np.argmax(np.abs(coef))]
    return sum(sp.Float(c) * t for c, t in zip(coef, terms))


def _split_terms(expr: sp.Expr) -> list[sp.Expr] | None:
    """a*f + b*g + c -> [f, g] (constants dropped), or None when expr is not such a sum."""
    expanded = sp.expand(expr)
    terms = []
    for term in sp.Add.make_args(expanded):
        coeff, rest = term.as_coeff_Mul()
        if rest == 1:
            continue
        if rest.atoms(sp.Float):
            return None
        terms.append(rest)
    return sorted(set(terms), key=sp.default_sort_key) or None


def refit_hamiltonian(expr: sp.Expr, inputs: Inputs, q_idx: list[int], p_idx: list[int],
                      states: np.ndarray, derivs: np.ndarray, prune: float = 1e-2
                      ) -> sp.Expr | None:
    """Re-estimate the coefficients of H = sum c_i f_i from Hamilton's equations,
    dq/dt = dH/dp, dp/dt = -dH/dq, by linear least squares on observed derivatives.

    Terms whose share of the (RMS-normalised) derivatives is below `prune` are dropped and the
    rest refitted (1 %: with noisy states a tiny extra term mostly soaks up the errors-in-
    variables bias of the others, e.g. 0.003*r beside -1/r for a noisy orbit). Returns None when expr is not a sum of terms with numeric coefficients.
    """
    terms = _split_terms(expr)
    if terms is None:
        return None
    J = symplectic_columns(terms, inputs, q_idx, p_idx, states)   # (n, D, k)
    scale = derivative_scale(derivs, [q_idx, p_idx])
    A = (J / scale[None, :, None]).reshape(-1, len(terms))
    b = (derivs / scale).reshape(-1)
    ok = np.isfinite(A).all(axis=1)
    A, b = A[ok], b[ok]
    keep = list(range(len(terms)))
    while keep:
        cols = A[:, keep]
        norm = np.sqrt(np.mean(cols ** 2, axis=0))
        norm[norm == 0] = 1.0
        coef, *_ = np.linalg.lstsq(cols / norm, b, rcond=None)
        share = np.abs(coef) / np.sqrt(np.mean(b ** 2))
        if share.min() >= prune or len(keep) == 1:
            break
        keep.pop(int(np.argmin(share)))
    coef = coef / norm
    return sum(sp.Float(c) * terms[i] for c, i in zip(coef, keep))


def derivative_scale(derivs: np.ndarray, groups: list[list[int]] | None = None) -> np.ndarray:
    """Scale of each derivative component: the root-mean-square over its group (positions'
    derivatives share one scale, momenta's another, so that a component that is zero but for
    noise, like a free particle's dvx/dt, is not blown up to the size of the others); a
    constant acceleration such as gravity still counts, as RMS and not spread is used."""
    ms = np.mean(derivs ** 2, axis=0)
    scale = np.sqrt(ms)
    for group in groups or []:
        scale[group] = np.sqrt(ms[group].mean())
    floor = 1e-3 * scale.max() if scale.max() > 0 else 1.0
    return np.maximum(scale, floor)


def symplectic_columns(exprs: list[sp.Expr], inputs: Inputs, q_idx, p_idx,
                       states: np.ndarray) -> np.ndarray:
    """For each expression H_k, its symplectic gradient (dH/dp on q slots, -dH/dq on p slots):
    (n, D, k)."""
    out = np.zeros((len(states), states.shape[1], len(exprs)))
    for k, e in enumerate(exprs):
        g = gradient_fn(e, inputs)(states)
        out[:, q_idx, k] = g[:, p_idx]
        out[:, p_idx, k] = -g[:, q_idx]
    return out


def hamiltonian_residual(expr: sp.Expr, inputs: Inputs, q_idx, p_idx, states: np.ndarray,
                         derivs: np.ndarray, noise_var: np.ndarray | None = None
                         ) -> tuple[float, float, float]:
    """How well H's implied motion matches observed derivatives.

    With the best scale a of the symplectic gradient J dH, the residual is
    sum|a J dH - ds|^2 / sum|ds|^2 (components scaled by `derivative_scale`). `noise_var`
    (D,), the variance that observation noise adds to each derivative, gives the part of that
    residual that no formula can explain. Returns (residual, noise floor, a).
    """
    J = symplectic_columns([expr], inputs, q_idx, p_idx, states)[..., 0]
    scale = derivative_scale(derivs, [q_idx, p_idx])
    u, v = (J / scale).ravel(), (derivs / scale).ravel()
    denom = float(u @ u)
    a = float(u @ v) / denom if denom > 0 else 0.0
    total = float(np.sum(v * v))
    floor = 0.0 if noise_var is None else float(len(states) * np.sum(noise_var / scale**2)) / total
    return float(np.sum((a * u - v) ** 2) / total), min(floor, 1.0), a


# ---------------------------------------------------------------------------- operon

def operon_front(X: np.ndarray, y: np.ndarray, input_names: list[str],
                 symbols: dict[str, sp.Symbol], budget: int, generations: int, seed: int,
                 threads: int = 2, max_length: int = 40) -> list[Candidate]:
    """pyoperon Pareto front (accuracy vs length) as sympy candidates; loss = MSE / var(y)."""
    from pyoperon.sklearn import SymbolicRegressor

    reg = SymbolicRegressor(
        allowed_symbols="add,sub,mul,div,square,sqrt,sin,cos,constant,variable",
        objectives=["r2", "length"], max_evaluations=int(budget), generations=int(generations),
        population_size=500, optimizer_iterations=5, n_threads=threads, random_state=seed,
        max_length=max_length, max_depth=10)
    reg.fit(X, y)
    var_y = float(np.var(y)) or 1.0
    out = []
    for member in reg.pareto_front_:
        expr = parse_operon(member["model"], input_names, symbols)
        if expr is None:
            continue
        out.append(Candidate(expr, float(member["mean_squared_error"]) / var_y, "operon"))
    return out


def parse_operon(model: str, input_names: list[str], symbols: dict[str, sp.Symbol]):
    text = model.replace("^", "**")
    text = re.sub(r"X(\d+)", lambda m: f"__X{m.group(1)}", text)
    local = {f"__X{i + 1}": symbols[n] for i, n in enumerate(input_names)}
    local.update({"sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log, "sin": sp.sin, "cos": sp.cos,
                  "abs": sp.Abs})
    try:
        expr = sp.sympify(text, locals=local)
    except (sp.SympifyError, SyntaxError, TypeError):
        return None
    return sp.expand(expr) if expr.is_polynomial(*expr.free_symbols) else expr


# ---------------------------------------------------------------------------- PySR (optional)

PYSR_PROBE = "import pysr, juliacall; print('ok')"


def pysr_usable(timeout: float = 60.0) -> tuple[bool, str]:
    """Whether PySR and a complete Julia set-up are usable, found out in a subprocess with a
    timeout (importing pysr in this process could start a Julia download or hang)."""
    env = dict(os.environ, PYTHON_JULIAPKG_OFFLINE="yes")
    try:
        out = subprocess.run([sys.executable, "-c", PYSR_PROBE], capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, f"probe timed out after {timeout:.0f}s"
    if out.returncode == 0 and "ok" in out.stdout:
        return True, "pysr imports"
    last = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return False, last[:200]


def pysr_front(X: np.ndarray, y: np.ndarray, input_names: list[str],
               symbols: dict[str, sp.Symbol], niterations: int, seed: int,
               maxsize: int = 30) -> list[Candidate]:
    """Thin adapter: PySRRegressor with its own options; deterministic with a seed."""
    from pysr import PySRRegressor  # only reached when pysr_usable() said yes

    reg = PySRRegressor(niterations=niterations, binary_operators=["+", "-", "*", "/"],
                        unary_operators=["square", "sqrt"], maxsize=maxsize,
                        random_state=seed, deterministic=True, parallelism="serial",
                        progress=False, verbosity=0)
    reg.fit(X, y, variable_names=input_names)
    var_y = float(np.var(y)) or 1.0
    out = []
    for _, row in reg.equations_.iterrows():
        expr = row["sympy_format"].xreplace({sp.Symbol(n): symbols[n] for n in input_names})
        out.append(Candidate(expr, float(row["loss"]) / var_y, "pysr"))
    return out


# ---------------------------------------------------------------------------- fronts

def pareto(cands: list[Candidate]) -> list[Candidate]:
    """Non-dominated candidates by (complexity, loss), sorted by complexity."""
    best: dict[int, Candidate] = {}
    for c in cands:
        if not np.isfinite(c.loss):
            continue
        if c.complexity not in best or c.loss < best[c.complexity].loss:
            best[c.complexity] = c
    out, floor = [], float("inf")
    for k in sorted(best):
        if best[k].loss < floor:
            out.append(best[k])
            floor = best[k].loss
    return out


def front_json(front: list[Candidate], chosen: Candidate | None, symbols) -> list[dict]:
    return [{"complexity": c.complexity, "loss": float(c.loss), "expression": to_text(c.expr),
             "latex": to_latex(c.expr, symbols), "source": c.source, "chosen": c is chosen}
            for c in front]


def dumps(obj) -> str:
    return json.dumps(obj, indent=2)
