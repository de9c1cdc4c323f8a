"""Hamilton's equations as a check of a candidate energy: the motion its symplectic gradient
implies against the observed time derivatives, and the coefficients those equations give.

Everything works on gradients already evaluated at the states (discovery.search's term bank
computes each term's once). Nothing here knows which physical system the data come from.
Shapes: n states, D state variables, k terms.
"""
from __future__ import annotations

import numpy as np


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


def symplectic(grads: np.ndarray, q_idx, p_idx) -> np.ndarray:
    """Symplectic gradient (dH/dp on q slots, -dH/dq on p slots) of gradients (..., D)."""
    out = np.zeros_like(grads)
    out[..., q_idx] = grads[..., p_idx]
    out[..., p_idx] = -grads[..., q_idx]
    return out


def hamiltonian_residual(grad: np.ndarray, q_idx, p_idx, derivs: np.ndarray,
                         noise_var: np.ndarray | None = None) -> tuple[float, float, float]:
    """How well the motion H implies matches observed derivatives.

    grad: dH/ds at the states (n, D); derivs: observed ds/dt there (n, D). With the best scale
    a of the symplectic gradient J dH, the residual is sum|a J dH - ds|^2 / sum|ds|^2
    (components scaled by `derivative_scale`). `noise_var` (D,), the variance that observation
    noise adds to each derivative, gives the part of that residual that no formula can
    explain. Returns (residual, noise floor, a).
    """
    scale = derivative_scale(derivs, [q_idx, p_idx])
    u, v = (symplectic(grad, q_idx, p_idx) / scale).ravel(), (derivs / scale).ravel()
    ok = np.isfinite(u)
    if not ok.all():
        return float("inf"), 0.0, 0.0
    denom = float(u @ u)
    a = float(u @ v) / denom if denom > 0 else 0.0
    total = float(np.sum(v * v))
    floor = 0.0 if noise_var is None else float(len(derivs) * np.sum(noise_var / scale**2)) / total
    return float(np.sum((a * u - v) ** 2) / total), min(floor, 1.0), a


def refit_hamiltonian(grads: np.ndarray, q_idx, p_idx, derivs: np.ndarray,
                      prune: float = 1e-2) -> np.ndarray:
    """Coefficients (k,) of H = sum c_i f_i from Hamilton's equations, dq/dt = dH/dp,
    dp/dt = -dH/dq, by linear least squares on observed derivatives; grads (n, k, D) are the
    terms' gradients at the states, derivs (n, D) the derivatives there.

    Terms whose share of the (RMS-normalised) derivatives is below `prune` get coefficient 0
    and the rest are refitted (1 %: with noisy states a tiny extra term mostly soaks up the
    errors-in-variables bias of the others, e.g. 0.003*r beside -1/r for a noisy orbit).
    """
    k = grads.shape[1]
    J = symplectic(grads, q_idx, p_idx)                                  # (n, k, D)
    scale = derivative_scale(derivs, [q_idx, p_idx])
    A = np.moveaxis(J / scale, 1, 2).reshape(-1, k)                      # (n D, k)
    b = (derivs / scale).reshape(-1)
    ok = np.isfinite(A).all(axis=1)
    A, b = A[ok], b[ok]
    keep = list(range(k))
    while keep:
        cols = A[:, keep]
        norm = np.sqrt(np.mean(cols ** 2, axis=0))
        norm[norm == 0] = 1.0
        coef, *_ = np.linalg.lstsq(cols / norm, b, rcond=None)
        share = np.abs(coef) / np.sqrt(np.mean(b ** 2))
        if share.min() >= prune or len(keep) == 1:
            break
        keep.pop(int(np.argmin(share)))
    out = np.zeros(k)
    out[keep] = coef / norm
    return out


def hamiltonian_pursuit(grads: np.ndarray, q_idx, p_idx, derivs: np.ndarray, max_terms: int
                        ) -> list[tuple[list[int], np.ndarray]]:
    """Energies straight from the data: orthogonal matching pursuit of the observed derivatives
    (n, D) on the symplectic gradients of library terms (grads (n, F, D)), adding the term
    that explains most of what is left each time. Returns [(term indices, coefficients)] for 1,
    2, ... max_terms terms: H = sum c_j f_j with J grad H ~ ds/dt."""
    n, F, D = grads.shape
    scale = derivative_scale(derivs, [q_idx, p_idx])
    A = np.moveaxis(symplectic(grads, q_idx, p_idx) / scale, 1, 2).reshape(-1, F)   # (n D, F)
    b = (derivs / scale).reshape(-1)
    ok = np.isfinite(A).all(axis=1)
    A, b = A[ok], b[ok]
    norm = np.sqrt(np.mean(A ** 2, axis=0))
    usable = norm > 1e-12 * max(norm.max(), 1e-300)
    An = np.where(usable, A / np.where(usable, norm, 1.0), 0.0)
    chosen: list[int] = []
    out = []
    resid = b.copy()
    for _ in range(min(max_terms, int(usable.sum()))):
        score = np.abs(An.T @ resid)
        score[chosen] = -1.0
        score[~usable] = -1.0
        chosen.append(int(np.argmax(score)))
        coef, *_ = np.linalg.lstsq(An[:, chosen], b, rcond=None)
        resid = b - An[:, chosen] @ coef
        out.append((list(chosen), coef / norm[chosen]))
    return out
