"""Exact conservation laws in the span of a library, measured against the data's own noise.

A combination I = c . phi(s) of library terms is conserved when it does not change along any
trajectory: its within-trajectory deviations vanish. Noise makes them vanish only down to a
floor that the data themselves give: observation noise of variance sigma_d^2 on each variable
moves I by grad I . epsilon, i.e. adds c' N c with N = E[J diag(sigma^2) J'] (J = d phi / d s)
to the within-trajectory variance. So

    mu(c) = within-trajectory variance of I / the variance noise alone would give it

is about 1 for an exact law, whatever the noise level, and large for anything that is only
approximately conserved. Minimising mu over c is a generalised eigenproblem; its eigenvalues at
or below exact_threshold() span every exact law the library holds (products of laws included), and their
number bounds the count. Sparse laws are then extracted from that subspace by L1 minimisation,
one per library term that takes part, refitted on their own support and pruned while they stay
exact. Noise-free data have no noise, so a numerical floor (NUMERICAL_FLOOR of each term's
spread, a little above float64 rounding of the finite-difference data) stands in for it.

Shapes: N trajectories, T time steps, D state variables, F library terms.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


# An exact law's within-trajectory variance is what noise gives it: mu ~ 1, up to the
# sampling error of a variance over n_eff points (sqrt(2 / n_eff)) and the error of the noise
# estimate itself. On held-out noisy simulations exact laws measured mu = 0.94-1.05; stand-ins
# that noise half hides (a normal-mode energy of a double pendulum, cos(y) for y^2) 1.1-3.
EXACT_MARGIN = 0.15
EXACT_SIGMAS = 4.0


def exact_threshold(n_eff: float) -> float:
    """Largest mu of an exact law measured on n_eff independent points."""
    return 1.0 + EXACT_MARGIN + EXACT_SIGMAS * np.sqrt(2.0 / max(n_eff, 1.0))
# Relative spread below which observation noise is taken to be rounding: the floor of noise-
# free data (simulations are accurate to ~1e-10 of the spread; this keeps the floor of the
# within-variance, ~1e-14 of the total, above the rounding of float64 covariances, ~1e-16).
NUMERICAL_FLOOR = 1e-7
# Library directions whose total variance is below this (relative, standardised terms) are
# identities (e.g. sin^2 + cos^2 = 1): constant everywhere, never laws.
IDENTITY_TOL = 1e-13


@dataclass
class NoiseModel:
    """Observation-noise variance of each variable (D,) and the variables' spreads (D,)."""

    variance: np.ndarray
    spread: np.ndarray

    @property
    def floored(self) -> np.ndarray:
        return np.maximum(self.variance, (NUMERICAL_FLOOR * self.spread) ** 2)


def noise_covariance(jacobian: np.ndarray, noise: NoiseModel, scale: np.ndarray) -> np.ndarray:
    """N = mean over states of J diag(sigma^2) J' for standardised terms (F, F), from the
    terms' gradients jacobian (n, F, D) at n states."""
    Jw = jacobian / scale[None, :, None] * np.sqrt(noise.floored)[None, None, :]
    Jw = np.nan_to_num(Jw, nan=0.0, posinf=0.0, neginf=0.0)
    return np.einsum("nfd,ngd->fg", Jw, Jw) / len(jacobian)


class LawFitter:
    """Within-trajectory, total and noise covariances of the standardised library terms on
    training trajectories, and the best conserved combination of any subset of terms.

    values (N, T, F) raw terms; jacobian (n, F, D) their gradients at n training states.
    """

    def __init__(self, values: np.ndarray, jacobian: np.ndarray, noise: NoiseModel):
        N, T, F = values.shape
        flat = values.reshape(-1, F)
        self.mean, scale = flat.mean(0), flat.std(0)
        self.scale = np.where(scale > 0, scale, 1.0)
        noise_cov = noise_covariance(jacobian, noise, self.scale)
        z = (values - self.mean) / self.scale
        dev = (z - z.mean(axis=1, keepdims=True)).reshape(-1, F)
        total = z.reshape(-1, F)
        self.W = dev.T @ dev / len(dev)                                # (F, F)
        self.S = total.T @ total / len(total)
        # noise moves a law by grad I . eps at every point; its within-trajectory variance
        # is that times (T - 1) / T
        self.N = noise_cov * (T - 1) / T + 1e-14 * np.diag(np.diag(self.S))
        self.threshold = exact_threshold(N * (T - 1))
        # relative difference of two mu's that is beyond sampling error
        self.margin = EXACT_SIGMAS * np.sqrt(2.0 / max(N * (T - 1), 1))
        self._best: dict[tuple, tuple[np.ndarray, float]] = {}

    def solve(self, support=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Generalised eigenproblem W c = mu N c on the support's terms, identities (directions
        of no total variance) removed first. Returns (mu ascending (k,), directions as raw-
        term coefficients (F, k), identity directions (F, k0))."""
        F = len(self.W)
        idx = np.arange(F) if support is None else np.asarray(support)
        W, S, N = (m[np.ix_(idx, idx)] for m in (self.W, self.S, self.N))
        lam, U = np.linalg.eigh(S)
        keep = lam > IDENTITY_TOL * max(lam.max(), 1e-300)
        P = U[:, keep]
        Wr, Nr = P.T @ W @ P, P.T @ N @ P
        L = np.linalg.cholesky(Nr + 1e-300 * np.eye(len(Nr)))
        Li = np.linalg.inv(L)
        mu, V = np.linalg.eigh(Li @ Wr @ Li.T)
        dirs = np.zeros((F, len(mu)))
        dirs[idx] = P @ Li.T @ V / self.scale[idx, None]
        ident = np.zeros((F, int((~keep).sum())))
        ident[idx] = U[:, ~keep] / self.scale[idx, None]
        return np.clip(mu, 0.0, None), dirs, ident

    def n_exact(self, threshold: float | None = None) -> int:
        """How many independent directions of the terms are exactly conserved (mu at most
        `threshold`, default this fitter's own)."""
        limit = self.threshold if threshold is None else threshold
        return int((self.solve()[0] <= limit).sum())

    def best(self, support) -> tuple[np.ndarray, float]:
        """The support's best conserved combination: raw coefficients (F,) with the largest
        standardised coefficient +-1, and its training mu (memoised: pruning asks often)."""
        key = tuple(sorted(int(i) for i in support))
        if key not in self._best:
            self._best[key] = self._best_of(list(key))
        coef, mu = self._best[key]
        return coef.copy(), mu

    def _best_of(self, support: list[int]) -> tuple[np.ndarray, float]:
        mu, dirs, _ = self.solve(support)
        coef = np.zeros(len(self.W))
        if dirs.shape[1] == 0:
            return coef, float("inf")
        c = dirs[:, 0]
        std = c * self.scale
        return c / std[np.argmax(np.abs(std))], float(mu[0])

    def pursue(self, target: np.ndarray, cost: np.ndarray, allowed: np.ndarray | None = None,
               max_terms: int = 24) -> np.ndarray | None:
        """The smallest exact support that explains the function target . phi (target (F,)
        raw-term coefficients, e.g. a dense exact direction): orthogonal matching pursuit on
        the standardised terms' covariance, the term most correlated with what is left first
        (the cheaper of near-equals; only `allowed` (F,) bool terms when given), until the
        support's best combination is exact. Returns its coefficients, or None when max_terms
        terms do not reach an exact law."""
        t = target * self.scale                                         # standardised
        S = self.S
        support: list[int] = []
        for _ in range(min(max_terms, len(S))):
            if support:
                a = np.linalg.lstsq(S[np.ix_(support, support)], S[support] @ t, rcond=None)[0]
                resid_cov = S @ t - S[:, support] @ a                   # cov(phi_j, residual)
            else:
                resid_cov = S @ t
            score = np.abs(resid_cov) / np.sqrt(np.maximum(np.diag(S), 1e-300))
            score[support] = -1.0
            if allowed is not None:
                score[~allowed] = -1.0
            best = score.max()
            if best <= 1e-12 * max(np.abs(S @ t).max(), 1e-300):
                return None
            near = np.flatnonzero(score >= best * (1 - 1e-3))
            support.append(int(min(near, key=lambda j: cost[j])))
            coef, mu = self.best(support)
            if mu <= self.threshold:
                return coef
        return None

    def grow(self, target: np.ndarray, max_terms: int = 12) -> np.ndarray | None:
        """The support grown one term at a time from the target's largest (standardised) term,
        each time by the term whose addition leaves the best conserved combination (smallest
        mu), until it is exact. Where terms imitate one another (exponentials and polynomials
        over a short range) the most correlated term is not the right one; the most conserving
        is. Returns the coefficients, or None."""
        std = np.abs(target * self.scale)
        support = [int(np.argmax(std))]
        for _ in range(max_terms - 1):
            scores = [(self.best(support + [j])[1], j) for j in range(len(self.W))
                      if j not in support]
            if not scores:
                return None
            mu, j = min(scores)
            support.append(j)
            if mu <= self.threshold:
                return self.best(support)[0]
        return None

    def prune(self, coef: np.ndarray, cost: np.ndarray, exhaustive: int = 10
              ) -> tuple[np.ndarray, float]:
        """The smallest exactly conserved subset of coef's support: blocks of the terms of
        smallest standardised contribution are dropped while the rest stays exact until at most
        `exhaustive` terms are left; then every subset is tried, smallest first. Of the exact
        subsets of the smallest size the cheapest (cost (F,), discovery.expressions.term_cost)
        wins, unless another is significantly better conserved: so a polynomial beats a trig
        stand-in, but not a law that the data tell apart from it."""
        support = [int(i) for i in np.flatnonzero(coef)]
        coef, mu = self.best(support)
        while len(support) > exhaustive:
            contrib = np.abs(coef * self.scale)
            by_size = sorted(support, key=lambda j: contrib[j])
            for k in _block_sizes(len(support)) + [1]:
                trial = [i for i in support if i not in by_size[:k]]
                c2, m2 = self.best(trial)
                if m2 <= self.threshold:
                    support, coef, mu = trial, c2, m2
                    break
            else:
                break
        if len(support) > exhaustive:
            return coef, mu
        for size in range(1, len(support) + 1):
            found = []
            for subset in itertools.combinations(support, size):
                c2, m2 = self.best(subset)
                if m2 <= self.threshold:
                    found.append((int(cost[list(subset)].sum()), m2, c2))
            if found:
                best_mu = min(m for _, m, _ in found)
                fine = [f for f in found if f[1] <= best_mu * (1 + self.margin) + self.margin]
                _, mu, coef = min(fine, key=lambda f: (f[0], f[1]))
                return coef, mu
        return coef, mu


def _block_sizes(n: int) -> list[int]:
    """n - 1, then halves down to 2: how many of the smallest terms to try dropping at once."""
    sizes, k = [], n - 1
    while k >= 2:
        sizes.append(k)
        k //= 2
    return sizes


def law_score(coef: np.ndarray, values: np.ndarray, grads: np.ndarray, noise: NoiseModel
              ) -> dict:
    """How exactly I = coef . phi is conserved on trajectories values (N, T, F), with term
    gradients grads (n, F, D) at states drawn from the same trajectories (the noise floor is
    their mean).

    Returns {ratio: within / between variance (the conservation ratio), mu: within variance /
    the variance noise gives it, between: variance of the per-trajectory means, exact: bool}.
    """
    I = values @ coef                                                   # (N, T)
    T = I.shape[1]
    within = float(I.var(axis=1).mean())
    between = float(I.mean(axis=1).var())
    g = np.nan_to_num(np.einsum("nfd,f->nd", grads, coef))             # (N T, D)
    floor = float(np.mean(np.sum(g ** 2 * noise.floored, axis=1))) * (T - 1) / T
    floor += 1e-14 * (within + between)
    mu = within / floor if floor > 0 else (0.0 if within == 0 else np.inf)
    terms = np.abs(values.reshape(-1, len(coef)) * coef).std(0).sum()
    trivial = between <= (IDENTITY_TOL * terms) ** 2
    ratio = within / between if between > 0 else float("inf")
    threshold = exact_threshold(I.shape[0] * (T - 1))
    return {"ratio": ratio, "mu": float(mu), "between": between, "threshold": threshold,
            "exact": bool(np.isfinite(I).all() and mu <= threshold and not trivial)}


def sparse_directions(exact: np.ndarray, identities: np.ndarray, scale: np.ndarray,
                      cost: np.ndarray, max_pivots: int = 400) -> list[np.ndarray]:
    """Sparse vectors in the span of the exact directions (F, k) and the identities (F, k0),
    as raw-term coefficients: the standardised coefficients' L1 norm weighted by each term's
    cost (F,) is minimised with each participating term's coefficient fixed to 1 in turn (one
    linear program per term), so cheap terms are preferred to elaborate stand-ins."""
    from scipy.optimize import linprog

    k = exact.shape[1]
    if k == 0:
        return []
    B = np.concatenate([exact, identities], axis=1) * scale[:, None]     # standardised
    F, m = B.shape
    weight = np.linalg.norm(B[:, :k] / np.linalg.norm(B[:, :k], axis=0), axis=1)
    pivots = [j for j in np.argsort(-weight) if weight[j] > 1e-6][:max_pivots]
    out, seen = [], set()
    # variables: a (m, free), u (F, >= 0); minimise sum u, -u <= B a <= u, (B a)_j = 1
    c = np.concatenate([np.zeros(m), np.asarray(cost, dtype=float)])
    A_ub = np.block([[B, -np.eye(F)], [-B, -np.eye(F)]])
    b_ub = np.zeros(2 * F)
    bounds = [(None, None)] * m + [(0, None)] * F
    for j in pivots:
        A_eq = np.concatenate([B[j], np.zeros(F)])[None]
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=bounds,
                      method="highs")
        if res.status != 0:
            continue
        v = B @ res.x[:m]
        v[np.abs(v) < 1e-6 * np.abs(v).max()] = 0.0
        key = tuple(np.flatnonzero(v))
        if key and key not in seen:
            seen.add(key)
            out.append(v / scale)
    return out


@dataclass
class ExactLaw:
    """A sparse combination of library terms and how exactly it is conserved."""

    coef: np.ndarray          # (F,) raw-term coefficients
    train_mu: float
    score: dict               # law_score on held-out trajectories
    n_terms: int
    cost: int

    @property
    def exact(self) -> bool:
        return self.score["exact"]


def exact_laws(fitter: LawFitter, cost: np.ndarray, plain: np.ndarray, heldout: np.ndarray,
               heldout_grads: np.ndarray, noise: NoiseModel) -> tuple[list[ExactLaw], np.ndarray]:
    """Sparse laws from the library's exact subspace, each pruned to a minimal exact support and
    scored on held-out trajectories (heldout (N, T, F) terms, heldout_grads (n, F, D) at some
    of their states);
    sorted exact first, then fewest terms, then cheapest. Also returns the training mu
    spectrum (its entries <= fitter.threshold count the exact directions, products of laws
    included). Each target (a sparse or a dense exact direction) is pursued with the library's
    plain terms first (monomials, distances) and then with all of them, so that a polynomial law
    is found even where a trig or log stand-in would fit as well."""
    mu, dirs, ident = fitter.solve()
    exact = dirs[:, mu <= fitter.threshold]
    sparse = sparse_directions(exact, ident, fitter.scale, cost)
    targets = sparse + [exact[:, i] for i in range(exact.shape[1])]
    starts = [fitter.pursue(v, cost, allowed) for v in targets for allowed in (plain, None)]
    starts += [fitter.grow(exact[:, i]) for i in range(exact.shape[1])]
    laws, seen, tried = [], set(), set()
    for start in sparse + [s for s in starts if s is not None]:
        key = tuple(np.flatnonzero(start))
        if key in tried:
            continue
        tried.add(key)
        coef, train_mu = fitter.prune(start, cost)
        support = tuple(np.flatnonzero(coef))
        if not support or support in seen:
            continue
        seen.add(support)
        laws.append(ExactLaw(coef, train_mu, law_score(coef, heldout, heldout_grads, noise),
                             len(support), int(cost[list(support)].sum())))
    laws.sort(key=lambda law: (not law.exact, law.n_terms, law.cost, law.score["mu"]))
    return laws, mu


def law_gradients(coef: np.ndarray, term_grads: np.ndarray) -> np.ndarray:
    """Gradient of coef . phi at states from the terms' gradients (n, F, D) -> (n, D)."""
    return np.nan_to_num(np.einsum("nfd,f->nd", term_grads, coef))


def functional_rank(grads: list[np.ndarray], tol: float = 0.05) -> int:
    """Number of functionally independent quantities among those with gradients grads (each
    (n, D) at the same states): the rank of their stacked, normalised gradients, counted as
    the singular values above tol at the median state."""
    if not grads:
        return 0
    g = np.stack(grads, axis=1)                                          # (n, k, D)
    g = g / (np.linalg.norm(g, axis=2, keepdims=True) + 1e-300)
    return int((np.median(np.linalg.svd(g, compute_uv=False), axis=0) > tol).sum())


def select_independent(laws: list, grads: list[np.ndarray], kept: list[np.ndarray] | None = None,
                       limit: int | None = None, n_eff: float = 1e4) -> list:
    """Exact laws (objects with .exact and .score["mu"], in order of preference, simplest
    first; grads[i] is the gradient (n, D) of laws[i] at common states) that are functionally
    independent of one another and of `kept` (gradients of laws already taken, e.g. the
    energy). A law is passed over for an equivalent one (adding the same new direction) that is
    significantly better conserved (mu lower by more than EXACT_SIGMAS standard errors at n_eff
    points), so that a stand-in that noise half hides never displaces the exact law. limit: at
    most this many laws in all, kept included (D - 1 for a flow in D dimensions)."""
    kept = list(kept or [])
    margin = EXACT_SIGMAS * np.sqrt(2.0 / max(n_eff, 1.0))
    pool = [(law, g) for law, g in zip(laws, grads) if law.exact]
    # mu's are compared in units of the noise floor: below it (noise-free data) their
    # differences are rounding, not evidence
    better_than = lambda a, b: a.score["mu"] < b.score["mu"] - margin * max(b.score["mu"], 1.0)
    chosen = []
    for law, g in pool:
        if limit is not None and len(kept) >= limit:
            break
        rank = functional_rank(kept + [g])
        if rank <= len(kept):
            continue
        better = [a for a, ga in pool if a is not law and better_than(a, law)
                  and functional_rank(kept + [ga]) == rank
                  and functional_rank(kept + [g, ga]) == rank]
        if better:
            continue
        kept.append(g)
        chosen.append(law)
    return chosen
