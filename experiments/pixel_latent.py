"""Our symbolic discovery on a pixel model's latent trajectories (issue #13, "beyond the paper").

A user with a video and a trained pixel autoencoder holds latent trajectories, not a tracked
state. This module hands them to the pipeline exactly as user data: the encodings of every
trajectory's inputs go into a trajectory file (`states` (N, F - 1, 2) named z0, z1, no
canonical labels: the encoder's coordinates are unknown variables; `t` the frame times in
seconds; the experiment's train / held-out split), then `train.py` (a short PhysicsNet run,
which discovery needs as its run folder) and `discover.py` run on that file through their own
entry points. The file also carries the frames' truth (`truth_theta`, `truth_omega`,
`truth_energy`), which the loader hides from both scripts; only `score_laws`, evaluation,
reads it: the held-out R^2 of the best monotone map from each found law to the true energy.

    from experiments.pixel_latent import discover_on_latents
    result = discover_on_latents(z, t, n_train, truth, workdir)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import discover
import train
from evaluation.metrics import evaluate_expression, monotone_r2, parse_formula
from utils import atomic_write_npz, read_json

LAW_KINDS = ("energy", "invariant", "approximate")   # the entries that are laws (not z_pc)
TRAIN_EPOCHS = 3        # the law comes from the library over the data; the run only anchors it


def split_labels(n: int, n_train: int) -> np.ndarray:
    """The experiment's split: the first n_train train; the held-out half val, half test."""
    held = n - n_train
    return np.array(["train"] * n_train + ["val"] * (held // 2) + ["test"] * (held - held // 2))


def write_latent_file(path: Path, z: np.ndarray, t: np.ndarray, n_train: int,
                      truth: dict[str, np.ndarray], meta: dict) -> Path:
    """The latent trajectories as a user trajectory file (data/README.md, "Your own data");
    truth: theta, omega, energy, each (N, F - 1), stored as truth_* (evaluation only)."""
    return atomic_write_npz(
        path, states=np.asarray(z, dtype=np.float64), t=np.asarray(t, dtype=np.float64),
        names=np.array([f"z{i}" for i in range(z.shape[-1])]),
        split=split_labels(len(z), n_train), meta=np.array(json.dumps(meta)),
        **{f"truth_{k}": np.asarray(v, dtype=np.float64) for k, v in truth.items()})


def run_pipeline(path: Path, workdir: Path, threads: int = 1) -> dict:
    """train.py, then discover.py, on the file, results under workdir -> the discovered
    entry (discovered_equations.json holds this file's entry only)."""
    common = ["--system", str(path), "--results-dir", str(workdir), "--quiet",
              "--threads", str(threads)]
    train.main(common + ["--epochs", str(TRAIN_EPOCHS)])
    discover.main(common)
    entries = read_json(workdir / "discovered_equations.json", {})
    if len(entries) != 1:
        raise RuntimeError(f"expected one discovered entry in {workdir}, found {len(entries)}")
    return next(iter(entries.values()))


def score_laws(entry: dict, z: np.ndarray, energy: np.ndarray, n_train: int) -> list[dict]:
    """Each law of the entry (exact or approximate) with its held-out R^2 against the true
    energy (monotone map fitted on the training trajectories). Evaluation only."""
    laws = []
    for eq in entry["equations"]:
        if eq["kind"] not in LAW_KINDS:
            continue
        expr = parse_formula(eq["expression"], entry["variables"], entry.get("derived_inputs"))
        v = evaluate_expression(expr, entry["variables"], z)
        r2 = (monotone_r2(v[:n_train], energy[:n_train], v[n_train:], energy[n_train:])
              if np.all(np.isfinite(v)) else None)
        laws.append({"kind": eq["kind"], "name": eq["name"], "expression": eq["expression"],
                     "latex": eq.get("latex"), "complexity": eq.get("complexity"),
                     "mu": eq.get("mu"), "conservation_ratio": eq.get("conservation_ratio"),
                     "r2_true_energy": r2})
    return laws


def discover_on_latents(z: np.ndarray, t: np.ndarray, n_train: int, truth: dict,
                        workdir: Path, meta: dict | None = None, threads: int = 1) -> dict:
    """Write the latent file into workdir, run train + discover on it, score what was found.
    -> {"file", "n_conserved", "noise_std", "laws": [...], "seconds"}."""
    start = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = write_latent_file(workdir / "latent.npz", z, t, n_train, truth, meta or {})
    entry = run_pipeline(path, workdir, threads)
    return {"file": str(path), "n_conserved": entry["n_conserved"],
            "noise_std": entry.get("noise_std"),
            "laws": score_laws(entry, z, truth["energy"], n_train),
            "seconds": time.perf_counter() - start}


def summary_line(result: dict) -> str:
    """One line: the count of exact laws and the best-scoring law with its figures."""
    laws = result["laws"]
    if not laws:
        return "latent discovery: nothing conserved, not even approximately"
    best = max(laws, key=lambda law: law["r2_true_energy"] or -np.inf)
    mu = best["mu"]
    return (f"latent discovery: {result['n_conserved']} exact law(s); {best['kind']} "
            f"{best['name']} = {best['expression']}"
            + (f" (mu {mu:.3g})" if isinstance(mu, (int, float)) else "")
            + (f", R2 vs true energy {best['r2_true_energy']:.4f}"
               if best["r2_true_energy"] is not None else ""))
