"""Symbolic regression of what the networks learned: conservation laws as equations.

    python discover.py --system projectile
    python discover.py --system spring --niterations 40
    python discover.py --system data/my_measurements.csv --backend sparse

Blind by construction: reads the trajectory file through data/loader.py (which drops every
truth_* array) and the trained run; it never imports the simulators and nothing here depends
on which system the data hold. For each system it reports

  * the energy: the physics-aware run's energy head distilled into formulas (engines in
    discovery/engines/, one Pareto front); the formula is picked by how well the motion it
    implies through Hamilton's equations matches the observed time derivatives of held-out
    trajectories (not by fit to the network), its coefficients re-estimated from them;
  * invariants: every further conserved quantity, from the network's conserved-quantity heads
    (when trained) and from a search for sparse conserved combinations of library features;
    kept only if functionally independent of the laws already kept (gradient-rank test);
  * latent: what the leading principal components of the latent encode (descriptive).
A candidate is a law only if it passes its check on held-out trajectories; what fails is listed
as rejected, never as a law. The stages live in discovery/search.py.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from data.loader import Trajectories, describe_recording, load_trajectories
from discovery import engines
from discovery.search import build_context, discover_latent, discover_laws
from runs import TrainedModel, check_run_fits, data_key, discovery_run, find_data_runs
from utils import (DATA_DIR, RESULTS_DIR, atomic_write_json, check_output_dir,
                   check_output_file, cli, describe, fail, file_lock, flag, parse_flags,
                   read_json, require_at_least, seed_everything, to_jsonable)


@dataclass
class DiscoverFlags:
    """Every flag of discover.py (the command line is generated from it)."""

    system: str = flag("", "built-in system name or trajectory file (.npz/.csv)")
    run: str | None = flag(None, "run folder (default: the newest physics-aware PhysicsNet run "
                                 "of the data under <results-dir>/runs)")
    backend: str = flag("auto", "auto: PySR if usable, else Operon; each beside the sparse "
                                "library regression", choices=["auto", *engines.ENGINES])
    niterations: int = flag(40, "PySR iterations (Operon: 10x as many generations at most)")
    budget: int = flag(200_000, "Operon: model evaluations per equation (not wall time)")
    max_terms: int = flag(5, "largest number of terms in library formulas")
    n_samples: int = flag(4000, "states sampled for fitting network outputs")
    latent_pcs: int = flag(2, "principal components of the latent to describe")
    seed: int = flag(0, "seed of the sampling and of the engines")
    threads: int = flag(1, "threads of the Operon engine (more than 1 is faster, but then its "
                           "Pareto fronts depend on thread timing: the seed no longer fixes "
                           "them)")
    data_dir: str = flag(str(DATA_DIR), "folder of the built-in systems' .npz files")
    results_dir: str = flag(str(RESULTS_DIR), "results folder (runs/, discovered_equations.json)")
    quiet: bool = flag(False, "no progress lines and no table")


def parse_args(argv=None) -> DiscoverFlags:
    args = parse_flags(DiscoverFlags, argv, describe(__doc__))
    if not args.system:
        fail("--system is required (a system name or a .npz/.csv path)")
    require_at_least(args, 1, "niterations", "budget", "max_terms", "n_samples", "threads")
    require_at_least(args, 0, "latent_pcs", "seed")
    return args


def discover(args: DiscoverFlags, data: Trajectories, run_dir: Path) -> dict:
    """Run discovery on one data file with its trained run (main checks both first); returns
    its entry of discovered_equations.json."""
    log = (lambda *a: None) if args.quiet else print
    chosen = engines.resolve(args.backend, log)
    backend = "+".join(chosen)
    rng = seed_everything(args.seed)
    net = TrainedModel(run_dir)
    ctx = build_context(args, data, chosen, rng, log)
    noise = ", ".join(f"{n} {s:.2g}" for n, s in zip(data.names, np.sqrt(ctx.noise.variance)))
    log(f"{data.name}: {data.n_traj} trajectories, variables {data.names}"
        f"{' + ' + ', '.join(ctx.inputs.derived) if ctx.inputs.derived else ''}; run "
        f"{run_dir.name}; backend {backend}; library of {len(ctx.library)} terms; noise "
        f"measured: {noise}; a law's within-trajectory variance may be at most "
        f"{ctx.threshold:.3g}x what that noise gives it")
    if describe_recording(data.meta):
        log(f"  {describe_recording(data.meta)}")
    equations, rejected, n_conserved = discover_laws(ctx, net)
    equations += discover_latent(ctx, net)
    return {"variables": data.names, "derived_inputs": {k: sp.sstr(v) for k, v in
                                                        ctx.inputs.derived.items()},
            "canonical": data.canonical, "backend": backend, "run": str(run_dir),
            "data": data.source, "n_conserved": n_conserved, "threshold": ctx.threshold,
            "criterion": "mu: within-trajectory variance on held-out trajectories / the "
                         "variance the measured noise gives it",
            "noise_std": np.sqrt(ctx.noise.variance).tolist(),
            "library": {"terms": len(ctx.library), "positive": ctx.props.positive,
                        "positions": ctx.props.positions,
                        "velocities": ctx.props.velocities},
            "exact_directions": int((ctx.spectrum <= ctx.fitter.threshold).sum()),
            "spectrum": ctx.spectrum[:10].tolist(),
            "baseline_ratio": ctx.baseline, "equations": equations, "rejected": rejected,
            "settings": asdict(args)}


def print_table(name: str, entry: dict) -> None:
    print(f"\n{name}: {entry['n_conserved']} independent exactly conserved quantities "
          f"(backend {entry['backend']})")
    print(f"  {'kind':<11} {'name':<5} {'cx':>3} {'ratio':>9} {'mu':>8}  expression")
    for eq in entry["equations"]:
        mu = eq.get("mu")
        mu = f"{mu:8.3g}" if isinstance(mu, float) and np.isfinite(mu) else f"{'-':>8}"
        print(f"  {eq['kind']:<11} {eq['name']:<5} {eq['complexity']:>3} "
              f"{eq['conservation_ratio']:>9.2e} {mu}  {eq['expression']}")
    for eq in entry["equations"]:
        d = eq.get("decay")
        if d:
            kept = f", keeps {d['kept']:.1%} of it" if d.get("kept") is not None else ""
            print(f"  {eq['name']} above its minimum: {d['start']:.4g} at the start, "
                  f"{d['end']:.4g} at the end of the recording{kept}"
                  + (f"; loss law {d['loss_law']} (explains {d['explained']:.1%} of the "
                     "change)" if d.get("loss_law") else ""))
        for term, (value, err) in (eq.get("uncertainty") or {}).get("coefficients", {}).items():
            print(f"    coefficient of {term}: {value:.5g} +- {err:.2g}")
    if any(eq["kind"] == "approximate" for eq in entry["equations"]):
        print("  (approximate: conserved only approximately, beyond the noise floor: listed, "
              "not counted)")
    for rej in entry["rejected"]:
        print(f"  rejected  {rej['name']:<6} {rej.get('expression', '')}: {rej['reason']}")
    if not entry["n_conserved"]:
        print("  no conservation law found: nothing is conserved better than a generic "
              "function of the state")


def merged_file(results_dir: Path) -> tuple[Path, dict]:
    """<results-dir>/discovered_equations.json and what it holds ({} when absent); one-line
    errors when it cannot be written or is not a JSON object of entries."""
    out = check_output_file(results_dir / "discovered_equations.json", "--results-dir:")
    merged = read_json(out, {})
    if not isinstance(merged, dict):
        fail(f"{out} is not a JSON object of discovered entries (move it away and run again)")
    return out, merged


def merge_entry(results_dir: Path, key: str, entry: dict) -> Path:
    """Add or replace one entry of <results-dir>/discovered_equations.json. The read-merge-
    write holds an exclusive lock (utils.file_lock), so that discoveries of other systems
    finishing at the same moment keep their entries."""
    with file_lock(results_dir / "discovered_equations.json"):
        out, merged = merged_file(results_dir)
        merged[key] = entry
        atomic_write_json(out, merged)
    return out


def choose_run(args: DiscoverFlags, data, key: str, results_dir: Path) -> Path:
    """The run to distil: --run, or the newest physics-aware run trained on exactly these data
    (runs.find_data_runs); its variables are checked against the data (one line naming the
    mismatch)."""
    if args.run:
        run_dir = Path(args.run)
        if not run_dir.is_dir():
            fail(f"--run {run_dir} is not a folder (a run folder under <results-dir>/runs/)")
    else:
        run = discovery_run(find_data_runs(results_dir, key, data.source))
        if run is None:
            fail(f"no trained PhysicsNet run for '{key}' in {results_dir / 'runs'}: run "
                 f"`python train.py --system {args.system}` first")
        run_dir = run.dir
    check_run_fits(run_dir, data.names)
    return run_dir


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    # Every input and output is checked before the long work starts.
    data = load_trajectories(args.system, args.data_dir)
    key = data_key(data.source, args.data_dir)
    results_dir = check_output_dir(args.results_dir, "--results-dir")
    out, _ = merged_file(results_dir)
    run_dir = choose_run(args, data, key, results_dir)
    args.run = str(run_dir)
    entry = discover(args, data, run_dir)
    entry["seconds"] = round(time.perf_counter() - start, 1)
    merge_entry(results_dir, key, entry)
    # A run folder outside --results-dir is someone else's: it is read, never written.
    own = (results_dir / "runs").resolve() in run_dir.resolve().parents
    if own:
        atomic_write_json(run_dir / "discovered.json", to_jsonable(entry))
    if not args.quiet:
        print_table(key, entry)
        if not own:
            print(f"(--run {run_dir} is outside {results_dir / 'runs'}: nothing written there)")
        print(f"\nwrote {out} ({entry['seconds']}s)")


if __name__ == "__main__":
    sys.exit(cli(main)())
