"""The dashboard's data file (dashboard/dashboard_data.js; its format: dashboard/DATA.md).

`args` below is evaluate.py's EvaluateFlags. A new dashboard tab reads a new field written by
dashboard_entry (or the top level of write_dashboard's payload) and is documented in DATA.md.

Approximately conserved laws (kind "approximate") are passed through flagged as not counted;
an approximate energy that decays (a real recording with friction) also gets a time series:
its values along each recording in time order, beside the integral of its fitted loss law.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import sympy as sp

from data.loader import describe_recording
from discovery.dissipation import series
from discovery.expressions import to_latex
from evaluation.metrics import evaluate_expression, parse_formula
from evaluation.system import SystemResult
from utils import atomic_write_text, parse_expression, read_json, to_jsonable

COUNTED = ("energy", "invariant")       # the kinds discover.py counts in n_conserved
DECAY_POINTS = 500                      # most points of one decay series in the file


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
            # discover.py's (its validation part): a recording's held-out test part may be a
            # single window, on which the ratio above is undefined
            "conservation_ratio_discover": _number(eq.get("conservation_ratio")),
            "matched": a.get("matched"), "structure_match": a.get("structure_match"),
            **law_status(eq, res.discovered),
            "uncertainty": uncertainty(eq, res.discovered),
            "decay": decay_summary(eq.get("decay")),
            "pareto": [{"complexity": f.get("complexity"), "loss": f.get("loss"),
                        "expression": f.get("expression"), "latex": f.get("latex"),
                        "chosen": bool(f.get("chosen"))} for f in eq.get("pareto", [])]})
    recording = res.data.meta.get("recording")
    return {"variables": list(res.data.names), "canonical": res.data.canonical,
            "has_truth": res.truth.available, "trajectories": trajectories, "energy": energy,
            "drift": drift, "latent": latent, "n_conserved": res.discovered.get("n_conserved"),
            "equations": equations, "recording": bool(recording),
            "recording_info": ({"description": describe_recording(res.data.meta),
                                "recordings": recording.get("recordings"),
                                "frames": recording.get("frames"),
                                "window": recording.get("window"),
                                "windows": recording.get("windows"),
                                "series": recording_series(res)} if recording else None),
            "decay": decay_series(res, args)}


def law_status(eq: dict, disc: dict) -> dict:
    """Whether a law is counted in n_conserved, and its within-trajectory variance mu against
    the largest an exact law may have (the entry's threshold unless the law has its own)."""
    kind = eq.get("kind")
    threshold = (eq.get("verification") or {}).get("mu_threshold", disc.get("threshold"))
    mu = _number(eq.get("mu"))
    return {"counted": kind in COUNTED, "approximate": kind == "approximate", "mu": mu,
            "mu_threshold": _number(threshold) if mu is not None else None,
            "reason": eq.get("reason") if kind == "approximate" else None,
            "source": eq.get("source") or (eq.get("verification") or {}).get("source")}


def uncertainty(eq: dict, disc: dict) -> dict | None:
    """The spread of a law's coefficients (discover.py: over folds of the training data), one
    row per term in the order discover.py wrote them, each with its LaTeX."""
    unc = eq.get("uncertainty") or {}
    coefs = unc.get("coefficients")
    if not isinstance(coefs, dict) or not coefs:
        return None
    names = list(disc.get("variables") or []) + list((disc.get("derived_inputs") or {}))
    symbols = {n: sp.Symbol(n, real=True) for n in names}
    rows = []
    for term, pair in coefs.items():
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            continue
        try:
            latex = to_latex(parse_expression(term, symbols), symbols)
        except ValueError:
            latex = None
        rows.append({"term": term, "latex": latex, "value": _number(pair[0]),
                     "err": _number(pair[1])})
    return {"method": unc.get("method"), "coefficients": rows} if rows else None


def decay_summary(decay) -> dict | None:
    """discover.py's decay block of an approximate energy (DATA.md), its loss-law front slim."""
    if not isinstance(decay, dict):
        return None
    keys = ("start", "end", "kept", "relative_change", "zero", "series", "loss_law",
            "loss_law_latex", "explained", "method")
    out = {k: decay.get(k) for k in keys}
    out["pareto"] = [{"complexity": f.get("complexity"), "loss": f.get("loss"),
                      "expression": f.get("expression"), "latex": f.get("latex"),
                      "chosen": bool(f.get("chosen"))} for f in decay.get("pareto") or []
                     if isinstance(f, dict)]
    return out


def _pieces(res: SystemResult, arrays: list[np.ndarray], n_shown: int
            ) -> tuple[list[int], list[list[np.ndarray]]]:
    """Per-window arrays (N, T, ...) as the dashboard's series: one (T_total, ...) per
    recording in time order (windows joined back, discovery.dissipation.series), or for plain
    trajectory files the first `n_shown` held-out trajectories (those of "trajectories").
    Returns (ids: recording index or trajectory id, one list of series per array)."""
    data = res.data
    if data.meta.get("recording"):
        return (list(range(len(data.meta["recording"]["frames"]))),
                [[x.reshape(-1, *a.shape[2:]) for x in series(a, data.meta)] for a in arrays])
    rows = res.test_idx[:min(n_shown, len(res.test_idx))]
    return [int(i) for i in rows], [list(a[rows]) for a in arrays]


def _held_out_from(t: np.ndarray, split: np.ndarray) -> float | None:
    held = np.flatnonzero(split != "train")
    return _round(float(t[held[0]])) if held.size else None


def recording_series(res: SystemResult) -> list[dict] | None:
    """Each whole recording in time order (at most DECAY_POINTS states), with the time from
    which its windows are held out; None for plain trajectory files."""
    data = res.data
    if not data.meta.get("recording"):
        return None
    split = np.broadcast_to(data.split[:, None], data.t.shape)
    ids, (times, states, splits) = _pieces(res, [data.t, data.states, split], 0)
    limit = max(50, DECAY_POINTS // max(1, len(ids)))
    out = []
    for k, t, x, s in zip(ids, times, states, splits):
        keep = _down(len(t), limit)
        out.append({"id": k, "t": _round(t[keep]), "states": _round(x[keep], 5),
                    "held_out_from": _held_out_from(t, s)})
    return out


def decay_series(res: SystemResult, args) -> dict | None:
    """The decaying approximate energy along each recording in time order (or each held-out
    trajectory shown, args.n_dashboard of them), measured from discover.py's zero, and the
    integral of its loss law along the same states: E(t0) + integral of dE/dt dt, trapezoids
    on the recorded times, with one offset per series fitted (least squares), as the loss law
    itself was fitted. None without an approximate energy that has a decay block, or when its
    formula does not parse; "predicted" is null when the loss law does not."""
    disc = res.discovered
    eq = next((e for e in disc.get("equations", []) if e.get("kind") == "approximate"
               and isinstance(e.get("decay"), dict)), None)
    if eq is None:
        return None
    data, decay = res.data, eq["decay"]
    variables, derived = list(disc.get("variables") or data.names), disc.get("derived_inputs")
    try:
        energy = evaluate_expression(parse_formula(eq["expression"], variables, derived),
                                     variables, data.states)                     # (N, T)
    except (ValueError, KeyError, TypeError):
        return None
    rate = np.full_like(energy, np.nan)                                          # (N, T)
    law = decay.get("loss_law")
    if isinstance(law, str) and "=" in law:
        try:
            rate = evaluate_expression(parse_formula(law.split("=", 1)[1], variables, derived),
                                       variables, data.states)
        except (ValueError, TypeError):
            pass
    zero = _number(decay.get("zero")) or 0.0
    split = np.broadcast_to(data.split[:, None], data.t.shape)
    ids, (times, energies, rates, splits) = _pieces(res, [data.t, energy, rate, split],
                                                    args.n_dashboard)
    recording = bool(data.meta.get("recording"))
    limit = max(50, DECAY_POINTS // max(1, len(ids)))
    out = []
    for k, t, e, r, s in zip(ids, times, energies, rates, splits):
        e = e - zero
        predicted = None
        if np.isfinite(r).all() and np.isfinite(e).all():
            integral = np.concatenate([[0.0], np.cumsum(0.5 * np.diff(t) * (r[1:] + r[:-1]))])
            predicted = integral + float(np.mean(e - integral))
        keep = _down(len(t), limit)
        out.append({"id": k, "t": _round(t[keep]), "energy": _round(e[keep]),
                    "predicted": _round(predicted[keep]) if predicted is not None else None,
                    "held_out_from": _held_out_from(t, s) if recording else None})
    return {"equation": eq.get("name"), "expression": eq.get("expression"),
            "latex": eq.get("latex"), "zero": zero, "loss_law": decay.get("loss_law"),
            "loss_law_latex": decay.get("loss_law_latex"),
            "explained": _number(decay.get("explained")), "kept": _number(decay.get("kept")),
            "series": out}


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) \
        and np.isfinite(v) else None


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


def _term_count(expression) -> int | None:
    """Terms of a latent law (a sum over z0, z1, ...), or None when there is none to read."""
    if not isinstance(expression, str):
        return None
    try:
        expr = parse_formula(expression, sorted(set(re.findall(r"z\d+", expression))))
    except ValueError:
        return None
    return len(sp.Add.make_args(expr))


def pixel_extras(args) -> dict | None:
    """The pixel pendulum's figures beyond its table rows (<results-dir>/hnn_pixel.json), or
    None: the baseline over HNN energy MSE by rollout horizon (frames) per loss step (euler:
    the paper's baseline and hnn; rk4: baseline+rk4 and hnn+rk4), and per run what our
    discovery found on the model's latent trajectories: the count of exact laws and the law
    that best orders the states by their true energy (held-out R^2 of a monotone map)."""
    res = read_json(Path(args.results_dir) / "hnn_pixel.json", None)
    if not isinstance(res, dict):
        return None
    found = []
    for run in res.get("runs") or []:
        latent = run.get("latent_discovery")
        if not isinstance(latent, dict):
            continue
        laws = [law for law in latent.get("laws") or [] if isinstance(law, dict)]
        score = lambda law: _number(law.get("r2_true_energy"))
        best = max(laws, key=lambda law: -np.inf if score(law) is None else score(law),
                   default={})
        found.append({"model": run.get("model"), "seed": run.get("seed"),
                      "n_conserved": latent.get("n_conserved"), "kind": best.get("kind"),
                      "expression": best.get("expression"), "latex": best.get("latex"),
                      "terms": _term_count(best.get("expression")),
                      "mu": _number(best.get("mu")),
                      "r2_true_energy": _number(best.get("r2_true_energy"))})
    ratios = res.get("baseline_over_hnn_by_horizon") or {}
    return {"ratios_by_horizon": {str(step): {str(k): _number(v) for k, v in by_h.items()}
                                  for step, by_h in ratios.items() if isinstance(by_h, dict)},
            "latent_discovery": found}


def write_dashboard(path: Path, results: list[SystemResult], args, generated: str) -> Path:
    backends = sorted({str(r.discovered.get("backend")) for r in results
                       if r.discovered.get("backend")})
    payload = {"generated": generated, "backend": "; ".join(backends) or None,
               "systems": {r.name: dashboard_entry(r, args) for r in results},
               "hnn_table": hnn_rows(args), "hnn_pixel": pixel_extras(args)}
    text = json.dumps(to_jsonable(payload), separators=(",", ":"), allow_nan=False)
    return atomic_write_text(path, f"window.DASHBOARD_DATA = {text};\n")
