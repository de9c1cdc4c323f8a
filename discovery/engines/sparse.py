"""Sparse regression: forward selection of library terms (with an intercept) fitting y.

Exact and sub-second whenever the true terms are in the library (discovery/library.py);
one candidate per number of terms.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from discovery.expressions import Candidate, CompiledTerms

NAME = "sparse"


def usable() -> tuple[bool, str]:
    return True, "numpy"


def front(states: np.ndarray, y: np.ndarray, inputs, settings) -> list[Candidate]:
    features = CompiledTerms(settings.library, inputs)(states)
    return forward_selection(features, y, settings.library, settings.max_terms)


def forward_selection(features: np.ndarray, y: np.ndarray, exprs: list[sp.Expr],
                      max_terms: int = 8) -> list[Candidate]:
    """features: (n, F) library terms on the states; y: (n,). Loss = residual variance /
    variance of y."""
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
        out.append(Candidate(expr, rss / var_y, NAME))
        if rss / var_y < 1e-14:
            break
    return out
