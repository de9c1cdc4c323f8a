"""The one trajectory loader that train.py, discover.py and evaluate.py share.

It never imports the simulators: nothing here knows which physical system a file holds, and
arrays whose names start with ``truth_`` (ground truth written by data/simulate.py for
evaluation) are dropped unless ``with_truth=True`` is asked for, which only evaluate.py and the
tests do.

Accepted inputs (data/README.md has the details):
  * a built-in system name (``projectile``) -> ``data/projectile.npz``
  * a path to an ``.npz`` with ``states`` (n_traj, T, D), ``t`` (T,) or (n_traj, T), ``names``
    (D,), optionally ``canonical`` (D,) of "q"/"p", ``split`` (n_traj,) and ``meta`` (JSON)
  * a path to a ``.csv`` in long form: columns ``trajectory``, ``t``, then one column per state
    variable; a column named ``x:q`` / ``vx:p`` marks canonical coordinates.
Bad input raises DataError with a one-line message (a UsageError: the scripts exit 2).
"""
from __future__ import annotations

import json
import keyword
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils import DATA_DIR, EXPRESSION_FUNCTIONS, UsageError

# Names of the built-in simulators (data/simulate.py registers exactly these): the core
# systems, then the discovery benchmark's (data/benchmark_systems.py).
CORE_SYSTEMS = ("projectile", "spring", "orbit", "pendulum", "two-body", "damped-spring")
BENCHMARK_SYSTEMS = ("quartic", "oscillator-1to1", "oscillator-1to2", "oscillator-irrational",
                     "coupled-oscillators", "lotka-volterra-2", "lotka-volterra-3",
                     "lotka-volterra-4", "double-pendulum", "henon-heiles", "three-body",
                     "magnetic", "morse", "toda", "damped-pendulum", "driven-oscillator",
                     "random-walk")
BUILTIN_SYSTEMS = CORE_SYSTEMS + BENCHMARK_SYSTEMS
DEFAULT_SYSTEMS = ("projectile", "spring", "orbit")
SPLITS = ("train", "val", "test")
# A file with fewer trajectories than this, each of at least MIN_WINDOWS * MIN_WINDOW steps,
# is a recording (or a few): it is cut into windows of at least MIN_WINDOW steps, the last
# HELD_OUT share of each recording held out.
MIN_TRAJECTORIES = 8
MIN_WINDOW = 16
MIN_WINDOWS = 4
HELD_OUT = 0.2
# Names a state variable may not have: the expression parser's functions and constants
# (utils.parse_expression), where a variable of that name would be ambiguous.
RESERVED_NAMES = frozenset(EXPRESSION_FUNCTIONS) | {"pi"}
FLOAT32_MAX = float(np.finfo(np.float32).max)     # the networks compute in float32
NPZ_KEYS = {"states", "t", "names", "canonical", "split", "meta"}
USER_SPLIT_SEED = 0  # user files without a split get a fixed 80/10/10 split by trajectory


class DataError(UsageError):
    """A trajectory file or system name that cannot be used."""


@dataclass
class Trajectories:
    """Trajectories of one system.

    states: (N, T, D) observed states; t: (N, T) times; names: D state names;
    canonical: D labels "q"/"p" or None; split: (N,) of "train"/"val"/"test".
    truth: arrays named truth_* (only with with_truth=True), without the prefix.
    """

    name: str
    source: str
    states: np.ndarray
    t: np.ndarray
    names: list[str]
    canonical: list[str] | None
    split: np.ndarray
    meta: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)

    @property
    def n_traj(self) -> int:
        return self.states.shape[0]

    @property
    def dim(self) -> int:
        return self.states.shape[2]

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def subset(self, split: str) -> "Trajectories":
        idx = self.indices(split)
        truth = {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == self.n_traj
                     else v) for k, v in self.truth.items()}
        return Trajectories(self.name, self.source, self.states[idx], self.t[idx], self.names,
                            self.canonical, self.split[idx], self.meta, truth)

    def canonical_pairs(self) -> tuple[list[int], list[int]] | None:
        """Indices (q, p) of canonical coordinates in file order, or None."""
        if self.canonical is None:
            return None
        q = [i for i, c in enumerate(self.canonical) if c == "q"]
        p = [i for i, c in enumerate(self.canonical) if c == "p"]
        return q, p


def _err(source: str, message: str) -> DataError:
    return DataError(f"{source}: {message}")


def resolve(system: str, data_dir: str | Path | None = None) -> Path:
    """Turn a system name or path into an existing trajectory file, or raise DataError."""
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    candidate = Path(system)
    if candidate.suffix.lower() in (".npz", ".csv") or "/" in system:
        if not candidate.exists():
            raise DataError(f"trajectory file not found: {system}")
        return candidate
    path = data_dir / f"{system}.npz"
    if path.exists():
        return path
    if system in BUILTIN_SYSTEMS:
        raise DataError(f"no data for '{system}' in {data_dir}/: run "
                        f"`python data/simulate.py --systems {system}` first")
    present = sorted(p.stem for p in data_dir.glob("*.npz"))
    known = ", ".join(BUILTIN_SYSTEMS) + (f"; files in {data_dir}/: {', '.join(present)}"
                                          if present else "")
    raise DataError(f"unknown system '{system}' (known: {known}; or give a .npz/.csv path)")


def load_trajectories(system: str | Path, data_dir: str | Path | None = None,
                      with_truth: bool = False) -> Trajectories:
    """Load and validate a system's trajectories (see the module docstring for formats)."""
    path = resolve(str(system), data_dir)
    if path.stat().st_size == 0:
        raise _err(str(path), "file is empty")
    if path.suffix.lower() == ".csv":
        raw = read_csv(path)
    elif path.suffix.lower() == ".npz":
        raw = _read_npz(path, with_truth)
    else:
        raise _err(str(path), "unsupported file type (use .npz or .csv)")
    return _validate(path, raw)


def _read_npz(path: Path, with_truth: bool) -> dict:
    if path.is_dir():
        raise _err(str(path), "is a folder, not an .npz file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic == b"\x93NUMPY":  # a bare .npy renamed to .npz
            raise _err(str(path), "holds a single .npy array, not an .npz archive of named "
                                  "arrays (save with np.savez(path, states=..., t=..., ...))")
        raise _err(str(path), "cannot read as .npz: not a zip archive of .npy arrays (as "
                              "np.savez writes it)")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as err:
                    if "allow_pickle" in str(err):
                        raise _err(str(path), f"cannot read as .npz: array '{key}' holds "
                                              "Python objects, which are never unpickled "
                                              "(save numbers and strings only)") from None
                    raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise _err(str(path), f"cannot read as .npz ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'damaged'})") from None
    if not arrays:
        raise _err(str(path), "file holds no arrays")
    unknown = sorted(k for k in arrays if k not in NPZ_KEYS and not k.startswith("truth_"))
    if unknown:
        raise _err(str(path), f"unknown arrays {unknown} (accepted: {sorted(NPZ_KEYS)} and truth_*)")
    if "states" not in arrays:
        raise _err(str(path), "missing array 'states' of shape (n_traj, T, D)")
    raw = {k: v for k, v in arrays.items() if not k.startswith("truth_")}
    raw["truth"] = ({k[len("truth_"):]: v for k, v in arrays.items() if k.startswith("truth_")}
                    if with_truth else {})
    if "meta" in raw:
        try:
            raw["meta"] = json.loads(str(raw["meta"]))
        except json.JSONDecodeError:
            raise _err(str(path), "array 'meta' is not a JSON string") from None
    for key, value in raw["truth"].items():
        if value.dtype.kind == "U" and value.ndim == 0:
            try:
                raw["truth"][key] = json.loads(str(value))
            except json.JSONDecodeError:
                raise _err(str(path), f"array 'truth_{key}' is not a JSON string") from None
    return raw


def read_csv(path: Path) -> dict:
    import pandas as pd

    try:
        # index_col=False: a first row with one field too many is an error, not an index
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False)
    except pd.errors.EmptyDataError:
        raise _err(str(path), "file is empty") from None
    except pd.errors.ParserWarning:
        raise _err(str(path), "cannot parse CSV (a row has more fields than the header)") \
            from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise _err(str(path), f"cannot parse CSV ({str(err).splitlines()[0]})") from None
    columns = [str(c).strip() for c in frame.columns]
    frame.columns = columns
    missing = [c for c in ("trajectory", "t") if c not in columns]
    if missing:
        raise _err(str(path), f"missing column(s) {missing}; expected 'trajectory', 't', then "
                              "one column per state variable")
    state_cols = [c for c in columns if c not in ("trajectory", "t")]
    if not state_cols:
        raise _err(str(path), "no state-variable columns after 'trajectory' and 't'")
    if len(frame) == 0:
        raise _err(str(path), "file has a header but no rows")
    names, canonical = [], []
    for c in state_cols:
        base, _, label = c.partition(":")
        if not base.isidentifier():
            raise _err(str(path), f"unknown column '{c}': state columns are named like "
                                  "identifiers (x, vx, q1), optionally with ':q' or ':p'")
        if label and label not in ("q", "p"):
            raise _err(str(path), f"unknown column '{c}': canonical label must be ':q' or ':p'")
        names.append(base)
        canonical.append(label)
    for c in columns:
        if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]):
            raise _err(str(path), f"column '{c}' holds non-numeric values")
    if not np.isfinite(frame["trajectory"].to_numpy(np.float64)).all():
        raise _err(str(path), "column 'trajectory' holds empty or NaN/inf ids")
    if any(canonical) and not all(canonical):
        raise _err(str(path), "either every state column or none carries a ':q'/':p' label")
    groups = frame.groupby("trajectory", sort=True)
    # Rows keep their file order within a trajectory (no sorting by t): a file whose times go
    # backwards is reported, not silently reordered.
    states, times = [], []
    for _, g in groups:
        states.append(g[state_cols].to_numpy(np.float64))
        times.append(g["t"].to_numpy(np.float64))
    raw = {"names": np.array(names), "canonical": np.array(canonical) if all(canonical) else None,
           "meta": {"format": "csv"}, "truth": {}}
    if len({len(x) for x in states}) == 1:
        return {**raw, "states": np.stack(states), "t": np.stack(times)}
    return {**raw, "recordings": list(zip(states, times))}


def _validate(path: Path, raw: dict) -> Trajectories:
    src = str(path)
    if "recordings" in raw or _is_recording(raw):
        raw = _segment(src, raw)
    states = np.asarray(raw["states"])
    if states.dtype.kind not in "fiu":
        raise _err(src, f"'states' must be numeric, got dtype {states.dtype}")
    states = states.astype(np.float64)
    if states.ndim != 3:
        raise _err(src, f"'states' must have shape (n_traj, T, D), got {states.shape}")
    n, T, D = states.shape
    if n < 2:
        raise _err(src, f"need at least 2 trajectories, or a recording of at least "
                        f"{MIN_WINDOWS * MIN_WINDOW} time steps to cut into windows, got {n} "
                        f"trajectory of {T} steps")
    if T < 3:
        raise _err(src, f"need at least 3 time steps per trajectory, got {T}")
    if D < 1:
        raise _err(src, "states have no variables (D = 0)")
    if not np.isfinite(states).all():
        bad = int((~np.isfinite(states)).sum())
        raise _err(src, f"'states' holds {bad} NaN/inf value(s)")
    largest = float(np.abs(states).max())
    if largest > FLOAT32_MAX:
        raise _err(src, f"'states' holds values up to {largest:.3g}, beyond float32's range "
                        f"({FLOAT32_MAX:.3g}) that the networks compute in: rescale the data")
    spread = np.ptp(states.reshape(-1, D), axis=0)
    if not (spread > 0).any():
        raise _err(src, "every state variable is constant over the whole file: nothing moves, "
                        "so there is nothing to learn")
    if "t" not in raw:
        raise _err(src, "missing array 't' of shape (T,) or (n_traj, T)")
    t = np.asarray(raw["t"])
    if t.dtype.kind not in "fiu":
        raise _err(src, f"'t' must be numeric, got dtype {t.dtype}")
    t = t.astype(np.float64)
    if t.shape == (T,):
        t = np.broadcast_to(t, (n, T)).copy()
    elif t.shape != (n, T):
        raise _err(src, f"'t' must have shape ({T},) or ({n}, {T}), got {t.shape}")
    if not np.isfinite(t).all():
        raise _err(src, "'t' holds NaN/inf values")
    if float(np.abs(t).max()) > FLOAT32_MAX:
        raise _err(src, f"'t' holds values beyond float32's range ({FLOAT32_MAX:.3g})")
    bad = np.flatnonzero((np.diff(t, axis=1) <= 0).any(axis=1))
    if bad.size:
        raise _err(src, f"times must be strictly increasing within every trajectory "
                        f"({bad.size} trajectory(ies) are not, the first is number {bad[0]})")
    names = raw.get("names")
    names = [str(x) for x in np.asarray(names).ravel()] if names is not None else \
        [f"s{i}" for i in range(D)]
    if len(names) != D:
        raise _err(src, f"'names' has {len(names)} entries but states have D = {D}")
    if len(set(names)) != D or any(not nm.isidentifier() for nm in names):
        raise _err(src, f"state names must be distinct identifiers, got {names}")
    taken = [nm for nm in names if keyword.iskeyword(nm) or nm in RESERVED_NAMES]
    if taken:
        raise _err(src, f"state name(s) {taken} are Python keywords or names of functions "
                        "and constants in formulas (sqrt, sin, pi, ...): rename them")
    canonical = raw.get("canonical")
    if canonical is not None:
        canonical = [str(x) for x in np.asarray(canonical).ravel()]
        if len(canonical) != D or set(canonical) - {"q", "p"}:
            raise _err(src, f"'canonical' must hold D = {D} labels 'q'/'p', got {canonical}")
        if canonical.count("q") != canonical.count("p"):
            raise _err(src, "'canonical' must label as many 'p' as 'q' coordinates")
    split = raw.get("split")
    if split is None:
        rng = np.random.default_rng(USER_SPLIT_SEED)
        split = default_split(n, rng)
    else:
        split = np.asarray(split).astype(str)
        if split.shape != (n,) or set(split) - set(SPLITS):
            raise _err(src, f"'split' must hold {n} labels of {SPLITS}")
        if not (split == "train").any():
            raise _err(src, "'split' marks no trajectory as 'train'")
    meta = raw.get("meta") or {}
    if not isinstance(meta, dict):
        raise _err(src, "'meta' must be a JSON object")
    return Trajectories(name=path.stem, source=src, states=states, t=t, names=names,
                        canonical=canonical, split=split, meta=meta, truth=raw.get("truth", {}))


# ---------------------------------------------------------------------------- recordings

def _is_recording(raw: dict) -> bool:
    """A file of few long trajectories (a recording, or a few of them) rather than many
    trajectories: fewer than MIN_TRAJECTORIES, each long enough to be cut into windows."""
    states = np.asarray(raw.get("states"))
    if states.ndim != 3 or states.shape[0] >= MIN_TRAJECTORIES or "split" in raw:
        return False
    return states.shape[1] >= MIN_WINDOWS * MIN_WINDOW


def _segment(src: str, raw: dict) -> dict:
    """Cut each recording into contiguous windows of one length (chosen from the data: about
    one period of its fastest oscillating variable), the later part of each recording held
    out (its last HELD_OUT share of windows: validation, then test), as the Hamiltonian-NN
    paper split its real pendulum. Times stay the recorded ones (dropped frames included)."""
    if "recordings" in raw:
        recordings = raw["recordings"]
    else:
        states, t = np.asarray(raw["states"]), np.asarray(raw.get("t"))
        if t.ndim == 1:
            t = np.broadcast_to(t, states.shape[:2])
        recordings = [(states[i], t[i]) for i in range(len(states))]
    lengths = [len(x) for x, _ in recordings]
    if min(lengths) < MIN_WINDOWS * MIN_WINDOW:
        raise _err(src, f"trajectories of different lengths ({min(lengths)}-{max(lengths)} rows) "
                        f"are taken as recordings to cut into windows, and each needs at least "
                        f"{MIN_WINDOWS * MIN_WINDOW} rows")
    period = recording_period([np.asarray(x, dtype=np.float64) for x, _ in recordings])
    window = int(np.clip(period, MIN_WINDOW, min(lengths) // MIN_WINDOWS))
    states, times, split = [], [], []
    for x, t in recordings:
        n = len(x) // window
        # at least two validation windows (conservation is measured between them) and a test
        held = max(3, int(round(HELD_OUT * n)))
        test = max(1, held // 3)
        for k in range(n):
            states.append(x[k * window:(k + 1) * window])
            times.append(t[k * window:(k + 1) * window])
            split.append("train" if k < n - held else "val" if k < n - test else "test")
    meta = dict(raw.get("meta") or {})
    steps = np.concatenate([np.diff(np.asarray(t, dtype=np.float64)) for _, t in recordings])
    typical = float(np.median(steps))
    meta["recording"] = {
        "recordings": len(recordings), "frames": lengths, "period_frames": period,
        "median_step": typical,
        "uneven_steps": int(np.sum(np.abs(steps - typical) > 1e-3 * abs(typical))),
        "window": window, "windows": len(states),
        "windows_by_split": {s: split.count(s) for s in SPLITS},
        "unused_frames": int(sum(n % window for n in lengths))}
    return {**{k: v for k, v in raw.items() if k != "recordings"}, "states": np.stack(states),
            "t": np.stack(times), "split": np.array(split), "meta": meta}


def recording_period(recordings: list[np.ndarray]) -> int:
    """Frames per period of the fastest oscillating variable: twice the median spacing of its
    crossings of its mean (a variable that never crosses it gives the whole length)."""
    best = max(len(x) for x in recordings)
    for d in range(recordings[0].shape[1]):
        gaps = []
        for x in recordings:
            centred = x[:, d] - x[:, d].mean()
            crossings = np.flatnonzero(np.diff(np.sign(centred)) != 0)
            gaps += list(np.diff(crossings))
        if len(gaps) >= 2:
            best = min(best, int(round(2 * np.median(gaps))))
    return best


def describe_recording(meta: dict) -> str | None:
    """One line on how a recording was cut into windows, or None for ordinary files."""
    rec = meta.get("recording")
    if not rec:
        return None
    parts = rec["windows_by_split"]
    what = ("one recording" if rec["recordings"] == 1 else f"{rec['recordings']} recordings")
    return (f"{what} of {'/'.join(map(str, rec['frames']))} frames cut into {rec['windows']} "
            f"windows of {rec['window']} frames (about one period, {rec['period_frames']} "
            f"frames): the first {parts['train']} train, the later {parts['val']} validation "
            f"and {parts['test']} test; {rec['unused_frames']} frame(s) at the ends unused"
            + (f"; {rec['uneven_steps']} of the time steps differ from the median "
               f"{rec['median_step']:.4g} (uneven sampling or dropped frames: derivatives use the real times)"
               if rec.get("uneven_steps") else ""))


def default_split(n: int, rng: np.random.Generator, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Split trajectories (not time steps) into train/val/test; every part gets at least one
    trajectory when n >= 3."""
    order = rng.permutation(n)
    n_val = max(1, int(round(fractions[1] * n))) if n >= 3 else 0
    n_test = max(1, int(round(fractions[2] * n))) if n >= 3 else 0
    split = np.full(n, "train", dtype="<U5")
    split[order[:n_val]] = "val"
    split[order[n_val:n_val + n_test]] = "test"
    if n == 2:
        split[order[1]] = "test"
    return split
