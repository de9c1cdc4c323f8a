"""PhysicsNet: a GRU encoder-decoder with an energy head on the state (original README design).

Models only: no training logic here (models/physics_training.py trains it; models/losses.py
has the losses; runs.load_model rebuilds one from a run folder).

    from runs import load_model
    model, ckpt = load_model("results/runs/spring__physicsnet__physics-aware__s0")
    E = model.energy(states)                     # (..., D) raw -> (...)
    z = model.encode(traj)                       # (B, T, D) raw -> (B, T, latent_dim)
    traj_hat = model.rollout(traj[:, :10], 90, project=True)   # (B, 100, D)

Architecture (D = state size; every input is a raw, un-normalised state; the model normalises
with mean/std buffers, so a checkpoint alone rebuilds it):

    traj (B, T, D) -> normalise -> GRU(D, hidden_dim) -> Linear(hidden_dim, latent_dim) = z_t
    z_t -> decoder MLP -> [reconstruction of s_t, step s_{t+1} - s_t in units of step_std]
    s_t -> energy head MLP -> E_hat(s_t)            (a function of the current state only)
    [s_t, s_i s_j] -> K invariant heads -> I_k(s_t) (optional, K = n_invariants)

The energy head reads the state, not the GRU history: the same state reached by different
histories has the same E_hat, and its gradient with respect to the raw state gives the
symplectic field (dE/dp, -dE/dq) that train.py matches to the observed time derivatives.

The invariant heads read the normalised state and its pairwise products (i <= j). A head is
only asked to be constant along trajectories, and every conserved quantity is equally constant:
in the Kepler orbit, L and the Runge-Lenz components A_x, A_y. The head settles on the mix its
layers represent most exactly, so the bias of its inputs decides which one it finds. With
products, quadratic quantities (momenta are linear, angular momenta and kinetic energies
quadratic) are linear in the inputs (bench/bench_train.py --invariants measures what a head
encodes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

MODEL_KIND = "physicsnet"


@dataclass
class PhysicsNetConfig:
    """Architecture of PhysicsNet; with the defaults it has about 170K parameters for D = 4."""

    state_dim: int                       # D
    hidden_dim: int = 128                # GRU hidden size
    latent_dim: int = 32                 # z, exposed for symbolic regression
    decoder_hidden: int = 256            # width of the decoder MLP
    decoder_layers: int = 2              # hidden layers of the decoder MLP
    energy_hidden: int = 192             # width of the energy head MLP
    energy_layers: int = 2               # hidden layers of the energy head MLP
    n_invariants: int = 0                # K extra conserved-quantity heads
    invariant_hidden: int = 64           # width of each invariant head
    invariant_layers: int = 2            # hidden layers of each invariant head
    invariant_products: float = 1.0      # invariant heads also read c * s_i s_j (0: not)
    q_idx: list[int] | None = None       # canonical positions (None: no canonical labels)
    p_idx: list[int] | None = None       # their conjugate momenta, paired in order
    names: list[str] = field(default_factory=list)  # state variable names, for reports


def mlp(in_dim: int, hidden: int, out_dim: int, n_hidden: int) -> nn.Sequential:
    """n_hidden tanh layers of width `hidden`, then a linear output (smooth: it is differentiated)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(n_hidden):
        layers += [nn.Linear(dim, hidden), nn.Tanh()]
        dim = hidden
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class PhysicsNet(nn.Module):
    """GRU encoder-decoder over trajectories plus scalar heads on the state."""

    def __init__(self, cfg: PhysicsNetConfig):
        super().__init__()
        D = cfg.state_dim
        if (cfg.q_idx is None) != (cfg.p_idx is None):
            raise ValueError("give both q_idx and p_idx, or neither")
        if cfg.q_idx is not None and (len(cfg.q_idx) != len(cfg.p_idx)
                                      or sorted(cfg.q_idx + cfg.p_idx) != list(range(D))):
            raise ValueError(f"q_idx {cfg.q_idx} + p_idx {cfg.p_idx} must pair up 0..{D - 1}")
        self.config = cfg
        self.gru = nn.GRU(D, cfg.hidden_dim, batch_first=True)
        self.to_latent = nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.decoder = mlp(cfg.latent_dim, cfg.decoder_hidden, 2 * D, cfg.decoder_layers)
        self.energy_head = mlp(D, cfg.energy_hidden, 1, cfg.energy_layers)
        inv_in = D + (D * (D + 1) // 2 if cfg.invariant_products else 0)
        self.invariant_heads = nn.ModuleList(
            mlp(inv_in, cfg.invariant_hidden, 1, cfg.invariant_layers)
            for _ in range(cfg.n_invariants))
        self._pairs = torch.triu_indices(D, D)                # (2, D(D+1)/2)
        # Statistics of the training data (set by set_statistics; saved in the state_dict).
        self.register_buffer("state_mean", torch.zeros(D))   # (D,)
        self.register_buffer("state_std", torch.ones(D))     # (D,)
        self.register_buffer("step_std", torch.ones(D))      # (D,) spread of s_{t+1} - s_t
        self.register_buffer("energy_scale", torch.ones(()))  # physical units of E_hat

    # ------------------------------------------------------------------ set-up
    def set_statistics(self, state_mean: Tensor, state_std: Tensor, step_std: Tensor,
                       energy_scale: float = 1.0) -> None:
        """Store the normalisation of the training data (all (D,) except the scalar scale)."""
        with torch.no_grad():
            self.state_mean.copy_(torch.as_tensor(state_mean))
            self.state_std.copy_(torch.as_tensor(state_std))
            self.step_std.copy_(torch.as_tensor(step_std))
            self.energy_scale.fill_(float(energy_scale))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def normalise(self, s: Tensor) -> Tensor:
        return (s - self.state_mean) / self.state_std

    # ------------------------------------------------------------------ heads on the state
    def energy(self, states: Tensor, frozen: bool = False) -> Tensor:
        """E_hat of raw states (..., D) -> (...); depends on the state alone.

        frozen=True evaluates the head with detached parameters, so a loss on the result
        trains only what produced `states` (the decoder), never the energy head itself.
        """
        s = self.normalise(states)
        if frozen:
            params = {k: v.detach() for k, v in self.energy_head.named_parameters()}
            out = torch.func.functional_call(self.energy_head, params, (s,))
        else:
            out = self.energy_head(s)
        return self.energy_scale * out.squeeze(-1)

    def invariants(self, states: Tensor) -> Tensor:
        """Extra conserved-quantity heads: raw states (..., D) -> (..., K)."""
        s = self.normalise(states)
        if not self.invariant_heads:
            return s.new_zeros(s.shape[:-1] + (0,))
        if self.config.invariant_products:
            i, j = self._pairs.to(s.device)
            s = torch.cat([s, self.config.invariant_products * s[..., i] * s[..., j]], dim=-1)
        return torch.cat([head(s) for head in self.invariant_heads], dim=-1)

    def energy_and_gradient(self, states: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """E_hat (N,) and dE_hat/ds (N, D) with respect to the RAW states (N, D)."""
        with torch.enable_grad():
            s = states.detach().requires_grad_(True)
            E = self.energy(s)
            (grad,) = torch.autograd.grad(E.sum(), s, create_graph=create_graph)
        return E, grad

    # ------------------------------------------------------------------ sequence model
    def encode(self, traj: Tensor) -> Tensor:
        """Latent z of every step: raw traj (B, T, D) -> (B, T, latent_dim)."""
        h, _ = self.gru(self.normalise(traj))         # (B, T, hidden_dim)
        return self.to_latent(h)

    def decode(self, z: Tensor, states: Tensor) -> tuple[Tensor, Tensor]:
        """From z (..., latent) and the raw states it encodes (..., D): (reconstruction of the
        states, predicted next states), both raw (..., D)."""
        D = self.config.state_dim
        out = self.decoder(z)                          # (..., 2D)
        recon = self.state_mean + self.state_std * out[..., :D]
        nxt = states + self.step_std * out[..., D:]
        return recon, nxt

    def forward(self, traj: Tensor) -> dict[str, Tensor]:
        """traj (B, T, D) raw -> latent (B, T, L), recon (B, T, D), next (B, T, D) = predicted
        s_{t+1} from steps <= t, energy (B, T), invariants (B, T, K)."""
        z = self.encode(traj)
        recon, nxt = self.decode(z, traj)
        return {"latent": z, "recon": recon, "next": nxt, "energy": self.energy(traj),
                "invariants": self.invariants(traj)}

    # ------------------------------------------------------------------ rollouts
    def project_to_energy(self, states: Tensor, target: Tensor, newton_steps: int = 2) -> Tensor:
        """Newton steps along grad E_hat onto the level set E_hat(s) = target.

        states (B, D) raw, target (B,). Steps are taken in normalised coordinates (the metric in
        which every variable has unit spread), i.e. ds = -(E - target) sigma^2 g / sum(sigma^2 g^2).
        """
        var = self.state_std ** 2
        s = states
        for _ in range(newton_steps):
            E, g = self.energy_and_gradient(s)
            denom = (var * g * g).sum(-1).clamp_min(1e-30)
            s = (s - ((E - target) / denom).unsqueeze(-1) * var * g).detach()
        return s

    @torch.no_grad()
    def rollout(self, prefix: Tensor, n_steps: int, project: bool = False,
                newton_steps: int = 2) -> Tensor:
        """Roll forward autoregressively from observed first steps.

        prefix (B, k, D) raw -> (B, k + n_steps, D): the prefix, then n_steps predicted states,
        each fed back into the GRU. project=True projects every predicted state onto the level
        set of E_hat at the mean E_hat of the prefix (Newton steps along grad E_hat).
        """
        h_seq, h = self.gru(self.normalise(prefix))    # (B, k, H), (1, B, H)
        current = prefix[:, -1]
        z = self.to_latent(h_seq[:, -1])
        target = self.energy(prefix).mean(dim=1) if project else None   # (B,)
        out = [prefix]
        for _ in range(n_steps):
            _, nxt = self.decode(z, current)
            if project:
                nxt = self.project_to_energy(nxt, target, newton_steps)
            out.append(nxt.unsqueeze(1))
            o, h = self.gru(self.normalise(nxt).unsqueeze(1), h)
            z = self.to_latent(o[:, 0])
            current = nxt
        return torch.cat(out, dim=1)


def build_physics_net(cfg: PhysicsNetConfig | dict) -> PhysicsNet:
    if isinstance(cfg, dict):
        cfg = PhysicsNetConfig(**{"invariant_products": 0.0, **cfg})  # older checkpoints
    return PhysicsNet(cfg)
