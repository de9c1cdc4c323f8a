"""The rate of exponential terms (discovery.library.Exponentials): the lam at which exp(+-lam a)
of positions, with the velocities' monomials up to degree 2 (kinetic energies, momenta), hold
one more exact law than those monomials alone; None when no rate does.

Monomials of the positions are left out here: over a short range they imitate exponentials and
would blur the rate. With canonical labels the rate is first located by Hamilton's equations
(the residual of the observed derivatives on those terms' symplectic gradients, smooth in lam),
then found by exactness: the first mu above the monomials' exact ones, on a subsample of the
fit trajectories. Without labels by exactness alone, on a grid and around its best local
minima. Last it is polished on the new law's own support, where nothing can stand in for a
wrong rate.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp
from scipy.optimize import minimize_scalar

from discovery.expressions import Inputs
from discovery.hamilton import hamiltonian_residual, refit_hamiltonian
from discovery.library import RATE_GRID, Exponentials
from discovery.nullspace import LawFitter, NoiseModel, law_gradients

if TYPE_CHECKING:
    from discovery.search import TermBank


class RateSearch:
    """mu of the first law beyond the monomials' exact ones, as a function of log lam, on a
    subsample of the fit trajectories."""

    def __init__(self, bank: TermBank, inputs: Inputs, exps: Exponentials, noise: NoiseModel,
                 rng: np.random.Generator, threshold: float, n_traj: int):
        velocities = [inputs.symbols[inputs.names[v]] for v in exps.velocities]
        self.monomials = [sp.Mul(*c) for k in (1, 2)
                          for c in itertools.combinations_with_replacement(velocities, k)]
        bank.add(self.monomials)
        traj = bank.states["fit"]
        pick = rng.permutation(len(traj))[:n_traj]
        self.bank, self.exps, self.noise, self.threshold = bank, exps, noise, threshold
        self.traj, self.spread = traj[pick], exps.spread(traj)
        self.base = bank.stack(self.monomials, "fit")[pick]
        self.grad_states = bank.states["fit_grad"][:500]
        self.base_jac = bank.stack(self.monomials, "fit_grad")[:500]
        self.k0 = LawFitter(self.base, self.base_jac, noise).n_exact(threshold)

    def jacobian(self, states: np.ndarray, lam: float) -> np.ndarray:
        """Central-difference Jacobian of the exponential terms, (n, E, D)."""
        out = []
        for d, h in enumerate(self.bank.steps):
            e = np.zeros(states.shape[-1])
            e[d] = h
            out.append((self.exps.values(states + e, lam)
                        - self.exps.values(states - e, lam)) / (2 * h))
        return np.stack(out, -1)

    def fitter(self, lam: float, support=slice(None)) -> LawFitter:
        return LawFitter(
            np.concatenate([self.base, self.exps.values(self.traj, lam)], -1)[..., support],
            np.concatenate([self.base_jac, self.jacobian(self.grad_states, lam)], 1)[:, support],
            self.noise)

    def mu_next(self, log_lam: float) -> float:
        mu = self.fitter(float(np.exp(log_lam))).solve()[0]
        return float(mu[self.k0]) if len(mu) > self.k0 else float("inf")

    def grid(self, n: int) -> np.ndarray:
        return np.log(np.geomspace(RATE_GRID[0], RATE_GRID[-1], n) / self.spread)

    def hamilton_grid(self, pairs, derivs: np.ndarray) -> np.ndarray | None:
        """Log rates within ~20 % of the minimum of Hamilton's residual, or None when no rate
        explains the motion clearly better than the others."""
        states = self.bank.states["ham_fit"][:2000]
        mono = self.bank.stack(self.monomials, "ham_fit")[:2000]
        derivs = derivs[:2000]

        def residual(log_lam: float) -> float:
            grads = np.concatenate([mono, self.jacobian(states, float(np.exp(log_lam)))], 1)
            coef = refit_hamiltonian(grads, *pairs, derivs, prune=0.0)
            return hamiltonian_residual(law_gradients(coef, grads), *pairs, derivs)[0]

        grid = self.grid(48)[::3]
        values = np.array([residual(g) for g in grid])
        i = int(np.argmin(values))
        if not values[i] < 0.5 * np.median(values):
            return None
        res = minimize_scalar(residual, bounds=(grid[max(i - 1, 0)],
                                                grid[min(i + 1, len(grid) - 1)]),
                              method="bounded", options={"xatol": 1e-6})
        # derivative errors make that minimum shallow: the exact rate is near, within ~20 %
        return res.x + np.linspace(-0.2, 0.2, 61)

    def best_minimum(self, grid: np.ndarray, labelled: bool) -> float | None:
        """log lam of the lowest mu_next over the best three local minima on `grid`."""
        values = np.array([self.mu_next(g) for g in grid])
        if not labelled and not values.min() < 0.1 * np.median(values):
            return None
        minima = [i for i in range(len(grid)) if values[i] <= values[max(i - 1, 0)]
                  and values[i] <= values[min(i + 1, len(grid) - 1)]]
        best = None
        for i in sorted(minima, key=lambda i: values[i])[:3]:
            res = minimize_scalar(self.mu_next, bounds=(grid[max(i - 1, 0)],
                                                        grid[min(i + 1, len(grid) - 1)]),
                                  method="bounded", options={"xatol": 1e-10, "maxiter": 80})
            if best is None or res.fun < best[1]:
                best = (res.x, res.fun)
        if best is None or not best[1] <= 10 * self.threshold:
            return None
        return best[0]

    def polish(self, log_lam: float) -> float | None:
        """Over a short range exponentials of nearby rates imitate one another, so the rate
        that minimises mu over all the terms is only near the exact one: polish it on the
        support of the new law alone. On that support the objective is again the first mu
        beyond the laws its monomials hold alone (a momentum on the support is exact at any
        rate and would leave the rate free)."""
        width, n_base = 1e-3, len(self.monomials)
        for _ in range(3):
            f = self.fitter(float(np.exp(log_lam)))
            mu, dirs, _ = f.solve()
            if len(mu) <= self.k0:
                return None
            std = np.abs(dirs[:, self.k0] * f.scale)
            support = np.flatnonzero(std > 1e-3 * std.max())
            base = support[support < n_base]
            k = (LawFitter(self.base[..., base], self.base_jac[:, base], self.noise)
                 .n_exact(self.threshold) if len(base) else 0)

            def objective(x: float) -> float:
                mu = self.fitter(float(np.exp(x)), support).solve()[0]
                return float(mu[k]) if len(mu) > k else float("inf")

            res = minimize_scalar(objective, bounds=(log_lam - width, log_lam + width),
                                  method="bounded", options={"xatol": 1e-12, "maxiter": 100})
            log_lam, width = res.x, width / 10
        return float(np.exp(log_lam)) if res.fun <= self.threshold else None


def fit_rate(bank: TermBank, inputs: Inputs, exps: Exponentials, noise: NoiseModel,
             rng: np.random.Generator, threshold: float, pairs, derivs: np.ndarray,
             n_traj: int = 150) -> float | None:
    """The rate lam of the exponential terms that makes one more law exact (module docstring),
    or None. `pairs` are the canonical (q, p) indices or None, `derivs` the observed time
    derivatives on bank.states["ham_fit"]."""
    search = RateSearch(bank, inputs, exps, noise, rng, threshold, n_traj)
    if pairs is not None:
        grid = search.hamilton_grid(pairs, derivs)
        if grid is None:
            return None
    else:
        grid = search.grid(64)
    log_lam = search.best_minimum(grid, pairs is not None)
    return None if log_lam is None else search.polish(log_lam)
