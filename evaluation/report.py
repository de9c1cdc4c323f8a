"""Text tables of the evaluation (terminal and README), and the README's generated section.

A new metric gets its column in the table function of its kind here.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from evaluation.system import DRIFT_TARGET
from utils import atomic_write_text, fail

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
LOSS_TERMS = ("total", "prediction", "reconstruction", "hamiltonian", "energy_conservation",
              "energy_keeping", "smoothness")


def _fmt(v, kind: str = "g") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) and kind == "g":
        return str(v)
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "inf" if v > 0 else "-"
        if kind == "%":
            return f"{100 * v:.0f}%" if abs(v) >= 10 else f"{100 * v:.3g}%"
        if kind == "r2":
            return f"{v:.4f}" if v > 0.9 else f"{v:.3f}"
        if kind == "s":
            return f"{v:.1f}s"
        return f"{v:.3g}"
    return str(v)


def render(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        esc = lambda s: str(s).replace("|", "\\|")
        lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
                 "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _verdict(e: dict) -> str:
    if e.get("error"):
        return "unparsable"
    if e.get("matched") is None:
        return "no match" if e.get("per_invariant") else "n/a (no truth)"
    if e.get("structure_match"):
        return f"= {e['matched']} exactly"
    if e.get("relation") == "joint":
        return f"function of {e['matched'][2:-1]}"
    if e.get("relation") == "function":
        return f"function of {e['matched']}"
    if e.get("max_coef_error") is not None:
        return f"≈ {e['matched']}, a coefficient {100 * e['max_coef_error']:.2g}% off"
    return f"≈ {e['matched']}, other terms"


def equations_table(metrics: dict, markdown: bool = False, code=lambda s: s) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        for e in m["equations"]:
            if markdown and e.get("kind") == "latent":
                continue        # descriptive, not laws: terminal and metrics.json only
            expr = e.get("expression") or ""
            if not markdown and len(expr) > 60:
                expr = expr[:57] + "..."
            func = _fmt(e.get("functional_r2"), "r2")
            if e.get("relation") == "joint":
                func = f"{_fmt(e.get('joint_r2'), 'r2')} (joint)"
            rows.append([name, e.get("kind"), e.get("name"), code(expr), _fmt(e.get("matched")),
                         _fmt(e.get("r2"), "r2"), func,
                         _fmt(e.get("structure_match")), _fmt(e.get("max_coef_error"), "%"),
                         _fmt(e.get("conservation_ratio")), _verdict(e)])
    return render(["system", "kind", "name", "expression", "matches", "affine R²",
                   "functional R²", "structure", "max coef err", "conservation ratio",
                   "verdict"], rows, markdown)


def _with_errors(e: dict) -> str:
    """The law's terms as 'coefficient ± spread * term' from its uncertainty, else its
    expression."""
    coefs = (e.get("uncertainty") or {}).get("coefficients") or {}
    if not coefs:
        return e.get("expression") or ""
    parts = [f"({value:.5g} ± {err:.2g})·{term}" for term, (value, err) in coefs.items()]
    return " + ".join(parts)


def approximate_table(metrics: dict, markdown: bool = False, code=lambda s: s) -> str:
    """Energies that explain the motion but are lost (real recordings, damped systems):
    the law with each coefficient's spread, mu against the exactness threshold, the share of
    the energy the data keep, and the fitted loss law with the share of the change it
    explains. Listed, never counted."""
    rows = []
    for name, m in metrics["systems"].items():
        for e in m["equations"]:
            d = e.get("decay")
            if e.get("kind") != "approximate" or not d:
                continue
            rows.append([name, e.get("name"), code(_with_errors(e)),
                         f"{_fmt(e.get('mu'))} > {_fmt(m['discovery'].get('threshold'))}",
                         _fmt(d.get("kept"), "%"), code(d.get("loss_law") or "-"),
                         _fmt(d.get("explained"), "%")])
    return render(["system", "name", "approximately conserved (± spread over 5 parts)",
                   "μ > threshold", "kept", "loss law", "explains"], rows, markdown)


def drift_table(metrics: dict, markdown: bool = False) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        d = m["drift"]
        for kind, label in (("standard", "standard (no physics loss)"),
                            ("physics", "physics-aware (projected)")):
            r = d.get(kind)
            if r is None:
                rows.append([name, label, "-", "-", "-", "-", "-", "-", "(no run)"])
                continue
            head = (r.get("energy_head") or {}).get("residual_over_spread")
            rows.append([name, label, r.get("tag"), _fmt(r.get("mean"), "%"),
                         _fmt(r.get("max"), "%"), _fmt(r.get("max_abs")),
                         _fmt(r.get("state_nrmse")), _fmt(head, "%"), r.get("run")])
        if d.get("energy") and not d["energy"].startswith("true"):
            rows.append([name, f"(drift of the {d['energy']})"] + [""] * 7)
        ratio = d.get("ratio")
        if ratio is not None:
            ok = "met" if d.get("target_met") else "NOT met"
            rows.append([name, f"ratio standard/physics: {ratio:.3g}x (target >= "
                               f"{DRIFT_TARGET:g}x: {ok})"] + [""] * 7)
    return render(["system", "model", "tag", "avg energy drift", "max drift", "max |ΔE|",
                   "state NRMSE", "Ê error", "run"], rows, markdown)


def training_table(metrics: dict, markdown: bool = False) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        for r in m["training"]:
            epochs = r.get("epochs")
            if r.get("epochs_asked") and epochs != r.get("epochs_asked"):
                epochs = f"{epochs}/{r['epochs_asked']}"
            rows.append([name, r.get("tag"), _fmt(r.get("beta")), _fmt(r.get("latent_dim")),
                         _fmt(epochs), _fmt(r.get("train_seconds"), "s"),
                         _fmt(r.get("wall_seconds"), "s"), _fmt(r.get("device")),
                         _fmt(r.get("final_train_loss")), _fmt(r.get("final_val_loss"))])
    return render(["system", "tag", "energy weight", "latent dim", "epochs", "training time",
                   "wall time", "device", "final train loss", "final val loss"], rows, markdown)


def latent_table(metrics: dict) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        lat = m.get("latent")
        if not lat:
            continue
        ev = ", ".join(f"{v:.2f}" for v in lat["explained_variance"][:3])
        corr = "; ".join(f"{inv}: " + "/".join(_fmt(c) for c in cs)
                         for inv, cs in (lat.get("abs_corr") or {}).items())
        rows.append([name, lat.get("run"), lat["latent_dim"], ev, corr or "-"])
    return render(["system", "run", "dim", "explained variance (PC1-3)",
                   "|corr| PC1/PC2/PC3 with true invariants"], rows)


def ablation_table(metrics: dict) -> str:
    rows = []
    for name, m in metrics["systems"].items():
        for r in m.get("ablation") or []:
            rows.append([name, r["tag"], _fmt(r["beta"]), _fmt(r["latent_dim"]),
                         _fmt(r["epochs"]), _fmt(r["final_val_loss"]),
                         _fmt(r["drift_mean"], "%"), _fmt(r["state_nrmse"]),
                         _fmt(r["energy_r2"], "r2"), _fmt(r["energy_structure_match"]),
                         _fmt(r["n_conserved"])])
    return render(["system", "tag", "energy weight", "latent dim", "epochs", "final val loss",
                   "drift", "state NRMSE", "E R²", "E exact", "laws found"], rows)


def print_report(metrics: dict, dashboard: Path | None) -> None:
    print("\n1. Discovered equations vs ground truth (held-out clean states)")
    print(equations_table(metrics))
    print(f"\n2. Energy drift of rollouts (first {metrics['settings']['prefix']} steps observed)")
    print(drift_table(metrics))
    print(textwrap.fill(DRIFT_NOTE, width=100))
    print("\n3. Training")
    print(training_table(metrics))
    if any(m.get("latent") for m in metrics["systems"].values()):
        print("\n4. Latent space (PCA of the physics-aware run's latent)")
        print(latent_table(metrics))
    if any(len(m.get("ablation") or []) > 2 for m in metrics["systems"].values()):
        print("\n5. Ablations (every run of each system)")
        print(ablation_table(metrics))
    if any(e.get("kind") == "approximate" and e.get("decay")
           for m in metrics["systems"].values() for e in m["equations"]):
        print("\nApproximately conserved (lost energy, not counted)")
        print(approximate_table(metrics))
    if metrics.get("hnn_table"):
        print("\nHamiltonian NN vs baseline (results/hnn_table.json)")
        print(hnn_table(metrics))
    print("\nSummary")
    for name, m in metrics["systems"].items():
        laws = [e for e in m["equations"] if e["kind"] in ("energy", "invariant")]
        n = m['discovery']['n_conserved']
        print(f"  {name}: {n} conserved {'quantity' if n == 1 else 'quantities'} found")
        for e in laws:
            print(f"    {e['name']} = {e['expression']}   [{_verdict(e)}"
                  + (f", R² {e['r2']:.4f}" if e.get("r2") is not None else "") + "]")
        if not laws:
            print("    (no conservation law)")
        for e in m["equations"]:
            if e["kind"] == "approximate":
                d = e.get("decay") or {}
                kept = f", keeps {d['kept']:.1%} over the data" if d.get("kept") else ""
                loss = (f", {d['loss_law']} (explains {d['explained']:.1%})"
                        if d.get("loss_law") else "")
                print(f"    approximately conserved, not counted: {e['name']} = "
                      f"{e['expression']}{kept}{loss}")
        d = m["drift"]
        if d.get("ratio") is not None:
            print(f"    drift: standard {_fmt(d['standard']['mean'], '%')}, physics-aware "
                  f"{_fmt(d['physics']['mean'], '%')} -> {d['ratio']:.3g}x smaller "
                  f"({'target met' if d['target_met'] else 'target NOT met'})")
    if dashboard is not None:
        print(f"\ndashboard data: {dashboard}")
        print("view it: open dashboard/index.html, or "
              "python -m http.server 8080 --directory dashboard/ and http://localhost:8080")


# ============================================================================ README

def hnn_table(metrics: dict, markdown: bool = False) -> str:
    rows = [[r.get("task"), r.get("model"), _fmt(r.get("train_loss")), _fmt(r.get("test_loss")),
             _fmt(r.get("energy_mse")) + (f" ± {_fmt(r['energy_mse_std'])}"
                                           if r.get("energy_mse_std") else ""),
             _fmt(r.get("paper_energy_mse"))] for r in metrics.get("hnn_table") or []]
    return render(["task", "model", "train loss", "test loss", "energy MSE",
                   "paper's energy MSE"], rows, markdown)


DRIFT_NOTE = ("avg/max drift: |E(t) - E(0)| / |E(0)| over the predicted steps of held-out "
              "trajectories; state NRMSE: rollout error in units of each variable's spread; "
              "Ê error: the energy head's residual after the best affine map to the true E, "
              "in units of E's spread (a rollout projected onto Ê's level set drifts about "
              "this much).")


def readme_section(metrics: dict) -> str:
    code = lambda s: f"`{s}`" if s else ""
    parts = [f"_From results/metrics.json of {metrics.get('generated', '?')} "
             "(`python evaluate.py --readme`)._", "",
             "#### Discovered equations vs ground truth", "",
             equations_table(metrics, markdown=True, code=code), "",
             f"#### Energy drift of predicted trajectories (rollout from the first "
             f"{metrics['settings']['prefix']} observed steps, true energy)", "",
             drift_table(metrics, markdown=True), "", DRIFT_NOTE, "", "#### Training", "",
             training_table(metrics, markdown=True)]
    if any(e.get("kind") == "approximate" and e.get("decay")
           for m in metrics["systems"].values() for e in m["equations"]):
        parts += ["", "#### Approximately conserved: lost energy and its loss law", "",
                  approximate_table(metrics, markdown=True, code=code), "",
                  "μ: within-trajectory variance over what the data's measured noise gives "
                  "it (a law is exact at μ ≤ threshold); kept: the energy above its minimum at "
                  "the end of the data over that at the start; loss law: dE/dt fitted in "
                  "integral form along each recording, with the share of E's change it "
                  "explains. Not counted as laws."]
    if metrics.get("hnn_table"):
        parts += ["", "#### Hamiltonian NN vs baseline (experiments/)", "",
                  hnn_table(metrics, markdown=True), "",
                  "Energy MSE, mean ± std over 3 seeds. Simulated tasks "
                  "(experiments/hnn_table.py): the true energy along RK45 rollouts from "
                  "held-out starts over t in [0, 20] (the span of the paper's analysis "
                  "notebooks); `baseline`/`hnn`: last weights (the paper's protocol); `+avg`: a "
                  "moving average (decay 0.999) of the weights of the same training run. "
                  "Real pendulum (experiments/hnn_real.py): E = ω² + k(1 − cos θ), k fitted "
                  "on the whole recording, of the model's rollout against that of the "
                  "recording over its held-out last 20 %; `-central`: targets from central instead of the paper's "
                  "forward differences; `dissipative-hnn`: an HNN plus a learnt dissipation "
                  "term (Sosanya & Greydanus 2022). Pixel pendulum "
                  "(experiments/pixel_pendulum.py): the true energy (J) of latent rollouts "
                  "from held-out starts over the held-out trajectories' span, read through "
                  "a chart fitted on encoded training frames and their stored truth."]
    if metrics.get("hnn_pixel"):
        parts += ["", pixel_paragraph(metrics["hnn_pixel"])]
    return "\n".join(parts)


def pixel_paragraph(pixel: dict) -> str:
    """The pixel pendulum beyond its rows: baseline / HNN energy MSE by rollout horizon per
    loss step, and what our discovery found on each model's latent trajectories (a table)."""
    ratios = pixel.get("ratios_by_horizon") or {}
    names = {"span": "the data span"}
    losses = {"euler": "with the paper's loss (one Euler step per frame; baseline / hnn)",
              "rk4": "with an RK4 step in the loss (baseline+rk4 / hnn+rk4)"}
    parts = []
    for step, by_h in ratios.items():
        parts.append(f"Pixel pendulum, baseline energy MSE over the HNN's by rollout horizon "
                     f"{losses.get(step, step)}: "
                     + ", ".join(f"{names.get(h, h + ' frames')} {v:.3g}×"
                                 for h, v in by_h.items() if v is not None) + ".")
    found = pixel.get("latent_discovery") or []
    if found:
        rows = [[f.get("model"), f.get("seed"), f.get("n_conserved"), f.get("kind") or "-",
                 f.get("terms") if f.get("terms") is not None else "-", _fmt(f.get("mu")),
                 f"{f['r2_true_energy']:.4f}" if f.get("r2_true_energy") is not None else "-"]
                for f in found]
        parts += ["", "Our discovery (train.py + discover.py) on each model's latent "
                  "trajectories, as user data; the best law by held-out R² against the true "
                  "energy (its formula in results/hnn_pixel.json and the dashboard):", "",
                  render(["model", "seed", "exact laws", "best law", "terms", "μ",
                          "R² vs true energy"], rows, True)]
    return "\n".join(parts)


def rewrite_readme(readme: Path, metrics: dict, source: Path | str = "metrics.json") -> Path:
    """Replace the README's results section by readme_section(metrics); one-line errors for a
    missing or unreadable README, missing markers, or a metrics file (`source`) that is not
    one evaluate.py wrote."""
    if not readme.is_file():
        fail(f"{readme} not found (the results section goes between the markers "
             f"{README_START} and {README_END})")
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        fail(f"cannot read {readme} ({getattr(err, 'strerror', None) or type(err).__name__})")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0 or end < start:
        fail(f"{readme} lacks the markers {README_START} ... {README_END} (in that order): add "
             "them where the generated results should go")
    try:
        section = readme_section(metrics)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        fail(f"{source} is not a metrics file written by evaluate.py ({type(err).__name__}: "
             f"{str(err)[:80]}): run `python evaluate.py --systems ...` again")
    new = text[:start + len(README_START)] + "\n" + section + "\n" + text[end:]
    return atomic_write_text(readme, new)
