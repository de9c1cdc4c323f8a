"""The checks that turn candidates into laws: conservation along trajectories, functional
independence, and agreement with Hamilton's equations.

Nothing here knows which physical system the data come from. Shapes: N trajectories, T time
steps, D state variables, F library features.
"""
from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from discovery.expressions import (Candidate, Inputs, evaluate_exprs, gradient_fn,
                                   split_terms)


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



# ---------------------------------------------------------------------------- conserved combinations

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
    terms = split_terms(expr)
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


# ---------------------------------------------------------------------------- Hamilton's equations

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


def refit_hamiltonian(expr: sp.Expr, inputs: Inputs, q_idx: list[int], p_idx: list[int],
                      states: np.ndarray, derivs: np.ndarray, prune: float = 1e-2
                      ) -> sp.Expr | None:
    """Re-estimate the coefficients of H = sum c_i f_i from Hamilton's equations,
    dq/dt = dH/dp, dp/dt = -dH/dq, by linear least squares on observed derivatives.

    Terms whose share of the (RMS-normalised) derivatives is below `prune` are dropped and the
    rest refitted (1 %: with noisy states a tiny extra term mostly soaks up the errors-in-
    variables bias of the others, e.g. 0.003*r beside -1/r for a noisy orbit). Returns None when expr is not a sum of terms with numeric coefficients.
    """
    terms = split_terms(expr)
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
