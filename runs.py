"""Run folders: their names, what their config says, finding and picking them, and the trained
model of a run as numpy functions.

A run folder is `<results-dir>/runs/<data>__<model>__<tag>__s<seed>/` holding config.json,
metrics.jsonl, checkpoint.pt and summary.json (written by train.py). discover.py and the
evaluation code find runs here and read their models through `TrainedModel`.

A run is tied to its data: `<data>` is the data key (data_key: the file's stem for a file in
--data-dir, the stem plus a short hash of its resolved path for a file elsewhere, so that a
user's other/spring.csv never lands in the built-in spring's runs), and runs are matched to a
data file by the SHA-256 of its bytes recorded in config.json (find_data_runs).

    from runs import find_runs, TrainedModel
    run = pick_run(find_runs(Path("results"), "spring"), physics=True)
    model = TrainedModel(run.dir)
    E = model.energy(states)                      # (n, D) raw states -> (n,)
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils import fail, file_sha256, pid_alive, read_checkpoint, read_json

PHYSICSNET = "physicsnet"


def data_key(source: str | Path, data_dir: str | Path) -> str:
    """The name a data file's runs and results are filed under: its stem for a file in
    `data_dir` (the built-in systems and their noisy variants), else `<stem>-<first 8 hex of
    the SHA-256 of its resolved path>`: two files of the same name in different folders never
    share a run folder or an entry of discovered_equations.json."""
    import hashlib

    path = Path(source).resolve()
    if path.parent == Path(data_dir).resolve():
        return path.stem
    return f"{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def run_name(system: str, model: str, tag: str, seed: int) -> str:
    """Run folder name, `{system}__{model}__{tag}__s{seed}` (cleanrl style, no time stamp so
    that a re-run or --resume finds its folder)."""
    safe = lambda s: "".join(c if c.isalnum() or c in "-_." else "-" for c in str(s))
    return f"{safe(system)}__{safe(model)}__{safe(tag)}__s{seed}"


def is_physics_aware(flags: dict) -> bool:
    """A PhysicsNet run is physics-aware when its energy terms were trained (beta > 0)."""
    return float(flags.get("beta", 0.0) or 0.0) > 0


@dataclass
class Run:
    """A finished (or running) training run, as its folder describes it."""

    dir: Path
    config: dict
    summary: dict | None
    mtime: float

    @property
    def flags(self) -> dict:
        return self.config.get("flags", {})

    @property
    def model(self) -> str:
        return str(self.flags.get("model", PHYSICSNET))

    @property
    def tag(self) -> str:
        return str(self.flags.get("tag", "?"))

    @property
    def beta(self) -> float:
        return float(self.flags.get("beta", 0.0) or 0.0)

    @property
    def physics_aware(self) -> bool:
        return is_physics_aware(self.flags)

    @property
    def latent_dim(self) -> int | None:
        return self.flags.get("latent_dim")

    def metrics_rows(self) -> list[dict]:
        """metrics.jsonl rows ([] when missing; a partial last line of a run still being
        written is skipped)."""
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return rows


def read_run(run_dir: Path) -> Run | None:
    """The run in a folder, or None when it has no config.json or no checkpoint."""
    cfg_path, ckpt = run_dir / "config.json", run_dir / "checkpoint.pt"
    if not cfg_path.exists() or not ckpt.exists():
        return None
    config = read_json(cfg_path, {}) or {}
    return Run(run_dir, config, read_json(run_dir / "summary.json"), ckpt.stat().st_mtime)


def find_runs(results_dir: Path, key: str, model: str = PHYSICSNET) -> list[Run]:
    """Every run of `model` filed under the data key `key` that has a checkpoint, oldest
    first."""
    runs = []
    for cfg_path in sorted((Path(results_dir) / "runs").glob("*/config.json")):
        if cfg_path.parent.name.startswith("."):     # a training in progress or killed
            continue
        run = read_run(cfg_path.parent)
        if run is None or run.model != model:
            continue
        if run.config.get("data", {}).get("name") != key:
            continue
        runs.append(run)
    return sorted(runs, key=lambda r: (r.mtime, r.dir.name))


def find_data_runs(results_dir: Path, key: str, source: str | Path,
                   model: str = PHYSICSNET) -> list[Run]:
    """find_runs, keeping the runs trained on exactly these bytes (SHA-256 in config.json);
    one-line error when every run of the key was trained on another version of the file."""
    runs = find_runs(results_dir, key, model)
    if not runs:
        return []
    sha = file_sha256(source)
    same = [r for r in runs if r.config.get("data", {}).get("sha256") == sha]
    if not same:
        fail(f"the runs of '{key}' in {Path(results_dir) / 'runs'} were trained on another "
             f"version of {source} (its contents changed since): train again with "
             f"`python train.py --system {source}`")
    return same


def check_run_fits(run_dir: str | Path, names: list[str]) -> dict:
    """Fail with one line naming the mismatch unless the run's checkpoint was trained on data
    with these variables (same number, same names, same order); returns the checkpoint."""
    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        fail(f"no checkpoint in {run_dir}: train it with `python train.py --system ...` first")
    ckpt = read_checkpoint(path)
    trained = (ckpt.get("data") or {}).get("names") if isinstance(ckpt.get("data"), dict) else None
    if not isinstance(trained, list):
        fail(f"{path} does not record the variables it was trained on; train the run again")
    if len(trained) != len(names):
        fail(f"run {Path(run_dir).name} was trained on {len(trained)} variables {trained}, "
             f"but the data have {len(names)}: {names}")
    if [str(n) for n in trained] != list(names):
        fail(f"run {Path(run_dir).name} was trained on the variables {trained}, but the data "
             f"have {names}")
    return ckpt


def pick_run(runs: list[Run], physics: bool) -> Run | None:
    """Standard (energy weight 0) or physics-aware (> 0) run: the tag 'standard' /
    'physics-aware' first, then one with a summary, then the newest."""
    wanted = "physics-aware" if physics else "standard"
    pool = [r for r in runs if r.physics_aware == physics]
    if not pool:
        return None
    return max(pool, key=lambda r: (r.tag == wanted, r.summary is not None, r.mtime))


def discovery_run(runs: list[Run]) -> Run | None:
    """The run discovery distils: the newest physics-aware run, else the newest run."""
    if not runs:
        return None
    return max(runs, key=lambda r: (r.physics_aware, r.mtime))


# ---------------------------------------------------------------------------- staging

# A training writes into a private folder beside its run folder, `.<run>.staging-<pid>`, and
# swaps it in only when it has finished: a run that fails, or is killed, leaves the previous
# run folder exactly as it was. The pid in the name tells a killed training's folder (its pid
# is gone) from one still running.
STAGING, OLD = "staging", "old"


def _leftovers(run_dir: Path, kind: str) -> list[Path]:
    """`.<run>.<kind>-<pid>` folders of processes that are no longer alive, newest first."""
    out = []
    for path in run_dir.parent.glob(f".{run_dir.name}.{kind}-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)) and path.is_dir():
            out.append(path)
    return sorted(out, key=lambda p: p.stat().st_mtime, reverse=True)


def killed_trainings(run_dir: Path) -> list[Path]:
    """Staging folders of trainings of this run that were killed (or interrupted), newest
    first, after finishing any swap that a kill cut between its two renames."""
    run_dir = Path(run_dir)
    for old in _leftovers(run_dir, OLD):
        if run_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:                       # killed between its renames: the previous run comes back
            old.rename(run_dir)
    return [p for p in _leftovers(run_dir, STAGING) if (p / "checkpoint.pt").exists()]


def staging_dir(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.{STAGING}-{os.getpid()}"


@contextlib.contextmanager
def staged_run(run_dir: Path, resume_from: Path | None = None):
    """Yield the folder a training writes into; when the block ends normally that folder
    replaces `run_dir`.

    resume_from: None (a fresh run: an empty folder), `run_dir` (copied first), or a killed
    training's staging folder (adopted). An exception removes the folder, leaving `run_dir`
    as it was; Ctrl-C keeps it, so that `--resume` continues from where it stopped.
    """
    run_dir = Path(run_dir)
    stage = staging_dir(run_dir)
    killed_trainings(run_dir)           # finishes a swap cut by a kill
    killed = _leftovers(run_dir, STAGING)
    if resume_from is not None and Path(resume_from) != run_dir:
        Path(resume_from).rename(stage)
    elif resume_from is not None:
        shutil.copytree(run_dir, stage, symlinks=True)
    for leftover in killed:
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
    except KeyboardInterrupt:
        raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = run_dir.parent / f".{run_dir.name}.{OLD}-{os.getpid()}"
    if run_dir.exists():
        run_dir.rename(old)
    stage.rename(run_dir)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------- trained models

def load_model(run_dir: str | Path, device="cpu"):
    """Rebuild the trained model of a run folder from its checkpoint.pt alone.

    Returns (model in eval mode on `device`, the checkpoint dict). The checkpoint's
    "model_kind" says what the model is: "physicsnet" (models.physics_net.PhysicsNet), or
    "hnn"/"baseline" (models.hnn; for those, H = model(x) and model.time_derivative(x)).
    """
    path = Path(run_dir) / "checkpoint.pt"
    if not path.exists():
        fail(f"no checkpoint in {run_dir}: train it with `python train.py --system ...` first")
    ckpt = read_checkpoint(path, device)
    kind = ckpt.get("model_kind")
    try:
        if kind == PHYSICSNET:
            from models.physics_net import build_physics_net

            model = build_physics_net(ckpt["model_config"])
        elif kind in ("hnn", "baseline"):
            from models.hnn import HNNConfig, build_hamiltonian_model

            extra = ckpt["model_config"]
            model = build_hamiltonian_model(kind, HNNConfig(**extra["hnn"]), extra.get("q_idx"),
                                            extra.get("p_idx"))
        else:
            fail(f"{path} holds an unknown model kind {kind!r}; train the run again")
        model.load_state_dict(ckpt["model_state"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        fail(f"{path} does not hold a model this code can rebuild ({type(err).__name__}); "
             "train the run again")
    return model.to(device).eval(), ckpt


class TrainedModel:
    """A trained PhysicsNet run, loaded once, with numpy in and numpy out."""

    def __init__(self, run_dir: str | Path):
        import torch

        self.torch = torch
        self.dir = Path(run_dir)
        self.net, self.checkpoint = load_model(run_dir, device="cpu")
        cfg = self.net.config
        # the energy head is trained when the run is physics-aware: through Hamilton's
        # equations with canonical labels (energy_trained), on conservation alone without
        self.energy_head_trained = is_physics_aware(self.checkpoint.get("flags", {}))
        self.energy_trained = (self.energy_head_trained
                               and getattr(cfg, "q_idx", None) is not None)
        self.n_invariants = int(getattr(cfg, "n_invariants", 0) or 0)

    def _apply(self, fn, states: np.ndarray, chunk: int | None = None) -> np.ndarray:
        torch = self.torch
        out = []
        step = chunk or max(len(states), 1)
        for i in range(0, len(states), step):
            with torch.no_grad():
                out.append(fn(torch.as_tensor(states[i:i + step], dtype=torch.float32))
                           .double().numpy())
        return np.concatenate(out)

    def energy(self, states: np.ndarray) -> np.ndarray:
        """The energy head E_hat of raw states (..., D) -> (...)."""
        return self._apply(self.net.energy, states)

    def invariants(self, states: np.ndarray) -> np.ndarray:
        """The conserved-quantity heads of raw states (n, D) -> (n, K)."""
        return self._apply(self.net.invariants, states)

    def latent(self, trajectories: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """Latent z of every step of trajectories (N, T, D) -> (N, T, latent_dim)."""
        return self._apply(self.net.encode, trajectories, chunk)

    def rollout(self, states: np.ndarray, prefix: int, project: bool, chunk: int = 256
                ) -> np.ndarray:
        """From the first `prefix` steps of states (N, T, D) -> (N, T, D) (prefix + rollout)."""
        T = states.shape[1]
        return self._apply(lambda s: self.net.rollout(s, T - prefix, project=project),
                           np.ascontiguousarray(states[:, :prefix]), chunk)
