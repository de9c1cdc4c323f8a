"""Train PhysicsNet (default), or a Hamiltonian NN / its baseline, on one system's trajectories.

    python train.py --system projectile                          # physics-aware PhysicsNet
    python train.py --system projectile --energy-weight 0.0 --tag standard
    python train.py --system projectile --energy-weight 0.1 --tag physics-aware
    for dim in 4 8 16 32; do python train.py --system spring --latent-dim $dim --tag latent-$dim; done
    python train.py --system orbit --n-invariants 1 --tag inv1   # + a conserved-quantity head
    python train.py --system spring --model hnn                  # or --model baseline
    python train.py --system my_data.csv --epochs 50             # any trajectory file
    python train.py --system orbit --epochs 200 --resume         # continue a run

Each run writes <results-dir>/runs/<system>__<model>__<tag>__s<seed>/ with config.json,
metrics.jsonl (one line per epoch), checkpoint.pt (rebuilds the model with no flags, and
resumes the run; written atomically every epoch) and summary.json.

This script never reads ground truth: it sees the observed states, times, variable names and
the canonical q/p labels of the file (data/loader.py drops truth_* arrays), nothing else.
Time derivatives come from finite differences of the observed states (utils.time_derivatives).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from data.loader import Trajectories, load_trajectories
from models import losses
from models.averaging import WeightAverage
from models.physics_net import MODEL_KIND, PhysicsNet, PhysicsNetConfig
from utils import (DATA_DIR, RESULTS_DIR, UsageError, atomic_torch_save, atomic_write_json,
                   atomic_write_text, cli, environment_info, fail, get_device, read_checkpoint,
                   run_name, seed_everything, time_derivatives, to_jsonable)

MODELS = (MODEL_KIND, "hnn", "baseline")
# Windows of each batch on which the energy-keeping and conservation terms are evaluated (the
# energy head is the costly part of a step: 38K parameters on every state, ~3 ms per 1000
# states on one CPU core).
ENERGY_SUBSET = 16
# Random time steps per trajectory on which the invariant heads are scored in each batch.
SPREAD_STEPS = 16
# Validation trajectories scored after every epoch (all of them are scored at the end).
VAL_PER_EPOCH = 128
# Flags that may differ between a run and its --resume (everything else must match).
RESUME_FREE = {"epochs", "resume", "quiet", "device", "threads", "data_dir", "results_dir"}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every flag of train.py (argparse is built from this; --beta has the alias
    --energy-weight, and every --dashed-flag also answers to --underscored_flag)."""

    system: str = _f("", "system name (projectile, spring, orbit, pendulum, two-body) or a "
                         "trajectory file path (.npz/.csv)")
    model: str = _f(MODEL_KIND, "model to train: physicsnet, hnn or baseline", choices=MODELS)
    epochs: int = _f(100, "training epochs (one epoch = every training trajectory once)")
    batch_size: int = _f(64, "trajectories per batch (hnn/baseline: batch_size x window random "
                             "states per step, ceil(n_train / batch_size) steps per epoch)")
    window: int = _f(8, "PhysicsNet trains on a random window of this many steps per "
                        "trajectory and epoch (clipped to the trajectory length). 8 halves the "
                        "GRU's cost against 16 (0.41 vs 0.60 CPU s/epoch, standard runs) with "
                        "rollouts as good on the projectile and orbit, a little worse on the "
                        "spring")
    alpha: float = _f(1.0, "weight of the prediction loss (next state + reconstruction)")
    beta: float = _f(0.5, "weight of ALL energy-head terms (alias --energy-weight); 0 = "
                          "standard model: energy head untrained, rollouts not projected")
    gamma: float = _f(0.1, "weight of the latent smoothness loss (scale-free)")
    hamiltonian_weight: float = _f(1.0, "relative weight, inside the energy terms, of matching "
                                        "the symplectic gradient of E_hat to the observed "
                                        "derivatives (needs canonical q/p labels)")
    conservation_weight: float = _f(0.01, "relative weight, inside the energy terms, of the "
                                         "conservation ratio of E_hat along the training "
                                         "windows (scale-free). Measured on the orbit, test "
                                         "R^2 of E_hat against E: 0.01 -> 0.99996, 0.1 -> "
                                         "0.99972; at 1.0 E_hat bent into a curved function "
                                         "of E (affine R^2 0.69)")
    energy_lr: float = _f(3e-3, "Adam learning rate of the energy head at epoch 0 (it decays "
                                "with --lr-decay like --lr)")
    energy_steps: int = _f(4, "energy-head Adam steps per batch, each on --energy-batch "
                              "random training states")
    energy_batch: int = _f(256, "states per energy-head step (drawn at random from all "
                                "training states)")
    energy_ema: float = _f(0.999, "decay of the moving averages of the energy head's and the "
                                  "conserved-quantity heads' weights that are saved and "
                                  "evaluated (0 = the last weights)")
    n_invariants: int = _f(0, "extra conserved-quantity heads, independent of E_hat and of "
                              "each other")
    invariant_weight: float = _f(1.0, "weight of the conserved-quantity heads' loss")
    invariant_products: float = _f(1.0, "conserved-quantity heads also read the pairwise "
                                        "products of the normalised state variables, times "
                                        "this (0 = the state alone); see models/physics_net.py")
    latent_dim: int = _f(32, "size of the latent z")
    hidden_dim: int = _f(128, "GRU hidden size (PhysicsNet)")
    lr: float = _f(1e-3, "Adam learning rate at epoch 0")
    lr_decay: float = _f(0.955, "learning rate x lr_decay each epoch, down to lr/100 (depends "
                                "on the epoch only, so --resume with more epochs is exact)")
    weight_decay: float = _f(1e-5, "L2 penalty on all parameters but the energy head's (on it, "
                                   "1e-5 cost orbit R^2 0.99991 -> 0.99965)")
    seed: int = _f(0, "seed of the initialisation, shuffling and windows")
    device: str = _f("auto", "auto (cuda when present), cpu or cuda",
                     choices=("auto", "cpu", "cuda"))
    threads: int = _f(0, "torch CPU threads; 0 = every core this process may use. On this "
                         "2-core machine 2 threads ran 0.57-0.77 s/epoch against 0.85-0.97 for "
                         "1 when the machine was otherwise idle, but 10-20x slower when "
                         "another job held a core: use --threads 1 on a shared machine")
    tag: str = _f("default", "run label, part of the run folder name")
    data_dir: str = _f(str(DATA_DIR), "folder of the built-in systems' .npz files")
    results_dir: str = _f(str(RESULTS_DIR), "results folder; runs go to <results-dir>/runs/")
    resume: bool = _f(False, "continue the run from its checkpoint.pt")
    quiet: bool = _f(False, "no progress bar and no config print-out")


# ---------------------------------------------------------------------------- flags

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr and exit 2 (via utils.cli), no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(description=__doc__.split("\n\n")[0],
                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(TrainConfig):
        names = [f"--{f.name.replace('_', '-')}"]
        if "_" in f.name:
            names.append(f"--{f.name}")
        if f.name == "beta":
            names += ["--energy-weight", "--energy_weight"]
        kw = {"help": f.metadata["help"], "dest": f.name, "default": f.default}
        if isinstance(f.default, bool):
            kw["action"] = "store_true"
        else:
            kw["type"] = type(f.default)
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
        ap.add_argument(*names, **kw)
    return ap


def parse_flags(argv: list[str] | None = None) -> TrainConfig:
    return TrainConfig(**vars(build_parser().parse_args(argv)))


def validate(cfg: TrainConfig) -> None:
    if not cfg.system:
        fail("--system is required (a system name or a .npz/.csv path)")
    if cfg.model not in MODELS:
        fail(f"unknown --model '{cfg.model}' (choose {', '.join(MODELS)})")
    for name in ("epochs", "batch_size", "latent_dim", "hidden_dim", "energy_steps",
                 "energy_batch"):
        if getattr(cfg, name) < 1:
            fail(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(cfg, name)}")
    if cfg.window < 2:
        fail(f"--window must be at least 2, got {cfg.window}")
    if cfg.n_invariants < 0:
        fail(f"--n-invariants must be >= 0, got {cfg.n_invariants}")
    for name in ("alpha", "beta", "gamma", "hamiltonian_weight", "conservation_weight",
                 "invariant_weight", "invariant_products", "weight_decay"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value >= 0):
            fail(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
    for name in ("lr", "energy_lr"):
        if not (math.isfinite(getattr(cfg, name)) and getattr(cfg, name) > 0):
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
    if not (0 < cfg.lr_decay <= 1):
        fail(f"--lr-decay must be in (0, 1], got {cfg.lr_decay}")
    if not (0 <= cfg.energy_ema < 1):
        fail(f"--energy-ema must be in [0, 1), got {cfg.energy_ema}")
    if cfg.threads < 0:
        fail(f"--threads must be >= 0, got {cfg.threads}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        fail(f"unknown device '{cfg.device}' (choose auto, cpu or cuda)")


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


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- PhysicsNet losses

def main_losses(model: PhysicsNet, win: torch.Tensor, cfg: TrainConfig, prep: Prepared
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


def invariant_losses(model: PhysicsNet, spread: torch.Tensor, cfg: TrainConfig
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
                  cfg: TrainConfig, prep: Prepared, win: torch.Tensor | None,
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
                     cfg: TrainConfig, prep: Prepared, length: int | None = None,
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


# ---------------------------------------------------------------------------- run folder

def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    return cfg.lr * max(cfg.lr_decay ** epoch, 0.01)


def rng_states(gen: torch.Generator, np_rng: np.random.Generator) -> dict:
    out = {"torch": torch.get_rng_state(), "shuffle": gen.get_state(),
           "numpy": np_rng.bit_generator.state, "python": random.getstate()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(states: dict, gen: torch.Generator, np_rng: np.random.Generator) -> None:
    torch.set_rng_state(states["torch"])
    gen.set_state(states["shuffle"])
    np_rng.bit_generator.state = states["numpy"]
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(run_dir / "metrics.jsonl",
                      "".join(json.dumps(to_jsonable(r)) + "\n" for r in rows))


def check_resumable(cfg: TrainConfig, ckpt: dict, data_sha: str, path: Path) -> None:
    saved = ckpt.get("flags", {})
    for f in fields(TrainConfig):
        if f.name in RESUME_FREE:
            continue
        if f.name not in saved:      # its model or checkpoint layout would not match this code
            fail(f"--resume: {path} was written by an older train.py (no --"
                 f"{f.name.replace('_', '-')} in it); train again without --resume")
        if saved[f.name] != getattr(cfg, f.name):
            fail(f"--resume: --{f.name.replace('_', '-')} {getattr(cfg, f.name)!r} differs from "
                 f"the run's {saved[f.name]!r} in {path} (resume with the same flags)")
    if ckpt["data"]["sha256"] != data_sha:
        fail(f"--resume: the data file {ckpt['data']['path']} changed since {path} was written")


# ---------------------------------------------------------------------------- training

def train(cfg: TrainConfig) -> tuple[torch.nn.Module, dict]:
    """Train one model; returns (model, stats) where stats is summary.json's content."""
    validate(cfg)
    wall_start = time.perf_counter()
    device = get_device(cfg.device)
    threads = cfg.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    data = load_trajectories(cfg.system, cfg.data_dir)
    run_dir = Path(cfg.results_dir) / "runs" / run_name(data.name, cfg.model, cfg.tag, cfg.seed)
    ckpt_path = run_dir / "checkpoint.pt"
    data_sha = sha256(data.source)
    ckpt = None
    if cfg.resume:
        if not ckpt_path.exists():
            fail(f"--resume: no checkpoint at {ckpt_path} (train without --resume first)")
        ckpt = read_checkpoint(ckpt_path)
        check_resumable(cfg, ckpt, data_sha, ckpt_path)
    if cfg.model == "hnn" and data.canonical_pairs() is None:
        fail(f"--model hnn needs canonical q/p labels, and {data.source} has none")

    np_rng = seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    prep = prepare(data, device)
    run_info = {
        "flags": asdict(cfg), "run_dir": str(run_dir), "device": str(device), "threads": threads,
        "environment": environment_info(),
        "data": {"path": str(Path(data.source).resolve()), "sha256": data_sha,
                 "name": data.name, "names": data.names, "canonical": data.canonical,
                 "n_traj": data.n_traj, "steps": int(data.states.shape[1]), "dim": data.dim,
                 "n_train": int(prep.train.shape[0]),
                 "n_val": 0 if prep.val is None else int(prep.val.shape[0])},
        "statistics": {"state_mean": prep.state_mean.tolist(), "state_std": prep.state_std.tolist(),
                       "step_std": prep.step_std.tolist(), "dsdt_std": prep.dsdt_std.tolist(),
                       "energy_scale": prep.energy_scale},
    }
    if not cfg.quiet:
        print("train.py " + json.dumps(to_jsonable({**asdict(cfg), "run_dir": str(run_dir),
                                                    "device": str(device), "threads": threads})))
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", run_info)
    if cfg.model == MODEL_KIND:
        model, rows = _train_physics(cfg, prep, device, gen, np_rng, run_dir, run_info, ckpt)
        full_val = ({} if prep.val is None else
                    evaluate_physics(model, prep.val, prep.val_dsdt, cfg, prep, None))
    else:
        model, rows = _train_hamiltonian(cfg, prep, device, gen, np_rng, run_dir, run_info, ckpt)
        full_val = {}
    last = rows[-1] if rows else {}
    epoch_seconds = [r["epoch_seconds"] for r in rows if r.get("epoch_seconds") is not None]
    epoch_cpu = [r["epoch_cpu_seconds"] for r in rows if r.get("epoch_cpu_seconds") is not None]
    stats = {
        "system": data.name, "model": cfg.model, "tag": cfg.tag, "seed": cfg.seed,
        "epochs": int(last.get("epoch", 0)), "device": str(device), "threads": threads,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final": {k: v for k, v in last.items() if "/" in k},
        "val_whole_trajectories": full_val,
        "train_seconds": float(sum(epoch_seconds)),
        "seconds_per_epoch": float(sum(epoch_seconds)) / last["epoch"] if epoch_seconds else None,
        "train_cpu_seconds": float(sum(epoch_cpu)),
        "cpu_seconds_per_epoch": float(sum(epoch_cpu)) / last["epoch"] if epoch_cpu else None,
        "wall_seconds": time.perf_counter() - wall_start,
        "run_dir": str(run_dir),
    }
    atomic_write_json(run_dir / "summary.json", stats)
    final = stats["final"]
    val = final.get("val/total")
    cpu = stats["cpu_seconds_per_epoch"]
    print(f"{run_dir.name}: {stats['epochs']} epochs, {stats['parameters']} parameters, "
          f"{stats['train_seconds']:.1f}s training ({stats['seconds_per_epoch'] or 0:.2f}s/epoch"
          + (f", {cpu:.2f} CPU s/epoch" if cpu is not None else "") + "), train loss "
          f"{final.get('train/total', float('nan')):.3g}"
          + (f", val loss {val:.3g}" if val is not None else "") + f" -> {run_dir}")
    return model, stats


def _train_physics(cfg, prep: Prepared, device, gen, np_rng, run_dir: Path, run_info: dict,
                   ckpt: dict | None):
    D = prep.train.shape[-1]
    q_idx, p_idx = prep.pairs if prep.pairs is not None else (None, None)
    mcfg = PhysicsNetConfig(state_dim=D, hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim,
                            n_invariants=cfg.n_invariants, q_idx=q_idx, p_idx=p_idx,
                            invariant_products=cfg.invariant_products,
                            names=list(prep.data.names))
    model = PhysicsNet(mcfg).to(device)
    model.set_statistics(prep.state_mean, prep.state_std, prep.step_std, prep.energy_scale)
    # Two optimisers: the energy head only ever gets gradients from its own terms (the
    # energy-keeping term freezes it), so it is trained on its own schedule: energy_steps
    # Adam steps per batch on random states (see the --energy-* flags).
    energy_params = list(model.energy_head.parameters())
    # The conserved-quantity heads, like the energy head, train on their own schedule:
    # energy_steps Adam steps per batch at energy_lr (one step per batch on the main schedule
    # left the orbit's head wobbling ~0.6 % along trajectories).
    inv_params = list(model.invariant_heads.parameters())
    opt = torch.optim.Adam([p for n, p in model.named_parameters()
                            if not n.startswith(("energy_head.", "invariant_heads."))], lr=cfg.lr)
    opt_energy = torch.optim.Adam(energy_params, lr=cfg.energy_lr)
    opt_inv = torch.optim.Adam(inv_params, lr=cfg.energy_lr) if inv_params else None
    # The checkpoint's model_state (what load_run gives) holds the averaged energy head; the
    # trained values, needed to resume, are stored beside it.
    average = WeightAverage(energy_params, cfg.energy_ema)
    inv_average = WeightAverage(inv_params, cfg.energy_ema)
    rows: list[dict] = []
    start_epoch = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
        average = WeightAverage(energy_params, cfg.energy_ema, ckpt["energy_ema_updates"])
        inv_average = WeightAverage(inv_params, cfg.energy_ema, ckpt["invariant_ema_updates"])
        with torch.no_grad():
            for p, raw in zip(energy_params + inv_params,
                              ckpt["energy_head_trained"] + ckpt["invariant_heads_trained"]):
                p.copy_(raw)
        opt.load_state_dict(ckpt["optimizer_state"])
        opt_energy.load_state_dict(ckpt["energy_optimizer_state"])
        if opt_inv is not None:
            opt_inv.load_state_dict(ckpt["invariant_optimizer_state"])
        restore_rng(ckpt["rng"], gen, np_rng)
        rows = [r for r in ckpt["metrics"] if r["epoch"] <= ckpt["epoch"]]
        start_epoch = ckpt["epoch"]
    if not cfg.quiet and start_epoch == 0:
        print(f"PhysicsNet: {model.n_parameters()} parameters")

    N, T, _ = prep.train.shape
    flat, flat_dsdt = prep.train.reshape(N * T, D), prep.train_dsdt.reshape(N * T, D)
    length = min(cfg.window, T - 1) + 1       # W inputs + 1 target
    n_batches = math.ceil(N / cfg.batch_size)
    train_energy = cfg.beta > 0
    # without Hamilton's equations (no q/p labels) only the conservation ratio trains the head
    use_ham = prep.pairs is not None and cfg.hamiltonian_weight > 0
    inner_steps = cfg.energy_steps if use_ham else 1
    bar = None
    if not cfg.quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=run_dir.name, unit="epoch",
                   dynamic_ncols=True)
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        lr = learning_rate(cfg, epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        for group in opt_energy.param_groups + (opt_inv.param_groups if opt_inv else []):
            group["lr"] = cfg.energy_lr * lr / cfg.lr
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
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total = float(loss.detach())
            if train_energy:
                for j in range(inner_steps):
                    pick = picks[b, j]
                    e_loss, e_terms = energy_losses(model, flat[pick], flat_dsdt[pick], cfg,
                                                    prep, win if j == 0 else None, True)
                    opt_energy.zero_grad(set_to_none=True)
                    e_loss.backward()
                    opt_energy.step()
                    average.update()             # decay 0: the average is the weights
                    for k, v in e_terms.items():   # mean over the inner steps that have it
                        count = inner_steps if k == "hamiltonian" else 1
                        terms[k] = terms.get(k, 0.0) + v / count
                total += cfg.beta * (cfg.hamiltonian_weight * terms.get("hamiltonian", 0.0)
                                     + cfg.conservation_weight
                                     * terms.get("energy_conservation", 0.0))
            if opt_inv is not None:
                # states of the batch's trajectories at random times over their whole length,
                # so that "conserved" means over the whole trajectory, not over a window
                for j in range(cfg.energy_steps):
                    inv_loss, inv_terms = invariant_losses(
                        model, prep.train[idx[:, None], times[idx, j]], cfg)
                    opt_inv.zero_grad(set_to_none=True)
                    inv_loss.backward()
                    opt_inv.step()
                    inv_average.update()
                    total += float(inv_loss.detach()) / cfg.energy_steps
                    for k, v in inv_terms.items():        # mean over the inner steps
                        terms[k] = terms.get(k, 0.0) + float(v.detach()) / cfg.energy_steps
            terms["total"] = total
            w = idx.shape[0] / N
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + w * v
        train_seconds = time.perf_counter() - t0
        # CPU time as well: on a shared machine the wall time also counts other people's jobs
        row = {"epoch": epoch + 1, "lr": lr, "epoch_seconds": train_seconds,
               "epoch_cpu_seconds": time.process_time() - c0}
        row.update({f"train/{k}": v for k, v in sums.items()})
        if not all(math.isfinite(v) for v in sums.values()):
            fail(f"training diverged at epoch {epoch + 1} (non-finite loss {sums}); "
                 f"try a smaller --lr")
        trained_head = [p.detach().clone() for p in energy_params]
        trained_inv = [p.detach().clone() for p in inv_params]
        with average.swapped_in(), inv_average.swapped_in():
            if prep.val is not None:
                row.update({f"val/{k}": v for k, v in
                            evaluate_physics(model, prep.val[:VAL_PER_EPOCH],
                                             prep.val_dsdt[:VAL_PER_EPOCH], cfg, prep,
                                             length).items()})
            model_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        row["eval_seconds"] = time.perf_counter() - t0 - train_seconds
        rows.append(row)
        atomic_torch_save(run_dir / "checkpoint.pt", {
            "model_kind": MODEL_KIND, "model_config": asdict(mcfg), "model_state": model_state,
            "energy_head_trained": trained_head, "energy_ema_updates": average.updates,
            "invariant_heads_trained": trained_inv, "invariant_ema_updates": inv_average.updates,
            "optimizer_state": opt.state_dict(), "energy_optimizer_state": opt_energy.state_dict(),
            "invariant_optimizer_state": None if opt_inv is None else opt_inv.state_dict(),
            "epoch": epoch + 1, "flags": asdict(cfg), "rng": rng_states(gen, np_rng),
            "metrics": rows, "data": run_info["data"], "statistics": run_info["statistics"]})
        write_metrics(run_dir, rows)
        if bar is not None:
            short = {"loss": row["train/total"], "pred": row["train/prediction"]}
            for key, name in (("train/hamiltonian", "ham"), ("train/energy_conservation", "Econs"),
                              ("val/total", "val")):
                if key in row:
                    short[name] = row[key]
            bar.set_postfix({k: f"{v:.2e}" for k, v in short.items()})
            bar.update(1)
    if bar is not None:
        bar.close()
    if ckpt is not None and start_epoch >= cfg.epochs:
        write_metrics(run_dir, rows)
    with torch.no_grad():                      # the model handed back is the saved one
        for p, a in zip(energy_params + inv_params, average.average + inv_average.average):
            p.copy_(a)
    model.eval()
    return model, rows


def _train_hamiltonian(cfg, prep: Prepared, device, gen, np_rng, run_dir: Path, run_info: dict,
                       ckpt: dict | None):
    """--model hnn|baseline: models/hnn.py trained by models/hnn_training.fit on the
    observed states and their finite-difference derivatives (raw units, as in the paper):
    the paper's architecture (HNNConfig defaults), Adam at --lr, batches of batch_size x window
    random states, as many steps per epoch as PhysicsNet takes.

    fit() runs the whole schedule in one call, so the checkpoint is written at the end; a
    --resume of an unfinished run trains it again from the seed (same result, deterministic).
    """
    from models.hnn import HNNConfig, build_hamiltonian_model
    from models.hnn_training import fit

    N, T, D = prep.train.shape
    pairs = prep.pairs
    q_idx, p_idx = pairs if pairs is not None else (None, None)
    hcfg = HNNConfig(input_dim=D)
    model_config = {"hnn": asdict(hcfg), "q_idx": q_idx, "p_idx": p_idx}
    if ckpt is not None and ckpt["epoch"] >= cfg.epochs and ckpt["model_kind"] == cfg.model:
        model = build_hamiltonian_model(cfg.model, hcfg, q_idx, p_idx).to(device)
        model.load_state_dict(ckpt["model_state"])
        return model.eval(), ckpt["metrics"]
    model = build_hamiltonian_model(cfg.model, hcfg, q_idx, p_idx).to(device)
    steps_per_epoch = math.ceil(N / cfg.batch_size)
    x, dxdt = prep.train.reshape(-1, D), prep.train_dsdt.reshape(-1, D)
    xv = prep.val.reshape(-1, D) if prep.val is not None else None
    dv = prep.val_dsdt.reshape(-1, D) if prep.val is not None else None
    # fit() scores the whole training and validation sets at each log: every epoch would double
    # the cost of a run, so at most 20 logs (metrics.jsonl then has a line every few epochs)
    log_epochs = max(1, cfg.epochs // 20)
    t0 = time.perf_counter()
    history = fit(model, x, dxdt, steps=cfg.epochs * steps_per_epoch,
                  batch_size=cfg.batch_size * min(cfg.window, T), lr=cfg.lr,
                  weight_decay=cfg.weight_decay,
                  generator=gen, x_test=xv, dxdt_test=dv, log_every=steps_per_epoch * log_epochs,
                  progress=not cfg.quiet)
    per_epoch = (time.perf_counter() - t0) / cfg.epochs
    cpu_per_epoch = history.get("cpu_seconds", float("nan")) / cfg.epochs
    rows = []
    previous = 0
    for step, tr, va in zip(history["step"], history["train_loss"], history["test_loss"]):
        if step == 0:
            continue
        epoch = math.ceil(step / steps_per_epoch)
        # seconds of the epochs since the previous line (so that they sum to the run's time)
        row = {"epoch": epoch, "lr": cfg.lr, "epoch_seconds": per_epoch * (epoch - previous),
               "epoch_cpu_seconds": cpu_per_epoch * (epoch - previous),
               "train/derivative_mse": tr, "train/total": tr}
        if va is not None:
            row.update({"val/derivative_mse": va, "val/total": va})
        rows.append(row)
        previous = epoch
    atomic_torch_save(run_dir / "checkpoint.pt", {
        "model_kind": cfg.model, "model_config": model_config, "model_state": model.state_dict(),
        "optimizer_state": None, "epoch": cfg.epochs, "flags": asdict(cfg),
        "rng": rng_states(gen, np_rng), "metrics": rows, "data": run_info["data"],
        "statistics": run_info["statistics"]})
    write_metrics(run_dir, rows)
    return model.eval(), rows


def main(argv: list[str] | None = None) -> None:
    train(parse_flags(argv))


if __name__ == "__main__":
    sys.exit(cli(main)())
