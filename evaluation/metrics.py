"""Metrics of discovered laws against ground truth (../shared/SCIENCE.md has the definitions).

  conservation ratio  mean within-trajectory variance / variance of per-trajectory means
                      (utils.conservation_ratio)
  affine R^2          R^2 of the best a*H_true + b for a discovered H, on held-out clean states
  functional R^2      R^2 of the best degree-5 polynomial of H_true (H a function of H_true);
                      failing both, a quadratic polynomial of 2, 3, ... true invariants
                      together (H a function of several, e.g. vy^2/2g + y of E and px)
  structural match    H = a*H_true + b term by term: the expanded terms of H (derived inputs
                      such as r replaced by their definitions) are the true terms, every
                      coefficient within 2 % of a times the true one (a: the coefficient ratio
                      of one shared term, so one wrong coefficient cannot hide in the fit's a;
                      the largest relative error is reported)
  monotone R^2        R^2 of the best monotone map from a quantity to a true one (isotonic
                      regression fitted on other states): the pixel experiments' latent H
  energy drift        |E(t) - E(0)| / |E(0)| of the TRUE energy along a predicted trajectory

A new metric is one function here plus its column in evaluation/report.py.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from evaluation.truth import Truth
from utils import conservation_ratio, parse_expression

STRUCTURE_TOL = 0.02        # relative coefficient tolerance of the structural match
MATCH_R2 = 0.99             # R^2 above which a discovered quantity "matches" a true invariant
NEGLIGIBLE = 1e-3           # a term whose spread is below this fraction of the whole is noise
FUNCTIONAL_DEGREE = 5


# ---------------------------------------------------------------------------- fits and drift

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


def r2(y: np.ndarray, fitted: np.ndarray) -> float:
    """Coefficient of determination of fitted against y (flattened)."""
    y, fitted = np.ravel(y), np.ravel(fitted)
    return float(1 - np.sum((y - fitted) ** 2) / np.sum((y - y.mean()) ** 2))


def monotone_r2(h_fit: np.ndarray, e_fit: np.ndarray, h_eval: np.ndarray,
                e_eval: np.ndarray) -> float:
    """R^2 on (h_eval, e_eval) of the best monotone (either direction) map h -> e, fitted by
    isotonic regression on (h_fit, e_fit): how well h orders the states by e."""
    import warnings

    from sklearn.isotonic import IsotonicRegression

    with warnings.catch_warnings():   # "auto" warns when it cannot tell the direction
        warnings.simplefilter("ignore")
        iso = IsotonicRegression(increasing="auto", out_of_bounds="clip").fit(
            np.ravel(h_fit), np.ravel(e_fit))
    return r2(e_eval, iso.predict(np.ravel(h_eval)))


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


def parse_formula(text: str, variables: list[str], derived: dict[str, str] | None = None
                  ) -> sp.Expr:
    """A discovered (or true) expression string -> sympy in the STATE symbols only: derived
    inputs (e.g. r: sqrt(x**2 + y**2)) are replaced by their definitions. Parsed without
    evaluating any Python (utils.parse_expression); ValueError when it cannot be read."""
    syms = state_symbols(variables)
    local = dict(syms)
    subs = {}
    for name, definition in (derived or {}).items():
        dsym = sp.Symbol(name, positive=True)
        local[name] = dsym
        subs[dsym] = parse_expression(str(definition), syms)
    try:
        expr = parse_expression(str(text), local)
    except ValueError as err:
        raise ValueError(f"cannot parse expression {str(text)[:80]!r}: {err}") from None
    return expr.xreplace(subs)


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


def _set_aside_negligible(found: dict, known, discovered: sp.Expr, variables, states
                          ) -> list[str]:
    """Remove from `found` (in place) the terms not in `known` whose spread on the states is
    below NEGLIGIBLE of the whole discovered expression's; returns them as text. Nothing is
    set aside without states."""
    negligible = []
    if states is not None and variables is not None and found:
        total = np.nanstd(evaluate_expression(discovered, variables, states))
        for term in [t for t in found if t not in known]:
            spread = np.nanstd(found[term] * evaluate_expression(term, variables, states))
            if total > 0 and spread < NEGLIGIBLE * total:
                negligible.append(sp.sstr(term))
                del found[term]
    return negligible


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
    negligible = _set_aside_negligible(found, true, discovered, variables, states)
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


def canonical_terms(expr: sp.Expr) -> dict[sp.Expr, float]:
    """expression_terms after the expansions that make equal functions look alike: products
    and differences inside cos/sin (cos(a - b) -> cos a cos b + sin a sin b), exp of a sum
    (a product of exps) and log of a product or power (log(x y^2) -> log x + 2 log y, taken
    as valid: a log's argument is positive wherever the formula is used)."""
    return expression_terms(sp.expand(expr, trig=True, log=True, force=True))


def _align_inner_constants(found: dict, true_terms, variables, states, tol: float) -> dict:
    """A found term that is a true term up to the constants inside it (exp(-1.2999 x) for
    exp(-1.3 x)) is renamed to that true term: the same expression tree once every float is
    a placeholder, and on the states the two differ by a median factor within tol."""
    if states is None or variables is None:
        return found
    placeholder = sp.Symbol("_const")

    def skeleton(term):
        return term.xreplace({f: placeholder for f in term.atoms(sp.Float)})

    by_skeleton: dict = {}
    for term in true_terms:
        if term.atoms(sp.Float):
            by_skeleton.setdefault(skeleton(term), []).append(term)
    out = {}
    for term, coef in found.items():
        target = term
        if term not in true_terms and term.atoms(sp.Float):
            for cand in by_skeleton.get(skeleton(term), []):
                with np.errstate(all="ignore"):
                    ratio = (evaluate_expression(term, variables, states)
                             / evaluate_expression(cand, variables, states))
                if np.nanmedian(np.abs(ratio - 1.0)) <= tol:
                    target = cand
                    break
        out[target] = out.get(target, 0.0) + coef
    return out


def combination_match(discovered: sp.Expr, basis: list[sp.Expr],
                      variables: list[str] | None = None, states: np.ndarray | None = None,
                      tol: float = STRUCTURE_TOL) -> dict:
    """Is `discovered` = sum_k c_k basis_k + const term by term (structure_match for a set of
    true invariants, any of whose affine combinations is as true as each of them)?

    Terms are compared after canonical_terms(); constants inside a term (exp(-a x)) are
    matched within tol (_align_inner_constants). Every discovered term must be a term of some
    basis invariant (else "extra"; with variables and states, one whose spread is below
    NEGLIGIBLE of the whole is set aside as negligible, as in structure_match), and every
    term of the combination that the discovered law lacks must cancel exactly (else
    "missing"). The coefficients c minimise the largest relative coefficient error
    |found_t - (G c)_t| / |found_t| over the discovered terms (a linear programme); the law
    matches when that error is at most tol.
    Returns {match, max_rel_error, coefficients, missing, extra, negligible, errors}.
    """
    from scipy.optimize import linprog

    true_terms = [canonical_terms(b) for b in basis]
    union = list(dict.fromkeys(t for terms in true_terms for t in terms))
    found = _align_inner_constants(canonical_terms(discovered), union, variables, states, tol)
    negligible = _set_aside_negligible(found, union, discovered, variables, states)
    out = {"match": False, "max_rel_error": None, "coefficients": None, "missing": [],
           "extra": sorted(sp.sstr(t) for t in found if t not in union),
           "negligible": negligible, "errors": {}}
    if out["extra"] or not found or not basis:
        return out
    shared = list(found)
    absent = [t for t in union if t not in found]
    G = np.array([[terms.get(t, 0.0) for terms in true_terms] for t in union])   # (terms, K)
    F = np.array([found[t] for t in shared])
    G_shared = np.array([[terms.get(t, 0.0) for terms in true_terms] for t in shared])
    K = len(basis)
    # variables (c_1..c_K, e): minimise e with |G_t c - F_t| <= e |F_t| on the found terms
    # (rows divided by |F_t|) and G_t c = 0 on the absent ones (rows scaled to unit size)
    rows = G_shared / np.abs(F)[:, None]
    A_ub = np.block([[rows, -np.ones((len(F), 1))], [-rows, -np.ones((len(F), 1))]])
    b_ub = np.concatenate([np.sign(F), -np.sign(F)])
    A_eq = b_eq = None
    if absent:
        G_absent = np.array([[terms.get(t, 0.0) for terms in true_terms] for t in absent])
        G_absent = G_absent / np.abs(G_absent).max(axis=1, keepdims=True)
        A_eq = np.hstack([G_absent, np.zeros((len(absent), 1))])
        b_eq = np.zeros(len(absent))
    res = linprog(np.r_[np.zeros(K), 1.0], A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq,
                  bounds=[(None, None)] * K + [(0, None)], method="highs")
    if res.status != 0:
        return out
    c, err = res.x[:K], float(res.x[K])
    fitted = G_shared @ c
    out["coefficients"] = c.tolist()
    out["max_rel_error"] = err
    out["errors"] = {sp.sstr(t): float(abs(f - g) / abs(f)) for t, f, g in zip(shared, F, fitted)}
    if err > tol:
        # which terms the law would need: those a least-squares fit of the found ones asks for
        lsq, *_ = np.linalg.lstsq(rows, np.sign(F), rcond=None)
        need = G @ lsq
        scale = np.abs(need).max() if len(need) else 0.0
        out["missing"] = sorted(sp.sstr(t) for t, v in zip(union, need)
                                if t not in found and abs(v) > NEGLIGIBLE * scale)
    out["match"] = bool(err <= tol)
    return out


# ---------------------------------------------------------------------------- one equation

def assess_equation(eq: dict, disc: dict, truth: Truth, test_clean: np.ndarray,
                    test_truth: np.ndarray | None, sample_idx: np.ndarray) -> dict:
    """Everything we know about one discovered equation (see the module docstring)."""
    variables = disc.get("variables") or []
    out = {"kind": eq.get("kind"), "name": eq.get("name"), "expression": eq.get("expression"),
           "latex": eq.get("latex"), "complexity": eq.get("complexity"),
           "conservation_ratio_discover": eq.get("conservation_ratio"), "mu": eq.get("mu"),
           "decay": eq.get("decay"), "uncertainty": eq.get("uncertainty"),
           "conservation_ratio": None, "matched": None, "relation": None, "r2": None,
           "functional_r2": None, "joint_r2": None, "scale": None, "offset": None,
           "per_invariant": {}, "structure_match": None, "max_coef_error": None,
           "structure": None, "error": None}
    try:
        expr = parse_formula(eq["expression"], variables, disc.get("derived_inputs"))
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
        true_expr = parse_formula(truth.expressions[ref], variables)
        states = test_clean.reshape(-1, D)[sample_idx]
        s = structure_match(expr, true_expr, None, variables, states)
        s["truth"] = truth.expressions[ref]
        out["structure"] = s
        out["structure_match"] = s["match"]
        # A largest coefficient error means something only when the terms are the same.
        out["max_coef_error"] = (s["max_rel_error"] if not (s["missing"] or s["extra"])
                                 else None)
    return out
