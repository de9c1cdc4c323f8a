"""Time derivatives of observed trajectories by finite differences, and the noise they carry.

Shared by train.py (the Hamiltonian loss) and discover.py (Hamilton's equations, noise
floors): no true derivative is ever read.
"""
from __future__ import annotations

import numpy as np


def time_derivatives(states: np.ndarray, t: np.ndarray, window: int = 7,
                     polyorder: int = 4) -> np.ndarray:
    """Observed time derivatives of trajectories by finite differences.

    states: (N, T, D); t: (N, T) or (T,). Returns (N, T, D). On a uniform time grid this is a
    Savitzky-Golay derivative (local polynomial of degree `polyorder` over `window` points:
    error O(dt^4) on clean data, and some smoothing of noise); on a non-uniform grid,
    second-order central differences (numpy.gradient). No true derivatives are ever read.
    """
    from scipy.signal import savgol_filter

    states = np.asarray(states, dtype=np.float64)
    n, T, d = states.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n, T))
    steps = np.diff(t, axis=1)
    if np.allclose(steps, steps[0, 0], rtol=1e-6, atol=0):
        window = min(window, T if T % 2 else T - 1)
        polyorder = min(polyorder, window - 1)
        if window >= 3:
            return savgol_filter(states, window, polyorder, deriv=1, delta=steps[0, 0],
                                 axis=1, mode="interp")
    return np.stack([np.gradient(states[i], t[i], axis=0, edge_order=2) for i in range(n)])


def derivative_noise_variance(states: np.ndarray, t: np.ndarray, window: int = 7,
                              polyorder: int = 4) -> np.ndarray:
    """Variance of the observation noise carried into `time_derivatives`, per variable (D,).

    The noise variance s^2 of each variable is estimated from what a Savitzky-Golay smoother
    of the same window leaves over (a least-squares projection: E r^2 = s^2 (1 - h), h its
    central weight), then propagated through the derivative filter (s^2 * sum w^2). Clean,
    smooth data give ~0. On a non-uniform grid returns zeros (no estimate).
    """
    from scipy.signal import savgol_coeffs, savgol_filter

    states = np.asarray(states, dtype=np.float64)
    n, T, d = states.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n, T))
    steps = np.diff(t, axis=1)
    window = min(window, T if T % 2 else T - 1)
    polyorder = min(polyorder, window - 2)
    if window < 3 or polyorder < 1 or not np.allclose(steps, steps[0, 0], rtol=1e-6, atol=0):
        return np.zeros(d)
    half = window // 2
    smooth = savgol_filter(states, window, polyorder, axis=1)
    resid = (states - smooth)[:, half:T - half]
    h = savgol_coeffs(window, polyorder)[half]
    noise_var = np.mean(resid ** 2, axis=(0, 1)) / (1 - h)
    w = savgol_coeffs(window, polyorder, deriv=1, delta=steps[0, 0])
    return noise_var * float(np.sum(w ** 2))
