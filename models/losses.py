"""Loss terms of PhysicsNet as pure functions of tensors (no model, no state).

Shapes: B trajectories, T time steps, D state variables, L latent size. Every term is
scale-free (a ratio, or normalised by a spread), so the weights --alpha, --beta, --gamma mean
the same thing on every system.

    total = alpha * (prediction + reconstruction)
          + beta  * (hamiltonian_weight * hamiltonian
                     + conservation_weight * conservation_ratio(E_hat) + energy_keeping)
          + gamma * latent_smoothness
          + invariant_weight * sum_k invariant_ratio_k
          + weight_decay * l2_penalty

(models/physics_training.py evaluates them; the energy head and the invariant heads are
stepped by their own optimisers on their own terms.)
"""
from __future__ import annotations

from itertools import combinations_with_replacement
from typing import Iterable, Sequence

import torch
from torch import Tensor

from utils import conservation_ratio as _conservation_ratio

EPS = 1e-12


def prediction_loss(pred: Tensor, target: Tensor, scale: Tensor) -> Tensor:
    """Mean of ((pred - target) / scale)^2; pred, target (..., D), scale (D,) spreads."""
    return ((pred - target) / scale).pow(2).mean()


def conservation_ratio(values: Tensor) -> Tensor:
    """utils.conservation_ratio as a differentiable loss (finite when nothing varies);
    values (B, T)."""
    return _conservation_ratio(values, eps=EPS)


def symplectic_gradient(grad: Tensor, q_idx: Sequence[int], p_idx: Sequence[int]) -> Tensor:
    """Hamilton's field from dH/ds (..., D): dq/dt = dH/dp, dp/dt = -dH/dq, same layout."""
    field = torch.empty_like(grad)
    field[..., list(q_idx)] = grad[..., list(p_idx)]
    field[..., list(p_idx)] = -grad[..., list(q_idx)]
    return field


def hamiltonian_loss(grad: Tensor, dsdt: Tensor, q_idx: Sequence[int], p_idx: Sequence[int],
                     scale: Tensor) -> Tensor:
    """Mean of ((symplectic field of dH/ds - observed ds/dt) / scale)^2; (..., D), scale (D,)."""
    return ((symplectic_gradient(grad, q_idx, p_idx) - dsdt) / scale).pow(2).mean()


def energy_keeping_loss(energy_next: Tensor, energy_now: Tensor) -> Tensor:
    """Mean (E(s_hat_{t+1}) - E(s_t))^2 / variance of E(s_t) over the batch; (B, T) each."""
    spread = energy_now.detach().var(unbiased=False)
    return (energy_next - energy_now).pow(2).mean() / (spread + EPS)


def latent_smoothness(z: Tensor) -> Tensor:
    """Mean squared step |z_{t+1} - z_t|^2 / total variance of z; z (B, T, L)."""
    step = (z[:, 1:] - z[:, :-1]).pow(2).sum(-1).mean()
    total = z.reshape(-1, z.shape[-1]).var(dim=0, unbiased=False).sum()
    return step / (total + EPS)


def polynomial_basis(columns: Tensor, degree: int) -> Tensor:
    """Monomials up to `degree` of standardised columns (B, c), constant included -> (B, M)."""
    x = (columns - columns.mean(0)) / (columns.std(0, unbiased=False) + EPS)
    feats = [torch.ones_like(x[:, 0])]
    for d in range(1, degree + 1):
        for combo in combinations_with_replacement(range(x.shape[1]), d):
            feats.append(torch.stack([x[:, i] for i in combo], 0).prod(0))
    return torch.stack(feats, dim=1)


def residual_variance(y: Tensor, basis: Tensor, ridge: float = 1e-6) -> Tensor:
    """Variance of y (B,) left after a least-squares fit on basis (B, M) (differentiable in y)."""
    gram = basis.T @ basis
    gram = gram + ridge * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device) * (
        gram.diagonal().mean())
    coef = torch.linalg.solve(gram, basis.T @ y)
    return (y - basis @ coef).pow(2).mean()


def invariant_ratio(values: Tensor, explained_by: Tensor | None, degree: int = 3) -> Tensor:
    """Within-trajectory variance / between-trajectory variance NOT explained by a polynomial
    (up to `degree`) of the per-trajectory means of other quantities.

    values (B, T) one head; explained_by (B, c) per-trajectory means of E_hat and the earlier
    heads (detached by the caller), or None. A head that is a function of those gets no credit.
    """
    within = values.var(dim=1, unbiased=False).mean()
    means = values.mean(dim=1)
    if explained_by is None or explained_by.shape[1] == 0:
        between = means.var(unbiased=False)
    else:
        between = residual_variance(means, polynomial_basis(explained_by, degree))
    return within / (between + EPS * (within + 1.0))


def l2_penalty(params: Iterable[Tensor]) -> Tensor:
    """Sum of squared entries of the given parameters (L2 weight decay)."""
    return sum(p.pow(2).sum() for p in params)

