"""pyoperon (C++ Operon genetic programming), budgeted by evaluations and seeded."""
from __future__ import annotations

import numpy as np
import sympy as sp

from discovery.expressions import Candidate
from utils import parse_expression

NAME = "operon"
OPERATORS = "add,sub,mul,div,square,sqrt,sin,cos,constant,variable"


def usable() -> tuple[bool, str]:
    try:
        import pyoperon.sklearn  # noqa: F401
    except ImportError as err:
        return False, f"pyoperon is not installed ({err})"
    return True, "pyoperon imports"


def front(states: np.ndarray, y: np.ndarray, inputs, settings,
          max_length: int = 40) -> list[Candidate]:
    """Pareto front (accuracy vs length) as sympy candidates; loss = MSE / var(y)."""
    from pyoperon.sklearn import SymbolicRegressor

    X = inputs.evaluate(states)
    reg = SymbolicRegressor(
        allowed_symbols=OPERATORS, objectives=["r2", "length"],
        max_evaluations=int(settings.budget), generations=int(settings.generations),
        population_size=500, optimizer_iterations=5, n_threads=settings.threads,
        random_state=settings.seed, max_length=max_length, max_depth=10)
    reg.fit(X, y)
    var_y = float(np.var(y)) or 1.0
    out = []
    for member in reg.pareto_front_:
        expr = parse_model(member["model"], inputs.all_names, inputs.symbols)
        if expr is None:
            continue
        out.append(Candidate(expr, float(member["mean_squared_error"]) / var_y, NAME))
    return out


def parse_model(model: str, input_names: list[str], symbols: dict[str, sp.Symbol]):
    """Operon's model string (inputs named X1, X2, ...) -> sympy in the input symbols, or None
    when it holds something the expression parser does not accept."""
    local = {f"X{i + 1}": symbols[n] for i, n in enumerate(input_names)}
    try:
        expr = parse_expression(model, local)
    except ValueError:
        return None
    return sp.expand(expr) if expr.is_polynomial(*expr.free_symbols) else expr
