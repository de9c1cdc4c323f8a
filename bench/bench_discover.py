"""Discovery benchmark (issue #16): each benchmark system through the user-data path, scored.

    python bench/bench_discover.py                                  # every system, noise 0 and 0.01
    python bench/bench_discover.py --systems quartic toda --noise 0
    python bench/bench_discover.py --train-flags "--epochs 5" --discover-flags "--backend sparse"
    python bench/bench_discover.py --jobs 2 --results-dir /tmp/bench
    python bench/bench_discover.py --score-only          # score the last run's entries again

For each system (data/benchmark_systems.py) and noise level, exactly as a user would:
`data/simulate.py` writes <results-dir>/bench_discover/data/<system>[-noise0.01].npz (1000
trajectories), then `train.py --system FILE` and `discover.py --system FILE` run at their
default flags (plus --quiet, --threads 1 and a results folder of their own; --train-flags and
--discover-flags are appended for quick runs), each timed. evaluation/benchmark.py scores the
discovered entry against the file's ground truth (true count, found count, spanned, structure,
false laws, approximate laws listed). Prints the table and writes
<results-dir>/bench_discover.json, atomically, after every finished row. A command that fails
or times out is a row marked failed with its error line; the benchmark goes on.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.loader import BENCHMARK_SYSTEMS  # noqa: E402
from evaluation.benchmark import score_file  # noqa: E402
from runs import data_key  # noqa: E402
from utils import (DATA_DIR, RESULTS_DIR, ROOT, atomic_write_json, cli, describe, environment_info,  # noqa: E402
                   fail, flag, parse_flags, read_json, require_known)

NOISE_LEVELS = (0.0, 0.01)
# One thread everywhere: the benchmark's times are per system on a shared 2-core machine.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class BenchFlags:
    """Flags of bench/bench_discover.py."""

    systems: list[str] = flag(list(BENCHMARK_SYSTEMS), "benchmark systems to run")
    noise: list[float] = flag(list(NOISE_LEVELS), "observation noise levels (0, 0.01 or both)")
    n_traj: int = flag(1000, "trajectories per simulated file")
    seed: int = flag(0, "seed of the simulation")
    train_flags: str = flag("", "extra flags appended to every train.py command (quick runs; "
                                "one flag alone is written --train-flags=--flag)")
    discover_flags: str = flag("", "extra flags appended to every discover.py command")
    jobs: int = flag(1, "systems run at the same time")
    timeout: float = flag(1800.0, "seconds one command may take before its row is failed")
    rediscover: bool = flag(False, "run only discover.py again, on the data and trained runs "
                                   "already in the work folder (after a change to discovery; "
                                   "simulate and train times kept from the last "
                                   "bench_discover.json)")
    score_only: bool = flag(False, "run nothing: score again the data and discovered entries "
                                   "already in the work folder (times kept from the last "
                                   "bench_discover.json)")
    code: Path = flag(ROOT, "repository whose train.py and discover.py run (e.g. a worktree "
                            "of an earlier commit, for a before/after table); simulation and "
                            "scoring always use this one")
    results_dir: Path = flag(RESULTS_DIR, "results folder: bench_discover.json, and the work "
                                          "folder bench_discover/ (data, runs)")
    quiet: bool = flag(False, "no progress bar and no table")


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _run(cmd: list[str], timeout: float, cwd: Path = ROOT) -> tuple[float, str | None]:
    """Run one command from a repository root; (wall seconds, error line or None)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **SINGLE_THREAD_ENV},
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, f"timed out after {timeout:g}s"
    seconds = time.perf_counter() - start
    return seconds, (None if proc.returncode == 0 else _error_line(proc))


def run_one(name: str, noise: float, args: BenchFlags, previous: dict | None = None) -> dict:
    """Simulate, train, discover and score one system at one noise level -> its row
    (with score_only: score what is there, keeping the `previous` row's times)."""
    py = sys.executable
    work = Path(args.results_dir).resolve() / "bench_discover"   # commands may run elsewhere
    stem = f"{name}-noise{noise:g}" if noise > 0 else name
    data_file = work / "data" / f"{stem}.npz"
    job_dir = work / stem
    own = ["--quiet", "--threads", "1", "--results-dir", str(job_dir)]
    commands = {
        "simulate": [py, "data/simulate.py", "--systems", name, "--n-traj", str(args.n_traj),
                     "--noise", f"{noise:g}", "--seed", str(args.seed), "--out",
                     str(work / "data"), "--quiet"],
        "train": [py, "train.py", "--system", str(data_file), *own,
                  *shlex.split(args.train_flags)],
        "discover": [py, "discover.py", "--system", str(data_file), *own,
                     *shlex.split(args.discover_flags)],
    }
    row = {"system": name, "noise": noise, "file": str(data_file), "failed": False,
           "error": None, "right": False, "true_count": None, "found_count": None,
           "spanned": None, "structure": None, "energy_exact": None, "false_laws": None,
           "approximate": None, "laws": [], "approximate_laws": [],
           "commands": {k: " ".join(shlex.quote(c) for c in v[1:]) for k, v in commands.items()}}
    if args.score_only:
        row.update({k: (previous or {}).get(k) for k in ("simulate_s", "train_s",
                                                          "discover_s")})
    elif args.rediscover:
        row.update({k: (previous or {}).get(k) for k in ("simulate_s", "train_s")})
        if not data_file.is_file() or not (job_dir / "runs").is_dir():
            row.update(failed=True, error="rediscover: no data or trained run in the work "
                                          "folder (run without --rediscover first)")
            return row
        (job_dir / "discovered_equations.json").unlink(missing_ok=True)
        seconds, error = _run(commands["discover"], args.timeout, Path(args.code))
        row["discover_s"] = round(seconds, 1)
        if error:
            row.update(failed=True, error=f"discover: {error}")
            return row
    else:
        shutil.rmtree(job_dir, ignore_errors=True)   # no stale run or entry can be scored
        for stage, cmd in commands.items():
            seconds, error = _run(cmd, args.timeout,
                                  ROOT if stage == "simulate" else Path(args.code))
            row[f"{stage}_s"] = round(seconds, 1)
            if error:
                row.update(failed=True, error=f"{stage}: {error}")
                return row
    try:
        key = data_key(data_file, DATA_DIR)        # the name discover.py files it under
        entries = read_json(job_dir / "discovered_equations.json", {}) or {}
        # earlier versions filed entries under the file's stem
        entry = entries.get(key, entries.get(data_file.stem))
        if entry is None:
            raise ValueError(f"discover.py wrote no entry '{key}'")
        score = score_file(entry, data_file)
    except Exception as err:  # a scoring failure is one failed row, never the whole run
        row.update(failed=True, error=f"score: {type(err).__name__}: {err}")
        return row
    row.update({k: score[k] for k in ("true_count", "found_count", "spanned", "structure",
                                      "energy_exact", "false_laws", "right")})
    row["approximate"] = len(score["approximate"])
    row["laws"], row["approximate_laws"] = score["laws"], score["approximate"]
    row["unspanned"] = score["unspanned"]
    row["discover_reported_s"] = entry.get("seconds")
    if score["error"]:
        row.update(failed=True, error=f"score: {score['error']}")
    return row


def _yes(value) -> str:
    return "-" if value is None else ("yes" if value else "no")


COLUMNS = ("system", "noise", "true", "found", "spanned", "structure", "false", "approx",
           "train s", "discover s", "right")


def table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        verdict = f"FAILED ({r['error']})" if r["failed"] else _yes(r["right"])
        out.append([r["system"], f"{r['noise']:g}", str(r["true_count"] if r["true_count"]
                                                        is not None else "-"),
                    str(r["found_count"] if r["found_count"] is not None else "-"),
                    _yes(r["spanned"]), _yes(r["structure"]),
                    "-" if r["false_laws"] is None else str(r["false_laws"]),
                    "-" if r["approximate"] is None else str(r["approximate"]),
                    f"{r['train_s']:.0f}" if r.get("train_s") is not None else "-",
                    f"{r['discover_s']:.0f}" if r.get("discover_s") is not None else "-",
                    verdict])
    return out


def format_table(rows: list[dict]) -> str:
    body = table_rows(rows)
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c)
              for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths])] + [line(b) for b in body])


def summary(rows: list[dict], noise_levels: list[float]) -> dict:
    out = {"right": sum(r["right"] for r in rows), "rows": len(rows),
           "failed": sum(r["failed"] for r in rows)}
    for noise in noise_levels:
        sel = [r for r in rows if r["noise"] == noise]
        out[f"noise {noise:g}"] = {"right": sum(r["right"] for r in sel), "rows": len(sel)}
    times = [(r.get("train_s") or 0) + (r.get("discover_s") or 0) for r in rows
             if not r["failed"]]
    out["max_train_plus_discover_s"] = max(times) if times else None
    return out


def main(argv=None) -> None:
    args = parse_flags(BenchFlags, argv, describe(__doc__))
    require_known(args.systems, BENCHMARK_SYSTEMS, "system(s)")
    if any(not (0.0 <= n < 1.0) for n in args.noise):
        fail(f"--noise levels must be in [0, 1), got {args.noise}")
    for name in ("n_traj", "jobs"):
        if getattr(args, name) < (2 if name == "n_traj" else 1):
            fail(f"--{name.replace('_', '-')} is too small: {getattr(args, name)}")
    if not all((Path(args.code) / f).is_file() for f in ("train.py", "discover.py")):
        fail(f"--code {args.code} holds no train.py and discover.py")
    if args.score_only and args.rediscover:
        fail("--score-only and --rediscover exclude each other")
    if not args.timeout > 0:
        fail(f"--timeout must be positive, got {args.timeout}")
    for text, what in ((args.train_flags, "--train-flags"), (args.discover_flags,
                                                             "--discover-flags")):
        try:
            shlex.split(text)
        except ValueError as err:
            fail(f"{what} cannot be split into flags ({err})")
    out = Path(args.results_dir) / "bench_discover.json"
    previous = {(r["system"], r["noise"]): r
                for r in ((read_json(out, {}) or {}).get("rows") or [])} \
        if args.score_only or args.rediscover else {}
    jobs = [(name, noise) for noise in args.noise for name in args.systems]
    command = "python bench/bench_discover.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    start = time.perf_counter()
    rows: dict[int, dict] = {}
    lock = threading.Lock()
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="bench_discover", unit="system")

    def record(i: int, row: dict) -> None:
        with lock:
            rows[i] = row
            done = [rows[k] for k in sorted(rows)]
            atomic_write_json(out, {"command": command, "settings": asdict(args),
                                    "environment": environment_info(),
                                    "complete": len(done) == len(jobs),
                                    "total_seconds": round(time.perf_counter() - start, 1),
                                    "summary": summary(done, args.noise), "rows": done})
            if bar is not None:
                bar.update(1)
                bar.write(format_table([row]).splitlines()[-1])

    def job(i: int) -> None:
        name, noise = jobs[i]
        record(i, run_one(name, noise, args, previous.get((name, noise))))

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(job, range(len(jobs))))
    if bar is not None:
        bar.close()
    done = [rows[k] for k in sorted(rows)]
    total = time.perf_counter() - start
    if not args.quiet:
        s = summary(done, args.noise)
        print("\n" + format_table(done))
        per_noise = "; ".join(f"noise {n:g}: {s[f'noise {n:g}']['right']} of "
                              f"{s[f'noise {n:g}']['rows']}" for n in args.noise)
        print(f"\nright: {s['right']} of {s['rows']} ({per_noise}); failed rows: "
              f"{s['failed']}; total {total / 60:.1f} min -> {out}")


if __name__ == "__main__":
    sys.exit(cli(main)())
