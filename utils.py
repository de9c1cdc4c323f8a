"""Shared helpers: seeding, device choice, atomic writers, run folders and CLI errors.

Every script imports from here, so that there is one way to seed a run, one way to pick a
device and one way to write a results file (atomically: a crash never leaves half a file).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / "data"
RESULTS_DIR = ROOT / "results"
RUNS_DIR = RESULTS_DIR / "runs"
PLOTS_DIR = ROOT / "plots"


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


def fail(message: str) -> None:
    raise UsageError(message)


def require_known(names, known, what: str) -> None:
    """fail() naming every entry of `names` that is not in `known` (e.g. system names)."""
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"unknown {what} {unknown} (known: {', '.join(known)})")


def cli(main: Callable[[list[str] | None], Any]) -> Callable[[list[str] | None], int]:
    """Wrap a script's main so that a UsageError becomes one line on stderr and exit 2."""

    def run(argv: list[str] | None = None) -> int:
        try:
            main(argv)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        return 0

    return run


# ---------------------------------------------------------------------------- seeds, devices

def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch and Python's `random`; return the numpy Generator the caller passes around."""
    random.seed(seed)
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def get_device(name: str = "auto"):
    """'auto' -> cuda when present, else cpu; 'cuda' without a GPU is a usage error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        fail("--device cuda was asked for but no CUDA device is available (use --device auto)")
    if name not in ("cpu", "cuda"):
        fail(f"unknown device '{name}' (choose auto, cpu or cuda)")
    return torch.device(name)


# ---------------------------------------------------------------------------- atomic writers

def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def to_jsonable(obj: Any) -> Any:
    """Numpy scalars/arrays, paths and dataclasses -> plain JSON types; NaN/inf -> None."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if np.isfinite(value) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _atomic_write(Path(path), lambda fh: fh.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


# Each zip entry is written with an explicit, fixed time stamp (and fixed attributes) so that
# the same arrays give the same bytes whatever numpy's and zipfile's defaults are (zipfile
# stamps the current time when an entry is given by name with writestr, or taken from a file).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _write_npz(fh: io.BufferedWriter, arrays: dict[str, Any]) -> None:
    import zipfile

    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(value))


def atomic_write_npz(path: str | Path, **arrays: Any) -> Path:
    """Compressed .npz readable by np.load; same arrays -> same bytes (no time stamps)."""
    return _atomic_write(Path(path), lambda fh: _write_npz(fh, arrays))


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    import torch

    return _atomic_write(Path(path), lambda fh: torch.save(obj, fh))


def read_checkpoint(path: str | Path, device: Any = "cpu") -> dict:
    """torch.load of a checkpoint written by atomic_torch_save; a truncated or foreign file
    is a one-line error, not a traceback."""
    import torch

    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # unpickling raises many types; all mean "not our checkpoint"
        fail(f"cannot read the checkpoint {path} ({type(exc).__name__}); train the run again")
    if not isinstance(ckpt, dict):
        fail(f"{path} is not a checkpoint of this project; train the run again")
    return ckpt


def read_json(path: str | Path, default: Any = None) -> Any:
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        fail(f"{path} is not valid JSON ({err})")


# ---------------------------------------------------------------------------- runs

def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_info() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(), "git_commit": git_commit()}
    with contextlib.suppress(ImportError):
        import torch

        info["torch"] = torch.__version__
    return info


def run_name(system: str, model: str, tag: str, seed: int) -> str:
    """Run folder name, `{system}__{model}__{tag}__s{seed}` (cleanrl style, no time stamp so
    that a re-run or --resume finds its folder)."""
    safe = lambda s: "".join(c if c.isalnum() or c in "-_." else "-" for c in str(s))
    return f"{safe(system)}__{safe(model)}__{safe(tag)}__s{seed}"


def dataclass_from_dict(cls, values: dict):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# ---------------------------------------------------------------------------- derivatives

def time_derivatives(states: np.ndarray, t: np.ndarray, window: int = 7,
                     polyorder: int = 4) -> np.ndarray:
    """Observed time derivatives of trajectories by finite differences.

    states: (N, T, D); t: (N, T) or (T,). Returns (N, T, D). On a uniform time grid this is a
    Savitzky-Golay derivative (local polynomial of degree `polyorder` over `window` points:
    error O(dt^4) on clean data, and some smoothing of noise); on a non-uniform grid,
    second-order central differences (numpy.gradient). No true derivatives are ever read.
    """
    from scipy.signal import savgol_filter

    states = np.asarray(states, dtype=np.float64)
    n, T, d = states.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n, T))
    steps = np.diff(t, axis=1)
    if np.allclose(steps, steps[0, 0], rtol=1e-6, atol=0):
        window = min(window, T if T % 2 else T - 1)
        polyorder = min(polyorder, window - 1)
        if window >= 3:
            return savgol_filter(states, window, polyorder, deriv=1, delta=steps[0, 0],
                                 axis=1, mode="interp")
    return np.stack([np.gradient(states[i], t[i], axis=0, edge_order=2) for i in range(n)])


def derivative_noise_variance(states: np.ndarray, t: np.ndarray, window: int = 7,
                              polyorder: int = 4) -> np.ndarray:
    """Variance of the observation noise carried into `time_derivatives`, per variable (D,).

    The noise variance s^2 of each variable is estimated from what a Savitzky-Golay smoother
    of the same window leaves over (a least-squares projection: E r^2 = s^2 (1 - h), h its
    central weight), then propagated through the derivative filter (s^2 * sum w^2). Clean,
    smooth data give ~0. On a non-uniform grid returns zeros (no estimate).
    """
    from scipy.signal import savgol_coeffs, savgol_filter

    states = np.asarray(states, dtype=np.float64)
    n, T, d = states.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n, T))
    steps = np.diff(t, axis=1)
    window = min(window, T if T % 2 else T - 1)
    polyorder = min(polyorder, window - 2)
    if window < 3 or polyorder < 1 or not np.allclose(steps, steps[0, 0], rtol=1e-6, atol=0):
        return np.zeros(d)
    half = window // 2
    smooth = savgol_filter(states, window, polyorder, axis=1)
    resid = (states - smooth)[:, half:T - half]
    h = savgol_coeffs(window, polyorder)[half]
    noise_var = np.mean(resid ** 2, axis=(0, 1)) / (1 - h)
    w = savgol_coeffs(window, polyorder, deriv=1, delta=steps[0, 0])
    return noise_var * float(np.sum(w ** 2))
