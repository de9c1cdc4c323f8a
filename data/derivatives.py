"""Time derivatives of observed trajectories by finite differences, and the noise they carry.

Shared by train.py (the Hamiltonian loss) and discover.py (Hamilton's equations, noise
floors): no true derivative is ever read.
"""
from __future__ import annotations

import numpy as np


def _uniform(t: np.ndarray) -> bool:
    steps = np.diff(t, axis=1)
    return bool(np.allclose(steps, steps[0, 0], rtol=1e-6, atol=0))


def local_polynomial_weights(t: np.ndarray, window: int = 7, polyorder: int = 4
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights of a least-squares polynomial of degree `polyorder` through the `window`
    observations around every time, on any (non-uniform) grid t (N, T).

    Returns (index (N, T, w) of the observations each fit uses, value weights (N, T, w),
    derivative weights (N, T, w)): value and d/dt of the fitted polynomial at each time are
    the weighted sums of those observations. Near the ends the window is shifted inwards and
    the polynomial evaluated at the point itself. The value weight at the point is the
    diagonal of the fit's hat matrix.
    """
    n, T = t.shape
    w = min(window, T)
    order = min(polyorder, w - 1)
    start = np.clip(np.arange(T) - w // 2, 0, T - w)                    # (T,)
    idx = start[:, None] + np.arange(w)[None]                           # (T, w)
    tau = t[:, idx] - t[:, :, None]                                     # (N, T, w)
    scale = np.maximum(np.abs(tau).max(axis=-1, keepdims=True), 1e-300)
    V = (tau / scale)[..., None] ** np.arange(order + 1)                # (N, T, w, order+1)
    coef = np.linalg.pinv(V)                                            # (N, T, order+1, w)
    deriv = coef[..., 1, :] / scale if order >= 1 else np.zeros_like(coef[..., 0, :])
    return np.broadcast_to(idx, (n, T, w)), coef[..., 0, :], deriv


def time_derivatives(states: np.ndarray, t: np.ndarray, window: int = 7,
                     polyorder: int = 4) -> np.ndarray:
    """Observed time derivatives of trajectories by finite differences.

    states: (N, T, D); t: (N, T) or (T,). Returns (N, T, D). A local polynomial of degree
    `polyorder` through `window` points (error O(dt^4) on clean data, and some smoothing of
    noise): on a uniform grid the Savitzky-Golay filter, on a non-uniform one (dropped frames)
    the same least-squares fit on the real times. No true derivatives are ever read.
    """
    from scipy.signal import savgol_filter

    states = np.asarray(states, dtype=np.float64)
    n, T, d = states.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n, T))
    window = min(window, T if T % 2 else T - 1)
    if window < 3:
        return np.stack([np.gradient(states[i], t[i], axis=0) for i in range(n)])
    if _uniform(t):
        return savgol_filter(states, window, min(polyorder, window - 1), deriv=1,
                             delta=t[0, 1] - t[0, 0], axis=1, mode="interp")
    idx, _, dw = local_polynomial_weights(t, window, polyorder)
    rows = np.arange(n)[:, None, None]
    return np.einsum("ntw,ntwd->ntd", dw, states[rows, idx])


# Local polynomial fits the noise is measured with: (points, degree). A higher degree leaves
# less of a smooth signal's truncation error, never less of white noise.
NOISE_FITS = ((7, 4), (9, 6), (11, 8))
# Median of a chi-square variable with one degree of freedom: median(r^2) / this is the
# variance of Gaussian r, robust to the few large residuals of sudden motion (close passes).
CHI2_MEDIAN = 0.454936


def observation_noise(states: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Variance of the observation noise of each variable (D,), measured from the data.

    What a local polynomial fit (the real times) leaves over at each interior point is a
    projection residual: r^2 / (1 - h) (h the fit's hat-matrix diagonal) estimates s^2. Its
    median (robust to isolated sudden motion) is taken for fits of rising degree
    (NOISE_FITS), and the smallest kept: white noise gives the same at every degree, while the
    truncation error of a smooth signal falls with it. On noise-free data what is left is the
    numerical noise, or a bound on it.
    """
    states = np.asarray(states, dtype=np.float64)
    n, T, d = states.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n, T))
    best = np.full(d, np.inf)
    for window, polyorder in NOISE_FITS:
        if window > T or window - polyorder < 3:
            continue
        half = window // 2
        inner = slice(half, T - half)
        if _uniform(t):
            from scipy.signal import savgol_coeffs, savgol_filter

            resid = (states - savgol_filter(states, window, polyorder, axis=1))[:, inner]
            scaled = resid ** 2 / (1 - savgol_coeffs(window, polyorder)[half])
        else:
            idx, vw, _ = local_polynomial_weights(t, window, polyorder)
            rows = np.arange(n)[:, None, None]
            fitted = np.einsum("ntw,ntwd->ntd", vw[:, inner], states[rows, idx[:, inner]])
            centre = vw[:, inner, half]
            scaled = (states[:, inner] - fitted) ** 2 / (1 - centre)[..., None]
        best = np.minimum(best, np.median(scaled.reshape(-1, d), axis=0) / CHI2_MEDIAN)
    return np.where(np.isfinite(best), best, 0.0)


def derivative_noise_variance(states: np.ndarray, t: np.ndarray, window: int = 7,
                              polyorder: int = 4) -> np.ndarray:
    """Variance of the observation noise carried into `time_derivatives`, per variable (D,).

    The noise variance s^2 of each variable is estimated from what a Savitzky-Golay smoother
    of the same window leaves over (a least-squares projection: E r^2 = s^2 (1 - h), h its
    central weight), then propagated through the derivative filter (s^2 * sum w^2). Clean,
    smooth data give ~0. On a non-uniform grid the same with the local fits on the real times
    (observation_noise, and the mean sum w^2 of their derivative weights).
    """
    from scipy.signal import savgol_coeffs, savgol_filter

    states = np.asarray(states, dtype=np.float64)
    n, T, d = states.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n, T))
    steps = np.diff(t, axis=1)
    window = min(window, T if T % 2 else T - 1)
    polyorder = min(polyorder, window - 2)
    if window < 3 or polyorder < 1:
        return np.zeros(d)
    if not np.allclose(steps, steps[0, 0], rtol=1e-6, atol=0):
        _, _, dw = local_polynomial_weights(t, window, polyorder)
        return observation_noise(states, t) * float(np.mean(np.sum(dw ** 2, -1)))
    half = window // 2
    smooth = savgol_filter(states, window, polyorder, axis=1)
    resid = (states - smooth)[:, half:T - half]
    h = savgol_coeffs(window, polyorder)[half]
    noise_var = np.mean(resid ** 2, axis=(0, 1)) / (1 - h)
    w = savgol_coeffs(window, polyorder, deriv=1, delta=steps[0, 0])
    return noise_var * float(np.sum(w ** 2))
