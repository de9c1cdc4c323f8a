"""A tiny simulate -> train -> discover -> evaluate pipeline in a temporary folder, for the
robustness tests (tests/test_bad_inputs.py, tests/test_safety.py), and the helpers they share:
running a script in-process or as a subprocess, checksums of folders, crafted payloads.

Everything runs in-process through the scripts' cli(main) wrappers (one import of torch, not
one per script), on the spring with 40 trajectories and networks of a few thousand weights.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "spring"
TRAIN = ["--epochs", "2", "--hidden-dim", "16", "--latent-dim", "4", "--threads", "1",
         "--quiet"]
DISCOVER = ["--budget", "2000", "--niterations", "2", "--latent-pcs", "1", "--quiet"]
# One thread everywhere: the machines these tests run on have 2 shared cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
       "PYTHONPATH": str(ROOT)}
SCRIPTS = {"simulate": "data.simulate", "train": "train", "discover": "discover",
           "evaluate": "evaluate", "hnn_table": "experiments.hnn_table"}
SCRIPT_FILES = {"simulate": "data/simulate.py", "train": "train.py", "discover": "discover.py",
                "evaluate": "evaluate.py", "hnn_table": "experiments/hnn_table.py"}


@dataclass
class Pipeline:
    root: Path
    data: Path
    results: Path
    plots: Path
    dashboard: Path

    @property
    def dirs(self) -> list[str]:
        return ["--data-dir", str(self.data), "--results-dir", str(self.results)]

    @property
    def outputs(self) -> list[str]:
        return ["--plots-dir", str(self.plots), "--dashboard-file", str(self.dashboard)]

    def run_dir(self, tag: str) -> Path:
        return self.results / "runs" / f"{SYSTEM}__physicsnet__{tag}__s0"


def call(script: str, argv: list[str]) -> tuple[int, str, str]:
    """Run a script's cli(main) in this process: (exit status, stdout, stderr)."""
    module = importlib.import_module(SCRIPTS[script])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = module.cli(module.main)([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def spawn(script: str, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / SCRIPT_FILES[script]),
                             *map(str, argv)], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(script: str, argv: list[str], timeout: float = 300) -> tuple[int, str, str]:
    """Run a script as a real subprocess: (exit status, stdout, stderr)."""
    proc = spawn(script, argv)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def ok(script: str, argv: list[str]) -> str:
    code, out, err = call(script, argv)
    assert code == 0, f"{script} {argv} exited {code}: {err}"
    return out


def build(root: Path) -> Pipeline:
    """Simulate, train (physics-aware and standard), discover and evaluate the spring."""
    p = Pipeline(root, root / "data", root / "results", root / "plots",
                 root / "dashboard" / "dashboard_data.js")
    ok("simulate", ["--systems", SYSTEM, "--n-traj", "40", "--out", p.data, "--quiet"])
    ok("train", ["--system", SYSTEM, "--tag", "physics-aware", *TRAIN, *p.dirs])
    ok("train", ["--system", SYSTEM, "--tag", "standard", "--energy-weight", "0", *TRAIN,
                 *p.dirs])
    ok("discover", ["--system", SYSTEM, *DISCOVER, *p.dirs])
    ok("evaluate", ["--systems", SYSTEM, "--quiet", *p.dirs, *p.outputs])
    return p


def checksums(*paths: Path) -> dict[str, str]:
    """SHA-256 of every file (hidden ones too) under the given files or folders."""
    out = {}
    for top in paths:
        files = [top] if top.is_file() else sorted(f for f in top.rglob("*") if f.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


class Payload:
    """An object whose unpickling runs a shell command that creates `marker` (what a crafted
    checkpoint would do with torch.load(weights_only=False))."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint.pt (torch.save's zip format) whose loading with weights_only=False would
    create `marker`."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_kind": "physicsnet", "payload": Payload(marker)}, path)
    return path


def payload_runs(code: str, marker: Path) -> bool:
    """Proof that a payload is real: Python `code` that reads it the unsafe way, run in a
    subprocess, creates the marker."""
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, env=ENV,
                   timeout=120, capture_output=True)
    return marker.exists()
