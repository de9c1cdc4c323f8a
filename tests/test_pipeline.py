"""End to end: simulate -> train (standard and physics-aware) -> discover -> evaluate on the
spring with a tiny budget, every script run as a subprocess into a temporary folder, then the
outputs checked (metrics.json, plots, dashboard data, README section, CLI errors)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "spring"
PREFIX = 10
PLOT_KINDS = ("trajectories", "energy", "losses", "latent", "pareto")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # One BLAS/torch thread per process: much faster than two on a shared 2-core machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    data, results, plots = tmp / "data", tmp / "results", tmp / "plots"
    dashboard = tmp / "dashboard" / "dashboard_data.js"
    dirs = ["--data-dir", str(data), "--results-dir", str(results)]
    run("data/simulate.py", "--systems", SYSTEM, "--n-traj", "60", "--out", str(data), "--quiet")
    small = ["--epochs", "2", "--hidden-dim", "32", "--latent-dim", "8", "--threads", "1",
             "--quiet"]
    run("train.py", "--system", SYSTEM, "--energy-weight", "0.5", "--tag", "physics-aware",
        *small, *dirs)
    run("train.py", "--system", SYSTEM, "--energy-weight", "0.0", "--tag", "standard",
        *small, *dirs)
    run("discover.py", "--system", SYSTEM, "--budget", "2000", "--niterations", "2",
        "--latent-pcs", "1", "--threads", "1", "--quiet", *dirs)
    proc = run("evaluate.py", "--systems", SYSTEM, *dirs, "--plots-dir", str(plots),
               "--dashboard-file", str(dashboard), "--prefix", str(PREFIX))
    metrics = json.loads((results / "metrics.json").read_text())
    return {"tmp": tmp, "data": data, "results": results, "plots": plots,
            "dashboard": dashboard, "metrics": metrics, "stdout": proc.stdout, "dirs": dirs}


def load_dashboard(path: Path) -> dict:
    text = path.read_text().strip()
    prefix = "window.DASHBOARD_DATA ="
    assert text.startswith(prefix) and text.endswith(";")
    return json.loads(text[len(prefix):-1])


def test_metrics_file(pipeline):
    m = pipeline["metrics"]["systems"][SYSTEM]
    assert m["has_truth"] and m["system"] == SYSTEM and m["variables"] == ["x", "v"]
    assert m["truth"]["invariants"] == ["E"]
    assert m["discovery"]["run"].endswith("__physics-aware__s0")
    for eq in m["equations"]:
        assert eq["kind"] in ("energy", "invariant", "latent")
        assert eq["error"] is None
        assert "E" in eq["per_invariant"]
        assert eq["conservation_ratio"] is not None and eq["conservation_ratio"] >= 0
    assert {r["tag"] for r in m["training"]} == {"standard", "physics-aware"}
    for row in m["training"]:
        assert row["epochs"] == 2 and row["final_train_loss"] > 0
    assert m["latent"]["latent_dim"] == 8 and len(m["latent"]["explained_variance"]) >= 2


def test_drift_table_has_both_rows(pipeline):
    drift = pipeline["metrics"]["systems"][SYSTEM]["drift"]
    assert drift["prefix"] == PREFIX
    assert drift["standard"]["tag"] == "standard" and drift["standard"]["beta"] == 0
    assert drift["physics"]["tag"] == "physics-aware" and drift["physics"]["projected"]
    for kind in ("standard", "physics"):
        row = drift[kind]
        assert 0 <= row["mean"] <= row["max"] and row["max_abs"] >= 0
    assert drift["energy"].startswith("true energy")
    assert drift["data"]["max"] < 1e-6          # the simulator itself conserves E
    assert drift["ratio"] == pytest.approx(drift["standard"]["mean"] / drift["physics"]["mean"])
    out = pipeline["stdout"]
    assert "standard (no physics loss)" in out and "physics-aware (projected)" in out
    assert "ratio standard/physics" in out


def test_every_plot_exists(pipeline):
    plots = pipeline["metrics"]["systems"][SYSTEM]["plots"]
    assert set(plots) == set(PLOT_KINDS)
    for kind in PLOT_KINDS:
        path = pipeline["plots"] / f"{SYSTEM}_{kind}.png"
        assert path.exists() and path.stat().st_size > 5000, kind
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dashboard_data(pipeline):
    dash = load_dashboard(pipeline["dashboard"])
    assert set(dash) == {"generated", "backend", "systems", "hnn_table", "hnn_pixel"}
    assert dash["hnn_table"] is None                  # no results/hnn_table.json here
    assert dash["hnn_pixel"] is None                  # nor results/hnn_pixel.json
    s = dash["systems"][SYSTEM]
    assert set(s) == {"variables", "canonical", "has_truth", "trajectories", "energy", "drift",
                      "latent", "n_conserved", "equations", "recording", "recording_info",
                      "decay"}
    # a simulated file is no recording, and its energy is conserved: nothing decays
    assert s["recording"] is False and s["recording_info"] is None and s["decay"] is None
    assert s["variables"] == ["x", "v"] and s["canonical"] == ["q", "p"] and s["has_truth"]
    assert 1 <= len(s["trajectories"]) <= 5
    assert [t["id"] for t in s["trajectories"]] == [e["id"] for e in s["energy"]]
    for traj, energy in zip(s["trajectories"], s["energy"]):
        T = len(traj["t"])
        assert T <= 100
        true = np.array(traj["true"])
        assert true.shape == (T, 2)
        for kind in ("standard", "physics"):
            pred = np.array(traj[kind])
            assert pred.shape == (T, 2)
            # a rollout starts from the observed (here clean) prefix
            np.testing.assert_allclose(pred[:PREFIX], true[:PREFIX], rtol=1e-4, atol=1e-5)
            assert len(energy[kind]) == T
        # the true energy is the spring's, 0.5 v^2 + 2.5 x^2, and constant
        e = 0.5 * true[:, 1] ** 2 + 2.5 * true[:, 0] ** 2
        np.testing.assert_allclose(energy["true"], e, rtol=1e-4)
    for kind in ("standard", "physics"):
        assert set(s["drift"][kind]) == {"mean", "max"}
    lat = s["latent"]
    assert 0 < len(lat["points"]) <= 1500 and len(lat["points"][0]) == 2
    assert "true energy" in lat["color_by"]
    assert all(len(v) == len(lat["points"]) for v in lat["color_by"].values())
    metrics_eqs = pipeline["metrics"]["systems"][SYSTEM]["equations"]
    assert len(s["equations"]) == len(metrics_eqs)
    for eq, m in zip(s["equations"], metrics_eqs):
        assert {"kind", "name", "expression", "latex", "complexity", "r2", "conservation_ratio",
                "matched", "structure_match", "pareto"} <= set(eq)
        assert eq["r2"] == m["r2"] and eq["matched"] == m["matched"]
        assert eq["structure_match"] == m["structure_match"]
        assert sum(p["chosen"] for p in eq["pareto"]) <= 1
    assert pipeline["dashboard"].stat().st_size < 3_000_000


def test_summary_names_the_dashboard(pipeline):
    out = pipeline["stdout"]
    assert "Summary" in out and "dashboard" in out and "http.server" in out


def test_readme_section(pipeline):
    readme = pipeline["tmp"] / "README.md"
    readme.write_text("# Lab\n<!-- results:start -->\nold\n<!-- results:end -->\nfooter\n")
    run("evaluate.py", "--readme", "--readme-file", str(readme), "--results-dir",
        str(pipeline["results"]), "--quiet")
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- results:end -->\nfooter\n")
    assert "physics-aware (projected)" in text and "| spring |" in text
    readme.write_text("# Lab without markers\n")
    proc = run("evaluate.py", "--readme", "--readme-file", str(readme), "--results-dir",
               str(pipeline["results"]), check=False)
    assert proc.returncode == 2 and "markers" in proc.stderr


def test_bad_system_name_exits_2_with_one_line(pipeline):
    proc = run("evaluate.py", "--systems", "no-such-system", *pipeline["dirs"], check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-system" in lines[0]
    assert proc.stdout == ""


def test_missing_runs_name_the_command(pipeline, tmp_path):
    proc = run("evaluate.py", "--systems", SYSTEM, "--data-dir", str(pipeline["data"]),
               "--results-dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "python train.py --system spring" in proc.stderr
    runs = tmp_path / "runs"
    runs.mkdir()
    for run_dir in (pipeline["results"] / "runs").iterdir():
        (runs / run_dir.name).symlink_to(run_dir)
    proc = run("evaluate.py", "--systems", SYSTEM, "--data-dir", str(pipeline["data"]),
               "--results-dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "python discover.py --system spring" in proc.stderr


def test_a_missing_standard_run_gives_null_rows(pipeline, tmp_path):
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    for run_dir in (pipeline["results"] / "runs").glob("*__physics-aware__*"):
        (results / "runs" / run_dir.name).symlink_to(run_dir)
    (results / "discovered_equations.json").write_text(
        (pipeline["results"] / "discovered_equations.json").read_text())
    dashboard = tmp_path / "dashboard_data.js"
    proc = run("evaluate.py", "--systems", SYSTEM, "--data-dir", str(pipeline["data"]),
               "--results-dir", str(results), "--plots-dir", str(tmp_path / "plots"),
               "--dashboard-file", str(dashboard))
    assert "python train.py --system spring --energy-weight 0.0 --tag standard" in proc.stdout
    drift = json.loads((results / "metrics.json").read_text())["systems"][SYSTEM]["drift"]
    assert drift["standard"] is None and drift["physics"] is not None and drift["ratio"] is None
    s = load_dashboard(dashboard)["systems"][SYSTEM]
    assert s["drift"]["standard"] is None and s["drift"]["physics"] is not None
    assert all(t["standard"] is None and t["physics"] is not None for t in s["trajectories"])
