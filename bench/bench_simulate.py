"""Benchmark: one stacked RK45 solve per system against a one-trajectory-at-a-time loop.

    python bench/bench_simulate.py                                # 5 systems x 2000, loop timed on 200
    python bench/bench_simulate.py --systems orbit --loop-n 2000  # time the whole loop (~1 min)
    python bench/bench_simulate.py --n-traj 200 --loop-n 20 --json results/bench_simulate.json

Both ways solve the same initial states (data/simulate.py's sampler with --seed) with the same
RK45 tolerances. The stacked time includes the per-trajectory re-solve of any trajectory whose
invariants drift more than 1e-8, and is the best of --repeat runs (the machine may be shared).
The loop is timed once on the first --loop-n trajectories and extrapolated linearly to
--n-traj: loop seconds = (measured seconds / loop-n) * n-traj. Drifts are max_t |I(t) - I(0)| /
|I(0)| over every trajectory and every checked invariant (E; and L for orbit and two-body).
Targets: speed-up >= 50x on every system, all systems stacked in under 10 s.
"""
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.simulate import SYSTEMS, integrate, relative_drift  # noqa: E402
from utils import (atomic_write_json, cli, describe, environment_info, fail, flag,  # noqa: E402
                   parse_flags, require_at_least, require_known)

BENCH_SYSTEMS = ("projectile", "spring", "orbit", "pendulum", "two-body")
TARGET_SPEEDUP = 50.0
TARGET_STACKED_TOTAL_S = 10.0


# Annotations are real types (no `from __future__ import annotations`), so that the
# dataclass also builds when a test loads this file by path, outside sys.modules.
@dataclass
class SimulateBenchFlags:
    """Flags of bench/bench_simulate.py."""

    systems: list[str] = flag(list(BENCH_SYSTEMS),
                              f"systems to time (known: {', '.join(SYSTEMS)})")
    n_traj: int = flag(2000, "trajectories per system")
    loop_n: int = flag(200, "trajectories timed one at a time; the loop time is extrapolated "
                            "linearly to --n-traj")
    repeat: int = flag(3, "stacked runs; the best one counts")
    seed: int = flag(0, "seed of the sampled initial states")
    json: Path | None = flag(None, "also write the numbers here")


def worst_drift(system, states: np.ndarray) -> tuple[float, str]:
    """Largest relative drift over trajectories and checked invariants, and its invariant."""
    drift = {k: float(v.max()) for k, v in relative_drift(system, states).items()}
    name = max(drift, key=drift.get)
    return drift[name], name


def bench_system(name: str, n_traj: int, loop_n: int, repeat: int, seed: int) -> dict:
    """Time the stacked solve (best of `repeat`) and the loop on the first `loop_n` trajectories."""
    system = SYSTEMS[name]
    x0 = system.sample(np.random.default_rng(seed), n_traj, system.params)  # (n_traj, D)
    t = np.linspace(0.0, system.t_end, system.steps)
    stacked_times = []
    for _ in range(repeat):
        start = time.perf_counter()
        stacked, info = integrate(system, x0, t, stacked=True)
        stacked_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    looped, _ = integrate(system, x0[:loop_n], t, stacked=False)
    loop_measured = time.perf_counter() - start
    loop_s = loop_measured / loop_n * n_traj
    stacked_s = min(stacked_times)
    drift_stacked, inv_stacked = worst_drift(system, stacked)
    drift_loop, inv_loop = worst_drift(system, looped)
    return {"system": name, "n_traj": n_traj, "loop_n": loop_n, "stacked_s": stacked_s,
            "stacked_runs_s": stacked_times, "loop_measured_s": loop_measured, "loop_s": loop_s,
            "speedup": loop_s / stacked_s, "resolved": info["resolved"],
            "drift_stacked": drift_stacked, "drift_stacked_invariant": inv_stacked,
            "drift_loop": drift_loop, "drift_loop_invariant": inv_loop,
            "max_abs_diff": float(np.abs(stacked[:loop_n] - looped).max())}


def main(argv=None) -> None:
    args = parse_flags(SimulateBenchFlags, argv, describe(__doc__))
    require_known(args.systems, SYSTEMS, "system(s)")
    require_at_least(args, 1, "n_traj", "loop_n", "repeat")
    require_at_least(args, 0, "seed")
    if args.loop_n > args.n_traj:
        fail(f"need --loop-n <= --n-traj, got --loop-n {args.loop_n}, --n-traj {args.n_traj}")
    print(f"stacked: one RK45 solve of all {args.n_traj} trajectories (+ re-solve of any that "
          f"drift > 1e-8), best of {args.repeat} runs")
    extrapolated = "" if args.loop_n == args.n_traj else \
        f", timed on {args.loop_n} and extrapolated linearly (x{args.n_traj / args.loop_n:g})"
    print(f"loop:    integrate(..., stacked=False), one solve per trajectory{extrapolated}")
    header = (f"{'system':>11} {'n':>5} {'stacked s':>10} {'loop s':>9} {'speed-up':>9} "
              f"{'drift stacked':>14} {'drift loop':>11} {'re-solved':>9}")
    print(header)
    print("-" * len(header))
    rows = []
    for name in args.systems:
        r = bench_system(name, args.n_traj, args.loop_n, args.repeat, args.seed)
        rows.append(r)
        print(f"{name:>11} {r['n_traj']:>5} {r['stacked_s']:>10.3f} {r['loop_s']:>9.2f} "
              f"{r['speedup']:>8.0f}x {r['drift_stacked']:>9.1e} ({r['drift_stacked_invariant']}) "
              f"{r['drift_loop']:>7.1e} ({r['drift_loop_invariant']}) {r['resolved']:>6}",
              flush=True)
    total = sum(r["stacked_s"] for r in rows)
    slowest = min(rows, key=lambda r: r["speedup"])
    print(f"stacked total {total:.2f} s for {len(rows)} systems x {args.n_traj} trajectories "
          f"(target < {TARGET_STACKED_TOTAL_S:g} s: {'met' if total < TARGET_STACKED_TOTAL_S else 'MISSED'}); "
          f"smallest speed-up {slowest['speedup']:.0f}x on {slowest['system']} "
          f"(target >= {TARGET_SPEEDUP:g}x: {'met' if slowest['speedup'] >= TARGET_SPEEDUP else 'MISSED'})")
    if args.json is not None:
        atomic_write_json(args.json, {"flags": asdict(args), "environment": environment_info(),
                                      "stacked_total_s": total, "systems": rows})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(cli(main)())
