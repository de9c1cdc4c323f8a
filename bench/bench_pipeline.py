"""Wall time of the main job, stage by stage (the README's `make run`), against its target.

    python bench/bench_pipeline.py                      # into a temporary folder
    python bench/bench_pipeline.py --out /tmp/np --systems spring
    python bench/bench_pipeline.py --in-place           # the repo's data/, results/, plots/

Runs the same commands as `make run` (simulate -> train physics-aware and standard -> discover
-> evaluate, on the core systems and the shipped real recordings) and prints the seconds per stage and per command, the total, and its ratio to the
issue's target of 15 minutes for the three core systems on a 2-core CPU. Writes the timings to
<out>/results/bench_pipeline.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils import cli, describe, fail, flag, parse_flags  # noqa: E402

TARGET_SECONDS = 15 * 60
RECORDINGS = ["data/real/real_pendulum.csv", "data/real/real_spring.csv"]


@dataclass
class PipelineFlags:
    """Flags of bench/bench_pipeline.py."""

    systems: list[str] = flag(["projectile", "spring", "orbit"], "built-in systems")
    recordings: list[str] = flag(RECORDINGS, "trajectory files that go through the same stages "
                                             "(make run's RECORDINGS)", nargs="*")
    out: Path | None = flag(None, "work folder (default: a temporary one)")
    in_place: bool = flag(False, "use the repository's own data/, results/ and plots/")


def main(argv=None) -> None:
    args = parse_flags(PipelineFlags, argv, describe(__doc__))
    every = [*args.systems, *args.recordings]
    py = sys.executable
    if args.in_place:
        data, results, plots = ROOT / "data", ROOT / "results", ROOT / "plots"
        dash = ROOT / "dashboard" / "dashboard_data.js"
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
        data, results, plots = out / "data", out / "results", out / "plots"
        dash = out / "dashboard_data.js"
    dirs = ["--data-dir", str(data), "--results-dir", str(results)]
    stages: list[tuple[str, list[list[str]]]] = [
        ("simulate", [[py, "data/simulate.py", "--systems", *args.systems, "--out", str(data)]]),
        ("train", [cmd for s in every for cmd in (
            [py, "train.py", "--system", s, "--tag", "physics-aware", "--quiet", *dirs],
            [py, "train.py", "--system", s, "--energy-weight", "0.0", "--tag", "standard",
             "--quiet", *dirs])]),
        ("discover", [[py, "discover.py", "--system", s, "--quiet", *dirs] for s in every]),
        ("evaluate", [[py, "evaluate.py", "--systems", *every, "--quiet", *dirs,
                       "--plots-dir", str(plots), "--dashboard-file", str(dash)]]),
    ]
    timings, total = [], 0.0
    for stage, commands in stages:
        stage_seconds = 0.0
        for cmd in commands:
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True,
                                  text=True)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
                fail(f"failed: {' '.join(cmd)}")
            label = " ".join(c for c in cmd[1:4])
            timings.append({"stage": stage, "command": " ".join(cmd[1:]), "seconds": seconds})
            print(f"  {stage:<9} {seconds:7.1f}s  {label}", flush=True)
            stage_seconds += seconds
        total += stage_seconds
        print(f"{stage:<9} {stage_seconds:7.1f}s", flush=True)
    report = {"systems": every, "total_seconds": total, "target_seconds": TARGET_SECONDS,
              "ratio_to_target": total / TARGET_SECONDS, "cpus": os.cpu_count(),
              "commands": timings}
    results.mkdir(parents=True, exist_ok=True)
    (results / "bench_pipeline.json").write_text(json.dumps(report, indent=2))
    print(f"total {total:.0f}s = {total / 60:.1f} min; target {TARGET_SECONDS / 60:.0f} min "
          f"(ratio {total / TARGET_SECONDS:.2f}) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(cli(main)())
