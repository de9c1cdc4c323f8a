"""Training speed of the pixel pendulum's models (experiments/pixel_pendulum.py) on this CPU,
against a reference timed in the same run.

    python bench/bench_pixel.py                          # ~1-2 min on one thread
    python bench/bench_pixel.py --steps 50 --rounds 2

Every implementation trains on the same rendered data set (the experiment's defaults: 160
training trajectories of 100 frames, minibatches of 200 transitions) with one torch thread
(--threads), for --steps steps; rounds are interleaved (autoencoder, baseline, hnn, ...,
autoencoder, ...) so that load from other jobs on a shared machine hits all of them alike, and
the median over rounds is kept. Implementations:

  autoencoder  the reference: the same autoencoder on the same minibatches, pixel
               reconstruction loss only (no latent dynamics, no auxiliary loss)
  baseline     models/pixel_training.fit_pixel with the baseline MLP for the latent field,
               the loss stepping it one frame by Euler (the paper's loss)
  hnn          the same with the HNN (its gradient field needs the double-backward graph)
  baseline+rk4, hnn+rk4
               the same with one RK4 step in the loss (four field evaluations)

Ratios are model time / autoencoder time (the cost of the latent dynamics). Times per step are
also given per epoch (all training transitions once) and extrapolated to the experiment's
step count. Rendering the data set is timed once. Writes results/bench_pixel.json.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.pixel_pendulum import (MODELS, TASK, PixelSettings,  # noqa: E402
                                        frame_tensor, make_dataset, model_config)
from experiments.hnn_table import task_seeds  # noqa: E402
from models.pixel_training import adamw  # noqa: E402
from models.pixel_hnn import PixelDynamicsAE  # noqa: E402
from models.pixel_training import (fit_pixel, pair_inputs, reconstruction_loss,  # noqa: E402
                                   transition_index)
from utils import RESULTS_DIR, atomic_write_json, cli, environment_info, fail  # noqa: E402


def _model(settings: PixelSettings, kind: str, frames: torch.Tensor) -> PixelDynamicsAE:
    model = PixelDynamicsAE(model_config(settings, kind),
                            generator=torch.Generator().manual_seed(0))
    model.set_pixel_scale(frames)
    return model


def time_autoencoder(settings: PixelSettings, frames: torch.Tensor, steps: int
                     ) -> tuple[float, float]:
    """The reference: reconstruction-only training steps on the same kind of minibatches."""
    model = _model(settings, "baseline", frames)
    opt = adamw(list(model.encoder.parameters()) + list(model.decoder.parameters()),
               lr=settings.lr, weight_decay=settings.weight_decay)
    seq, t = transition_index(frames.shape[0], frames.shape[1])
    gen = torch.Generator().manual_seed(0)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        idx = torch.randperm(len(seq), generator=gen)[:settings.batch_size]
        x, x_next = pair_inputs(frames, seq[idx], t[idx])
        both = torch.cat([x, x_next])
        opt.zero_grad(set_to_none=True)
        reconstruction_loss(model.decode(model.encode(both)), both).backward()
        opt.step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def time_model(settings: PixelSettings, frames: torch.Tensor, steps: int, kind: str
               ) -> tuple[float, float]:
    hist = fit_pixel(_model(settings, kind, frames), frames, steps=steps,
                     batch_size=settings.batch_size, lr=settings.lr, weight_decay=settings.weight_decay,
                     generator=torch.Generator().manual_seed(0), log_every=0)
    # fit_pixel's seconds leave out its logging; its final log is after the timed loop
    return hist["seconds"] / steps, hist["cpu_seconds"] / steps


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100, help="steps per timing")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "bench_pixel.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (this machine has 2 "
                                                           "cores, shared)")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if min(args.steps, args.rounds, args.threads) < 1:
        fail("--steps, --rounds and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    settings = PixelSettings()
    start = time.perf_counter()
    data = make_dataset(settings, np.random.default_rng(task_seeds(TASK, 0)[0]))
    render_s = time.perf_counter() - start
    frames = frame_tensor(data["frames"][:settings.n_train], torch.device("cpu"))
    fns = {"autoencoder": lambda: time_autoencoder(settings, frames, args.steps),
           **{kind: partial(time_model, settings, frames, args.steps, kind) for kind in MODELS}}
    time_model(settings, frames, 5, "hnn")        # warm-up (first-call allocations)
    samples = {k: [] for k in fns}
    for r in range(args.rounds):
        for key, fn in fns.items():
            samples[key].append(fn())
            if not args.quiet:
                w, c = samples[key][-1]
                print(f"  round {r}: {key:<12} {1e3 * w:8.2f} ms/step wall {1e3 * c:8.2f} "
                      f"ms/step cpu", flush=True)
    per_step = {k: {"wall": statistics.median(w for w, _ in v),
                    "cpu": statistics.median(c for _, c in v)} for k, v in samples.items()}
    n_transitions = settings.n_train * (settings.frames - 2)
    steps_per_epoch = math.ceil(n_transitions / settings.batch_size)
    report = {
        "environment": environment_info(), "torch_threads": args.threads,
        "settings": {"n_train": settings.n_train, "frames": settings.frames,
                     "batch_size": settings.batch_size, "steps": settings.steps,
                     "hidden_dim": settings.hidden_dim},
        "bench_steps": args.steps, "rounds": args.rounds,
        "render_seconds": render_s, "frames_rendered": settings.n_traj * settings.frames,
        "steps_per_epoch": steps_per_epoch,
        "per_step_s": per_step,
        "per_epoch_s": {k: {m: s * steps_per_epoch for m, s in v.items()}
                        for k, v in per_step.items()},
        "run_s": {k: {m: s * settings.steps for m, s in v.items()} for k, v in per_step.items()},
        "ratio_vs_autoencoder": {k: {m: per_step[k][m] / per_step["autoencoder"][m]
                                     for m in ("wall", "cpu")} for k in fns},
    }
    atomic_write_json(args.out, report)
    if not args.quiet:
        print(f"\n{'model':<12} {'ms/step':>8} {'(cpu)':>7} {'s/epoch':>8} "
              f"{f's/{settings.steps} steps':>15} {'x autoencoder (wall, cpu)':>26}")
        for k in fns:
            ra = report["ratio_vs_autoencoder"][k]
            print(f"{k:<12} {1e3 * per_step[k]['wall']:>8.1f} {1e3 * per_step[k]['cpu']:>7.1f} "
                  f"{report['per_epoch_s'][k]['wall']:>8.2f} "
                  f"{report['run_s'][k]['wall']:>15.0f} "
                  f"{ra['wall']:>13.2f}x, {ra['cpu']:.2f}x")
        print(f"(an epoch = {steps_per_epoch} steps of {settings.batch_size} transitions; "
              f"rendering {report['frames_rendered']} frames took {render_s:.1f} s)")
        print(f"-> {args.out}")
    return report


if __name__ == "__main__":
    sys.exit(cli(main)())
