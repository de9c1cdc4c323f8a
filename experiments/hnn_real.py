"""The HNN paper's Table 1, task 3 (the real pendulum), and a dissipative HNN beside it.

    python -m experiments.hnn_real                # baseline, HNN, dissipative HNN x 3 seeds x 2
    python -m experiments.hnn_real --quick        # tiny settings (results/quick, plots/quick)
    python -m experiments.hnn_real --seeds 0 --derivatives central --models hnn dissipative-hnn

One motion-tracked recording (data/real/real_pendulum.csv = Schmidt & Lipson's real_pend_h_1.txt,
angle theta and angular velocity omega, dropped frames) split in time as the paper's code did:
the first 80 % of the frames train, the last 20 % test. Each model learns d(theta, omega)/dt
from finite differences taken with the recorded times (never an assumed step), is integrated
from the first test frame over the test frames' times, and is scored by the MSE between a
reference energy of the recorded frames and of its rollout (the paper's energy metric). The
dissipative HNN (models/hnn.py, Sosanya & Greydanus 2022) is a row of our own. Everything runs
twice: with the paper's forward differences (task "real-pendulum", the protocol) and with
central differences (task "real-pendulum-central"), because the forward difference reads as
a friction many times the recording's real one (NOTES). Writes results/hnn_real.json (atomic; "hnn_table" rows
as experiments/hnn_table.py writes them) and plots/hnn_real_pendulum.png.
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.loader import DataError, read_csv  # noqa: E402
from experiments.hnn_table import (ROLLOUT_ATOL, ROLLOUT_RTOL, _mean_sem,  # noqa: E402
                                   dashboard_rows, rollout, save_figure, summarise,
                                   task_seeds)
from models.hnn import (HNN, MODEL_KINDS, DissipativeHNN, HNNConfig,  # noqa: E402
                        build_hamiltonian_model)
from models.hnn_training import fit, pointwise_sq_error  # noqa: E402
from utils import (PLOTS_DIR, RESULTS_DIR, ROOT, atomic_write_json, check_output_dir,  # noqa: E402
                   check_output_file, cli, describe,
                   environment_info, fail, flag, parse_flags, require_at_least,
                   require_known, require_seeds)

Array = np.ndarray
# Task label of the rows per finite-difference estimator of the targets.
TASKS = {"forward": "real-pendulum", "central": "real-pendulum-central"}
TASK = TASKS["forward"]
RECORDING = ROOT / "data" / "real" / "real_pendulum.csv"
# The paper's Table 1 row 3 (train loss, test loss, energy MSE), reference values only: the
# "+-" the paper prints is the spread over 5 contiguous chunks of one rollout, not over seeds.
PAPER = {TASK: {"baseline": {"train_loss": 2.75e-3, "test_loss": 2.19e-3, "energy_mse": 3.86e-1,
                             "energy_mse_pm": 6.9e-2},
                "hnn": {"train_loss": 9.24e-3, "test_loss": 5.96e-3, "energy_mse": 1.45e-2,
                        "energy_mse_pm": 4.7e-3}}}
# The paper's analysis code uses E = k (1 - cos theta) + omega^2 with k = 2.4 "fit to the data";
# we fit k ourselves (reference_energy) and show theirs beside it.
PAPER_K = 2.4
ENERGY_CHUNKS = 5          # the paper's "+-": std of the means of 5 contiguous chunks / sqrt(5)
SUMMARY_KEYS = ("train_loss", "test_loss", "test_loss_sem", "energy_mse", "energy_mse_chunk_sem",
                "energy_mse_full", "state_mse", "energy_ratio_full", "reversibility",
                "wall_time", "cpu_time", "eval_seconds", "own_h_rel_drift", "h_ref_corr",
                "dissipating_fraction")
NOTES = (
    "data: one recording of (theta, omega) (the shipped data/real/real_pendulum.csv is a "
    "copy of Schmidt & Lipson's real_pend_h_1.txt, the file of the paper's Task 3), units as "
    "recorded; protocol.frames counts its frames, gaps and dropped frames.",
    "split (the paper's code, experiment-real/data.py): contiguous in time, the first 80 % of "
    "the frames train, the last 20 % test. Derivatives are taken within each stretch, so no "
    "test frame enters a training target.",
    "derivative targets, with the recorded times (never an assumed step). Task "
    "'real-pendulum' (the paper's protocol): the HNN paper's forward differences "
    "(x[i+1] - x[i]) / (t[i+1] - t[i]) placed at x[i], the last frame of each stretch dropped. "
    "Task 'real-pendulum-central': second-order central differences on the non-uniform grid "
    "(numpy.gradient; one-sided second-order at the ends). The forward difference is the "
    "derivative half a step later: for a pendulum it reads as a damping of about "
    "dt a b / 2 per time unit (a, b, dt: reference_energy, the median step), for this "
    "recording several times its real friction (reference_energy: c from central, "
    "c_forward from forward differences), which every model free to dissipate (baseline, "
    "dissipative HNN) learns and the HNN cannot. The D-HNN authors' own real-pendulum code "
    "averages neighbouring differences (a central difference).",
    "training (the paper's, section 3.1 and its code): full batch, Adam lr 1e-3, 2000 steps, "
    "weight decay 1e-5 (experiment-real/train.py; the paper's text gives 1e-4 for tasks 1-3), "
    "3 linear layers of 200 tanh units, float32. The dissipative HNN has two such MLPs (H, D).",
    "losses: MSE of the predicted d(theta, omega)/dt against the finite-difference targets, "
    "mean over both coordinates and all frames of the stretch.",
    "energy reference: a real recording has no known true energy. We use the paper's form "
    "E = omega^2 + k (1 - cos theta) with k fitted to this recording: least squares of "
    "dtheta/dt = a omega and domega/dt = -b sin theta - c omega (central differences, whole "
    "recording), k = 2 b / a, the energy conserved by those equations without the friction "
    "term c (with it, dE/dt = -2 c omega^2). The paper's code used k = 2.4 (reference_energy "
    "shows both).",
    "energy MSE (the paper's analyze-real notebook): integrate the model from the first test "
    "frame over the test frames' own times (t - t_0), compute E of the recorded test frames "
    "and of the rollout at the same times, mean of the squared differences over those times. "
    "Rollouts: scipy RK45 in float64 at settings.rtol / atol (1e-9 / 1e-12; the paper: RK45 "
    "at scipy's default tolerance, float32). energy_mse_chunk_sem is the paper's '+-' for one seed; "
    "energy_mse_std in the table is the sample std over seeds.",
    "energy MSE full: the same from the recording's first frame over all of it (the "
    "training stretch, then the test stretch): whether a model follows the decay of the "
    "energy over the whole recording; energy_ratio_full = E(end) / E(start) of the rollout (the "
    "recording's own is in reference_energy).",
    "reversibility: integrate over the test span, then back to its start; L2 distance of the "
    "end point from the first test frame.",
    "own_h_rel_drift (HNN, dissipative HNN): max |H - H(0)| / |H(0)| of the model's own H "
    "along its test rollout (0 up to the integrator for the HNN); h_ref_corr: correlation of "
    "the model's H with the reference energy over the recorded frames; dissipating_fraction "
    "(dissipative HNN): share of the recorded frames where the model's own energy rate "
    "grad H . grad D is negative, i.e. where it says the pendulum loses energy. In two "
    "dimensions the Helmholtz split is unique only up to a harmonic function, which can move "
    "between H and D without changing the field: these two numbers show how much of the "
    "learned H is the energy.",
)


# ---------------------------------------------------------------------------- data

def read_recording(path: str | Path) -> tuple[Array, Array, list[str]]:
    """One recorded trajectory of a 1-D system from a long-form CSV (trajectory, t, q, p).

    Returns t (T,), x (T, 2) as (q, p) and the two variable names; any other shape of file is
    a UsageError (one line, exit 2).
    """
    path = Path(path)
    if not path.is_file() and not path.is_absolute() and (ROOT / path).is_file():
        path = ROOT / path      # the shipped default, from any working directory
    if not path.is_file():
        fail(f"recording not found: {path} (the shipped one is {RECORDING.relative_to(ROOT)})")
    try:
        raw = read_csv(path)
    except DataError as err:
        fail(str(err))
    states, t, names = raw["states"], raw["t"], list(raw["names"])
    if states.shape[0] != 1 or states.shape[2] != 2:
        fail(f"{path}: need one trajectory of 2 variables (q, p), got {states.shape[0]} "
             f"trajectory(ies) of {states.shape[2]}")
    if raw["canonical"] is not None and list(raw["canonical"]) != ["q", "p"]:
        fail(f"{path}: columns must be in the order q, p (got {list(raw['canonical'])})")
    t, x = t[0], states[0]
    if len(t) < 20:
        fail(f"{path}: {len(t)} frames are too few to split into training and test stretches")
    if not (np.isfinite(x).all() and np.isfinite(t).all()):
        fail(f"{path}: holds NaN/inf values")
    if (np.diff(t) <= 0).any():
        fail(f"{path}: times must be strictly increasing")
    return t, x, names


def finite_differences(x: Array, t: Array, method: str) -> tuple[Array, Array, Array]:
    """Time derivatives of one stretch x (T, D) at times t (T,) from the recorded t.

    'central': second-order differences on the non-uniform grid at every frame; 'forward': the
    HNN paper's (x[i+1] - x[i]) / (t[i+1] - t[i]) at x[i] (the last frame dropped).
    Returns (states, times, derivatives) of matching length.
    """
    if method == "central":
        return x, t, np.gradient(x, t, axis=0, edge_order=2)
    if method == "forward":
        return x[:-1], t[:-1], np.diff(x, axis=0) / np.diff(t)[:, None]
    raise ValueError(f"unknown derivative method {method!r} (choose central or forward)")


def split_recording(t: Array, x: Array, train_fraction: float, method: str) -> dict:
    """The paper's contiguous split: frames [0, a) train, [a, T) test, a = int(fraction * T);
    derivatives taken within each stretch. Returns x, t, dxdt for "train" and "test"."""
    a = int(train_fraction * len(t))
    if a < 5 or len(t) - a < 5:
        fail(f"--train-fraction {train_fraction} leaves fewer than 5 frames in a stretch")
    out = {}
    for name, sl in (("train", slice(0, a)), ("test", slice(a, None))):
        xs, ts, d = finite_differences(x[sl], t[sl], method)
        out[name] = {"x": xs, "t": ts, "dxdt": d}
    return out


def pendulum_fit(x: Array, d: Array) -> dict:
    """Least squares of dq/dt = a p and dp/dt = -b sin q - c p on states x (T, 2) = (q, p)
    and their derivatives d (T, 2) -> a, b, c and the R^2 of both fits."""
    q, p = x[:, 0], x[:, 1]
    a = float(np.dot(p, d[:, 0]) / np.dot(p, p))
    coef, *_ = np.linalg.lstsq(np.stack([-np.sin(q), -p], axis=1), d[:, 1], rcond=None)
    b, c = map(float, coef)

    def r2(target: Array, fitted: Array) -> float:
        return float(1 - np.sum((target - fitted) ** 2) / np.sum((target - target.mean()) ** 2))

    return {"a": a, "b": b, "c": c, "r2_dtheta": r2(d[:, 0], a * p),
            "r2_domega": r2(d[:, 1], -b * np.sin(q) - c * p)}


def reference_energy(t: Array, x: Array) -> dict:
    """Fit E = p^2 + k (1 - cos q) to a recorded pendulum (q = angle, p = angular velocity).

    pendulum_fit on central differences of the whole recording; k = 2 b / a makes E the
    energy those equations conserve when c = 0 (the p^2 coefficient is 1, the paper's
    scale). Returns a, b, c, k, the R^2 of both fits, E at the first and last frame, the
    fraction of E the recording keeps, and c_forward: the friction the same fit reads from
    the paper's forward differences.
    """
    fit_ = pendulum_fit(*finite_differences(x, t, "central")[::2])
    k = 2 * fit_["b"] / fit_["a"]
    e = energy(x, k)
    forward = pendulum_fit(*finite_differences(x, t, "forward")[::2])
    return {"form": "E = omega^2 + k (1 - cos theta)", "k": k, **fit_, "paper_k": PAPER_K,
            "e_start": float(e[0]), "e_end": float(e[-1]), "energy_ratio": float(e[-1] / e[0]),
            "c_forward": forward["c"]}


def frame_counts(t: Array) -> dict:
    """Frames of a recording at times t (T,): how many, the median step, the gaps (steps over
    1.5 median steps), the frames missing in them (a step of n medians misses n - 1), and the
    time span."""
    steps = np.diff(t)
    median = float(np.median(steps))
    gaps = steps > 1.5 * median
    return {"recording": len(t), "median_step": median, "gaps": int(gaps.sum()),
            "dropped_frames": int(np.sum(np.round(steps[gaps] / median) - 1)),
            "t_start": float(t[0]), "t_end": float(t[-1])}


def energy(x: Array, k: float) -> Array:
    """Reference energy omega^2 + k (1 - cos theta) of states x (..., 2) -> (...)."""
    return x[..., 1] ** 2 + k * (1 - np.cos(x[..., 0]))


def _tensor(a: Array) -> Tensor:
    return torch.as_tensor(a, dtype=torch.float32)


# ---------------------------------------------------------------------------- one run

@dataclass(frozen=True)
class RealSettings:
    """Everything a run depends on besides the seed (saved in the JSON)."""

    recording: str = str(RECORDING.relative_to(ROOT))
    train_fraction: float = 0.8
    derivatives: tuple[str, ...] = tuple(TASKS)
    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 1e-5
    hidden_dim: int = 200
    n_layers: int = 3
    log_every: int = 100
    models: tuple[str, ...] = MODEL_KINDS
    rtol: float = ROLLOUT_RTOL         # the rollouts' RK45 tolerances
    atol: float = ROLLOUT_ATOL


def quick_settings(s: RealSettings) -> RealSettings:
    """Tiny networks, few steps and loose rollouts (most of a smoke run's time), for smoke
    tests."""
    return replace(s, steps=40, hidden_dim=32, log_every=20, rtol=1e-6, atol=1e-9)


def evaluate(model: nn.Module, split: dict, t: Array, x: Array, k: float,
             tol: tuple[float, float] = (ROLLOUT_RTOL, ROLLOUT_ATOL)) -> tuple[dict, dict]:
    """The metrics of one trained model -> (metrics, rollouts for the figure).

    split: split_recording's dict; t (T,), x (T, 2) the whole recording; k the reference
    energy's coefficient; tol the rollouts' (rtol, atol).
    """
    start = time.perf_counter()
    test = split["test"]
    sq = pointwise_sq_error(model, _tensor(test["x"]), _tensor(test["dxdt"])).numpy()
    test_loss, test_sem = _mean_sem(sq)
    t_test = test["t"] - test["t"][0]
    pred, info = rollout(model, test["x"][:1], t_test, *tol)
    pred = pred[0]                                                      # (T_test, 2)
    sq_e = (energy(pred, k) - energy(test["x"], k)) ** 2                # (T_test,)
    chunk_means = [c.mean() for c in np.array_split(sq_e, ENERGY_CHUNKS)]
    full, full_info = rollout(model, x[:1], t - t[0], *tol)
    full = full[0]                                                      # (T, 2)
    e_full = energy(full, k)
    back, back_info = rollout(model, pred[-1:], t_test[::-1], *tol)
    metrics = {
        "test_loss": test_loss, "test_loss_sem": test_sem,
        "energy_mse": float(sq_e.mean()),
        "energy_mse_chunk_sem": float(np.std(chunk_means) / np.sqrt(ENERGY_CHUNKS)),
        "state_mse": float(np.mean((pred - test["x"]) ** 2)),
        "energy_mse_full": float(np.mean((e_full - energy(x, k)) ** 2)),
        "energy_ratio_full": float(e_full[-1] / e_full[0]),
        "reversibility": float(np.linalg.norm(back[0, -1] - test["x"][0])),
        "rollout_ok": bool(info["success"] and full_info["success"] and back_info["success"]),
    }
    model64 = copy.deepcopy(model).double().eval()
    if isinstance(model, (HNN, DissipativeHNN)):
        with torch.no_grad():
            h = model64(torch.from_numpy(pred)).numpy()
            h_rec = model64(torch.from_numpy(x)).numpy()
        metrics["own_h_rel_drift"] = float(np.max(np.abs(h - h[0])) / abs(h[0]))
        metrics["h_ref_corr"] = float(np.corrcoef(h_rec, energy(x, k))[0, 1])
    if isinstance(model, DissipativeHNN):
        rate = model64.energy_rate(torch.from_numpy(x)).detach().numpy()
        metrics["dissipating_fraction"] = float(np.mean(rate < 0))
    metrics["eval_seconds"] = time.perf_counter() - start
    return metrics, {"t": t_test, "pred": pred, "t_full": t - t[0], "full": full}


def run_seed(settings: RealSettings, task: str, split: dict, t: Array, x: Array, k: float,
             seed: int, progress: bool = False) -> tuple[list[dict], dict]:
    """Train and score every model kind on one split of the recording with one seed ->
    (rows, rollouts). Both tasks draw the same initial weights for a seed."""
    _, init_seed, _ = task_seeds(TASK, seed)
    cfg = HNNConfig(input_dim=2, hidden_dim=settings.hidden_dim, n_layers=settings.n_layers)
    x_tr, y_tr = _tensor(split["train"]["x"]), _tensor(split["train"]["dxdt"])
    x_te, y_te = _tensor(split["test"]["x"]), _tensor(split["test"]["dxdt"])
    rows, rolls = [], {}
    for kind in settings.models:
        model = build_hamiltonian_model(kind, cfg, [0], [1],
                                        generator=torch.Generator().manual_seed(init_seed))
        # Full batch: the generator only feeds minibatch permutations, which never happen.
        hist = fit(model, x_tr, y_tr, steps=settings.steps, batch_size=None, lr=settings.lr,
                   weight_decay=settings.weight_decay, generator=torch.Generator().manual_seed(0),
                   x_test=x_te, dxdt_test=y_te, log_every=settings.log_every, progress=progress)
        metrics, rolls[kind] = evaluate(model, split, t, x, k, (settings.rtol, settings.atol))
        rows.append({"task": task, "model": kind, "seed": seed,
                     "train_loss": hist["final_train_loss"], **metrics,
                     "wall_time": hist["seconds"], "cpu_time": hist["cpu_seconds"],
                     "engine": hist["engine"],
                     "history": {k_: hist[k_] for k_ in ("step", "train_loss", "test_loss")}})
    return rows, rolls


# ---------------------------------------------------------------------------- table, figure

def check_targets(summary: list[dict]) -> dict:
    """The issue's targets, per task on means over seeds: the HNN's energy MSE at most the
    paper's HNN figure; the dissipative HNN's below both the HNN's and the baseline's."""
    out = {}
    for task in dict.fromkeys(r["task"] for r in summary):
        by = {r["model"]: r for r in summary if r["task"] == task}
        if "hnn" in by:
            bound = PAPER[TASK]["hnn"]["energy_mse"]
            out[f"{task}: hnn at or below the paper's HNN"] = {
                "hnn": by["hnn"]["energy_mse"], "paper": bound,
                "pass": by["hnn"]["energy_mse"] <= bound}
        if "dissipative-hnn" in by:
            d = by["dissipative-hnn"]["energy_mse"]
            others = {m: by[m]["energy_mse"] for m in ("hnn", "baseline") if m in by}
            out[f"{task}: dissipative HNN below the others"] = {
                "dissipative-hnn": d, **others, "pass": all(d < v for v in others.values())}
    return out


def format_table(summary: list[dict]) -> str:
    """One line per model: mean +- sample std over seeds, the paper's figures beside ours."""
    def pm(r: dict, key: str) -> str:
        return f"{r[key]:.2e} ± {r[key + '_std']:.1e}" if key in r else "n/a"

    lines = [f"{'task':<21} {'model':<16} {'train loss':>18} {'test loss':>18} "
             f"{'energy MSE':>18} {'paper':>8} {'E-MSE full record':>18} {'train s':>7}"]
    for r in summary:
        paper = f"{r['paper_energy_mse']:.2e}" if r.get("paper_energy_mse") else "n/a"
        lines.append(f"{r['task']:<21} {r['model']:<16} {pm(r, 'train_loss'):>18} "
                     f"{pm(r, 'test_loss'):>18} "
                     f"{pm(r, 'energy_mse'):>18} {paper:>8} {pm(r, 'energy_mse_full'):>18} "
                     f"{r['wall_time']:>7.1f}")
    return "\n".join(lines)


COLORS = {"recording": "black", "baseline": "tab:red", "hnn": "tab:blue",
          "dissipative-hnn": "tab:green"}
LABELS = {"recording": "recording", "baseline": "baseline", "hnn": "HNN",
          "dissipative-hnn": "dissipative HNN"}


def plot_recording(t: Array, x: Array, k: float, panels: dict, path: Path) -> Path:
    """One row of four panels per task in `panels` ({task: (split, rollouts)}): phase space
    (recording and each model's rollout from the first test frame), theta over the test
    stretch, the reference energy over the test stretch (the paper's metric), and over the
    whole recording from its first frame (the decay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 4, figsize=(20, 4.6 * len(panels)), squeeze=False)
    for row, (task, (split, rolls)) in zip(axes, panels.items()):
        test = split["test"]
        t_test = test["t"] - test["t"][0]
        ax = row[0]
        ax.plot(split["train"]["x"][:, 0], split["train"]["x"][:, 1], ".", color="0.75", ms=3,
                label="training stretch")
        ax.plot(test["x"][:, 0], test["x"][:, 1], "k-", lw=2.5, alpha=0.5, label="test stretch")
        for kind, r in rolls.items():
            ax.plot(r["pred"][:, 0], r["pred"][:, 1], color=COLORS[kind], lw=1.5,
                    label=LABELS[kind])
        ax.set(xlabel="theta", ylabel="omega", title=f"{task}: rollouts from the first test frame")
        ax.legend(fontsize=8)
        ax = row[1]
        ax.plot(t_test, test["x"][:, 0], "k-", lw=2.5, alpha=0.5, label=LABELS["recording"])
        for kind, r in rolls.items():
            ax.plot(r["t"], r["pred"][:, 0], color=COLORS[kind], lw=1.5, label=LABELS[kind])
        ax.set(xlabel="time since the first test frame", ylabel="theta", title="test stretch")
        ax.legend(fontsize=8)
        ax = row[2]
        ax.plot(t_test, energy(test["x"], k), "k-", lw=2.5, alpha=0.5, label=LABELS["recording"])
        for kind, r in rolls.items():
            ax.plot(r["t"], energy(r["pred"], k), color=COLORS[kind], lw=1.5, label=LABELS[kind])
        # A diverging rollout would squash the recording into a flat line.
        ax.set(xlabel="time since the first test frame",
               ylabel=f"E = omega^2 + {k:.3f} (1 - cos theta)",
               title="reference energy, test stretch (energy MSE)",
               ylim=(0, 1.5 * energy(test["x"], k).max()))
        ax.legend(fontsize=8)
        ax = row[3]
        ax.plot(t - t[0], energy(x, k), "k-", lw=2.5, alpha=0.5, label=LABELS["recording"])
        for kind, r in rolls.items():
            ax.plot(r["t_full"], energy(r["full"], k), color=COLORS[kind], lw=1.2,
                    label=LABELS[kind])
        ax.axvline(test["t"][0] - t[0], color="0.5", ls="--", lw=1, label="train | test")
        ax.set(xlabel="time since the first frame", ylabel="reference energy",
               title="whole recording, rollouts from its first frame",
               ylim=(0, 1.5 * energy(x, k).max()))
        ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=80)


# ---------------------------------------------------------------------------- entry points

def run_hnn_real(settings: RealSettings, seeds: Sequence[int], out_json: str | Path,
                 plots_dir: str | Path, quiet: bool = False, threads: int = 1) -> dict:
    """Train and score every model of `settings` with every seed and derivative estimator;
    write the JSON and the figure (seed seeds[0]). Returns the dict written to out_json.
    """
    if not seeds:
        fail("need at least one seed")
    t, x, names = read_recording(settings.recording)
    ref = reference_energy(t, x)
    splits = {TASKS[d]: split_recording(t, x, settings.train_fraction, d)
              for d in settings.derivatives}
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    runs, panels = [], {}
    start = time.perf_counter()
    try:
        for task, split in splits.items():
            for seed in seeds:
                rows, rolls = run_seed(settings, task, split, t, x, ref["k"], seed,
                                       progress=not quiet)
                runs.extend(rows)
                panels.setdefault(task, (split, rolls))
                if not quiet:
                    for r in rows:
                        print(f"{task} seed {seed} {r['model']:>15}: train {r['train_loss']:.2e} "
                              f"test {r['test_loss']:.2e} energy MSE {r['energy_mse']:.2e} "
                              f"(full record {r['energy_mse_full']:.2e}) ({r['wall_time']:.1f} s "
                              f"train, {r['eval_seconds']:.1f} s eval)", flush=True)
    finally:
        torch.set_num_threads(old_threads)
    figure = plot_recording(t, x, ref["k"], panels, Path(plots_dir) / "hnn_real_pendulum.png")
    summary = summarise(runs, SUMMARY_KEYS, PAPER)
    result = {
        "protocol": {"tasks": {TASKS[d]: f"{d} differences" for d in settings.derivatives},
                     "settings": asdict(settings), "seeds": list(seeds), "threads": threads,
                     "variables": names,
                     "frames": {task: {"train": len(s["train"]["t"]), "test": len(s["test"]["t"]),
                                       "test_starts_at_t": float(s["test"]["t"][0])}
                                for task, s in splits.items()} | frame_counts(t),
                     "notes": list(NOTES), "paper": PAPER},
        "reference_energy": ref,
        "environment": environment_info(),
        "summary": summary,
        "hnn_table": dashboard_rows(summary),
        "targets_check": check_targets(summary),
        "runs": runs,
        "figures": {"real-pendulum": str(figure)},
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(out_json, result)
    if not quiet:
        print(f"\nreference energy {ref['form']}, k = {ref['k']:.4f} (paper's code: {PAPER_K}); "
              f"friction c = {ref['c']:.4f}; the recording keeps {ref['energy_ratio']:.2f} of E")
        print(format_table(summary))
        for name, c in result["targets_check"].items():
            print(f"target {name}: {'PASS' if c['pass'] else 'MISS'} "
                  f"({', '.join(f'{k_} {v:.2e}' for k_, v in c.items() if k_ != 'pass')})")
        print(f"-> {out_json}")
    return result


@dataclass
class HNNRealFlags:
    """Flags of experiments/hnn_real.py."""

    recording: Path = flag(RECORDING.relative_to(ROOT), "the recording (.csv): one trajectory, "
                                                        "columns trajectory, t, q, p")
    seeds: list[int] = flag([0, 1, 2], "seeds (each draws its own initial weights)")
    models: list[str] = flag(list(MODEL_KINDS), f"models, of {', '.join(MODEL_KINDS)}")
    derivatives: list[str] = flag(list(TASKS), "finite differences of the targets, one task "
                                               "each (forward = the HNN paper's protocol)")
    train_fraction: float = flag(0.8, "share of the frames, from the start, that train")
    steps: int | None = flag(None, "Adam steps (default 2000, --quick 40)")
    results_dir: Path | None = flag(None, "where hnn_real.json goes (default results/, or "
                                          "results/quick)")
    plots_dir: Path | None = flag(None, "where hnn_real_pendulum.png goes (default plots/, or "
                                        "plots/quick)")
    quick: bool = flag(False, "tiny networks and step counts: a smoke run in seconds")
    threads: int = flag(1, "torch threads while training")
    quiet: bool = flag(False, "no progress bars, per-run lines or table")


def main(argv=None) -> dict:
    args = parse_flags(HNNRealFlags, argv, describe(__doc__))
    require_known(args.models, MODEL_KINDS, "model(s)")
    require_known(args.derivatives, TASKS, "derivative estimator(s)")
    require_at_least(args, 1, "steps", "threads")
    if not 0 < args.train_fraction < 1:
        fail(f"--train-fraction must be in (0, 1), got {args.train_fraction}")
    require_seeds(args)
    settings = RealSettings(recording=str(args.recording), train_fraction=args.train_fraction,
                            derivatives=tuple(dict.fromkeys(args.derivatives)),
                            models=tuple(dict.fromkeys(args.models)))
    if args.quick:
        settings = quick_settings(settings)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    sub = "quick" if args.quick else ""
    read_recording(settings.recording)      # a bad recording fails before anything is created
    # every output location checked before the long work starts
    results_dir = check_output_dir(args.results_dir or (RESULTS_DIR / sub), "--results-dir")
    check_output_file(Path(results_dir) / "hnn_real.json", "--results-dir:")
    plots_dir = check_output_dir(args.plots_dir or (PLOTS_DIR / sub), "--plots-dir")
    if not args.quiet:
        print(f"hnn_real: {settings}, seeds {args.seeds}, threads {args.threads}")
    return run_hnn_real(settings, args.seeds, Path(results_dir) / "hnn_real.json", plots_dir,
                        quiet=args.quiet, threads=args.threads)


if __name__ == "__main__":
    sys.exit(cli(main)())
