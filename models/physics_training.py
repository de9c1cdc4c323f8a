"""Training of PhysicsNet: data preparation, the loss terms on a batch, one epoch, the run.

train.py reads the flags and the data and writes the run folder; this module does the
training and knows nothing about any physical system: it sees the observed states, their
finite-difference time derivatives and the canonical q/p labels of the file, nothing else.
`cfg` below is train.py's TrainConfig (any object with its fields).

Optimisers: the main Adam trains the GRU encoder, the latent map and the decoder; the energy
head and the conserved-quantity heads get their own Adam on their own schedule (energy_steps
steps per batch on random training states, at energy_lr), and are saved as weight averages.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch

from data.derivatives import time_derivatives
from data.loader import Trajectories
from models import losses
from models.averaging import WeightAverage
from models.physics_net import MODEL_KIND, PhysicsNet, PhysicsNetConfig
from utils import fail, restore_rng, rng_states

# Windows of each batch on which the energy-keeping and conservation terms are evaluated (the
# energy head is the costly part of a step: it runs on every state of the window).
ENERGY_SUBSET = 16
# Random time steps per trajectory on which the invariant heads are scored in each batch.
SPREAD_STEPS = 16
# Validation trajectories scored after every epoch (all of them are scored at the end).
VAL_PER_EPOCH = 128


# ---------------------------------------------------------------------------- data

@dataclass
class Prepared:
    """Training data as tensors on the device, plus the statistics the losses need."""

    data: Trajectories
    train: torch.Tensor          # (N, T, D) observed states
    train_dsdt: torch.Tensor     # (N, T, D) finite-difference derivatives
    val: torch.Tensor | None     # (Nv, T, D)
    val_dsdt: torch.Tensor | None
    state_mean: torch.Tensor     # (D,)
    state_std: torch.Tensor      # (D,)
    step_std: torch.Tensor       # (D,) size (rms) of one-step increments
    dsdt_std: torch.Tensor       # (D,) size (rms) of the derivatives
    energy_scale: float
    pairs: tuple[list[int], list[int]] | None


def _spread(x: np.ndarray) -> np.ndarray:
    """Per-variable standard deviation of states (..., D); constant variables get 1."""
    s = x.reshape(-1, x.shape[-1]).std(axis=0)
    return np.where(s > 1e-9 * max(1.0, float(np.abs(x).max())), s, 1.0)


def _rms_scale(x: np.ndarray) -> np.ndarray:
    """Per-variable root mean square of rates or steps (..., D), the size of a residual that
    means "as big as the signal". A rate that is always ~0 (vx of a projectile: dvx/dt = 0)
    gets the median scale of the others, so its residual is measured in the same units."""
    rms = np.sqrt((x.reshape(-1, x.shape[-1]) ** 2).mean(axis=0))
    alive = rms > 1e-6 * rms.max() if rms.max() > 0 else np.zeros_like(rms, dtype=bool)
    if not alive.any():
        return np.ones_like(rms)
    return np.where(alive, rms, np.median(rms[alive]))


def prepare(data: Trajectories, device: torch.device) -> Prepared:
    train = data.subset("train")
    val = data.subset("val")
    if val.n_traj == 0:
        val = data.subset("test")
    dsdt = time_derivatives(train.states, train.t)
    pairs = data.canonical_pairs()
    state_std, dsdt_std = _spread(train.states), _rms_scale(dsdt)
    energy_scale = 1.0
    if pairs is not None:
        # E_hat = energy_scale * MLP(normalised s): dq/dt = dE/dp needs scale ~ std(p) std(dq/dt)
        q, p = pairs
        scales = [state_std[pi] * dsdt_std[qi] for qi, pi in zip(q, p)] + \
                 [state_std[qi] * dsdt_std[pi] for qi, pi in zip(q, p)]
        energy_scale = float(np.exp(np.mean(np.log(scales))))
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)
    has_val = val.n_traj > 0
    return Prepared(
        data=data, train=as_t(train.states), train_dsdt=as_t(dsdt),
        val=as_t(val.states) if has_val else None,
        val_dsdt=as_t(time_derivatives(val.states, val.t)) if has_val else None,
        state_mean=as_t(train.states.reshape(-1, data.dim).mean(axis=0)),
        state_std=as_t(state_std), step_std=as_t(_rms_scale(np.diff(train.states, axis=1))),
        dsdt_std=as_t(dsdt_std), energy_scale=energy_scale, pairs=pairs)



# ---------------------------------------------------------------------------- loss terms

def main_losses(model: PhysicsNet, win: torch.Tensor, cfg, prep: Prepared
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """The terms that train everything but the energy and invariant heads, on windows win
    (B, W+1, D). In evaluation (model.eval()) the invariant heads' terms are added, scored on
    the windows; in training they come from invariant_losses on their own schedule.

    Returns (weighted sum, {term: value}): prediction and reconstruction (alpha), energy
    keeping of predicted next states (beta; the energy head is frozen in it), latent
    smoothness (gamma), invariant heads (invariant_weight, evaluation only) and L2
    (weight_decay; the energy head is left out of it, see the --weight-decay help).
    """
    inp, target = win[:, :-1], win[:, 1:]                         # (B, W, D) each
    out = model(inp)
    terms: dict[str, torch.Tensor] = {}
    terms["prediction"] = losses.prediction_loss(out["next"], target, prep.step_std)
    terms["reconstruction"] = losses.prediction_loss(out["recon"], inp, prep.state_std)
    total = cfg.alpha * (terms["prediction"] + terms["reconstruction"])
    if cfg.beta > 0 or not model.training:
        # on a subset of the batch's windows: the energy head is the costly part of a step
        m = ENERGY_SUBSET
        with torch.no_grad():
            reference = model.energy(inp[:m])                       # (m, W)
        terms["energy_keeping"] = losses.energy_keeping_loss(
            model.energy(out["next"][:m], frozen=True), reference)
        total = total + cfg.beta * terms["energy_keeping"]
    if cfg.gamma > 0 or not model.training:
        terms["smoothness"] = losses.latent_smoothness(out["latent"])
        total = total + cfg.gamma * terms["smoothness"]
    if model.config.n_invariants and not model.training:
        inv_total, inv_terms = invariant_losses(model, win, cfg)
        terms.update(inv_terms)
        total = total + inv_total
    if cfg.weight_decay > 0:
        terms["l2"] = losses.l2_penalty(p for n, p in model.named_parameters()
                                        if not n.startswith("energy_head."))
        total = total + cfg.weight_decay * terms["l2"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


def invariant_losses(model: PhysicsNet, spread: torch.Tensor, cfg
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """invariant_weight * the conserved-quantity heads' ratios on states spread (B, S, D) of
    B trajectories. Functional independence: each head is judged on the between-trajectory
    variance that a polynomial of E_hat (when trained) and of the earlier heads leaves
    unexplained."""
    inv = model.invariants(spread)                                # (B, S, K)
    known, terms = [], {}
    total = spread.new_zeros(())
    if cfg.beta > 0:
        with torch.no_grad():
            known.append(model.energy(spread).mean(1))              # (B,)
    for k in range(inv.shape[-1]):
        explained = torch.stack(known, 1) if known else None
        degree = 3 if len(known) <= 2 else 2
        terms[f"invariant_{k}"] = losses.invariant_ratio(inv[..., k], explained, degree)
        total = total + cfg.invariant_weight * terms[f"invariant_{k}"]
        known.append(inv[..., k].mean(1).detach())
    return total, terms


def energy_losses(model: PhysicsNet, states: torch.Tensor, dsdt: torch.Tensor,
                  cfg, prep: Prepared, win: torch.Tensor | None,
                  grad_graph: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """The terms that train the energy head: beta * (hamiltonian_weight * Hamilton's equations
    on states (n, D) with observed derivatives dsdt (n, D) + conservation_weight *
    conservation ratio of E_hat along the windows win (B, W+1, D), when given).

    grad_graph: keep the graph of dE/ds so the loss can be backpropagated (training).
    """
    terms: dict[str, torch.Tensor] = {}
    total = states.new_zeros(())
    if prep.pairs is not None and cfg.hamiltonian_weight > 0:
        _, grad = model.energy_and_gradient(states, create_graph=grad_graph)
        terms["hamiltonian"] = losses.hamiltonian_loss(grad, dsdt, *prep.pairs, prep.dsdt_std)
        total = total + cfg.hamiltonian_weight * terms["hamiltonian"]
    if win is not None:
        terms["energy_conservation"] = losses.conservation_ratio(model.energy(win[:ENERGY_SUBSET]))
        total = total + cfg.conservation_weight * terms["energy_conservation"]
    return cfg.beta * total, {k: float(v.detach()) for k, v in terms.items()}


def windows(states: torch.Tensor, dsdt: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor,
            length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of `length` steps: states[idx[b], offsets[b] : offsets[b] + length] -> (B, length, D)."""
    steps = offsets[:, None] + torch.arange(length, device=offsets.device)[None]   # (B, length)
    rows = idx[:, None].expand_as(steps)
    return states[rows, steps], dsdt[rows, steps]


def fixed_offsets(n: int, T: int, length: int) -> torch.Tensor:
    """Deterministic window starts spread over the trajectory, for validation: (n,)."""
    return (torch.arange(n) * 37) % (T - length + 1)


@torch.no_grad()
def evaluate_physics(model: PhysicsNet, states: torch.Tensor, dsdt: torch.Tensor,
                     cfg, prep: Prepared, length: int | None = None,
                     chunk: int = 256) -> dict[str, float]:
    """Every loss term on trajectories (B, T, D), averaged over chunks of trajectories.

    length: evaluate on one fixed window of that many steps per trajectory (cheap, the same
    windows every epoch); None: on the whole trajectories. The Hamiltonian term is measured on
    every state of the windows, the energy terms whatever beta is (to show what an untrained
    energy head does), and "total" weighs the terms as training does.
    """
    was_training = model.training
    model.eval()
    n, T, D = states.shape
    if length is not None and length < T:
        idx = torch.arange(n, device=states.device)
        states, dsdt = windows(states, dsdt, idx, fixed_offsets(n, T, length).to(states.device),
                               length)
    scored = cfg if cfg.beta > 0 else replace(cfg, beta=1.0)
    sums: dict[str, float] = {}
    for i in range(0, n, chunk):
        win, dwin = states[i:i + chunk], dsdt[i:i + chunk]
        main, terms = main_losses(model, win, cfg, prep)
        energy, energy_terms = energy_losses(model, win.reshape(-1, D), dwin.reshape(-1, D),
                                             scored, prep, win, False)
        terms.update(energy_terms)
        terms["total"] = float(main) + (float(energy) if cfg.beta > 0 else 0.0)
        w = win.shape[0] / n
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + w * v
    model.train(was_training)
    return sums



# ---------------------------------------------------------------------------- schedule, rng

def learning_rate(cfg, epoch: int) -> float:
    return cfg.lr * max(cfg.lr_decay ** epoch, 0.01)


# ---------------------------------------------------------------------------- the run

@dataclass
class Optimisers:
    """The three Adams of a PhysicsNet run and the weight averages of its heads.

    The energy head only ever gets gradients from its own terms (the energy-keeping term
    freezes it), so it is trained on its own schedule; the conserved-quantity heads likewise
    (one step per batch on the main schedule left a Kepler head wobbling along trajectories).
    The checkpoint's model_state holds the averaged heads; the trained values, needed to
    resume, are stored beside it.
    """

    main: torch.optim.Adam
    energy: torch.optim.Adam
    invariants: torch.optim.Adam | None
    energy_params: list[torch.Tensor]
    invariant_params: list[torch.Tensor]
    energy_average: WeightAverage
    invariant_average: WeightAverage

    def set_lr(self, cfg, lr: float) -> None:
        for group in self.main.param_groups:
            group["lr"] = lr
        heads = self.energy.param_groups + (self.invariants.param_groups if self.invariants
                                            else [])
        for group in heads:
            group["lr"] = cfg.energy_lr * lr / cfg.lr


def build_model(cfg, prep: Prepared, device) -> PhysicsNet:
    D = prep.train.shape[-1]
    q_idx, p_idx = prep.pairs if prep.pairs is not None else (None, None)
    mcfg = PhysicsNetConfig(state_dim=D, hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim,
                            n_invariants=cfg.n_invariants, q_idx=q_idx, p_idx=p_idx,
                            invariant_products=cfg.invariant_products,
                            names=list(prep.data.names))
    model = PhysicsNet(mcfg).to(device)
    model.set_statistics(prep.state_mean, prep.state_std, prep.step_std, prep.energy_scale)
    return model


def build_optimisers(cfg, model: PhysicsNet, ckpt: dict | None = None) -> Optimisers:
    """Fresh optimisers, or those of a checkpoint being resumed (its heads' trained weights
    restored into the model, whose state_dict must already be loaded)."""
    energy_params = list(model.energy_head.parameters())
    inv_params = list(model.invariant_heads.parameters())
    opts = Optimisers(
        main=torch.optim.Adam([p for n, p in model.named_parameters()
                               if not n.startswith(("energy_head.", "invariant_heads."))],
                              lr=cfg.lr),
        energy=torch.optim.Adam(energy_params, lr=cfg.energy_lr),
        invariants=torch.optim.Adam(inv_params, lr=cfg.energy_lr) if inv_params else None,
        energy_params=energy_params, invariant_params=inv_params,
        energy_average=WeightAverage(energy_params, cfg.energy_ema),
        invariant_average=WeightAverage(inv_params, cfg.energy_ema))
    if ckpt is not None:
        opts.energy_average = WeightAverage(energy_params, cfg.energy_ema,
                                            ckpt["energy_ema_updates"])
        opts.invariant_average = WeightAverage(inv_params, cfg.energy_ema,
                                               ckpt["invariant_ema_updates"])
        with torch.no_grad():
            for p, raw in zip(energy_params + inv_params,
                              ckpt["energy_head_trained"] + ckpt["invariant_heads_trained"]):
                p.copy_(raw)
        opts.main.load_state_dict(ckpt["optimizer_state"])
        opts.energy.load_state_dict(ckpt["energy_optimizer_state"])
        if opts.invariants is not None:
            opts.invariants.load_state_dict(ckpt["invariant_optimizer_state"])
    return opts


def train_epoch(model: PhysicsNet, opts: Optimisers, cfg, prep: Prepared,
                gen: torch.Generator) -> dict[str, float]:
    """One pass over the training trajectories in batches; returns the mean of every term."""
    device = prep.train.device
    N, T, D = prep.train.shape
    flat, flat_dsdt = prep.train.reshape(N * T, D), prep.train_dsdt.reshape(N * T, D)
    length = min(cfg.window, T - 1) + 1       # W inputs + 1 target
    n_batches = math.ceil(N / cfg.batch_size)
    train_energy = cfg.beta > 0
    # without Hamilton's equations (no q/p labels) only the conservation ratio trains the head
    use_ham = prep.pairs is not None and cfg.hamiltonian_weight > 0
    inner_steps = cfg.energy_steps if use_ham else 1
    perm = torch.randperm(N, generator=gen).to(device)
    offsets = torch.randint(0, T - length + 1, (N,), generator=gen).to(device)
    picks = torch.randint(0, N * T, (n_batches, cfg.energy_steps, cfg.energy_batch),
                          generator=gen).to(device)
    times = (torch.randint(0, T, (N, cfg.energy_steps, SPREAD_STEPS), generator=gen).to(device)
             if model.config.n_invariants else None)
    sums: dict[str, float] = {}
    for b in range(n_batches):
        idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        win, _ = windows(prep.train, prep.train_dsdt, idx, offsets[idx], length)
        loss, terms = main_losses(model, win, cfg, prep)
        opts.main.zero_grad(set_to_none=True)
        loss.backward()
        opts.main.step()
        total = float(loss.detach())
        if train_energy:
            for j in range(inner_steps):
                pick = picks[b, j]
                e_loss, e_terms = energy_losses(model, flat[pick], flat_dsdt[pick], cfg,
                                                prep, win if j == 0 else None, True)
                opts.energy.zero_grad(set_to_none=True)
                e_loss.backward()
                opts.energy.step()
                opts.energy_average.update()      # decay 0: the average is the weights
                for k, v in e_terms.items():        # mean over the inner steps that have it
                    count = inner_steps if k == "hamiltonian" else 1
                    terms[k] = terms.get(k, 0.0) + v / count
            total += cfg.beta * (cfg.hamiltonian_weight * terms.get("hamiltonian", 0.0)
                                 + cfg.conservation_weight
                                 * terms.get("energy_conservation", 0.0))
        if opts.invariants is not None:
            # states of the batch's trajectories at random times over their whole length,
            # so that "conserved" means over the whole trajectory, not over a window
            for j in range(cfg.energy_steps):
                inv_loss, inv_terms = invariant_losses(
                    model, prep.train[idx[:, None], times[idx, j]], cfg)
                opts.invariants.zero_grad(set_to_none=True)
                inv_loss.backward()
                opts.invariants.step()
                opts.invariant_average.update()
                total += float(inv_loss.detach()) / cfg.energy_steps
                for k, v in inv_terms.items():            # mean over the inner steps
                    terms[k] = terms.get(k, 0.0) + float(v.detach()) / cfg.energy_steps
        terms["total"] = total
        w = idx.shape[0] / N
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + w * v
    return sums


def checkpoint(model_state: dict, opts: Optimisers, model: PhysicsNet, epoch: int, cfg,
               gen: torch.Generator, np_rng: np.random.Generator, rows: list[dict],
               trained_heads: tuple[list, list]) -> dict:
    """What checkpoint.pt holds about the model and the training state (the caller adds the
    data and statistics it describes)."""
    return {"model_kind": MODEL_KIND, "model_config": asdict(model.config),
            "model_state": model_state,
            "energy_head_trained": trained_heads[0],
            "energy_ema_updates": opts.energy_average.updates,
            "invariant_heads_trained": trained_heads[1],
            "invariant_ema_updates": opts.invariant_average.updates,
            "optimizer_state": opts.main.state_dict(),
            "energy_optimizer_state": opts.energy.state_dict(),
            "invariant_optimizer_state": (None if opts.invariants is None
                                          else opts.invariants.state_dict()),
            "epoch": epoch, "flags": asdict(cfg), "rng": rng_states(gen, np_rng),
            "metrics": rows}


def train_physics(cfg, prep: Prepared, device, gen: torch.Generator,
                  np_rng: np.random.Generator, ckpt: dict | None,
                  save: Callable[[dict | None, list[dict]], None], desc: str
                  ) -> tuple[PhysicsNet, list[dict]]:
    """Train (or resume from ckpt) a PhysicsNet for cfg.epochs epochs.

    After every epoch, save(checkpoint dict, metrics rows) is called; save(None, rows) when a
    resumed run had nothing left to do. Returns the model holding the averaged heads (the
    saved one), in eval mode, and the metrics rows.
    """
    model = build_model(cfg, prep, device)
    rows: list[dict] = []
    start_epoch = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
    opts = build_optimisers(cfg, model, ckpt)
    if ckpt is not None:
        restore_rng(ckpt["rng"], gen, np_rng)
        rows = [r for r in ckpt["metrics"] if r["epoch"] <= ckpt["epoch"]]
        start_epoch = ckpt["epoch"]
    if not cfg.quiet and start_epoch == 0:
        print(f"PhysicsNet: {model.n_parameters()} parameters")
    T = prep.train.shape[1]
    length = min(cfg.window, T - 1) + 1
    bar = None
    if not cfg.quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=desc, unit="epoch",
                   dynamic_ncols=True)
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        lr = learning_rate(cfg, epoch)
        opts.set_lr(cfg, lr)
        sums = train_epoch(model, opts, cfg, prep, gen)
        train_seconds = time.perf_counter() - t0
        # CPU time as well: on a shared machine the wall time also counts other people's jobs
        row = {"epoch": epoch + 1, "lr": lr, "epoch_seconds": train_seconds,
               "epoch_cpu_seconds": time.process_time() - c0}
        row.update({f"train/{k}": v for k, v in sums.items()})
        if not all(math.isfinite(v) for v in sums.values()):
            fail(f"training diverged at epoch {epoch + 1} (non-finite loss {sums}); "
                 f"try a smaller --lr")
        trained = ([p.detach().clone() for p in opts.energy_params],
                   [p.detach().clone() for p in opts.invariant_params])
        with opts.energy_average.swapped_in(), opts.invariant_average.swapped_in():
            if prep.val is not None:
                row.update({f"val/{k}": v for k, v in
                            evaluate_physics(model, prep.val[:VAL_PER_EPOCH],
                                             prep.val_dsdt[:VAL_PER_EPOCH], cfg, prep,
                                             length).items()})
            model_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        row["eval_seconds"] = time.perf_counter() - t0 - train_seconds
        rows.append(row)
        save(checkpoint(model_state, opts, model, epoch + 1, cfg, gen, np_rng, rows, trained),
             rows)
        if bar is not None:
            bar.set_postfix({k: f"{v:.2e}" for k, v in _progress(row).items()})
            bar.update(1)
    if bar is not None:
        bar.close()
    if ckpt is not None and start_epoch >= cfg.epochs:
        save(None, rows)
    with torch.no_grad():                      # the model handed back is the saved one
        for p, a in zip(opts.energy_params + opts.invariant_params,
                        opts.energy_average.average + opts.invariant_average.average):
            p.copy_(a)
    model.eval()
    return model, rows


def _progress(row: dict) -> dict[str, float]:
    short = {"loss": row["train/total"], "pred": row["train/prediction"]}
    for key, name in (("train/hamiltonian", "ham"), ("train/energy_conservation", "Econs"),
                      ("val/total", "val")):
        if key in row:
            short[name] = row[key]
    return short
