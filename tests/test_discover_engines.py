"""discovery/engines: the registry, the embedded engines on an exact problem, and the PySR
adapter's contract.

PySR needs Julia, which these machines do not have, so the adapter is checked against a
stand-in that follows PySRRegressor's documented API (keyword-only constructor arguments,
fit(X, y, variable_names=...), equations_ with complexity / loss / score / equation /
sympy_format columns read back from a hall-of-fame CSV) and enforces the documented rules the
adapter depends on: deterministic=True only with parallelism="serial", a warning for a seed
without determinism, variable names that are neither odd characters nor sympy names, maxsize
of at least 7, and the hall of fame written to ./outputs/<run_id>/ unless temp_equation_file.
The real engine has never run here.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy as sp

from discovery import engines
from discovery.engines import Settings, operon, pysr, sparse
from discovery.expressions import CompiledTerms, linear_form, make_inputs, to_text
from discovery.library import build_library
from utils import UsageError, parse_expression


# ---------------------------------------------------------------------------- the stand-in

class StandInRegressor:
    """PySRRegressor's documented surface, without Julia. The "search" returns FRONT (one
    equation per complexity, written with the variable names given to fit, as PySR writes
    them), each scored by its mean squared error on the data as PySR's default loss is."""

    # (PySR's complexity, equation with {i} for variable i, its values from the columns v):
    # what a hall of fame looks like
    FRONT = [(1, "{1}", lambda v: v[1]),
             (2, "square({2})", lambda v: v[2] ** 2),
             (3, "{1} * 3.0", lambda v: v[1] * 3.0),
             (4, "square({0}) + {1}", lambda v: v[0] ** 2 + v[1]),
             (6, "square({0}) + ({1} * 3.0000002)", lambda v: v[0] ** 2 + v[1] * 3.0000002),
             (7, "({0} * {0}) + (3.0 * {1})", lambda v: v[0] * v[0] + 3.0 * v[1])]
    created: list["StandInRegressor"] = []

    def __init__(self, *, model_selection="best", binary_operators=None, unary_operators=None,
                 niterations=100, populations=31, population_size=27, maxsize=30,
                 maxdepth=None, parallelism=None, procs=None, random_state=None,
                 deterministic=False, warm_start=False, verbosity=1, progress=True,
                 precision=32, run_id=None, output_directory=None, temp_equation_file=False,
                 tempdir=None, delete_tempfiles=True):
        self.params = dict(locals())
        del self.params["self"]
        StandInRegressor.created.append(self)

    def fit(self, X, y, *, Xresampled=None, weights=None, variable_names=None,
            complexity_of_variables=None, X_units=None, y_units=None, category=None):
        p = self.params
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        assert X.ndim == 2 and y.ndim == 1 and len(X) == len(y)
        names = list(variable_names) if variable_names is not None else [
            f"x{i}" for i in range(X.shape[1])]
        assert len(names) == X.shape[1]
        for name in names:     # PySR's own check, in fit (_check_assertions)
            if not re.match(r"^[a-zA-Z0-9_]+$", name):
                raise ValueError(f"Invalid variable name {name}.")
            if name in sp.__dict__ or name in ("square", "cube", "neg"):
                raise ValueError(f"Variable name {name} is already a function name.")
        if p["maxsize"] < 7:
            raise ValueError("PySR requires a maxsize of at least 7")
        parallelism = p["parallelism"] or ("serial" if p["procs"] == 0 else "multithreading")
        if p["deterministic"] and parallelism != "serial":
            raise ValueError("To ensure deterministic searches, you must set "
                             "`parallelism='serial'`.")
        if p["random_state"] is not None and not (p["deterministic"] and parallelism == "serial"):
            warnings.warn("Note: Setting `random_state` without also setting "
                          "`deterministic=True` and `parallelism='serial'` will result in "
                          "non-deterministic searches.")
        self.variable_names_ = names
        if p["temp_equation_file"]:
            self.output_directory_ = tempfile.mkdtemp(dir=p["tempdir"])
        else:
            self.output_directory_ = p["output_directory"] or "outputs"   # relative to cwd
        self.run_id_ = p["run_id"] or "standin_run"
        run_dir = Path(self.output_directory_) / self.run_id_
        run_dir.mkdir(parents=True, exist_ok=True)

        rows = [{"Complexity": cx, "Loss": float(np.mean((values(X.T) - y) ** 2)),
                 "Equation": template.format(*names)} for cx, template, values in self.FRONT]
        pd.DataFrame(rows).to_csv(run_dir / "hall_of_fame.csv", index=False)

        df = pd.read_csv(run_dir / "hall_of_fame.csv").rename(
            columns={"Complexity": "complexity", "Loss": "loss", "Equation": "equation"})
        if p["temp_equation_file"] and p["delete_tempfiles"]:
            shutil.rmtree(self.output_directory_)
        scores, last = [], None      # PySR's calculate_scores: -d log(loss) / d complexity
        for loss, cx in zip(df["loss"], df["complexity"]):
            scores.append(0.0 if last is None else
                          -np.log(loss / last[0]) / (cx - last[1]) if loss > 0 else np.inf)
            last = (loss, cx)
        df["score"] = scores
        symbols = {n: sp.Symbol(n) for n in names}
        df["sympy_format"] = [sp.sympify(e, locals={**symbols, "square": lambda a: a**2})
                              for e in df["equation"]]
        self.equations_ = df
        return self


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """The stand-in as sys.modules["pysr"], the working directory an empty folder (to see
    whether anything is written into it) and temporary files kept under tmp_path."""
    module = types.ModuleType("pysr")
    module.PySRRegressor = StandInRegressor
    monkeypatch.setitem(sys.modules, "pysr", module)
    monkeypatch.setattr(StandInRegressor, "created", [])
    (tmp_path / "cwd").mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


def exact_problem(n=200, seed=0, names=("x0", "x1"), canonical=None):
    """States (n, 2) uniform in [-2, 2]^2 and y = s0**2 + 3 s1."""
    states = np.random.default_rng(seed).uniform(-2, 2, (n, 2))
    return states, states[:, 0] ** 2 + 3 * states[:, 1], make_inputs(list(names), canonical)


# ---------------------------------------------------------------------------- PySR adapter

def test_pysr_front_is_parsed_mapped_and_scored(standin):
    # "S" is sympy's singleton registry: PySR refuses it as a variable name, so the adapter
    # must hand PySR names of its own and map them back; canonical q labels add r = |(x, S)|
    states, y, inputs = exact_problem(names=("x", "S"), canonical=["q", "q"])
    x, S, r = (inputs.symbols[n] for n in ("x", "S", "r"))
    assert inputs.all_names == ["x", "S", "r"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no determinism warning from PySR
        front = pysr.front(states, y, inputs, Settings(niterations=5, seed=7))

    xs, Ss = states.T
    rs = np.hypot(xs, Ss)
    var_y = np.var(y)
    expected = [  # expression, complexity (sympy nodes, as every engine), MSE / var(y)
        (S, 1, np.mean((Ss - y) ** 2) / var_y),
        (r ** 2, 3, np.mean((rs ** 2 - y) ** 2) / var_y),
        (sp.Float(3.0) * S, 3, np.mean((3 * Ss - y) ** 2) / var_y),
        (x ** 2 + S, 5, np.mean((xs ** 2 + Ss - y) ** 2) / var_y),
        (x ** 2 + sp.Float(3.0000002) * S, 7, np.mean((xs ** 2 + 3.0000002 * Ss - y) ** 2) / var_y),
        (x ** 2 + sp.Float(3.0) * S, 7, 0.0),
    ]
    assert len(front) == len(expected)
    equations = StandInRegressor.created[-1].equations_
    for cand, (expr, cx, loss), (_, row) in zip(front, expected, equations.iterrows()):
        assert cand.source == "pysr"
        assert sp.simplify(cand.expr - expr) == 0, (cand.expr, expr)
        assert cand.complexity == cx
        assert cand.loss == pytest.approx(loss, rel=1e-9, abs=1e-15)
        # agrees with PySR's own sympy export once its x_i are our inputs
        back = row["sympy_format"].subs({sp.Symbol(f"x{i}"): inputs.symbols[n]
                                         for i, n in enumerate(inputs.all_names)})
        assert sp.simplify(back - cand.expr) == 0
        # the project's safe parser reads the expression's text back, and on the states it
        # gives the loss the adapter reported
        reread = parse_expression(sp.sstr(cand.expr), inputs.symbols)
        values = CompiledTerms([reread], inputs)(states)[:, 0]
        assert np.mean((values - y) ** 2) / var_y == pytest.approx(loss, rel=1e-6, abs=1e-15)


def test_pysr_regressor_is_seeded_serial_and_writes_nothing_here(standin):
    states, y, inputs = exact_problem(names=("x", "S"), canonical=["q", "q"])
    pysr.front(states, y, inputs, Settings(niterations=5, seed=7))
    (reg,) = StandInRegressor.created
    p = reg.params
    assert (p["random_state"], p["deterministic"], p["parallelism"]) == (7, True, "serial")
    assert p["niterations"] == 5
    assert len(reg.variable_names_) == inputs.evaluate(states).shape[1]
    # no ./outputs/<run_id>/ hall of fame or checkpoint in the working directory
    assert list((standin / "cwd").iterdir()) == []
    # PySR may only be asked for operators whose output the safe parser reads
    sym = {"a": sp.Symbol("a"), "b": sp.Symbol("b")}
    for op in p["binary_operators"]:
        parse_expression(f"a {op} b", sym)
    for op in p["unary_operators"]:
        parse_expression(f"{op}(a)", sym)


def test_standin_enforces_the_documented_rules(standin):
    """The stand-in refuses what PySR refuses, so the adapter passing it means something."""
    X = np.random.default_rng(0).normal(size=(5, 3))
    y = X[:, 0]
    with pytest.raises(ValueError, match="parallelism='serial'"):
        StandInRegressor(random_state=0, deterministic=True).fit(X, y)
    with pytest.warns(UserWarning, match="non-deterministic"):
        StandInRegressor(random_state=0, temp_equation_file=True).fit(X, y)
    with pytest.raises(ValueError, match="function name"):
        StandInRegressor(temp_equation_file=True).fit(X, y, variable_names=["x", "S", "z"])
    with pytest.raises(TypeError):
        StandInRegressor(n_iterations=5)
    StandInRegressor().fit(X, y)      # PySR's default output_directory: ./outputs/<run_id>/
    assert (standin / "cwd" / "outputs" / "standin_run" / "hall_of_fame.csv").exists()


def _probe_path(monkeypatch, tmp_path, pysr_init: str, juliacall: bool) -> None:
    """A `pysr` package (and maybe `juliacall`) on the PYTHONPATH the probe subprocess sees."""
    root = tmp_path / "site"
    (root / "pysr").mkdir(parents=True)
    (root / "pysr" / "__init__.py").write_text(pysr_init)
    if juliacall:
        (root / "juliacall.py").write_text('"""stand-in"""\n')
    monkeypatch.setenv("PYTHONPATH", str(root))


def test_pysr_usable_with_a_standin_install(monkeypatch, tmp_path):
    # the real pysr imports juliacall at import time, so does this stand-in
    _probe_path(monkeypatch, tmp_path, "import juliacall\n", juliacall=True)
    assert pysr.usable(timeout=30) == (True, "pysr imports")
    assert engines.resolve("pysr", log=lambda m: None) == ["pysr", "sparse"]


def test_pysr_not_usable_without_julia_says_why(monkeypatch, tmp_path):
    _probe_path(monkeypatch, tmp_path, "import juliacall\n", juliacall=False)
    ok, why = pysr.usable(timeout=30)
    assert not ok and "juliacall" in why and "\n" not in why


def test_pysr_probe_times_out(monkeypatch, tmp_path):
    _probe_path(monkeypatch, tmp_path, "import time\ntime.sleep(60)\n", juliacall=True)
    assert pysr.usable(timeout=1) == (False, "probe timed out after 1s")


@pytest.mark.skipif(importlib.util.find_spec("pysr") is not None, reason="pysr is installed")
def test_pysr_not_usable_without_pysr(monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    ok, why = pysr.usable(timeout=30)
    assert not ok and "No module named 'pysr'" in why and "\n" not in why


# ---------------------------------------------------------------------------- registry

def test_registry_names_its_engines():
    assert list(engines.ENGINES) == ["sparse", "operon", "pysr"]
    for name, module in engines.ENGINES.items():
        assert module.NAME == name
        assert callable(module.usable) and callable(module.front)
    assert engines.resolve("sparse") == ["sparse"]


def test_unknown_engine_is_one_line_error():
    with pytest.raises(UsageError) as err:
        engines.resolve("gplearn")
    message = str(err.value)
    assert "\n" not in message
    assert "unknown --backend 'gplearn'" in message
    assert all(name in message for name in ("auto", "sparse", "operon", "pysr"))


def test_auto_falls_back_when_pysr_cannot_run(monkeypatch):
    logged = []
    monkeypatch.setattr(pysr, "usable", lambda: (False, "no Julia here"))
    assert engines.resolve("auto", log=logged.append) == ["operon", "sparse"]
    assert len(logged) == 1 and "no Julia here" in logged[0]
    with pytest.raises(UsageError) as err:
        engines.resolve("pysr")
    assert "\n" not in str(err.value) and "no Julia here" in str(err.value)
    assert "--backend operon" in str(err.value)
    monkeypatch.setattr(pysr, "usable", lambda: (True, "pysr imports"))
    assert engines.resolve("auto", log=logged.append) == ["pysr", "sparse"]


# ---------------------------------------------------------------------------- embedded engines

def assert_exact(front, inputs, tol):
    """Some member is s0**2 + 3 s1: those two terms, coefficients within tol, no constant."""
    s0, s1 = inputs.state_symbols
    for cand in front:
        form = linear_form(cand.expr)
        if form is None or set(form[0]) != {s0 ** 2, s1}:
            continue
        coef = dict(zip(*form))
        const = float(sp.expand(cand.expr).subs({s0: 0, s1: 0}))
        if abs(coef[s0 ** 2] - 1) < tol and abs(coef[s1] - 3) < tol and abs(const) < tol:
            return cand
    raise AssertionError("no exact member: " + "; ".join(to_text(c.expr) for c in front))


def test_sparse_front_holds_the_exact_law():
    states, y, inputs = exact_problem()
    front = sparse.front(states, y, inputs, Settings(library=build_library(inputs), max_terms=4))
    cand = assert_exact(front, inputs, tol=1e-9)
    assert cand.loss < 1e-20
    assert all(c.loss > 1e-3 for c in front if c is not cand)   # nothing else is exact


@pytest.mark.skipif(not operon.usable()[0], reason="pyoperon is not installed")
def test_operon_front_holds_the_exact_law_and_a_seed_fixes_it():
    states, y, inputs = exact_problem()
    settings = Settings(budget=20_000, generations=50, seed=0)
    front = operon.front(states, y, inputs, settings)
    cand = assert_exact(front, inputs, tol=1e-3)
    assert cand.loss < 1e-8
    # the expression is what the front claims: evaluated on fresh states it is y
    fresh, y_fresh, _ = exact_problem(seed=1)
    values = CompiledTerms([parse_expression(to_text(cand.expr), inputs.symbols)],
                           inputs)(fresh)[:, 0]
    assert np.max(np.abs(values - y_fresh)) < 1e-3 * np.max(np.abs(y_fresh))
    again = operon.front(states, y, inputs, settings)
    assert [(to_text(c.expr), c.loss) for c in again] == [(to_text(c.expr), c.loss)
                                                          for c in front]
