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

from data.loader import Trajectories


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
    tr = data.truth or {}
    if "invariants" not in tr:
        return Truth(None, {}, [], None, data.states, {}, None)
    meta = tr.get("meta") if isinstance(tr.get("meta"), dict) else {}
    params = dict(meta.get("params") or {})
    system = data.meta.get("system")
    names = [str(n) for n in np.asarray(tr.get("invariant_names", [])).ravel()]
    values = np.asarray(tr["invariants"], dtype=np.float64)
    if values.ndim == 2:
        values = values[..., None]
    clean = np.asarray(tr.get("clean_states", data.states), dtype=np.float64)
    expressions = dict(meta.get("expressions") or {})
    energy_fn = None
    from data.simulate import SYSTEMS

    reg = SYSTEMS.get(system)
    if reg is not None and tuple(reg.names) == tuple(data.names):
        params = {**reg.params, **params}
        # The registry's formulas with the file's parameters (files written before the
        # formulas were stored in truth_meta have none of their own).
        expressions = {k: reg.invariant_text(k, params) for k in reg.invariants}
        if reg.conserved or reg.checked or reg.invariants:
            first = next(iter(reg.invariants))          # the registry lists the energy first
            energy_fn = reg.invariant_fn(first, params)
    return Truth(system, params, names or [f"I{k}" for k in range(values.shape[-1])], values,
                 clean, expressions, energy_fn)
