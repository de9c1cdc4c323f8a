"""Training speed of the HNN (models/hnn_training.fit) against references timed in the same run.

    python bench/bench_hnn.py                        # spring, pendulum, two-body (~2-4 min)
    python bench/bench_hnn.py --tasks spring --steps 100 --rounds 2
    python bench/bench_hnn.py --full                 # also time one whole protocol run each

Every implementation trains the same HNN (3 layers, 200 tanh units, Adam 1e-3) on the task's
protocol data set with one torch thread (--threads), for a few hundred steps; rounds are interleaved
(ours, paper-style, ours-autograd, naive, ours, ...) so that load from other jobs on a shared
machine hits all of them alike, and the median over rounds is kept. Times per step are
extrapolated to the protocol's step count (2000 / 2000 / 10 000). Implementations:

  ours           fit(engine="auto"): hand-derived gradients of the symplectic-gradient loss
  ours-autograd  fit(engine="autograd"): backward through autograd's double-backward graph
  paper-style    the paper's training loop: every step also evaluates the test loss with a
                 double-backward graph (its time_derivative always builds one) and a fresh
                 random permutation for the minibatch
  naive          per-sample gradients: one autograd.grad call per training point (a few
                 steps only, extrapolated)

Ratios are reference time / ours (higher = ours faster). The issue's reference
implementation took ~43 / 69 / 86 s per HNN on one thread of this machine; those are
printed next to ours for orientation only (other people's jobs change wall times a lot
here, so the in-run ratios are the measurement). Writes results/bench_hnn.json.
"""
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.hnn import HNNConfig, build_hamiltonian_model  # noqa: E402
from experiments.hnn_table import TASKS, make_dataset, task_seeds  # noqa: E402
from models.hnn_training import fit, mse  # noqa: E402
from utils import (RESULTS_DIR, atomic_write_json, cli, describe, environment_info,  # noqa: E402
                   fail, flag, parse_flags, require_known)

ISSUE_REFERENCE_S = {"spring": 43.0, "pendulum": 69.0, "two-body": 86.0}


# Annotations are real types (no `from __future__ import annotations`), so that the
# dataclass also builds when a test loads this file by path, outside sys.modules.
@dataclass
class HNNBenchFlags:
    """Flags of bench/bench_hnn.py."""

    tasks: list[str] = flag(list(TASKS), "tasks to time (experiments/hnn_table.py TASKS)")
    steps: int | None = flag(None, "steps per timing (default 200 full-batch, 500 minibatch)")
    rounds: int = flag(3, "interleaved rounds; the median counts")
    naive_steps: int = flag(2, "steps of the per-sample (naive) reference, extrapolated")
    full: bool = flag(False, "also time one whole protocol run")
    out: Path = flag(RESULTS_DIR / "bench_hnn.json", "where the timings are written")
    threads: int = flag(1, "torch threads for every implementation (the references' times are "
                           "for 1; this machine has 2 cores)")
    quiet: bool = flag(False, "no per-round lines and no table")


def _tensors(task, seed: int = 0):
    data_seed = task_seeds(task.name, seed)[0]
    start = time.perf_counter()
    data = make_dataset(task, np.random.default_rng(data_seed))
    data_s = time.perf_counter() - start
    flat = lambda a: torch.as_tensor(a.reshape(-1, a.shape[-1]), dtype=torch.float32)
    n = task.n_train
    return (flat(data["observed"][:n]), flat(data["dxdt"][:n]), flat(data["observed"][n:]),
            flat(data["dxdt"][n:]), data_s)


def _model(task, dim):
    return build_hamiltonian_model("hnn", HNNConfig(input_dim=dim), list(range(dim // 2)),
                                   list(range(dim // 2, dim)),
                                   generator=torch.Generator().manual_seed(0))


def time_ours(task, tensors, steps: int, engine: str) -> tuple[float, float]:
    x, y, xt, yt, _ = tensors
    model = _model(task, x.shape[1])
    hist = fit(model, x, y, steps=steps, batch_size=task.batch_size,
               weight_decay=task.weight_decay, generator=torch.Generator().manual_seed(0),
               log_every=0, engine=engine)
    return hist["seconds"] / steps, hist["cpu_seconds"] / steps


def time_paper_style(task, tensors, steps: int) -> tuple[float, float]:
    """The paper's loop: train step, then the test loss every step, both through
    time_derivative with a double-backward graph; minibatches by a fresh permutation."""
    x, y, xt, yt, _ = tensors
    model = _model(task, x.shape[1])
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=task.lr, weight_decay=task.weight_decay)
    gen = torch.Generator().manual_seed(0)
    stats = {"train_loss": [], "test_loss": []}
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        if task.batch_size is None:
            xb, yb, xtb, ytb = x, y, xt, yt
        else:
            ix = torch.randperm(x.shape[0], generator=gen)[:task.batch_size]
            itx = torch.randperm(xt.shape[0], generator=gen)[:task.batch_size]
            xb, yb, xtb, ytb = x[ix], y[ix], xt[itx], yt[itx]
        loss = mse(model.time_derivative(xb, create_graph=True), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        test_loss = mse(model.time_derivative(xtb, create_graph=True), ytb)
        stats["train_loss"].append(loss.item())
        stats["test_loss"].append(test_loss.item())
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def time_naive(task, tensors, steps: int) -> tuple[float, float]:
    """One autograd.grad call per training point (full batch or one minibatch per step)."""
    x, y, _, _, _ = tensors
    model = _model(task, x.shape[1])
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=task.lr, weight_decay=task.weight_decay)
    batch = x.shape[0] if task.batch_size is None else task.batch_size
    wall, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        xb, yb = x[:batch], y[:batch]
        preds = []
        for i in range(batch):
            xi = xb[i:i + 1].detach().requires_grad_(True)
            (dH,) = torch.autograd.grad(model(xi).sum(), xi, create_graph=True)
            preds.append(dH @ model.J)
        loss = mse(torch.cat(preds), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def bench_task(name: str, steps: int | None, rounds: int, naive_steps: int, full: bool,
               quiet: bool) -> dict:
    task = TASKS[name]
    steps = steps or (200 if task.batch_size is None else 500)
    tensors = _tensors(task)
    fns = {
        "ours": lambda: time_ours(task, tensors, steps, "auto"),
        "ours-autograd": lambda: time_ours(task, tensors, steps, "autograd"),
        "paper-style": lambda: time_paper_style(task, tensors, steps),
        "naive": lambda: time_naive(task, tensors, naive_steps),
    }
    fns["ours"]()  # warm-up (first-call allocations, lazy init)
    samples = {k: [] for k in fns}
    for r in range(rounds):
        for key, fn in fns.items():
            samples[key].append(fn())
            if not quiet:
                w, c = samples[key][-1]
                print(f"  {name:>9} round {r}: {key:<14} {1e3 * w:8.2f} ms/step wall "
                      f"{1e3 * c:8.2f} ms/step cpu", flush=True)
    per_step = {k: {"wall": statistics.median(w for w, _ in v),
                    "cpu": statistics.median(c for _, c in v)} for k, v in samples.items()}
    protocol = {k: {m: s * task.steps for m, s in v.items()} for k, v in per_step.items()}
    ratios = {k: {m: per_step[k][m] / per_step["ours"][m] for m in ("wall", "cpu")}
              for k in fns if k != "ours"}
    out = {"task": name, "protocol_steps": task.steps, "bench_steps": steps,
           "naive_steps": naive_steps, "rounds": rounds, "data_seconds": tensors[4],
           "per_step_s": per_step, "protocol_s": protocol, "ratio_vs_ours": ratios,
           "issue_reference_s": ISSUE_REFERENCE_S[name]}
    if full:
        wall, cpu = time_ours(task, tensors, task.steps, "auto")
        out["full_run_s"] = {"wall": wall * task.steps, "cpu": cpu * task.steps}
    return out


def main(argv=None) -> dict:
    args = parse_flags(HNNBenchFlags, argv, describe(__doc__))
    require_known(args.tasks, TASKS, "task(s)")
    for name in ("steps", "rounds", "naive_steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    torch.set_num_threads(args.threads)
    results = [bench_task(t, args.steps, args.rounds, args.naive_steps, args.full, args.quiet)
               for t in args.tasks]
    report = {"environment": environment_info(), "torch_threads": args.threads, "tasks": results}
    atomic_write_json(args.out, report)
    if not args.quiet:
        print(f"\n{'task':<9} {'ours s':>8} {'(cpu)':>7} {'autograd':>9} {'paper-style':>12} "
              f"{'naive':>9} {'issue ref':>9}   speed-up vs paper-style / naive (wall, cpu)")
        for r in results:
            p = r["protocol_s"]
            ra = r["ratio_vs_ours"]
            full = f"  full run {r['full_run_s']['wall']:.1f} s" if "full_run_s" in r else ""
            print(f"{r['task']:<9} {p['ours']['wall']:>8.1f} {p['ours']['cpu']:>7.1f} "
                  f"{p['ours-autograd']['wall']:>9.1f} {p['paper-style']['wall']:>12.1f} "
                  f"{p['naive']['wall']:>9.0f} {r['issue_reference_s']:>9.0f}   "
                  f"{ra['paper-style']['wall']:.2f}x / {ra['naive']['wall']:.0f}x "
                  f"({ra['paper-style']['cpu']:.2f}x / {ra['naive']['cpu']:.0f}x){full}")
        print("(seconds extrapolated to the protocol's steps; data set build not included: "
              + ", ".join(f"{r['task']} {r['data_seconds']:.2f} s" for r in results) + ")")
        print(f"-> {args.out}")
    return report


if __name__ == "__main__":
    sys.exit(cli(main)())
