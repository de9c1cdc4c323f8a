"""Hamiltonian Neural Network and its baseline (Greydanus, Dzamba & Yosinski, 2019), and the
dissipative HNN (Sosanya & Greydanus, 2022).

Models only: no training logic here (models/hnn_training.py `fit` trains them).

    from models.hnn import HNNConfig, build_hamiltonian_model
    cfg = HNNConfig(input_dim=2)
    hnn = build_hamiltonian_model("hnn", cfg, q_idx=[0], p_idx=[1])
    dxdt = hnn.time_derivative(x)          # x (B, D) -> (B, D)
    dhnn = build_hamiltonian_model("dissipative-hnn", cfg, q_idx=[0], p_idx=[1])
    rate = dhnn.energy_rate(x)              # (B,) dH/dt along its own flow

All models map a state x (B, D) to its time derivative dx/dt (B, D). The baseline predicts it
directly with an MLP; the HNN predicts a scalar H(x) and returns its symplectic gradient
(dq/dt, dp/dt) = (dH/dp, -dH/dq), so its own flow conserves H exactly. The dissipative HNN
(Sosanya & Greydanus 2022) adds the ordinary gradient of a second scalar D(x): a Helmholtz
decomposition into a conservative (divergence-free) and a dissipative (curl-free) field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU}


@dataclass
class HNNConfig:
    """Architecture of both models; the defaults are the paper's (3 layers of 200 tanh units)."""

    input_dim: int                 # D, the state size (2 for spring/pendulum, 8 for two-body)
    hidden_dim: int = 200          # units per hidden layer
    n_layers: int = 3              # linear layers in the MLP, including the output layer
    activation: str = "tanh"       # key of ACTIVATIONS; must be smooth for the HNN


def mlp(in_dim: int, hidden_dim: int, out_dim: int, n_layers: int, activation: str,
        generator: torch.Generator | None = None, out_bias: bool = False) -> nn.Sequential:
    """n_layers linear layers (n_layers - 1 hidden): orthogonal weights (as in the paper),
    biases uniform in +-1/sqrt(fan_in) (torch's default), drawn from `generator` when given."""
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r} (known: {', '.join(ACTIVATIONS)})")
    dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        linear = nn.Linear(a, b, bias=i < n_layers - 1 or out_bias)
        with torch.no_grad():
            nn.init.orthogonal_(linear.weight, generator=generator)
            if linear.bias is not None:
                bound = 1.0 / a**0.5
                linear.bias.uniform_(-bound, bound, generator=generator)
        layers.append(linear)
        if i < n_layers - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def input_gradient(scalar_fn, x: Tensor, create_graph: bool) -> Tensor:
    """Gradient of scalar_fn: (B, D) -> (B,) with respect to its input x (B, D) -> (B, D).

    create_graph keeps the graph of the gradient, so that a loss on it can be backpropagated
    to the parameters (training); without it no double-backward graph is kept (evaluation).
    """
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(scalar_fn(x).sum(), x, create_graph=create_graph)
    return grad


class HNN(nn.Module):
    """Scalar H(x) from an MLP; dynamics are its symplectic gradient.

    q_idx, p_idx: indices of the positions and their conjugate momenta in x, paired in order
    (q_idx[i] is conjugate to p_idx[i]); together they must cover every coordinate once.
    """

    def __init__(self, cfg: HNNConfig, q_idx: Sequence[int], p_idx: Sequence[int],
                 generator: torch.Generator | None = None):
        super().__init__()
        q_idx, p_idx = list(q_idx), list(p_idx)
        if len(q_idx) != len(p_idx):
            raise ValueError(f"need as many momenta as positions, got {q_idx} and {p_idx}")
        if sorted(q_idx + p_idx) != list(range(cfg.input_dim)):
            raise ValueError(f"q_idx {q_idx} + p_idx {p_idx} must be a permutation of "
                             f"0..{cfg.input_dim - 1}")
        self.cfg = cfg
        # No output bias: a constant offset of H is unobservable from its gradient.
        self.net = mlp(cfg.input_dim, cfg.hidden_dim, 1, cfg.n_layers, cfg.activation, generator)
        # J such that dx/dt = grad H @ J: dq_i/dt = dH/dp_i, dp_i/dt = -dH/dq_i.
        J = torch.zeros(cfg.input_dim, cfg.input_dim)
        for q, p in zip(q_idx, p_idx):
            J[p, q] = 1.0
            J[q, p] = -1.0
        self.register_buffer("J", J)  # (D, D)
        self.q_idx, self.p_idx = q_idx, p_idx

    def forward(self, x: Tensor) -> Tensor:
        """x (B, D) -> H (B,)."""
        return self.net(x).squeeze(-1)

    def time_derivative(self, x: Tensor, create_graph: bool | None = None) -> Tensor:
        """x (B, D) -> symplectic gradient (B, D).

        create_graph defaults to self.training, so the loss can be backpropagated through the
        gradient while training, and evaluation does not keep the double-backward graph.
        """
        return input_gradient(self.forward, x, self.training if create_graph is None
                              else create_graph) @ self.J                # (B, D)


class Baseline(nn.Module):
    """MLP that outputs dx/dt directly; the paper's baseline."""

    def __init__(self, cfg: HNNConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.net = mlp(cfg.input_dim, cfg.hidden_dim, cfg.input_dim, cfg.n_layers, cfg.activation,
                       generator, out_bias=True)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, D) -> dx/dt (B, D)."""
        return self.net(x)

    def time_derivative(self, x: Tensor, create_graph: bool | None = None) -> Tensor:
        """x (B, D) -> dx/dt (B, D); create_graph is accepted for API symmetry with HNN."""
        return self.net(x)


class DissipativeHNN(nn.Module):
    """Dissipative HNN (Sosanya & Greydanus 2022): dx/dt = J grad H(x) + grad D(x).

    `hnn` is a plain HNN holding H and the conservative field J grad H (divergence-free: its
    own flow conserves H; roll out `model.hnn` to switch the dissipation off); `d_net` is a
    second MLP for the scalar D, whose gradient is the dissipative field (curl-free). Along
    the full model's flow H changes at the rate grad H . grad D (`energy_rate`), which is
    negative wherever the model dissipates: with H = p^2/2 + V(q) and D = -c p^2/2 it is the
    viscous friction dp/dt = -dV/dq - c p, losing energy at the rate c p^2.
    q_idx, p_idx as in HNN.
    """

    def __init__(self, cfg: HNNConfig, q_idx: Sequence[int], p_idx: Sequence[int],
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.hnn = HNN(cfg, q_idx, p_idx, generator)
        # No output bias: like H, D enters only through its gradient.
        self.d_net = mlp(cfg.input_dim, cfg.hidden_dim, 1, cfg.n_layers, cfg.activation,
                         generator)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, D) -> H (B,), the conservative part's energy-like scalar."""
        return self.hnn(x)

    def dissipation(self, x: Tensor) -> Tensor:
        """x (B, D) -> D (B,), the dissipative potential."""
        return self.d_net(x).squeeze(-1)

    def dissipative_field(self, x: Tensor, create_graph: bool | None = None) -> Tensor:
        """x (B, D) -> grad D (B, D)."""
        return input_gradient(self.dissipation, x, self.training if create_graph is None
                              else create_graph)

    def time_derivative(self, x: Tensor, create_graph: bool | None = None) -> Tensor:
        """x (B, D) -> J grad H + grad D (B, D); create_graph as in HNN.time_derivative."""
        if create_graph is None:
            create_graph = self.training
        return (self.hnn.time_derivative(x, create_graph)
                + self.dissipative_field(x, create_graph))

    def energy_rate(self, x: Tensor) -> Tensor:
        """x (B, D) -> dH/dt (B,) along the model's own flow: grad H . grad D (the conservative
        field J grad H is orthogonal to grad H, so only the dissipative field changes H)."""
        grad_h = input_gradient(self.forward, x, False)
        return (grad_h * self.dissipative_field(x, False)).sum(-1)


MODEL_KINDS = ("baseline", "hnn", "dissipative-hnn")


def build_hamiltonian_model(kind: str, cfg: HNNConfig, q_idx: Sequence[int] | None = None,
                            p_idx: Sequence[int] | None = None,
                            generator: torch.Generator | None = None) -> nn.Module:
    """kind 'hnn' -> HNN(cfg, q_idx, p_idx); 'dissipative-hnn' -> DissipativeHNN(cfg, q_idx,
    p_idx); 'baseline' -> Baseline(cfg) (ignores q/p_idx).

    q_idx/p_idx default to the first and second half of the coordinates; `generator` seeds the
    initial weights (None = torch's global generator).
    """
    if kind in ("hnn", "dissipative-hnn"):
        half = cfg.input_dim // 2
        q_idx = list(range(half)) if q_idx is None else q_idx
        p_idx = list(range(half, cfg.input_dim)) if p_idx is None else p_idx
        return (HNN if kind == "hnn" else DissipativeHNN)(cfg, q_idx, p_idx, generator)
    if kind == "baseline":
        return Baseline(cfg, generator)
    raise ValueError(f"unknown model kind {kind!r} (choose {', '.join(MODEL_KINDS)})")
