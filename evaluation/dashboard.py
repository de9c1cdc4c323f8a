"""The dashboard's data file (dashboard/dashboard_data.js; its format: dashboard/DATA.md).

`args` below is evaluate.py's EvaluateFlags. A new dashboard tab reads a new field written by
dashboard_entry (or the top level of write_dashboard's payload) and is documented in DATA.md.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluation.system import SystemResult
from utils import atomic_write_text, read_json, to_jsonable


def _round(x, digits: int = 6):
    """Round floats in nested lists to `digits` significant digits (a smaller file)."""
    if isinstance(x, (list, tuple)):
        return [_round(v, digits) for v in x]
    if isinstance(x, np.ndarray):
        return _round(x.tolist(), digits)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return float(f"{v:.{digits}g}") if np.isfinite(v) else None
    return x


def _down(n: int, limit: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))


def dashboard_entry(res: SystemResult, args) -> dict:
    m = res.metrics
    n = min(args.n_dashboard, len(res.test_idx))
    T = res.data.states.shape[1]
    steps = _down(T, 100)
    clean = res.truth.clean[res.test_idx]
    trajectories, energy = [], []
    for j in range(n):
        t = _round(res.data.t[res.test_idx[j], steps])
        get = lambda arr: _round(arr[j, steps]) if arr is not None else None
        trajectories.append({"id": int(res.test_idx[j]), "t": t, "true": get(clean),
                             "standard": get(res.rollouts.get("standard")),
                             "physics": get(res.rollouts.get("physics"))})
        # DATA.md: energy and drift are the TRUE energy's; null without ground truth.
        energies = res.energies if res.truth.available else {}
        energy.append({"id": int(res.test_idx[j]), "t": t,
                       "true": get(energies.get("true")),
                       "standard": get(energies.get("standard")),
                       "physics": get(energies.get("physics"))})
    drift = {}
    for kind in ("standard", "physics"):
        row = m["drift"].get(kind)
        drift[kind] = ({"mean": row["mean"], "max": row["max"]}
                       if res.truth.available and row and row.get("mean") is not None else None)
    latent = None
    if res.latent is not None:
        keep = res.latent["keep"]
        scores = res.latent["scores"][keep, :2]
        if scores.shape[1] == 1:
            scores = np.column_stack([scores, np.zeros(len(scores))])
        latent = {"explained_variance": _round(res.latent["explained"]),
                  "points": _round(scores, 5),
                  "color_by": {k: _round(v[keep], 5) for k, v in res.latent["colours"].items()}}
    equations = []
    assessed = {(e["kind"], e["name"]): e for e in m["equations"]}
    for eq in res.discovered.get("equations", []):
        a = assessed.get((eq.get("kind"), eq.get("name")), {})
        equations.append({
            "kind": eq.get("kind"), "name": eq.get("name"), "expression": eq.get("expression"),
            "latex": eq.get("latex"), "complexity": eq.get("complexity"),
            "r2": a.get("r2"), "conservation_ratio": a.get("conservation_ratio",
                                                           eq.get("conservation_ratio")),
            "matched": a.get("matched"), "structure_match": a.get("structure_match"),
            "pareto": [{"complexity": f.get("complexity"), "loss": f.get("loss"),
                        "expression": f.get("expression"), "latex": f.get("latex"),
                        "chosen": bool(f.get("chosen"))} for f in eq.get("pareto", [])]})
    return {"variables": list(res.data.names), "canonical": res.data.canonical,
            "has_truth": res.truth.available, "trajectories": trajectories, "energy": energy,
            "drift": drift, "latent": latent, "n_conserved": res.discovered.get("n_conserved"),
            "equations": equations}


# The HNN paper's Table 1, one results file per experiment (each holds "hnn_table" rows:
# task, model, train_loss, test_loss, energy_mse, energy_mse_std, reversibility, wall_time,
# paper_energy_mse), in the order of the paper's rows.
HNN_TABLE_FILES = ("hnn_table.json", "hnn_real.json", "hnn_pixel.json")


def hnn_rows(args) -> list[dict] | None:
    """Rows of the HNN paper experiments' results in <results-dir> (experiments/), or None."""
    rows = []
    for name in HNN_TABLE_FILES:
        rows += (read_json(Path(args.results_dir) / name, None) or {}).get("hnn_table") or []
    return rows or None


def write_dashboard(path: Path, results: list[SystemResult], args, generated: str) -> Path:
    backends = sorted({str(r.discovered.get("backend")) for r in results
                       if r.discovered.get("backend")})
    payload = {"generated": generated, "backend": "; ".join(backends) or None,
               "systems": {r.name: dashboard_entry(r, args) for r in results},
               "hnn_table": hnn_rows(args)}
    text = json.dumps(to_jsonable(payload), separators=(",", ":"), allow_nan=False)
    return atomic_write_text(path, f"window.DASHBOARD_DATA = {text};\n")
