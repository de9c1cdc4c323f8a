"""Nothing lost, nothing run that should not be (issue #14): crafted checkpoints and results
files cannot run code, a failed or killed training leaves the earlier run folder byte-identical,
concurrent discoveries keep each other's entries, a user file that shares a built-in system's
name never touches the built-in runs, and a seed fixes the results (timings aside).

One tiny pipeline (tests/tiny_pipeline.py) is built per module; every check that changes it
works on a copy.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data.simulate import simulate
from discover import merge_entry
from runs import data_key, load_model
from tiny_pipeline import (DISCOVER, ENV, ROOT, SYSTEM, TRAIN, build, call, checksums,
                           crafted_checkpoint, ok, payload_runs, spawn)
from utils import UsageError, atomic_write_bytes, atomic_write_npz

# Fields that hold wall or CPU times (or the moment a file was written): everything else in
# a results file is fixed by the flags and the seed.
TIMING = {"seconds", "epoch_seconds", "epoch_cpu_seconds", "eval_seconds", "train_seconds",
          "train_cpu_seconds", "wall_seconds", "seconds_per_epoch", "cpu_seconds_per_epoch",
          "generated"}


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(1)
    return build(tmp_path_factory.mktemp("safety"))


def copy_results(pipe, dest: Path) -> Path:
    shutil.copytree(pipe.results, dest, symlinks=True)
    return dest


def without_timing(obj):
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def comparable(path: Path) -> bytes:
    """A JSON, JSON-lines or dashboard file, its timing fields removed, as bytes."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        rows = [without_timing(json.loads(line)) for line in text.splitlines()]
        return "\n".join(json.dumps(r, sort_keys=True) for r in rows).encode()
    if path.suffix == ".js":
        text = text[text.index("=") + 1:].rstrip().rstrip(";")
    return json.dumps(without_timing(json.loads(text)), sort_keys=True).encode()


# ---------------------------------------------------------------------------- no code runs

def test_crafted_checkpoint_cannot_run_code(pipe, tmp_path):
    marker = tmp_path / "PWNED"
    results = copy_results(pipe, tmp_path / "results")
    run_dir = results / "runs" / pipe.run_dir("physics-aware").name
    crafted = crafted_checkpoint(run_dir / "checkpoint.pt", marker)
    dirs = ["--data-dir", pipe.data, "--results-dir", results]
    attempts = [
        ("train", ["--system", SYSTEM, "--tag", "physics-aware", "--resume", *TRAIN, *dirs]),
        ("discover", ["--system", SYSTEM, "--run", run_dir, *DISCOVER, *dirs]),
        ("discover", ["--system", SYSTEM, *DISCOVER, *dirs]),     # found by its data
        ("evaluate", ["--systems", SYSTEM, "--quiet", *dirs, "--plots-dir", tmp_path / "plots",
                      "--dashboard-file", tmp_path / "dashboard.js"]),
    ]
    for script, argv in attempts:
        code, _, err = call(script, argv)
        assert code == 2 and "refused" in err and err.count("\n") == 1, (script, err)
    with pytest.raises(UsageError, match="refused"):
        load_model(run_dir)
    assert not marker.exists()
    assert not (tmp_path / "plots").exists() and not (tmp_path / "dashboard.js").exists()
    # the very file the scripts refused is a live payload: the unsafe load runs it
    assert payload_runs(f"import torch; torch.load({str(crafted)!r}, weights_only=False)",
                        marker)


def test_every_checkpoint_this_project_writes_loads_weights_only(pipe, tmp_path):
    """read_checkpoint's weights_only=True must not lock out our own files, and --resume
    (whose checkpoint holds every random state) must still work."""
    for tag in ("physics-aware", "standard"):
        torch.load(pipe.run_dir(tag) / "checkpoint.pt", weights_only=True)
    dirs = ["--data-dir", pipe.data, "--results-dir", tmp_path]
    for model in ("hnn", "baseline"):
        ok("train", ["--system", SYSTEM, "--model", model, "--epochs", "1", "--threads", "1",
                     "--quiet", *dirs])
        ckpt = tmp_path / "runs" / f"{SYSTEM}__{model}__default__s0" / "checkpoint.pt"
        torch.load(ckpt, weights_only=True)
    ok("train", ["--system", SYSTEM, "--tag", "r", *TRAIN, *dirs])
    ok("train", ["--system", SYSTEM, "--tag", "r", *TRAIN, "--epochs", "3", "--resume", *dirs])
    rows = (tmp_path / "runs" / f"{SYSTEM}__physicsnet__r__s0" / "metrics.jsonl").read_text()
    assert [json.loads(r)["epoch"] for r in rows.splitlines()] == [1, 2, 3]


def test_crafted_results_file_cannot_run_code(pipe, tmp_path):
    marker = tmp_path / "PWNED"
    payload = f"__import__('os').system('touch {marker}')"
    results = copy_results(pipe, tmp_path / "results")
    entry = json.loads((pipe.results / "discovered_equations.json").read_text())[SYSTEM]
    for crafted in ({**entry, "equations": [{**entry["equations"][0],
                                             "expression": f"{payload} + x"}]},
                    {**entry, "derived_inputs": {"r": payload}}):
        (results / "discovered_equations.json").write_text(json.dumps({SYSTEM: crafted}))
        code, _, err = call("evaluate", ["--systems", SYSTEM, "--quiet", "--data-dir", pipe.data,
                                         "--results-dir", results, "--plots-dir",
                                         tmp_path / "plots", "--dashboard-file",
                                         tmp_path / "dashboard.js"])
        assert code == 2 and "not allowed" in err and err.count("\n") == 1, err
    # discover reads the merged file too (and keeps the other entries as they are)
    code, _, err = call("discover", ["--system", SYSTEM, "--data-dir", pipe.data,
                                     "--results-dir", results, "--run",
                                     results / "runs" / pipe.run_dir("standard").name,
                                     *DISCOVER])
    assert code == 0, err
    assert not marker.exists()
    # the expression is a live payload for a reader that evaluates strings (sympy.parse_expr)
    assert payload_runs(f"import sympy; sympy.parse_expr({payload!r})", marker)


# ---------------------------------------------------------------------------- runs kept intact

def test_failed_training_leaves_the_run_as_it_was(pipe):
    run_dir = pipe.run_dir("physics-aware")
    before = checksums(run_dir)
    code, _, err = call("train", ["--system", SYSTEM, "--tag", "physics-aware",
                                  "--energy-lr", "1e30", *TRAIN, *pipe.dirs])
    assert code == 2 and "diverged" in err
    assert checksums(run_dir) == before
    assert not list(run_dir.parent.glob(f".{run_dir.name}.*"))   # its staging folder is gone


def test_killed_training_leaves_the_run_as_it_was(pipe, tmp_path):
    results = copy_results(pipe, tmp_path / "results")
    run_dir = results / "runs" / pipe.run_dir("physics-aware").name
    before = checksums(run_dir)
    long = [a if a != "2" else "500" for a in TRAIN]          # --epochs 500
    proc = spawn("train", ["--system", SYSTEM, "--tag", "physics-aware", *long,
                           "--data-dir", pipe.data, "--results-dir", results])
    stage = run_dir.parent / f".{run_dir.name}.staging-{proc.pid}"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        metrics = stage / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (stage / "checkpoint.pt").exists()       # it had written checkpoints
    assert checksums(run_dir) == before
    # the next training of this run clears what the killed one left
    ok("train", ["--system", SYSTEM, "--tag", "physics-aware", *TRAIN, "--data-dir", pipe.data,
                 "--results-dir", results])
    assert not stage.exists() and (run_dir / "checkpoint.pt").exists()


def test_a_run_outside_the_results_dir_is_only_read(pipe, tmp_path):
    run_dir = pipe.run_dir("physics-aware")
    before = checksums(run_dir)
    ok("discover", ["--system", SYSTEM, "--run", run_dir, *DISCOVER, "--data-dir", pipe.data,
                    "--results-dir", tmp_path])
    assert checksums(run_dir) == before
    entry = json.loads((tmp_path / "discovered_equations.json").read_text())[SYSTEM]
    assert entry["run"] == str(run_dir) and entry["equations"]


def test_stale_temporary_files_of_killed_writes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".checkpoint.pt.{dead.pid}.k1ll3d00.tmp"
    stale.write_bytes(b"half a checkpoint")
    writing = tmp_path / f".checkpoint.pt.{os.getpid()}.w0rk1ng0.tmp"
    writing.write_bytes(b"a write in progress")
    atomic_write_bytes(tmp_path / "checkpoint.pt", b"new")
    assert not stale.exists() and writing.exists()
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"new"


# ---------------------------------------------------------------------------- concurrency

def test_the_merge_waits_for_the_lock(tmp_path):
    """A writer holding the lock reads, waits 1.5 s, then writes its entry: a merge started
    meanwhile must wait and keep that entry (without the lock, it would be lost)."""
    out = tmp_path / "discovered_equations.json"
    out.write_text("{}")
    holding = tmp_path / "holding"
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from utils import atomic_write_json, file_lock, read_json\n"
            "with file_lock(%r):\n"
            "    merged = read_json(%r, {})\n"
            "    open(%r, 'w').close()\n"
            "    time.sleep(1.5)\n"
            "    merged['a'] = {'by': 'holder'}\n"
            "    atomic_write_json(%r, merged)\n" % (str(ROOT), str(out), str(out),
                                                     str(holding), str(out)))
    holder = subprocess.Popen([sys.executable, "-c", code], env=ENV)
    deadline = time.time() + 60
    while not holding.exists() and time.time() < deadline:
        time.sleep(0.01)
    start = time.perf_counter()
    merge_entry(tmp_path, "b", {"by": "test"})
    waited = time.perf_counter() - start
    assert holder.wait(60) == 0
    assert json.loads(out.read_text()) == {"a": {"by": "holder"}, "b": {"by": "test"}}
    assert waited > 0.5


def user_file(pipe, tmp_path) -> Path:
    """Another spring data set, saved under the built-in system's name in another folder."""
    path = tmp_path / "other" / f"{SYSTEM}.npz"
    arrays = simulate(SYSTEM, n_traj=40, seed=7)
    atomic_write_npz(path, **{k: v for k, v in arrays.items() if not k.startswith("truth_")})
    return path


def test_a_user_file_named_like_a_builtin_system_never_touches_its_runs(pipe, tmp_path):
    results = copy_results(pipe, tmp_path / "results")
    builtin = [results / "runs" / pipe.run_dir(t).name for t in ("physics-aware", "standard")]
    before = checksums(*builtin)
    merged_before = json.loads((results / "discovered_equations.json").read_text())
    path = user_file(pipe, tmp_path)
    key = data_key(path, pipe.data)
    assert key != SYSTEM and key.startswith(f"{SYSTEM}-")
    dirs = ["--data-dir", pipe.data, "--results-dir", results]
    ok("train", ["--system", path, "--tag", "physics-aware", *TRAIN, *dirs])
    ok("discover", ["--system", path, *DISCOVER, *dirs])
    assert checksums(*builtin) == before
    merged = json.loads((results / "discovered_equations.json").read_text())
    assert merged[SYSTEM] == merged_before[SYSTEM]
    assert Path(merged[key]["run"]).name == f"{key}__physicsnet__physics-aware__s0"
    mine = results / "runs" / f"{key}__physicsnet__physics-aware__s0"
    assert json.loads((mine / "config.json").read_text())["data"]["name"] == key
    # its evaluation is filed under its own name too
    ok("evaluate", ["--systems", path, "--quiet", *dirs, "--plots-dir", tmp_path / "plots",
                    "--dashboard-file", tmp_path / "dashboard.js"])
    metrics = json.loads((results / "metrics.json").read_text())["systems"]
    assert list(metrics) == [key] and metrics[key]["discovery"]["run"] == str(mine)
    assert (tmp_path / "plots" / f"{key}_trajectories.png").exists()
    assert not (tmp_path / "plots" / f"{SYSTEM}_trajectories.png").exists()


def test_two_discoveries_started_together_both_land_in_the_merged_file(pipe, tmp_path):
    results = copy_results(pipe, tmp_path / "results")
    (results / "discovered_equations.json").unlink()
    path = user_file(pipe, tmp_path)
    dirs = ["--data-dir", pipe.data, "--results-dir", results]
    ok("train", ["--system", path, "--tag", "physics-aware", *TRAIN, *dirs])
    procs = [spawn("discover", ["--system", system, *DISCOVER, *dirs])
             for system in (SYSTEM, path)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    merged = json.loads((results / "discovered_equations.json").read_text())
    assert set(merged) == {SYSTEM, data_key(path, pipe.data)}


# ---------------------------------------------------------------------------- a seed fixes it

def test_a_seed_fixes_every_result_but_the_timings(pipe, tmp_path):
    """The same flags twice (discover with its default engine settings: one Operon thread):
    the same Pareto fronts, and every results file byte-identical once its timing fields are
    removed."""
    results = copy_results(pipe, tmp_path / "results")
    dirs = ["--data-dir", pipe.data, "--results-dir", results]
    outputs = ["--plots-dir", tmp_path / "plots", "--dashboard-file", tmp_path / "dash.js"]
    run_dir = results / "runs" / f"{SYSTEM}__physicsnet__twice__s0"
    files = [run_dir / "config.json", run_dir / "summary.json", run_dir / "metrics.jsonl",
             run_dir / "discovered.json", results / "discovered_equations.json",
             results / "metrics.json", tmp_path / "dash.js"]
    seen, weights, raw = [], [], []
    for _ in range(2):
        ok("train", ["--system", SYSTEM, "--tag", "twice", "--n-invariants", "1", *TRAIN, *dirs])
        ok("discover", ["--system", SYSTEM, "--run", run_dir, "--budget", "5000",
                        "--latent-pcs", "1", "--quiet", *dirs])
        ok("evaluate", ["--systems", SYSTEM, "--quiet", *dirs, *outputs])
        seen.append([comparable(f) for f in files])
        raw.append((results / "discovered_equations.json").read_bytes())
        weights.append(torch.load(run_dir / "checkpoint.pt", weights_only=True)["model_state"])
    entries = [json.loads(r)[SYSTEM] for r in raw]
    fronts = [[eq.get("pareto") for eq in e["equations"]] for e in entries]
    assert fronts[0] == fronts[1] and any(fronts[0])
    for name, a, b in zip(files, *seen):
        assert a == b, f"{name} differs beyond its timing fields"
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
    assert np.isfinite(entries[0]["seconds"])          # the timings themselves are kept
