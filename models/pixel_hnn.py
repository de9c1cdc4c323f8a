"""The HNN paper's pixel model (Greydanus, Dzamba & Yosinski 2019, section 5): a fully
connected autoencoder whose 2-unit latent z = (q, p) is the phase space of a latent dynamics
model, the HNN (or, for the baseline, a plain MLP for dz/dt).

Models only: no training logic here (models/pixel_training.py trains them).

    from models.pixel_hnn import PixelConfig, PixelDynamicsAE
    model = PixelDynamicsAE(PixelConfig(dynamics="hnn"))
    z = model.encode(x)                     # x (B, 2 * 28 * 28): frame t and frame t+1
    x_hat = model.decode(z)                 # (B, 2 * 28 * 28)
    z_next = model.step(z, model.cfg.frame_time)   # one frame later, by RK4 (B, 2)
    h = model.hamiltonian(z)                # (B,) HNN only

The latent field is models/hnn.py's HNN or Baseline on the 2-D latent (its q_idx = [0],
p_idx = [1]), so `model.dynamics` rolls out with experiments/hnn_table.rollout like any
phase-space model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.hnn import HNN, HNNConfig, build_hamiltonian_model

DYNAMICS = ("baseline", "hnn")
LOSS_STEPS = ("rk4", "euler")


@dataclass
class PixelConfig:
    """Architecture; the defaults are the paper's (section 5.1: encoder and decoder of four
    fully connected relu layers with residual connections, 200 units, a 2-unit latent; the
    HNN of section 3: 3 layers of 200 tanh units)."""

    side: int = 28                 # frames are side x side pixels
    frames: int = 2                # frames per input (t and t+1: velocity is observable)
    hidden_dim: int = 200          # units of the autoencoder's hidden layers
    n_layers: int = 4              # linear layers of the encoder, and of the decoder
    latent_dim: int = 2            # z = (q, p); even: first half q, second half p
    dynamics: str = "hnn"          # "hnn" or "baseline" (MLP for dz/dt)
    dyn_hidden_dim: int = 200
    dyn_layers: int = 3
    dyn_activation: str = "tanh"
    # Latent time per frame: the auxiliary loss asks p_t = (q_{t+1} - q_t) / frame_time and
    # the dynamics loss steps the latent field by frame_time. With one frame = one time unit
    # (the paper's code) p is a few times smaller than q (the pendulum turns ~0.2 rad per
    # frame), and so are the errors of the p dynamics, which then hardly weigh in the loss:
    # 0.2 puts p on q's scale.
    frame_time: float = 0.2
    # How the training loss steps the latent field one frame: "rk4" (the rollouts'
    # integrator, so that the loss fits the field that is integrated) or "euler" (z + h f(z),
    # the paper's code). Rollouts integrate with RK45 either way.
    loss_step: str = "rk4"

    @property
    def input_dim(self) -> int:
        return self.frames * self.side * self.side


class ResidualMLP(nn.Module):
    """Linear -> relu, then (n_layers - 2) residual blocks h + relu(Linear(h)), then a linear
    output layer: n_layers linear layers in all (n_layers >= 2)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, n_layers: int):
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"n_layers must be >= 2, got {n_layers}")
        self.inp = nn.Linear(in_dim, hidden_dim)
        self.blocks = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim)
                                    for _ in range(n_layers - 2))
        self.out = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.inp(x))                   # (B, H)
        for block in self.blocks:
            h = h + torch.relu(block(h))              # (B, H)
        return self.out(h)                            # (B, out_dim)


class PixelDynamicsAE(nn.Module):
    """Autoencoder of frame pairs with latent dynamics (HNN or baseline MLP).

    Initial weights come from `generator` (torch's global one when None): the autoencoder's
    first, so that the baseline and the HNN of one seed start from the same autoencoder.
    """

    def __init__(self, cfg: PixelConfig, generator: torch.Generator | None = None):
        super().__init__()
        if cfg.dynamics not in DYNAMICS:
            raise ValueError(f"unknown dynamics {cfg.dynamics!r} (choose {', '.join(DYNAMICS)})")
        if cfg.loss_step not in LOSS_STEPS:
            raise ValueError(f"unknown loss_step {cfg.loss_step!r} (choose {', '.join(LOSS_STEPS)})")
        if cfg.latent_dim % 2:
            raise ValueError(f"latent_dim must be even (q, p halves), got {cfg.latent_dim}")
        self.cfg = cfg
        self.encoder = ResidualMLP(cfg.input_dim, cfg.hidden_dim, cfg.latent_dim, cfg.n_layers)
        self.decoder = ResidualMLP(cfg.latent_dim, cfg.hidden_dim, cfg.input_dim, cfg.n_layers)
        if generator is not None:
            # torch's default initialisation, drawn from the generator (reproducible per seed)
            for m in (*self.encoder.modules(), *self.decoder.modules()):
                if isinstance(m, nn.Linear):
                    bound = 1.0 / m.in_features ** 0.5
                    with torch.no_grad():
                        m.weight.uniform_(-bound, bound, generator=generator)
                        m.bias.uniform_(-bound, bound, generator=generator)
        # A fixed, invertible linear map of the pixels (set_pixel_scale): the networks see the
        # pair in the basis (frame 0 - mean, frame k - frame k-1), each part divided by its
        # spread, and the decoder's output is mapped back, so that the losses stay in raw pixel
        # units. Buffers: the checkpoint alone rebuilds the model.
        self.register_buffer("pixel_mean", torch.zeros(cfg.side * cfg.side))
        self.register_buffer("frame_scale", torch.ones(()))
        self.register_buffer("step_scale", torch.ones(()))
        half = cfg.latent_dim // 2
        self.dynamics = build_hamiltonian_model(
            cfg.dynamics, HNNConfig(input_dim=cfg.latent_dim, hidden_dim=cfg.dyn_hidden_dim,
                                    n_layers=cfg.dyn_layers, activation=cfg.dyn_activation),
            list(range(half)), list(range(half, cfg.latent_dim)), generator=generator)

    @torch.no_grad()
    def set_pixel_scale(self, frames: Tensor) -> None:
        """Set the input basis from training frames (N, F, side^2): the per-pixel mean, the
        overall spread of a frame about it and the spread of the change from one frame to
        the next. Raw inputs are a near-constant vector (a white background, a rod on a few
        per cent of the pixels) and the second frame differs from the first by a few per
        cent of that: in this basis the motion, which carries the velocity, is as large as
        the position (same information, better conditioned)."""
        flat = frames.reshape(-1, frames.shape[-1])
        mean = flat.mean(0)                                            # (P,)
        self.pixel_mean.copy_(mean)
        self.frame_scale.copy_((flat - mean).pow(2).mean().sqrt().clamp_min(1e-6))
        steps = frames[:, 1:] - frames[:, :-1]
        self.step_scale.copy_(steps.pow(2).mean().sqrt().clamp_min(1e-6))

    def to_basis(self, x: Tensor) -> Tensor:
        """Raw pairs (B, frames * P) -> the networks' basis (B, frames * P)."""
        f = x.unflatten(1, (self.cfg.frames, -1))                      # (B, K, P)
        first = (f[:, :1] - self.pixel_mean) / self.frame_scale
        steps = (f[:, 1:] - f[:, :-1]) / self.step_scale
        return torch.cat([first, steps], 1).flatten(1)

    def from_basis(self, u: Tensor) -> Tensor:
        """The inverse of to_basis: (B, frames * P) -> raw pairs (B, frames * P)."""
        u = u.unflatten(1, (self.cfg.frames, -1))
        first = self.pixel_mean + self.frame_scale * u[:, :1]
        return torch.cat([first, first + self.step_scale * torch.cumsum(u[:, 1:], 1)],
                         1).flatten(1)

    def encode(self, x: Tensor) -> Tensor:
        """x (B, frames * side^2) raw pixels -> z (B, latent_dim)."""
        return self.encoder(self.to_basis(x))

    def decode(self, z: Tensor) -> Tensor:
        """z (B, latent_dim) -> x_hat (B, frames * side^2) raw pixels."""
        return self.from_basis(self.decoder(z))

    def time_derivative(self, z: Tensor, create_graph: bool | None = None) -> Tensor:
        """z (B, L) -> dz/dt (B, L), per unit of latent time (cfg.frame_time per frame)."""
        return self.dynamics.time_derivative(z, create_graph)

    def step(self, z: Tensor, h: float, create_graph: bool | None = None) -> Tensor:
        """One classical RK4 step of the latent field over latent time h: (B, L) -> (B, L)."""
        f = lambda y: self.time_derivative(y, create_graph)
        k1 = f(z)
        k2 = f(z + 0.5 * h * k1)
        k3 = f(z + 0.5 * h * k2)
        k4 = f(z + h * k3)
        return z + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)

    def loss_step(self, z: Tensor, h: float, create_graph: bool | None = None) -> Tensor:
        """One step of latent time h as the training loss takes it (cfg.loss_step)."""
        if self.cfg.loss_step == "euler":
            return z + h * self.time_derivative(z, create_graph)
        return self.step(z, h, create_graph)

    def hamiltonian(self, z: Tensor) -> Tensor:
        """z (B, L) -> the HNN's scalar H (B,); the baseline has none (TypeError)."""
        if not isinstance(self.dynamics, HNN):
            raise TypeError("the baseline's latent dynamics has no Hamiltonian")
        return self.dynamics(z)
