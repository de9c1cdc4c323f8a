"""Training benchmark: time, and what the trained heads learned, checked against ground truth.

    python bench/bench_train.py                                  # train + measure 3 core systems
    python bench/bench_train.py --systems spring --epochs 20     # quicker
    python bench/bench_train.py --no-train                       # measure existing runs only
    python bench/bench_train.py --systems orbit --invariants     # + orbit --n-invariants 1 run

Test-side: this script reads truth_* arrays and imports data/simulate.py (to evaluate the true
energy of rolled-out states); train.py and models/ never do. For each system it trains (or
loads) a physics-aware run (default flags, tag physics-aware) and a standard one
(--energy-weight 0.0, tag standard), then reports on the held-out test split:
  * affine R^2 of E_hat against the true energy (best a*E + b);
  * energy drift of rollouts, |E(t) - E(0)| / |E(0)| with the true E averaged over time and
    trajectories, from a prefix of `--prefix` observed steps to the end of the trajectory:
    the standard model unprojected, the physics-aware one projected onto E_hat's level set;
  * with --invariants: for the extra head of an orbit run with --n-invariants 1, the R^2 of a
    cubic polynomial in the true L fitted to the head's per-trajectory means, the same in E
    (should be low), the R^2 of any function of L (means within 40 quantile bins of L) over
    every held-out state (and of a quintic in L), and the within/between conservation ratio of the head.
Results go to <results-dir>/bench_train.json.
"""
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.loader import load_trajectories  # noqa: E402
from data.simulate import SYSTEMS  # noqa: E402  (test-side only)
from runs import load_model, run_name  # noqa: E402
from utils import (RESULTS_DIR, atomic_write_json, cli, describe, fail, flag,  # noqa: E402
                   parse_flags, require_at_least, require_known)


# Annotations are real types (no `from __future__ import annotations`), so that the
# dataclass also builds when a test loads this file by path, outside sys.modules.
@dataclass
class TrainBenchFlags:
    """Flags of bench/bench_train.py."""

    systems: list[str] = flag(["projectile", "spring", "orbit"],
                              "systems to train and measure (built-in, with a true energy E)")
    epochs: int = flag(100, "train.py --epochs")
    prefix: int = flag(10, "observed steps before a rollout")
    no_train: bool = flag(False, "measure existing runs only")
    invariants: bool = flag(False, "also train/measure --n-invariants 1 runs (tag inv1)")
    threads: int = flag(0, "train.py --threads")
    extra: str = flag("", "extra train.py flags for every run, one string")
    results_dir: Path = flag(RESULTS_DIR, "results folder: runs/ and bench_train.json")


def affine_r2(pred: np.ndarray, truth: np.ndarray) -> float:
    """R^2 of the best a*truth + b fit to pred (both flat)."""
    A = np.stack([truth, np.ones_like(truth)], 1)
    coef, *_ = np.linalg.lstsq(A, pred, rcond=None)
    resid = pred - A @ coef
    return float(1 - resid.var() / pred.var())


def poly_r2(y: np.ndarray, x: np.ndarray, degree: int = 3) -> float:
    """R^2 of a polynomial of degree `degree` in x fitted to y (both (n,))."""
    xs = (x - x.mean()) / x.std()
    A = np.stack([xs ** k for k in range(degree + 1)], 1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(1 - (y - A @ coef).var() / y.var())


def binned_r2(y: np.ndarray, x: np.ndarray, bins: int = 40) -> float:
    """R^2 of y explained by the mean of y within quantile bins of x: any function of x
    (not only a polynomial) scores near 1."""
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    means = np.array([y[which == b].mean() if (which == b).any() else 0.0 for b in range(bins)])
    return float(1 - (y - means[which]).var() / y.var())


def true_energy(system: str, states: np.ndarray, params: dict) -> np.ndarray:
    return SYSTEMS[system].invariant_fn("E", params)(states)


@torch.no_grad()
def measure(system: str, run_dir: Path, data, prefix: int, project: bool) -> dict:
    model, ckpt = load_model(run_dir)
    test = data.subset("test")
    states = torch.as_tensor(test.states, dtype=torch.float32)
    E_true = test.truth["invariants"][..., 0]
    E_hat = model.energy(states).numpy()
    out = {"run": str(run_dir), "energy_r2_test": affine_r2(E_hat.ravel(), E_true.ravel()),
           "energy_slope": float(np.polyfit(E_true.ravel(), E_hat.ravel(), 1)[0])}
    t0 = time.perf_counter()
    roll = model.rollout(states[:, :prefix], states.shape[1] - prefix, project=project).numpy()
    out["rollout_seconds"] = time.perf_counter() - t0
    params = data.truth["meta"]["params"]
    E_roll = true_energy(system, roll.astype(np.float64), params)
    E0 = true_energy(system, test.states[:, :1], params)
    drift = np.abs(E_roll[:, prefix:] - E0) / np.abs(E0)
    out.update(rollout_drift=float(drift.mean()), rollout_drift_median_traj=float(
        np.median(drift.mean(1))), rollout_state_rmse=float(np.sqrt(
            ((roll[:, prefix:] - test.states[:, prefix:]) ** 2).mean())), projected=project)
    summary = json.loads((run_dir / "summary.json").read_text())
    out.update(train_seconds=summary["train_seconds"], seconds_per_epoch=summary[
        "seconds_per_epoch"], parameters=summary["parameters"], epochs=summary["epochs"],
        train_cpu_seconds=summary.get("train_cpu_seconds"))
    if model.config.n_invariants:
        inv = model.invariants(states).numpy()                 # (N, T, K)
        names = list(test.truth["invariant_names"])
        truth = {n: test.truth["invariants"][..., i] for i, n in enumerate(names)}
        heads = []
        for k in range(inv.shape[-1]):
            h = inv[..., k]
            means = h.mean(1)
            ratio = float(h.var(1).mean() / means.var())
            # functional independence from E_hat: the angle between the two gradients
            flat = states.reshape(-1, states.shape[-1])[::7]
            with torch.enable_grad():
                x = flat.clone().requires_grad_(True)
                (gE,) = torch.autograd.grad(model.energy(x).sum(), x)
                x = flat.clone().requires_grad_(True)
                (gI,) = torch.autograd.grad(model.invariants(x)[:, k].sum(), x)
            cos = (torch.nn.functional.cosine_similarity(gE, gI, dim=-1).abs()).numpy()
            heads.append({"head": k, "conservation_ratio": ratio,
                          "median_abs_cos_grad_vs_energy": float(np.median(cos)),
                          **{f"cubic_r2_vs_{n}": poly_r2(means, v.mean(1)) for n, v in
                             truth.items() if np.isfinite(v).all()},
                          **{f"binned_r2_vs_{n}": binned_r2(means, v.mean(1)) for n, v in
                             truth.items() if np.isfinite(v).all()},
                          # every state, not trajectory means: the head's wobble along a
                          # trajectory counts against it (40 quantile bins of the truth, ~5
                          # trajectories each, as the truth is constant along one)
                          **{f"pointwise_binned_r2_vs_{n}": binned_r2(h.ravel(), v.ravel(), 40)
                             for n, v in truth.items() if np.isfinite(v).all()},
                          **{f"pointwise_quintic_r2_vs_{n}": poly_r2(h.ravel(), v.ravel(), 5)
                             for n, v in truth.items() if np.isfinite(v).all()}})
        out["invariant_heads"] = heads
    return out


def main(argv=None) -> None:
    args = parse_flags(TrainBenchFlags, argv, describe(__doc__))
    require_known(args.systems, SYSTEMS, "system(s)")
    no_energy = [s for s in args.systems if "E" not in SYSTEMS[s].invariants]
    if no_energy:
        fail(f"systems without a true energy E cannot be measured: {no_energy}")
    require_at_least(args, 1, "epochs", "prefix")
    require_at_least(args, 0, "threads")
    try:
        extra = shlex.split(args.extra)
    except ValueError as err:
        fail(f"--extra cannot be split into flags ({err})")
    import train as train_script

    variants = [("physics-aware", []), ("standard", ["--energy-weight", "0.0"])]
    if args.invariants:
        variants.append(("inv1", ["--n-invariants", "1"]))
    report = {}
    for system in args.systems:
        data = load_trajectories(system, with_truth=True)
        if args.prefix >= data.states.shape[1]:
            fail(f"--prefix {args.prefix} leaves nothing to roll out: {system} trajectories "
                 f"have {data.states.shape[1]} steps")
        report[system] = {}
        for tag, flags in variants:
            run_dir = Path(args.results_dir) / "runs" / run_name(system, "physicsnet", tag, 0)
            if not args.no_train:
                cfg = train_script.parse_config(
                    ["--system", system, "--tag", tag, "--epochs", str(args.epochs), "--quiet",
                     "--results-dir", str(args.results_dir), "--threads", str(args.threads),
                     *flags, *extra])
                train_script.train(cfg)
            if not (run_dir / "checkpoint.pt").exists():
                print(f"{system:>10} {tag:>13}: no run in {run_dir}", flush=True)
                continue
            res = measure(system, run_dir, data, args.prefix, project=tag != "standard")
            report[system][tag] = res
            print(f"{system:>10} {tag:>13}: E_hat R2(test) {res['energy_r2_test']:.7f} (1-R2 {1 - res['energy_r2_test']:.1e})  "
                  f"drift {res['rollout_drift']:.2e}  state rmse {res['rollout_state_rmse']:.2e}  "
                  f"{res['train_seconds']:.0f}s ({res['seconds_per_epoch']:.2f}s/epoch; "
                  f"{res['train_cpu_seconds'] or float('nan'):.0f} CPU s)"
                  + (f"  heads {res['invariant_heads']}" if "invariant_heads" in res else ""),
                  flush=True)
        std, phys = report[system].get("standard"), report[system].get("physics-aware")
        if std and phys:
            report[system]["drift_ratio_standard_over_physics"] = (
                std["rollout_drift"] / max(phys["rollout_drift"], 1e-300))
            print(f"{system:>10} drift standard / physics-aware = "
                  f"{report[system]['drift_ratio_standard_over_physics']:.1f}", flush=True)
    atomic_write_json(Path(args.results_dir) / "bench_train.json", report)


if __name__ == "__main__":
    sys.exit(cli(main)())
