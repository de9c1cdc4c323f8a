"""Ground truth of a data file: the only reader of truth_* arrays and of the simulators'
registry (besides the paper experiments and the tests).

Simulated files carry their true invariants (values on the clean states, and their formulas
with the parameters filled in) and, when noisy, the clean states; the registry gives the true
energy of any state (e.g. of a model's predicted trajectory). Users' files may carry truth_*
arrays of their own; without them only the data-based checks apply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp

from data.loader import DataError, Trajectories
from utils import parse_expression


@dataclass
class Truth:
    """What the evaluation knows about one data file beyond the observations."""

    system: str | None                   # registry name (None: not a built-in system)
    params: dict
    names: list[str]                     # K true invariant names
    values: np.ndarray | None            # (N, T, K) true invariants on clean states
    clean: np.ndarray                    # (N, T, D) clean states (observed when no truth)
    expressions: dict[str, str]          # name -> formula in the state variables
    energy_fn: Callable[[np.ndarray], np.ndarray] | None  # true energy of any states (..., D)

    @property
    def available(self) -> bool:
        return self.values is not None


def read_truth(data: Trajectories) -> Truth:
    """The truth of a data file; DataError (one line, exit 2) when a user's truth_* arrays or
    its meta.system do not fit the data."""
    tr = data.truth or {}
    if "invariants" not in tr:
        return Truth(None, {}, [], None, data.states, {}, None)
    src = data.source
    bad = lambda message: DataError(f"{src}: {message}")
    meta = tr.get("meta", {})
    if not isinstance(meta, dict):
        raise bad("'truth_meta' must be a JSON object")
    params = meta.get("params") or {}
    if not isinstance(params, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            for v in params.values()):
        raise bad("'truth_meta' params must be an object of finite numbers")
    params = dict(params)
    system = data.meta.get("system")
    if system is not None and not isinstance(system, str):
        raise bad(f"meta.system must be a string, got {system!r}"[:200])
    N, T, D = data.states.shape
    values = _numeric(tr["invariants"], "truth_invariants", bad)
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3 or values.shape[:2] != (N, T):
        raise bad(f"'truth_invariants' must have shape ({N}, {T}) or ({N}, {T}, K), got "
                  f"{values.shape}")
    raw_names = tr.get("invariant_names")
    names = [] if raw_names is None else [str(n) for n in np.asarray(raw_names).ravel()]
    if raw_names is not None and len(names) != values.shape[-1]:
        raise bad(f"'truth_invariant_names' has {len(names)} names for "
                  f"{values.shape[-1]} invariants")
    clean = data.states
    if "clean_states" in tr:
        clean = _numeric(tr["clean_states"], "truth_clean_states", bad)
        if clean.shape != data.states.shape:
            raise bad(f"'truth_clean_states' must have the shape of 'states' "
                      f"{data.states.shape}, got {clean.shape}")
    expressions = meta.get("expressions") or {}
    if not isinstance(expressions, dict) or not all(isinstance(v, str)
                                                    for v in expressions.values()):
        raise bad("'truth_meta' expressions must be an object of formula strings")
    symbols = {n: sp.Symbol(n, real=True) for n in data.names}
    for name, text in expressions.items():
        try:
            parse_expression(text, symbols)
        except ValueError as err:
            raise bad(f"'truth_meta' expression {name!r} cannot be read ({err})") from None
    expressions = dict(expressions)
    energy_fn = None
    from data.simulate import SYSTEMS

    reg = SYSTEMS.get(system) if system is not None else None
    if reg is not None:
        if tuple(reg.names) != tuple(data.names):
            raise bad(f"meta.system '{system}' has the variables {list(reg.names)}, but the "
                      f"file has {data.names}")
        params = {**reg.params, **params}
        # The registry's formulas with the file's parameters (files written before the
        # formulas were stored in truth_meta have none of their own).
        expressions = {k: reg.invariant_text(k, params) for k in reg.invariants}
        if reg.conserved or reg.checked or reg.invariants:
            first = next(iter(reg.invariants))          # the registry lists the energy first
            energy_fn = reg.invariant_fn(first, params)
    return Truth(system, params, names or [f"I{k}" for k in range(values.shape[-1])], values,
                 clean, expressions, energy_fn)


def _numeric(value, name: str, bad) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise bad(f"'{name}' must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)
