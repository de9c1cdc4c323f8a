"""Energy that is nearly but not exactly conserved: how much it changes and the law of its loss.

Real systems lose energy. When the energy-like law that explains the motion is not conserved
to the data's noise floor, discovery reports it as approximate, with numbers: its value at the
start and the end of each recording (or trajectory), and a loss law, a formula for its rate of
change dE/dt = grad E . ds/dt (observed derivatives) found by the same symbolic engines
(e.g. -c*omega**2 for viscous friction, -c*|omega|*omega**2 for air drag), with the share of the
rate it explains. The anchor is Dissipative Hamiltonian Neural Networks (Sosanya & Greydanus
2022): the conservative and the dissipative parts of a flow, learnt separately.
"""
from __future__ import annotations

import numpy as np


def series(values: np.ndarray, meta: dict) -> list[np.ndarray]:
    """A quantity on every window, (N, T) or (N, T, F), as one series per recording in time
    order, (T_total,) or (T_total, F): windows of one recording follow each other in the
    loader's order; plain trajectories are their own series."""
    rec = meta.get("recording")
    if not rec:
        return list(values)
    out, start = [], 0
    for frames in rec["frames"]:
        n = frames // rec["window"]
        out.append(values[start:start + n].reshape(-1, *values.shape[2:]))
        start += n
    return out


def change_over_records(values: np.ndarray, meta: dict, floor: float) -> dict:
    """Start and end values (mean of the first and last tenth of each series), measured from
    `floor` (an energy's zero is arbitrary: its lowest value over the states the data span),
    and the share kept."""
    starts, ends = [], []
    for s in series(values, meta):
        k = max(1, len(s) // 10)
        starts.append(float(np.mean(s[:k])) - floor)
        ends.append(float(np.mean(s[-k:])) - floor)
    start, end = float(np.mean(starts)), float(np.mean(ends))
    return {"start": start, "end": end, "kept": end / start if start > 0 else None,
            "relative_change": (end - start) / start if start > 0 else None,
            "zero": floor, "series": len(starts)}


def loss_law(energy: np.ndarray, terms: np.ndarray, t: np.ndarray, meta: dict, exprs: list,
             max_terms: int = 4) -> dict | None:
    """A formula for dE/dt, fitted in integral form: along every series, E(t) - E(t0) =
    sum_j c_j * integral of term_j dt (trapezoids on the real times), so that the noise of
    derivatives does not enter. energy (N, T), terms (N, T, F) candidate terms on the same
    states, t (N, T). Forward selection over the terms (the sparse engine); the simplest
    candidate within 0.02 of the best share explained is the law. Returns {front, chosen,
    explained} or None."""
    from discovery.engines.sparse import forward_selection

    ys, xs = [], []
    for e, f, tt in zip(series(energy, meta), series(terms, meta),
                        series(t, meta)):
        dt = np.diff(tt)[:, None]
        integral = np.concatenate([np.zeros((1, f.shape[1])),
                                   np.cumsum(0.5 * dt * (f[1:] + f[:-1]), axis=0)])
        ys.append(e - e[0])
        xs.append(integral)
    y, X = np.concatenate(ys), np.concatenate(xs)
    ok = np.isfinite(X).all(axis=0) & (X.std(axis=0) > 0)
    if np.std(y) == 0 or not ok.any():
        return None
    front = forward_selection(X[:, ok], y, [e for e, k in zip(exprs, ok) if k], max_terms)
    if not front:
        return None
    best = min(c.loss for c in front)
    chosen = min((c for c in front if c.loss <= best + 0.02), key=lambda c: c.complexity)
    return {"front": front, "chosen": chosen, "explained": float(1.0 - chosen.loss)}
