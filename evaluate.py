"""Evaluate the pipeline against ground truth: discovered laws, rollout energy drift, training,
latent space, ablations; write results/metrics.json, plots/ and the dashboard's data file.

    python evaluate.py --systems projectile spring orbit
    python evaluate.py --systems spring --prefix 20 --quiet
    python evaluate.py --systems spring-noise0.01 data/my_measurements.csv   # any trajectory file
    python evaluate.py --hnn-table="--quick"   # run experiments/hnn_table.py first (its flags)
    python evaluate.py --readme                # README.md results section from results/metrics.json

This script and what it uses (evaluation/) are, besides the paper experiments and the tests,
the only code that reads ground truth: the truth_* arrays of simulated files and the
simulators' registry (evaluation/truth.py). Data without truth (users' files) get the
data-based checks only: conservation on held-out trajectories. The metric definitions are in
evaluation/metrics.py.
"""
from __future__ import annotations

import datetime as _dt
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from data.loader import DEFAULT_SYSTEMS
from evaluation.dashboard import hnn_rows, pixel_extras, write_dashboard
from evaluation.metrics import FUNCTIONAL_DEGREE, MATCH_R2, STRUCTURE_TOL
from evaluation.plots import plot_system
from evaluation.report import print_report, rewrite_readme
from evaluation.system import DRIFT_TARGET, check_inputs, evaluate_system
from utils import (PLOTS_DIR, RESULTS_DIR, ROOT, atomic_write_json, check_output_dir,
                   UsageError, check_output_file, cli, describe, environment_info, fail, flag,
                   parse_flags, read_json, require_at_least)


@dataclass
class EvaluateFlags:
    """Every flag of evaluate.py (the command line is generated from it)."""

    systems: list[str] = flag(list(DEFAULT_SYSTEMS), "built-in system names or trajectory "
                                                     "files (.npz/.csv)")
    data_dir: str = flag(str(ROOT / "data"), "folder of the built-in systems' .npz files")
    results_dir: str = flag(str(RESULTS_DIR), "runs/ and discovered_equations.json are read "
                                              "here, metrics.json is written here")
    plots_dir: str = flag(str(PLOTS_DIR), "where the PNGs go")
    dashboard_file: str = flag(str(ROOT / "dashboard" / "dashboard_data.js"),
                               "the dashboard's data script (format: dashboard/DATA.md)")
    prefix: int = flag(10, "observed steps each rollout starts from")
    max_traj: int = flag(200, "held-out trajectories rolled out per run")
    n_show: int = flag(3, "trajectories drawn in the plots")
    n_dashboard: int = flag(5, "trajectories written to the dashboard file")
    seed: int = flag(0, "seed of the sub-sampling of states and latent points")
    hnn_table: str | None = flag(None, "first run experiments/hnn_table.py (optionally with its "
                                       "FLAGS in one quoted string, e.g. \"--quick\"); its "
                                       "results/hnn_table.json goes into the dashboard data",
                                 nargs="?", const="", metavar="FLAGS")
    readme: bool = flag(False, "only rewrite the README section between the results markers "
                               "from <results-dir>/metrics.json")
    readme_file: str = flag(str(ROOT / "README.md"), "the README that --readme rewrites")
    quiet: bool = flag(False, "no progress lines and no report")


def parse_args(argv: list[str] | None = None) -> EvaluateFlags:
    args = parse_flags(EvaluateFlags, argv, describe(__doc__))
    require_at_least(args, 1, "max_traj", "n_show", "n_dashboard", "prefix")
    require_at_least(args, 0, "seed")
    return args


def hnn_table_flags(args: EvaluateFlags) -> list[str]:
    """experiments/hnn_table.py's command line from --hnn-table "FLAGS", with evaluate.py's
    folders and --quiet; checked here (one line) before anything runs."""
    from experiments import hnn_table

    try:
        flags = shlex.split(args.hnn_table)
    except ValueError as err:
        fail(f"--hnn-table {args.hnn_table!r}: cannot split into flags ({err})")
    if "--results-dir" not in flags:
        flags += ["--results-dir", args.results_dir]
    if "--plots-dir" not in flags:
        flags += ["--plots-dir", args.plots_dir]
    if args.quiet and "--quiet" not in flags:
        flags.append("--quiet")
    try:
        hnn_table.parse_args(flags)
    except UsageError as err:
        fail(f"--hnn-table: {err}")
    return flags


def check_outputs(args: EvaluateFlags) -> None:
    """Every location evaluate writes must be usable before the long work starts."""
    check_output_file(Path(args.results_dir) / "metrics.json", "--results-dir:")
    check_output_dir(args.plots_dir, "--plots-dir")
    check_output_file(args.dashboard_file, "--dashboard-file")


def evaluate(args: EvaluateFlags, inputs=None) -> dict:
    """Run every evaluation; write plots, metrics.json and the dashboard file (only once every
    system has been evaluated, so a failure writes nothing); return the metrics."""
    log = (lambda *a: None) if args.quiet else print
    start = time.perf_counter()
    if inputs is None:
        inputs = check_inputs(args)      # bad input fails before anything is printed
        check_outputs(args)
    log("evaluate.py " + json.dumps(asdict(args)))
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    results = []
    for one in inputs:
        t0 = time.perf_counter()
        res = evaluate_system(one, args, log)
        res.metrics["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{res.name}: evaluated in {res.metrics['seconds']}s")
        results.append(res)
    for res in results:
        res.metrics["plots"] = plot_system(res, Path(args.plots_dir), args)
    metrics = {"generated": generated, "settings": asdict(args),
               "environment": environment_info(),
               "definitions": {"structure_tolerance": STRUCTURE_TOL, "match_r2": MATCH_R2,
                               "functional_degree": FUNCTIONAL_DEGREE,
                               "drift_target": DRIFT_TARGET},
               "systems": {r.name: r.metrics for r in results},
               "hnn_table": hnn_rows(args), "hnn_pixel": pixel_extras(args)}
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_json(Path(args.results_dir) / "metrics.json", metrics)
    dash = write_dashboard(Path(args.dashboard_file), results, args, generated)
    if not args.quiet:
        print_report(metrics, dash)
        print(f"metrics: {Path(args.results_dir) / 'metrics.json'}; plots: {args.plots_dir}/")
    return metrics


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.readme:
        path = Path(args.results_dir) / "metrics.json"
        check_output_file(args.readme_file, "--readme-file")
        metrics = read_json(path, None)
        if metrics is None:
            fail(f"no {path}: run `python evaluate.py --systems ...` first")
        rewrite_readme(Path(args.readme_file), metrics, path)
        if not args.quiet:
            print(f"rewrote the results section of {args.readme_file} from {path}")
        return
    # Everything is read and checked first: a bad input or output location is one line on
    # stderr before the HNN table or any evaluation runs.
    flags = hnn_table_flags(args) if args.hnn_table is not None else None
    inputs = check_inputs(args)
    check_outputs(args)
    if flags is not None:
        from experiments import hnn_table

        hnn_table.main(flags)
    evaluate(args, inputs)


if __name__ == "__main__":
    sys.exit(cli(main)())
