"""The discovery benchmark's scorer: one discovered entry against a system's true invariants.

    from evaluation.benchmark import score_file
    score = score_file(entry, "results/bench_discover/data/quartic.npz")   # entry: one value
    score["right"], score["found_count"], score["false_laws"]               # of discovered_equations.json

Evaluation code: it reads ground truth (the registry's invariants, the file's clean states).
The laws of an entry are its equations of kind "energy" and "invariant"; anything marked as
approximately conserved (kind "approximate", verification.approximate, or the entry's
"approximate" list) is listed, never counted; "latent" entries are descriptive and ignored.
On held-out clean states (the file's test split) it checks

  (a) spanned      every true invariant is functionally dependent on the reported laws that
                   are not false (b): the sine of the angle between its gradient and the span
                   of those laws' gradients has a median below SPAN_TOL (a law inside the 2 %
                   structural tolerance leaves a few percent). False laws are left out: ten
                   approximately conserved quantities in 12 variables span nearly anything;
  (b) false laws   a reported law that is neither structurally exact (d) nor a function of
                   the true invariants (the same sine, against the true invariants' gradients,
                   median above DEPENDENT_TOL): an approximately conserved stand-in reported as
                   a law is false; a nonlinear function of true invariants (E^2) is not false,
                   but fails (d). (A stand-in can be made arbitrarily close, e.g. -c^2 cos(x/c)
                   for x^2/2 with large c, so (d) is what finally rules it out.)
  (c) count        n_conserved equals the true count (len(system.conserved));
  (d) structure    each reported law is an affine combination of the true invariants term by
                   term, coefficients within 2 % (evaluation.metrics.combination_match); a law
                   of kind "energy" must be the energy E itself (up to scale and offset).
A system is right when (a)-(d) hold and no law is false; for a negative control (nothing
conserved) that means no law at all.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp

from data.loader import load_trajectories
from data.systems import System
from evaluation import metrics
from evaluation.truth import read_truth
from utils import conservation_ratio

SPAN_TOL = 0.05          # median sine: a true invariant counts as spanned below this
# median sine: a law is a function of the true invariants below this. Laws fitted to clean
# data sit at 1e-7-1e-5; stand-ins measured on the current method: 1/cos(0.068 px) for px^2
# 5e-4, cos(x) for x^4 2e-3, cos(y) for y^2 1e-2.
DEPENDENT_TOL = 1e-4
N_PROBE = 1000           # held-out clean states for gradients and structure


def split_entry(entry: dict) -> tuple[list[dict], list[dict]]:
    """(laws, approximately conserved) equations of a discovered entry."""
    laws, approximate = [], list(entry.get("approximate") or [])
    for eq in entry.get("equations") or []:
        kind = eq.get("kind")
        if kind == "approximate" or (eq.get("verification") or {}).get("approximate"):
            approximate.append(eq)
        elif kind in ("energy", "invariant"):
            laws.append(eq)
    return laws, approximate


def gradients(exprs: list[sp.Expr], variables: list[str], states: np.ndarray) -> np.ndarray:
    """Gradients of expressions (in the state symbols) on states (n, D) -> (n, k, D);
    non-finite where an expression is undefined."""
    syms = metrics.state_symbols(variables)
    cols = [syms[n] for n in variables]
    out = np.empty((len(states), len(exprs), len(variables)))
    for k, expr in enumerate(exprs):
        for d, sym in enumerate(cols):
            out[:, k, d] = metrics.evaluate_expression(sp.diff(expr, sym), variables, states)
    return out


def span_residual(target: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Sine of the angle between target (n, D) and the span of basis (n, k, D), per state
    (n,): 0 when the target's gradient lies in the span, 1 when orthogonal to it (or the
    span is empty). NaN where the target is zero or not finite."""
    n, D = target.shape
    norm = np.linalg.norm(target, axis=1)
    unit = target / np.where(norm > 0, norm, np.nan)[:, None]
    if basis.shape[1] == 0:
        return np.where(np.isfinite(unit).all(axis=1), 1.0, np.nan)
    rows = basis / (np.linalg.norm(basis, axis=2, keepdims=True) + 1e-300)
    ok = np.isfinite(unit).all(axis=1) & np.isfinite(rows).all(axis=(1, 2))
    out = np.full(n, np.nan)
    if not ok.any():
        return out
    _, s, vt = np.linalg.svd(rows[ok], full_matrices=False)          # vt (m, k, D)
    keep = s > 1e-9 * np.maximum(s[:, :1], 1e-300)                    # (m, k)
    coef = np.einsum("mkd,md->mk", vt, unit[ok]) * keep
    projected = np.einsum("mk,mkd->md", coef, vt)
    out[ok] = np.linalg.norm(unit[ok] - projected, axis=1)
    return out


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def score_entry(entry: dict, system: System, trajectories: np.ndarray,
                params: dict | None = None, seed: int = 0) -> dict:
    """Score one discovered entry against `system` on held-out clean trajectories (N, T, D)."""
    params = {**system.params, **(params or {})}
    variables = list(entry.get("variables") or [])
    laws, approximate = split_entry(entry)
    true_count = len(system.conserved)
    found = entry.get("n_conserved")
    score = {"system": system.name, "true_count": true_count, "found_count": found,
             "count_right": found == true_count, "laws": [], "approximate": [],
             "spanned": None, "unspanned": [], "structure": None, "energy_exact": None,
             "false_laws": 0, "right": False, "error": None}
    if variables != list(system.names):
        score["error"] = f"entry variables {variables} are not the system's {list(system.names)}"
        return score
    N, T, D = trajectories.shape
    rng = np.random.default_rng(seed)
    flat = trajectories.reshape(-1, D)
    probe = flat[rng.choice(len(flat), size=min(N_PROBE, len(flat)), replace=False)]
    true_exprs = {k: system.invariant_expr(k, params) for k in system.invariants}
    conserved = [true_exprs[k] for k in system.conserved]
    # every listed invariant of a conservative system is exact; a negative control's are not
    basis = list(true_exprs.values()) if system.conserved else []
    true_grads = gradients(conserved, variables, probe)                  # (n, K, D)
    derived = entry.get("derived_inputs") or {}

    def ratio(expr):
        values = metrics.evaluate_expression(expr, variables, trajectories)
        keep = np.isfinite(values).all(axis=1)
        return conservation_ratio(values[keep]) if keep.sum() >= 2 else None

    kept = []                   # the laws that are not false, for (a)
    for eq in laws:
        row = {"kind": eq.get("kind"), "name": eq.get("name"),
               "expression": eq.get("expression"), "structure": False, "max_rel_error": None,
               "compared_with": None, "dependence": None, "false": True,
               "ratio_clean": None, "error": None}
        score["laws"].append(row)
        try:
            expr = metrics.parse_formula(eq["expression"], variables, derived)
        except (ValueError, KeyError) as err:
            row["error"] = str(err)
            score["false_laws"] += 1
            continue
        row["ratio_clean"] = ratio(expr)
        if row["kind"] == "energy" and "E" in true_exprs and system.conserved:
            row["compared_with"] = "E"
            match = metrics.combination_match(expr, [true_exprs["E"]], variables, probe)
        else:
            row["compared_with"] = "span of the true invariants"
            match = metrics.combination_match(expr, basis, variables, probe)
        row["structure"] = match["match"]
        row["max_rel_error"] = match["max_rel_error"]
        row["missing"], row["extra"] = match["missing"], match["extra"]
        grad = gradients([expr], variables, probe)[:, 0]
        row["dependence"] = _median(span_residual(grad, true_grads))
        row["false"] = not match["match"] and not row["dependence"] <= DEPENDENT_TOL
        score["false_laws"] += int(row["false"])
        if not row["false"]:
            kept.append(grad)
    for eq in approximate:
        score["approximate"].append({"expression": eq.get("expression"),
                                     "conservation_ratio": eq.get("conservation_ratio")})
    law_grads = np.stack(kept, axis=1) if kept else np.empty((len(probe), 0, D))
    for k, name in enumerate(system.conserved):
        if not _median(span_residual(true_grads[:, k], law_grads)) <= SPAN_TOL:
            score["unspanned"].append(name)
    score["spanned"] = not score["unspanned"]
    if score["laws"]:
        score["structure"] = all(r["structure"] for r in score["laws"])
    energies = [r for r in score["laws"] if r["compared_with"] == "E"]
    if energies:
        score["energy_exact"] = all(r["structure"] for r in energies)
    score["right"] = bool(score["count_right"] and score["spanned"]
                          and score["structure"] in (None, True) and not score["false_laws"])
    return score


def held_out(path: str | Path) -> tuple[str, np.ndarray, dict]:
    """(registry name, clean test-split trajectories (N, T, D), parameters) of a simulated
    file."""
    data = load_trajectories(path, with_truth=True)
    truth = read_truth(data)
    if truth.system is None:
        raise ValueError(f"{path} carries no ground truth of a built-in system")
    idx = data.indices("test")
    if len(idx) < 2:
        idx = np.arange(data.n_traj)
    return truth.system, truth.clean[idx], truth.params


def score_file(entry: dict, path: str | Path) -> dict:
    """Score a discovered entry against the ground truth stored with its data file."""
    from data.simulate import SYSTEMS

    name, clean, params = held_out(path)
    return score_entry(entry, SYSTEMS[name], clean, params)
