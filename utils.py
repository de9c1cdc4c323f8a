"""Shared helpers: seeding, device choice, atomic writers, the command-line front-end, and the
conservation ratio.

Every script imports from here, so that there is one way to seed a run, one way to pick a
device, one way to write a results file (atomically: a crash never leaves half a file) and one
way to turn a flags dataclass into a command line whose bad input is one line on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import types
import typing
from dataclasses import MISSING, asdict, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / "data"
RESULTS_DIR = ROOT / "results"
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


def require_seeds(args) -> None:
    """fail() unless every entry of args.seeds is a non-negative integer seed."""
    if any(seed < 0 for seed in args.seeds):
        fail(f"--seeds must be non-negative integers, got {args.seeds}")


def require_at_least(args, minimum: int, *names: str) -> None:
    """fail() on the first of the flags `names` of `args` whose value is below `minimum`
    (a flag left unset, None, passes)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < minimum:
            fail(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}")


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


# ---------------------------------------------------------------------------- flags

def flag(default: Any, help: str, **argparse_kw) -> Any:
    """A dataclass field that is also a command-line flag: its default, its help text and any
    extra argparse keywords (choices, nargs, const, metavar, type, aliases)."""
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d),
                     metadata={"help": help, **argparse_kw})
    return field(default=default, metadata={"help": help, **argparse_kw})


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (UsageError -> exit 2), not usage + error."""

    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


def _value_type(cls, f) -> type:
    """The scalar type of a flag: from metadata, else from the annotation (Optional and
    list[...] unwrapped)."""
    if "type" in f.metadata:
        return f.metadata["type"]
    hint = typing.get_type_hints(cls)[f.name]
    while True:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType) and len(args) == 1:
            hint = args[0]
        elif origin is list and args:
            hint = args[0]
        else:
            return hint


def build_parser(cls, description: str) -> argparse.ArgumentParser:
    """An argparse parser generated from a flags dataclass: one --dashed-flag per field (an
    --underscored_flag alias for names with underscores), the field's default and help text;
    bool fields are switches, list fields take one or more values."""
    ap = _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(cls):
        meta = dict(f.metadata)
        names = [f"--{f.name.replace('_', '-')}"]
        if "_" in f.name:
            names.append(f"--{f.name}")
        names += meta.pop("aliases", [])
        default = f.default_factory() if f.default is MISSING else f.default
        kw: dict[str, Any] = {"help": meta.pop("help", ""), "dest": f.name, "default": default}
        meta.pop("type", None)
        if isinstance(default, bool):
            kw["action"] = "store_true"
        else:
            kw["type"] = _value_type(cls, f)
            if isinstance(default, list):
                kw["nargs"] = "+"
        kw.update(meta)
        if kw.get("default") is not None and "action" not in kw and kw["help"]:
            kw["help"] += f" (default: {' '.join(map(str, default)) if isinstance(default, list) else default})"
        ap.add_argument(*names, **kw)
    return ap


def parse_flags(cls, argv: list[str] | None, description: str):
    """Parse argv into an instance of the flags dataclass `cls` (see build_parser)."""
    return cls(**vars(build_parser(cls, description).parse_args(argv)))


def describe(doc: str | None) -> str:
    """The first paragraph of a script's docstring, for --help."""
    return (doc or "").split("\n\n")[0]


# ---------------------------------------------------------------------------- seeds, devices

def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch and Python's `random`; return the numpy Generator the caller passes around."""
    if seed < 0:
        fail(f"--seed must be a non-negative integer, got {seed}")
    random.seed(seed)
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def rng_states(gen, np_rng: np.random.Generator) -> dict:
    """Every random state of a training run (torch, its shuffling generator `gen`, numpy,
    Python, CUDA), for its checkpoint."""
    import torch

    out = {"torch": torch.get_rng_state(), "shuffle": gen.get_state(),
           "numpy": np_rng.bit_generator.state, "python": random.getstate()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(states: dict, gen, np_rng: np.random.Generator) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    gen.set_state(states["shuffle"])
    np_rng.bit_generator.state = states["numpy"]
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


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


# ---------------------------------------------------------------------------- the one metric

def conservation_ratio(values, eps: float = 0.0):
    """Mean within-trajectory variance / variance of the per-trajectory means; values (N, T).
    0 = perfectly conserved; a generic function of the state is O(0.1-10).

    eps = 0 (numpy arrays, for reports and checks): inf when the means do not vary but the
    values do, 0 when nothing varies at all. eps > 0 (torch tensors, the training loss):
    within / (between + eps * (within + 1)), finite and differentiable everywhere.
    """
    if eps > 0:
        within = values.var(dim=1, unbiased=False).mean()
        between = values.mean(dim=1).var(unbiased=False)
        return within / (between + eps * (within + 1.0))
    values = np.asarray(values, dtype=np.float64)
    within = float(values.var(axis=1).mean())
    between = float(values.mean(axis=1).var())
    if between > 0:
        return within / between
    return 0.0 if within == 0 else float("inf")


# ---------------------------------------------------------------------------- expressions

# Functions an expression string may call, by name; nothing else is ever evaluated.
EXPRESSION_FUNCTIONS = ("sqrt", "exp", "log", "sin", "cos", "tan", "asin", "acos", "atan",
                        "atan2", "sinh", "cosh", "tanh", "Abs", "abs", "square")
MAX_EXPRESSION_LENGTH = 20_000


def parse_expression(text: str, symbols: dict):
    """A formula string -> sympy expression, without evaluating any Python.

    The string is parsed by Python's `ast` and rebuilt node by node: numbers, the names in
    `symbols` (name -> sympy Symbol), `pi`, + - * / ** and calls of EXPRESSION_FUNCTIONS.
    Anything else (attributes, subscripts, other names or calls, strings) raises ValueError,
    so a results file shared by someone else can never run code when it is read.
    """
    import ast

    import sympy as sp

    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_LENGTH:
        raise ValueError("expression is not a string of at most "
                         f"{MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError, RecursionError) as err:
        raise ValueError(f"cannot parse expression {text[:80]!r} ({type(err).__name__})") from None
    funcs = {"sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log, "sin": sp.sin, "cos": sp.cos,
             "tan": sp.tan, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
             "atan2": sp.atan2, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
             "Abs": sp.Abs, "abs": sp.Abs, "square": lambda a: a ** 2}
    binary = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
              ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
              ast.Pow: lambda a, b: a ** b}

    def build(node):
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return sp.Integer(node.value) if type(node.value) is int else sp.Float(node.value)
        if isinstance(node, ast.Name):
            if node.id in symbols:
                return symbols[node.id]
            if node.id == "pi":
                return sp.pi
            raise ValueError(f"unknown symbol '{node.id}'")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = build(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in binary:
            return binary[type(node.op)](build(node.left), build(node.right))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in funcs and not node.keywords):
            return funcs[node.func.id](*[build(a) for a in node.args])
        raise ValueError(f"'{ast.unparse(node)[:60]}' is not allowed in an expression")

    try:
        return build(tree)
    except RecursionError:
        raise ValueError("expression is nested too deeply") from None
    except (TypeError, ZeroDivisionError) as err:
        raise ValueError(f"cannot build expression {text[:80]!r} ({err})") from None


# ---------------------------------------------------------------------------- atomic writers

def pid_alive(pid: int) -> bool:
    """Is process `pid` alive (the writer of a temporary file or staging folder)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # someone else's live process
        return True
    return True


def remove_stale_tmp(folder: str | Path, name: str = "*") -> list[Path]:
    """Delete the temporary files `.<name>.<pid>.<random>.tmp` that an atomic write killed
    mid-way left in `folder` (those of processes that are no longer alive); returns them."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        parts = tmp.name[:-len(".tmp")].rsplit(".", 2)
        if len(parts) == 3 and parts[1].isdigit() and not pid_alive(int(parts[1])):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path.parent, glob.escape(path.name))
    # The writer's pid in the name lets a later write recognise the leftovers of a killed one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
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


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic_write(Path(path), lambda fh: fh.write(data))


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
    """torch.load of a checkpoint written by atomic_torch_save, with weights_only=True: tensors
    and plain Python values only, so a crafted file cannot run code when it is read. A
    truncated, foreign or crafted file is a one-line error, not a traceback."""
    import pickle

    import torch

    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        fail(f"refused to load the checkpoint {path}: it holds objects other than tensors and "
             "plain values, which could run code (train the run again)")
    except Exception as exc:  # unpickling raises many types; all mean "not our checkpoint"
        fail(f"cannot read the checkpoint {path} ({type(exc).__name__}); train the run again")
    if not isinstance(ckpt, dict):
        fail(f"{path} is not a checkpoint of this project; train the run again")
    return ckpt


def read_json(path: str | Path, default: Any = None) -> Any:
    """The JSON in `path`, `default` when it does not exist; one-line error when it is not
    readable JSON (a folder, bytes that are not UTF-8, a syntax error)."""
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        fail(f"{path} is not valid JSON ({err})")
    except UnicodeDecodeError:
        fail(f"{path} is not valid JSON (not UTF-8 text)")
    except RecursionError:
        fail(f"{path} is not usable JSON (nested too deeply)")
    except OSError as err:
        fail(f"cannot read {path} ({err.strerror or type(err).__name__})")


# ---------------------------------------------------------------------------- output locations

def check_output_dir(path: str | Path, what: str) -> Path:
    """Fail with one line unless `path` is (or can be made) a folder we can write files in.

    Called before any long computation, so that an unusable --results-dir, --plots-dir or
    --out is reported before the work, not after it. Creates the folder (as the script would
    later); a probe file is written and removed. `what` names it in the message (a flag).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        fail(f"{what} {path} is a file, not a folder")
    created = []
    probe_parent = path
    while not probe_parent.exists():
        created.append(probe_parent)
        probe_parent = probe_parent.parent
    if not probe_parent.is_dir():
        fail(f"{what} {path}: {probe_parent} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        for folder in created:      # leave nothing behind (deepest first)
            with contextlib.suppress(OSError):
                folder.rmdir()
        fail(f"{what} {path} cannot be created or written to "
             f"({err.strerror or type(err).__name__})")
    return path


def check_output_file(path: str | Path, what: str) -> Path:
    """Fail with one line unless a file can be (atomically) written at `path`: it must not be
    a folder, and its folder must be writable (check_output_dir)."""
    path = Path(path)
    if path.is_dir():
        fail(f"{what} {path} is a folder, not a file")
    if path.name in ("", ".", ".."):
        fail(f"{what} {path} does not name a file")
    check_output_dir(path.parent, f"{what} {path}: its folder")
    return path


@contextlib.contextmanager
def file_lock(path: str | Path):
    """Hold an exclusive lock on `path` (a lock file `.<name>.lock` beside it) for the duration
    of a read-merge-write, so that two processes updating the same file cannot drop each
    other's entries. fcntl.flock: released by the kernel if the holder dies."""
    import fcntl

    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        fail(f"cannot lock {path} ({err.strerror or type(err).__name__})")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)        # closing the descriptor releases the lock


# ---------------------------------------------------------------------------- provenance

def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (a run records the one of the data it was trained on)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
