"""PySR adapter, used only when PySR and its Julia install are usable here.

Whether they are is found out in a subprocess with a timeout: importing pysr in this process
could start a Julia download or hang. The adapter follows PySRRegressor's documented API
(fit(X, y, variable_names=...), equations_ with complexity / loss / score / equation /
sympy_format columns, random_state + deterministic); tests/test_discover_engines.py checks it
against a stand-in module with that API, since the real engine cannot run on our machines.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from discovery.expressions import Candidate
from utils import parse_expression

NAME = "pysr"
PROBE = "import pysr, juliacall; print('ok')"


def usable(timeout: float = 60.0) -> tuple[bool, str]:
    env = dict(os.environ, PYTHON_JULIAPKG_OFFLINE="yes")
    try:
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, f"probe timed out after {timeout:.0f}s"
    if out.returncode == 0 and "ok" in out.stdout:
        return True, "pysr imports"
    last = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return False, last[:200]


def regressor(settings, maxsize: int = 30):
    from pysr import PySRRegressor  # only reached when usable() said yes (or in the tests)

    # deterministic=True is refused unless parallelism="serial"; random_state is then the seed.
    # temp_equation_file: PySR's hall of fame and checkpoint otherwise go to ./outputs/<run_id>/
    # (its default output_directory), i.e. next to the source when run from the repository.
    return PySRRegressor(niterations=settings.niterations,
                         binary_operators=["+", "-", "*", "/"],
                         unary_operators=["square", "sqrt", "sin", "cos"], maxsize=maxsize,
                         random_state=settings.seed, deterministic=True, parallelism="serial",
                         temp_equation_file=True, progress=False, verbosity=0)


def front(states: np.ndarray, y: np.ndarray, inputs, settings) -> list[Candidate]:
    """PySR's hall of fame as candidates; loss = PySR's loss (MSE) / var(y)."""
    X = inputs.evaluate(states)
    names = [f"x{i}" for i in range(X.shape[1])]   # PySR's own safe names; mapped back below
    reg = regressor(settings)
    reg.fit(X, y, variable_names=names)
    symbols = {f"x{i}": inputs.symbols[n] for i, n in enumerate(inputs.all_names)}
    var_y = float(np.var(y)) or 1.0
    out = []
    for _, row in reg.equations_.iterrows():
        try:
            expr = parse_expression(str(row["equation"]), symbols)
        except ValueError:
            continue
        out.append(Candidate(expr, float(row["loss"]) / var_y, NAME))
    return out
