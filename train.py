"""Train PhysicsNet (default), or a Hamiltonian NN / its baseline, on one system's trajectories.

    python train.py --system projectile                          # physics-aware PhysicsNet
    python train.py --system projectile --energy-weight 0.0 --tag standard
    python train.py --system projectile --energy-weight 0.1 --tag physics-aware
    for dim in 4 8 16 32; do python train.py --system spring --latent-dim $dim --tag latent-$dim; done
    python train.py --system orbit --n-invariants 1 --tag inv1   # + a conserved-quantity head
    python train.py --system spring --model hnn                  # or --model baseline
    python train.py --system my_data.csv --epochs 50             # any trajectory file
    python train.py --system orbit --epochs 200 --resume         # continue a run

Each run writes <results-dir>/runs/<data>__<model>__<tag>__s<seed>/ with config.json,
metrics.jsonl (one line per epoch), checkpoint.pt (rebuilds the model with no flags, and
resumes the run; written atomically every epoch) and summary.json. <data> is the system name,
or for a file outside --data-dir its stem plus a short hash of its path (runs.data_key). The
run is written into a staging folder beside it (.<run>.staging-<pid>) that replaces the run
folder only when training has finished: a run that fails or is killed leaves the previous run
folder as it was, and --resume continues a killed (or Ctrl-C'd) run from its staging folder.

This script never reads ground truth: it sees the observed states, times, variable names and
the canonical q/p labels of the file (data/loader.py drops truth_* arrays), nothing else.
Time derivatives come from finite differences of the observed states (data/derivatives.py).
The training itself lives in models/physics_training.py and models/hnn_training.py.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from data.loader import describe_recording, load_trajectories
from models.hnn_training import train_hamiltonian
from models.physics_net import MODEL_KIND
from models.physics_training import evaluate_physics, prepare, train_physics
from runs import data_key, killed_trainings, run_name, staged_run
from utils import (DATA_DIR, RESULTS_DIR, atomic_torch_save, atomic_write_json,
                   atomic_write_text, check_output_dir, cli, describe, environment_info, fail,
                   file_sha256, flag, get_device, parse_flags, read_checkpoint, seed_everything,
                   to_jsonable)

MODELS = (MODEL_KIND, "hnn", "baseline")
# Flags that may differ between a run and its --resume (everything else must match).
RESUME_FREE = {"epochs", "resume", "quiet", "device", "threads", "data_dir", "results_dir"}


@dataclass
class TrainConfig:
    """Every flag of train.py (the command line is generated from it; --beta has the alias
    --energy-weight, and every --dashed-flag also answers to --underscored_flag)."""

    system: str = flag("", "system name (projectile, spring, orbit, pendulum, two-body) or a "
                           "trajectory file path (.npz/.csv)")
    model: str = flag(MODEL_KIND, "model to train: physicsnet, hnn or baseline", choices=MODELS)
    epochs: int = flag(100, "training epochs (one epoch = every training trajectory once)")
    batch_size: int = flag(64, "trajectories per batch (hnn/baseline: batch_size x window "
                               "random states per step, ceil(n_train / batch_size) steps per "
                               "epoch)")
    window: int = flag(8, "PhysicsNet trains on a random window of this many steps per "
                          "trajectory and epoch (clipped to the trajectory length)")
    alpha: float = flag(1.0, "weight of the prediction loss (next state + reconstruction)")
    beta: float = flag(0.5, "weight of ALL energy-head terms (alias --energy-weight); 0 = "
                            "standard model: energy head untrained, rollouts not projected",
                       aliases=["--energy-weight", "--energy_weight"])
    gamma: float = flag(0.1, "weight of the latent smoothness loss (scale-free)")
    hamiltonian_weight: float = flag(1.0, "relative weight, inside the energy terms, of "
                                          "matching the symplectic gradient of E_hat to the "
                                          "observed derivatives (needs canonical q/p labels)")
    conservation_weight: float = flag(0.01, "relative weight, inside the energy terms, of the "
                                            "conservation ratio of E_hat along the training "
                                            "windows (scale-free); large values bend E_hat "
                                            "into a curved function of the energy")
    energy_lr: float = flag(3e-3, "Adam learning rate of the energy head at epoch 0 (it "
                                  "decays with --lr-decay like --lr)")
    energy_steps: int = flag(4, "energy-head Adam steps per batch, each on --energy-batch "
                                "random training states")
    energy_batch: int = flag(256, "states per energy-head step (drawn at random from all "
                                  "training states)")
    energy_ema: float = flag(0.999, "decay of the moving averages of the energy head's and "
                                    "the conserved-quantity heads' weights that are saved and "
                                    "evaluated (0 = the last weights)")
    n_invariants: int | None = flag(None, "extra conserved-quantity heads, independent of "
                                           "E_hat and of each other (default: 1 for data "
                                           "without canonical q/p labels, whose conserved "
                                           "quantities discovery then also distils from the "
                                           "network; 0 with them)")
    invariant_weight: float = flag(1.0, "weight of the conserved-quantity heads' loss")
    invariant_products: float = flag(1.0, "conserved-quantity heads also read the pairwise "
                                          "products of the normalised state variables, times "
                                          "this (0 = the state alone); see "
                                          "models/physics_net.py")
    latent_dim: int = flag(32, "size of the latent z")
    hidden_dim: int = flag(128, "GRU hidden size (PhysicsNet)")
    lr: float = flag(1e-3, "Adam learning rate at epoch 0")
    lr_decay: float = flag(0.955, "learning rate x lr_decay each epoch, down to lr/100 "
                                  "(depends on the epoch only, so --resume with more epochs "
                                  "is exact)")
    weight_decay: float = flag(1e-5, "L2 penalty on all parameters but the energy head's "
                                     "(decay there lowers the head's fidelity to the energy)")
    seed: int = flag(0, "seed of the initialisation, shuffling and windows")
    device: str = flag("auto", "auto (cuda when present), cpu or cuda",
                       choices=("auto", "cpu", "cuda"))
    threads: int = flag(0, "torch CPU threads; 0 = every core this process may use (on a "
                           "machine shared with other jobs, 1 can be much faster)")
    tag: str = flag("default", "run label, part of the run folder name")
    data_dir: str = flag(str(DATA_DIR), "folder of the built-in systems' .npz files")
    results_dir: str = flag(str(RESULTS_DIR), "results folder; runs go to <results-dir>/runs/")
    resume: bool = flag(False, "continue the run from its checkpoint.pt")
    quiet: bool = flag(False, "no progress bar and no config print-out")


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    return parse_flags(TrainConfig, argv, describe(__doc__))


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
    if cfg.n_invariants is not None and cfg.n_invariants < 0:
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
    if cfg.seed < 0:
        fail(f"--seed must be a non-negative integer, got {cfg.seed}")


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
    trained_on = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else {}
    if trained_on.get("sha256") != data_sha:
        fail(f"--resume: the data file {trained_on.get('path')} changed since {path} was "
             "written")


def check_scale(prep, source: str) -> None:
    """The networks compute in float32: states, their rates of change and the energy scale
    (about state x rate) must be representable there, or training ends in overflow."""
    f32 = torch.finfo(torch.float32)
    tensors = [prep.train, prep.train_dsdt, prep.state_std, prep.dsdt_std, prep.step_std]
    if prep.val is not None:
        tensors += [prep.val, prep.val_dsdt]
    finite = all(bool(torch.isfinite(x).all()) for x in tensors)
    if not finite or not (f32.tiny <= prep.energy_scale <= f32.max):
        rate = float(prep.train_dsdt.abs().max()) if finite else float("inf")
        fail(f"{source}: its values and rates of change (up to {rate:.3g} per time unit; "
             f"energy scale {prep.energy_scale:.3g}) do not fit the float32 range the "
             "networks compute in: rescale the data (values and rates of order 1 are best)")


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(run_dir / "metrics.jsonl",
                      "".join(json.dumps(to_jsonable(r)) + "\n" for r in rows))


def train(cfg: TrainConfig) -> tuple[torch.nn.Module, dict]:
    """Train one model; returns (model, stats) where stats is summary.json's content."""
    validate(cfg)
    wall_start = time.perf_counter()
    device = get_device(cfg.device)
    threads = cfg.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    data = load_trajectories(cfg.system, cfg.data_dir)
    if describe_recording(data.meta) and not cfg.quiet:
        print(f"{data.source}: {describe_recording(data.meta)}")
    if cfg.n_invariants is None:
        cfg = replace(cfg, n_invariants=0 if data.canonical_pairs() else 1)
    key = data_key(data.source, cfg.data_dir)
    runs_dir = check_output_dir(Path(cfg.results_dir) / "runs", "--results-dir")
    run_dir = runs_dir / run_name(key, cfg.model, cfg.tag, cfg.seed)
    data_sha = file_sha256(data.source)
    ckpt, resume_from = None, None
    if cfg.resume:
        # a killed (or interrupted) training of this run is what --resume continues first
        resume_from = next(iter(killed_trainings(run_dir)), None) or run_dir
        ckpt_path = resume_from / "checkpoint.pt"
        if not ckpt_path.exists():
            fail(f"--resume: no checkpoint at {ckpt_path} (train without --resume first)")
        ckpt = read_checkpoint(ckpt_path)
        check_resumable(cfg, ckpt, data_sha, ckpt_path)
    if cfg.model == "hnn" and data.canonical_pairs() is None:
        fail(f"--model hnn needs canonical q/p labels, and {data.source} has none")

    np_rng = seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    prep = prepare(data, device)
    check_scale(prep, data.source)
    run_info = {
        "flags": asdict(cfg), "run_dir": str(run_dir), "device": str(device), "threads": threads,
        "environment": environment_info(),
        "data": {"path": str(Path(data.source).resolve()), "sha256": data_sha,
                 "name": key, "names": data.names, "canonical": data.canonical,
                 "n_traj": data.n_traj, "steps": int(data.states.shape[1]), "dim": data.dim,
                 "n_train": int(prep.train.shape[0]),
                 "n_val": 0 if prep.val is None else int(prep.val.shape[0]),
                 "recording": data.meta.get("recording")},
        "statistics": {"state_mean": prep.state_mean.tolist(), "state_std": prep.state_std.tolist(),
                       "step_std": prep.step_std.tolist(), "dsdt_std": prep.dsdt_std.tolist(),
                       "energy_scale": prep.energy_scale},
    }
    with staged_run(run_dir, resume_from) as stage:
        if not cfg.quiet:
            print("train.py " + json.dumps(to_jsonable({**asdict(cfg), "run_dir": str(run_dir),
                                                        "staging": str(stage),
                                                        "device": str(device),
                                                        "threads": threads})))
        if ckpt is not None and ckpt.get("epoch", 0) < cfg.epochs:
            # what discover.py found is about the model before this resume
            (stage / "discovered.json").unlink(missing_ok=True)
        atomic_write_json(stage / "config.json", run_info)

        def save(checkpoint: dict | None, rows: list[dict]) -> None:
            if checkpoint is not None:
                atomic_torch_save(stage / "checkpoint.pt",
                                  {**checkpoint, "data": run_info["data"],
                                   "statistics": run_info["statistics"]})
            write_metrics(stage, rows)

        if cfg.model == MODEL_KIND:
            model, rows = train_physics(cfg, prep, device, gen, np_rng, ckpt, save, run_dir.name)
            full_val = ({} if prep.val is None else
                        evaluate_physics(model, prep.val, prep.val_dsdt, cfg, prep, None))
        else:
            model, rows = train_hamiltonian(cfg, prep, device, gen, np_rng, ckpt, save)
            full_val = {}
        stats = summary(cfg, key, model, rows, full_val, device, threads, run_dir,
                        time.perf_counter() - wall_start)
        atomic_write_json(stage / "summary.json", stats)
    print_summary(run_dir, stats)
    return model, stats


def summary(cfg: TrainConfig, name: str, model, rows: list[dict], full_val: dict, device,
            threads: int, run_dir: Path, wall_seconds: float) -> dict:
    """summary.json: the last epoch's losses, whole-set validation, times."""
    last = rows[-1] if rows else {}
    epoch_seconds = [r["epoch_seconds"] for r in rows if r.get("epoch_seconds") is not None]
    epoch_cpu = [r["epoch_cpu_seconds"] for r in rows if r.get("epoch_cpu_seconds") is not None]
    return {
        "system": name, "model": cfg.model, "tag": cfg.tag, "seed": cfg.seed,
        "epochs": int(last.get("epoch", 0)), "device": str(device), "threads": threads,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final": {k: v for k, v in last.items() if "/" in k},
        "val_whole_trajectories": full_val,
        "train_seconds": float(sum(epoch_seconds)),
        "seconds_per_epoch": float(sum(epoch_seconds)) / last["epoch"] if epoch_seconds else None,
        "train_cpu_seconds": float(sum(epoch_cpu)),
        "cpu_seconds_per_epoch": float(sum(epoch_cpu)) / last["epoch"] if epoch_cpu else None,
        "wall_seconds": wall_seconds,
        "run_dir": str(run_dir),
    }


def print_summary(run_dir: Path, stats: dict) -> None:
    final = stats["final"]
    val = final.get("val/total")
    cpu = stats["cpu_seconds_per_epoch"]
    print(f"{run_dir.name}: {stats['epochs']} epochs, {stats['parameters']} parameters, "
          f"{stats['train_seconds']:.1f}s training ({stats['seconds_per_epoch'] or 0:.2f}s/epoch"
          + (f", {cpu:.2f} CPU s/epoch" if cpu is not None else "") + "), train loss "
          f"{final.get('train/total', float('nan')):.3g}"
          + (f", val loss {val:.3g}" if val is not None else "") + f" -> {run_dir}")


def main(argv: list[str] | None = None) -> None:
    train(parse_config(argv))


if __name__ == "__main__":
    sys.exit(cli(main)())
