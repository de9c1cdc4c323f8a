"""The PNG figures of one evaluated system (plots/<system>_<kind>.png): trajectories, energy
along true and predicted trajectories, training losses, the latent space and Pareto fronts.

`args` below is evaluate.py's EvaluateFlags.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from data.loader import Trajectories
from evaluation.report import LOSS_TERMS
from evaluation.system import SystemResult
from utils import atomic_write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLOURS = {"true": "black", "standard": "tab:red", "physics": "tab:blue"}
LABELS = {"true": "true", "standard": "standard (energy weight 0)",
          "physics": "physics-aware (projected)"}


def plot_axes_pair(data: Trajectories) -> tuple[list[tuple[int, int]], str]:
    """Which variables to draw a trajectory in: x-y for 2-D positions (every body of a
    many-body file), q-p (phase portrait) for one coordinate, else the first two variables."""
    q = [i for i, c in enumerate(data.canonical or []) if c == "q"]
    p = [i for i, c in enumerate(data.canonical or []) if c == "p"]
    if len(q) >= 2 and len(q) % 2 == 0:
        return [(q[i], q[i + 1]) for i in range(0, len(q), 2)], "position"
    if len(q) == 1:
        return [(q[0], p[0])], "phase portrait"
    return [(0, 1 if data.dim > 1 else 0)], "state"


def plot_system(res: SystemResult, plots_dir: Path, args) -> dict[str, str]:
    plt = _plt()
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, fn in (("trajectories", _plot_trajectories), ("energy", _plot_energy),
                     ("losses", _plot_losses), ("latent", _plot_latent),
                     ("pareto", _plot_pareto)):
        fig = fn(plt, res, args)
        if fig is None:
            continue
        path = plots_dir / f"{res.name}_{kind}.png"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(path, buffer.getvalue())   # a crash never leaves half a PNG
        out[kind] = str(path)
    return out


def _plot_trajectories(plt, res: SystemResult, args):
    data, n = res.data, min(args.n_show, len(res.test_idx))
    pairs, what = plot_axes_pair(data)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.3), squeeze=False)
    clean = res.truth.clean[res.test_idx]
    labels = {**LABELS, "true": "true" if res.truth.available else "observed"}
    for j, ax in enumerate(axes[0]):
        for kind, traj in [("true", clean)] + list(res.rollouts.items()):
            for b, (ix, iy) in enumerate(pairs):
                style = "-" if kind == "true" else "--"
                ax.plot(traj[j, :, ix], traj[j, :, iy], style, color=COLOURS[kind],
                        lw=1.8 if kind == "true" else 1.4, alpha=1.0 if b == 0 else 0.6,
                        label=labels[kind] if b == 0 else None)
        for b, (ix, iy) in enumerate(pairs):
            ax.plot(clean[j, :args.prefix, ix], clean[j, :args.prefix, iy], color="tab:green",
                    lw=4, alpha=0.5, label="observed prefix" if b == 0 else None)
            ax.plot(clean[j, 0, ix], clean[j, 0, iy], "o", color="tab:green", ms=5)
        ix, iy = pairs[0]
        ax.set_xlabel(data.names[ix] if len(pairs) == 1 else "x (each body)")
        ax.set_ylabel(data.names[iy] if len(pairs) == 1 else "y (each body)")
        ax.set_title(f"test trajectory {int(res.test_idx[j])}")
        ax.grid(alpha=0.3)
        if what != "state" and what == "position":
            ax.set_aspect("equal", adjustable="datalim")
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{res.name}: true vs predicted trajectories ({what}; rollout from the first "
                 f"{args.prefix} observed steps)")
    fig.tight_layout()
    return fig


def _plot_energy(plt, res: SystemResult, args):
    if "true" not in res.energies:
        return None
    known = res.truth.available
    ylabel = "true energy E" if known else "discovered energy E"
    labels = {**LABELS, "true": "true" if known else "observed"}
    n = min(args.n_show, len(res.test_idx))
    t = res.data.t[res.test_idx[0]]
    fig, axes = plt.subplots(1, n + 1, figsize=(4.3 * (n + 1), 3.9), squeeze=False)
    for j in range(n):
        ax = axes[0][j]
        for kind, e in res.energies.items():
            ax.plot(t, e[j], "-" if kind == "true" else "--", color=COLOURS[kind],
                    lw=1.8 if kind == "true" else 1.4, label=labels[kind])
        ax.axvline(t[args.prefix - 1], color="tab:green", ls=":", lw=1, label="end of prefix")
        ax.set_xlabel("t")
        ax.set_ylabel(ylabel)
        ax.set_title(f"test trajectory {int(res.test_idx[j])}")
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9,
               bbox_to_anchor=(0.5, -0.06))
    ax = axes[0][n]
    e0 = res.energies["true"][:, :1]
    for kind, e in res.energies.items():
        rel = np.abs(e - e0) / np.abs(e0)
        mean = np.nanmean(rel, axis=0)
        ax.plot(t[args.prefix:], np.clip(mean[args.prefix:], 1e-12, None), color=COLOURS[kind],
                label=labels[kind])
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("mean |E(t) - E(0)| / |E(0)|")
    ax.set_title(f"relative drift, mean of {len(res.test_idx)} test trajectories")
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{res.name}: true energy along true and predicted trajectories" if known
                 else f"{res.name}: discovered energy (no ground truth) along observed and "
                      "predicted trajectories")
    fig.tight_layout()
    return fig


def _plot_losses(plt, res: SystemResult, args):
    runs = [(k, r) for k, r in (("standard", res.runs.get("standard")),
                                ("physics", res.runs.get("physics"))) if r is not None]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(6.2 * len(runs), 4.3), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (kind, run) in zip(axes[0], runs):
        rows = run.metrics_rows()
        epochs = np.array([r["epoch"] for r in rows])
        for c, term in enumerate(LOSS_TERMS):
            labelled = False     # one legend entry per term; the line style tells the split
            for split, style in (("train", "-"), ("val", "--")):
                vals = np.array([r.get(f"{split}/{term}", np.nan) for r in rows], dtype=float)
                vals = np.where(vals > 0, vals, np.nan)
                if np.isfinite(vals).any():
                    ax.plot(epochs, vals, style, color=cmap(c), marker="." if len(rows) < 15
                            else None, label=None if labelled else term.replace("_", " "))
                    labelled = True
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(f"{LABELS[kind]}: {run.dir.name}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{res.name}: training losses per term (solid: train, dashed: validation)")
    fig.tight_layout()
    return fig


def _plot_latent(plt, res: SystemResult, args):
    lat = res.latent
    if lat is None:
        return None
    scores, keep = lat["scores"], lat["keep"]
    name = next((k for k in ("true energy", "E (discovered)") if k in lat["colours"]),
                next(iter(lat["colours"])))
    colour = lat["colours"][name]
    corr = res.metrics["latent"].get("abs_corr") or {}
    fig, axes = plt.subplots(1, 2 if corr else 1, figsize=(11.5 if corr else 6, 4.6),
                             squeeze=False)
    ax = axes[0][0]
    if scores.shape[1] >= 2:
        sc = ax.scatter(scores[keep, 0], scores[keep, 1], c=colour[keep], s=6, cmap="viridis")
        ax.set_ylabel(f"PC2 ({lat['explained'][1]:.1%} of variance)")
    else:
        sc = ax.scatter(scores[keep, 0], colour[keep], c=colour[keep], s=6, cmap="viridis")
        ax.set_ylabel(name)
    ax.set_xlabel(f"PC1 ({lat['explained'][0]:.1%} of variance)")
    fig.colorbar(sc, ax=ax, label=name)
    run = res.metrics["latent"]["run"]
    ax.set_title(f"latent PCA ({run}), coloured by {name}", fontsize=9)
    ax.grid(alpha=0.3)
    if corr:
        ax = axes[0][1]
        names = list(corr)
        k = len(next(iter(corr.values())))
        width = 0.8 / k
        x = np.arange(len(names))
        for j in range(k):
            vals = [corr[nm][j] if corr[nm][j] is not None else 0 for nm in names]
            ax.bar(x + (j - (k - 1) / 2) * width, vals, width, label=f"PC{j + 1}")
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=20 if len(names) > 3 else 0)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("true invariant")
        ax.set_ylabel("|correlation| with the component")
        ax.set_title("what the leading components encode")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{res.name}: latent space of held-out trajectories")
    fig.tight_layout()
    return fig


def _plot_pareto(plt, res: SystemResult, args):
    from matplotlib.ticker import MaxNLocator

    eqs = [e for e in (res.discovered or {}).get("equations", []) if e.get("pareto")]
    if not eqs:
        return None
    n = len(eqs)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    assessed = {(e["kind"], e["name"]): e for e in res.metrics["equations"]}
    for ax, eq in zip(axes.ravel(), eqs):
        front = eq["pareto"]
        cx = np.array([f["complexity"] for f in front], dtype=float)
        loss = np.array([f["loss"] if f["loss"] is not None else np.nan for f in front], float)
        floor = np.nanmin(loss[loss > 0]) / 10 if (loss > 0).any() else 1e-12
        loss = np.where(loss > 0, loss, floor)
        ax.plot(cx, loss, "o-", color="tab:gray", ms=4, label="Pareto front")
        chosen = [i for i, f in enumerate(front) if f.get("chosen")]
        if chosen:
            ax.plot(cx[chosen], loss[chosen], "*", color="tab:red", ms=15, label="chosen")
        else:
            ax.text(0.5, 0.04, "no front member is marked chosen", transform=ax.transAxes,
                    ha="center", fontsize=8, color="tab:red")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if cx.max() - cx.min() < 4:
            ax.set_xlim(cx.min() - 2, cx.max() + 2)
        ax.set_xlabel("complexity (expression nodes)")
        ax.set_ylabel("loss")
        a = assessed.get((eq.get("kind"), eq.get("name")), {})
        verdict = ""
        if a.get("matched"):
            verdict = (f": true {a['matched']}, exact structure" if a.get("structure_match")
                       else f": {a.get('relation')} of true {a['matched']}")
        text = eq.get("expression", "")
        text = text if len(text) <= 42 else text[:39] + "..."
        ax.set_title(f"{eq.get('kind')} {eq.get('name')}{verdict}\n{text}", fontsize=8.5)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"{res.name}: symbolic-regression Pareto fronts "
                 f"(backend {res.discovered.get('backend')})")
    fig.tight_layout()
    return fig
