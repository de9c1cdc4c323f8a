"""The discovery benchmark: its systems (data/benchmark_systems.py), its scorer
(evaluation/benchmark.py, evaluation.metrics.combination_match) and its runner
(bench/bench_discover.py).

    python -m pytest -q tests/test_benchmark_systems.py
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

from data.benchmark_systems import BENCHMARK_SYSTEMS, _driven_closed_form
from data.loader import BENCHMARK_SYSTEMS as BENCHMARK_NAMES, BUILTIN_SYSTEMS
from data.simulate import DRIFT_TOL, SYSTEMS, relative_drift, simulate
from evaluation import metrics
from evaluation.benchmark import gradients, score_entry, span_residual
from utils import cli, conservation_ratio

ROOT = Path(__file__).resolve().parent.parent
N_TRAJ, SEED = 24, 2
CONSERVATIVE = [s.name for s in BENCHMARK_SYSTEMS if s.conserved]
CONTROLS = [s.name for s in BENCHMARK_SYSTEMS if not s.conserved]
# Invariants that are not drift-checked (their values can cross 0) must still stay within
# this fraction of their spread across trajectories along every trajectory.
CONSERVED_TOL = 1e-6


@pytest.fixture(scope="module")
def clean():
    """name -> clean states (N_TRAJ, T, D) of each benchmark system, simulated once."""
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = simulate(name, n_traj=N_TRAJ, seed=SEED)["states"]
        return cache[name]

    return get


def probe_states(states: np.ndarray, n: int = 400) -> np.ndarray:
    flat = states.reshape(-1, states.shape[-1])
    return flat[np.random.default_rng(0).choice(len(flat), size=min(n, len(flat)),
                                                replace=False)]


# ---------------------------------------------------------------------------- the registry

def test_every_benchmark_system_is_registered_and_kinds_are_covered():
    names = [s.name for s in BENCHMARK_SYSTEMS]
    assert tuple(names) == BENCHMARK_NAMES and len(names) >= 12
    assert set(names) <= set(SYSTEMS) and set(names) <= set(BUILTIN_SYSTEMS)
    assert not set(names) & {"projectile", "spring", "orbit"}
    by_name = {s.name: s for s in BENCHMARK_SYSTEMS}
    assert by_name["double-pendulum"].canonical is None          # angles, no q/p labels
    assert by_name["three-body"].names[:6] == ("x1", "y1", "x2", "y2", "x3", "y3")
    assert all(by_name[f"lotka-volterra-{k}"].canonical is None for k in (2, 3, 4))
    assert len(CONTROLS) >= 3


@pytest.mark.parametrize("system", BENCHMARK_SYSTEMS, ids=lambda s: s.name)
def test_entry_is_consistent(system):
    assert set(system.conserved) <= set(system.invariants)
    assert set(system.checked) <= set(system.conserved)
    assert len(system.conserved) < len(system.names)      # an autonomous flow has <= D - 1
    if "E" in system.invariants:
        assert next(iter(system.invariants)) == "E"        # the energy first
    assert (system.rhs is None) == (system.generate is not None)
    assert f"{len(system.conserved)} invariant" in system.description


# ---------------------------------------------------------------------------- conservation

@pytest.mark.parametrize("name", CONSERVATIVE)
def test_true_invariants_are_conserved_and_vary(clean, name):
    system = SYSTEMS[name]
    states = clean(name)
    drift = relative_drift(system, states)
    assert max(float(v.max()) for v in drift.values()) <= DRIFT_TOL
    for key in system.invariants:
        values = system.invariant_fn(key)(states)                     # (N, T)
        spread = values[:, 0].std()
        worst = np.abs(values - values[:, :1]).max()
        assert worst <= CONSERVED_TOL * spread, f"{name} {key}: {worst:.1e} of {spread:.2e}"
        # different on (nearly) every trajectory: the sampler varies the invariants
        distinct = np.unique(np.round(values[:, 0] / spread, 4)).size
        assert distinct >= 0.9 * N_TRAJ, f"{name} {key}: {distinct} distinct values"


@pytest.mark.parametrize("name", CONSERVATIVE)
def test_true_count_is_the_gradient_rank(clean, name):
    """The `conserved` invariants are functionally independent (rank = count), and every
    other listed invariant is a function of them."""
    system = SYSTEMS[name]
    probe = probe_states(clean(name))
    exprs = [system.invariant_expr(k) for k in system.conserved]
    grads = gradients(exprs, list(system.names), probe)                 # (n, K, D)
    grads /= np.linalg.norm(grads, axis=2, keepdims=True)
    smallest = np.linalg.svd(grads, compute_uv=False)[:, -1]
    assert np.median(smallest) > 0.05, f"{name}: median smallest singular value {smallest}"
    for key in set(system.invariants) - set(system.conserved):
        other = gradients([system.invariant_expr(key)], list(system.names), probe)[:, 0]
        assert np.median(span_residual(other, grads)) < 1e-8, f"{name} {key}"


@pytest.mark.parametrize("name", CONTROLS)
def test_negative_controls_conserve_none_of_their_candidates(clean, name):
    system = SYSTEMS[name]
    states = clean(name)
    assert system.conserved == () and system.checked == ()
    for key in system.invariants:
        ratio = conservation_ratio(system.invariant_fn(key)(states))
        assert ratio > 0.05, f"{name} {key}: conservation ratio {ratio:.2e}"


def test_driven_oscillator_closed_form_solves_its_ode():
    system = SYSTEMS["driven-oscillator"]
    p = system.params
    rng = np.random.default_rng(4)
    x0, phase = system.sample(rng, 3, p), rng.uniform(0, 2 * np.pi, 3)
    t = np.linspace(0.0, system.t_end, system.steps)
    closed = _driven_closed_form(x0, phase, t, p)
    for i in range(3):
        rhs = lambda tt, s: [s[1], -p["k"] * s[0] + p["F"] * np.cos(p["Omega"] * tt + phase[i])]
        sol = solve_ivp(rhs, (0, t[-1]), x0[i], t_eval=t, rtol=1e-11, atol=1e-12)
        assert np.abs(sol.y.T - closed[i]).max() < 1e-8


def test_random_walk_increments_have_the_stated_spread(clean):
    system = SYSTEMS["random-walk"]
    states = simulate("random-walk", n_traj=400, seed=SEED)["states"]
    dt = system.t_end / (system.steps - 1)
    steps = np.diff(states, axis=1).reshape(-1, 2) / np.sqrt(dt)
    np.testing.assert_allclose(steps.std(axis=0), system.params["sigma"], rtol=0.03)
    assert np.abs(steps.mean(axis=0)).max() < 0.02


def test_noisy_file_keeps_the_clean_trajectories():
    clean_arrays = simulate("lotka-volterra-3", n_traj=8, seed=SEED)
    noisy = simulate("lotka-volterra-3", n_traj=8, seed=SEED, noise=0.01)
    np.testing.assert_array_equal(noisy["truth_clean_states"], clean_arrays["states"])
    assert "canonical" not in noisy


# ---------------------------------------------------------------------------- the scorer

def entry_of(name: str, laws: list[tuple[str, str]], n: int | None = None,
             approximate: list[str] = ()) -> dict:
    """A hand-made discovered entry: laws (kind, expression), n_conserved n (default: one
    per law), and approximately conserved quantities listed beside them."""
    eqs = [{"kind": k, "name": f"I{i}", "expression": e} for i, (k, e) in enumerate(laws)]
    eqs += [{"kind": "approximate", "name": f"A{i}", "expression": e,
             "conservation_ratio": 2e-3} for i, e in enumerate(approximate)]
    return {"variables": list(SYSTEMS[name].names), "derived_inputs": {},
            "n_conserved": len(laws) if n is None else n, "equations": eqs}


def score(clean, name, laws, **kw) -> dict:
    return score_entry(entry_of(name, laws, **kw), SYSTEMS[name], clean(name))


QUARTIC_E = "0.5*v**2 + 0.75*x**2 + 0.2*x**4"                  # k = 1.5, lam = 0.8


def test_scorer_right(clean):
    s = score(clean, "quartic", [("energy", "1.004*v**2 + 1.5*x**2 + 0.4*x**4 + 3")])
    assert s["right"] and s["spanned"] and s["structure"] and s["energy_exact"]
    assert s["false_laws"] == 0 and s["found_count"] == s["true_count"] == 1
    assert 0.001 < s["laws"][0]["max_rel_error"] < 0.003          # 0.4 % on one term


def test_scorer_trig_stand_in_for_x4(clean):
    """cos(x) standing in for x^4: close to the energy, but structurally wrong and not a
    function of the true invariant."""
    s = score(clean, "quartic", [("energy", "0.5*v**2 + 3.15*x**2 + 4.8*cos(x)")])
    law = s["laws"][0]
    assert not s["right"] and not s["structure"] and s["energy_exact"] is False
    assert law["extra"] == ["cos(x)"] and law["false"] and s["false_laws"] == 1
    assert law["ratio_clean"] < 1e-2                   # approximately conserved all the same


def test_scorer_secant_stand_in_for_a_square(clean):
    """The current method's energy for the 1:1 oscillator: 217.3/cos(0.0676 px) standing in
    for px^2/2 (conserved to a ratio of 1e-6 where exact laws reach 1e-20)."""
    s = score(clean, "oscillator-1to1", [
        ("energy", "0.499638*py**2 + 0.780835*(x**2 + y**2) + 217.302/cos(0.067611*px)"),
        ("invariant", "0.64*px*py + 1.0*x*y"), ("invariant", "1.0*px*y - 1.0*py*x")])
    assert not s["right"] and s["energy_exact"] is False and s["false_laws"] == 1
    assert [law["false"] for law in s["laws"]] == [True, False, False]


def test_scorer_missing_law(clean):
    s = score(clean, "oscillator-1to2", [("energy", "0.5*vx**2 + 0.5*vy**2 + 0.405*x**2"
                                                   " + 1.62*y**2"),
                                         ("invariant", "0.5*vy**2 + 1.62*y**2")])
    assert not s["right"] and s["structure"] and s["false_laws"] == 0
    assert s["unspanned"] == ["K_re"] and not s["count_right"]


def test_scorer_false_law_and_wrong_count(clean):
    s = score(clean, "quartic", [("energy", QUARTIC_E), ("invariant", "x*v")])
    assert not s["right"] and s["false_laws"] == 1 and not s["count_right"]
    assert s["spanned"] and s["energy_exact"]
    assert [law["false"] for law in s["laws"]] == [False, True]


def test_scorer_false_laws_span_nothing(clean):
    """The current method's three approximately conserved laws for the 4-species food web:
    their gradients nearly span the true invariants' (all are nearly orthogonal to the flow),
    but a false law finds no invariant."""
    s = score(clean, "lotka-volterra-4", [("invariant", "-0.730979*x1 + 1.0*x3*x4"),
                                          ("invariant", "-0.271313*x2*x4 + 1.0*x3*x4"),
                                          ("invariant", "-0.246858*x2*x3 + 1.0*x3*x4"
                                                        " + 0.593692*x3")])
    assert s["false_laws"] == 3 and s["count_right"] and not s["right"]
    assert s["unspanned"] == ["V", "W1", "W2"]


def test_scorer_wrong_count_alone(clean):
    s = score(clean, "quartic", [("energy", QUARTIC_E)], n=2)
    assert not s["right"] and not s["count_right"] and s["spanned"] and s["structure"]


def test_scorer_combinations_logs_and_exponentials(clean):
    """Any affine combination of true invariants is exact, whatever form it is written in:
    the cubic of the 1:2 oscillator plus energies, a log of a product, exp of a difference
    (and a constant inside an exponential within 2 %)."""
    s = score(clean, "oscillator-1to2", [
        ("energy", "0.5*vx**2 + 0.5*vy**2 + 0.405*x**2 + 1.62*y**2"),
        ("invariant", "0.5*vy**2 + 1.62*y**2"),
        ("invariant", "1.8*y*(0.81*x**2 - vx**2) + 1.8*x*vx*vy + 0.3*vy**2 + 0.972*y**2")])
    assert s["right"], s
    s = score(clean, "lotka-volterra-3", [
        ("invariant", "x1 + x2 + x3 - log(x1) - 1.5*log(x2) - 0.7*log(x3)"),
        ("invariant", "log(x1**1.1*x2**0.5*x3**0.8)")])
    assert s["right"], s
    s = score(clean, "toda", [
        ("energy", "0.5*(p1**2 + p2**2 + p3**2) + 1.2*(exp(0.9001*(q1 - q2))"
                   " + exp(0.9*(q2 - q3)) + exp(0.9*(q3 - q1)))"),
        ("invariant", "p1 + p2 + p3"),
        ("invariant", "p1*p2*p3 - 1.2*(p1*exp(0.9*q2 - 0.9*q3) + p2*exp(0.9*(q3 - q1))"
                      " + p3*exp(0.9*(q1 - q2)))")])
    assert s["right"], s


def test_scorer_energy_must_be_the_energy(clean):
    """A true invariant reported as the energy is not the energy's structure."""
    s = score(clean, "oscillator-irrational", [("energy", "0.5*p1**2 + 0.605*q1**2"),
                                               ("invariant", "0.5*p2**2 + 1.21*q2**2")])
    assert s["spanned"] and s["false_laws"] == 0
    assert s["energy_exact"] is False and not s["right"]


def test_scorer_function_of_invariants_is_not_false_but_not_exact(clean):
    s = score(clean, "magnetic", [("invariant", "(vx**2 + vy**2)**2"),
                                  ("invariant", "x + vy/1.6"), ("invariant", "y - vx/1.6")])
    assert s["spanned"] and s["false_laws"] == 0 and not s["structure"] and not s["right"]


def test_scorer_approximate_laws_are_listed_not_counted(clean):
    s = score(clean, "oscillator-irrational",
              [("energy", "0.5*p1**2 + 0.5*p2**2 + 0.605*q1**2 + 1.21*q2**2"),
               ("invariant", "0.5*p2**2 + 1.21*q2**2")],
              approximate=["cos(q2) - 0.212*p2**2"])
    assert s["right"] and len(s["laws"]) == 2
    assert [a["expression"] for a in s["approximate"]] == ["cos(q2) - 0.212*p2**2"]


def test_scorer_negative_control(clean):
    assert score(clean, "damped-pendulum", [], n=0)["right"]
    s = score(clean, "damped-pendulum", [("energy", "0.5*p**2 + 6*(1 - cos(theta))")])
    assert not s["right"] and s["false_laws"] == 1 and not s["count_right"]


def test_combination_match_reports_missing_and_extra_terms():
    x, y, v = sp.symbols("x y v", real=True)
    basis = [v**2 / 2 + x**2, x * y]
    assert metrics.combination_match(2 * v**2 + 4 * x**2 - 3 * x * y + 1, basis)["match"]
    s = metrics.combination_match(0.5 * v**2 + 1.06 * x**2, basis)     # 6 % apart: 3 % each
    assert not s["match"] and s["max_rel_error"] == pytest.approx(0.06 / 2.06, rel=1e-6)
    assert metrics.combination_match(v**2 + y**3, basis)["extra"] == ["y**3"]
    assert metrics.combination_match(v**2, basis)["missing"] == ["x**2"]


# ---------------------------------------------------------------------------- the runner

def _bench():
    spec = importlib.util.spec_from_file_location("bench_discover",
                                                  ROOT / "bench" / "bench_discover.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its flags dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_bench_runs_a_system_and_scores_it(tmp_path, capsys):
    args = ["--systems", "lotka-volterra-2", "--noise", "0", "--n-traj", "30",
            "--train-flags", "--epochs 1 --energy-steps 1 --batch-size 16",
            "--discover-flags", "--backend sparse --n-samples 300 --latent-pcs 0",
            "--results-dir", str(tmp_path), "--quiet"]
    assert cli(_bench().main)(args) == 0
    report = json.loads((tmp_path / "bench_discover.json").read_text())
    (row,) = report["rows"]
    assert report["complete"] and not row["failed"], row["error"]
    entries = json.loads((tmp_path / "bench_discover" / "lotka-volterra-2" /
                          "discovered_equations.json").read_text())
    (entry,) = entries.values()           # filed under the data file's key
    assert row["found_count"] == entry["n_conserved"] and row["true_count"] == 1
    assert len(row["laws"]) == sum(e["kind"] in ("energy", "invariant")
                                   for e in entry["equations"])
    assert row["right"] == (row["found_count"] == 1 and row["spanned"] and row["structure"]
                            and row["false_laws"] == 0)
    assert row["train_s"] > 0 and row["discover_s"] > 0
    assert "--n-traj 30" in row["commands"]["simulate"]
    # scored again from the same files: the same verdict, the times of the run kept
    assert cli(_bench().main)([*args, "--score-only"]) == 0
    (again,) = json.loads((tmp_path / "bench_discover.json").read_text())["rows"]
    assert {k: again[k] for k in ("right", "found_count", "laws", "train_s", "discover_s")} \
        == {k: row[k] for k in ("right", "found_count", "laws", "train_s", "discover_s")}
    # discovery alone again on the same runs: the same verdict, the training time kept
    assert cli(_bench().main)([*args, "--rediscover"]) == 0
    (third,) = json.loads((tmp_path / "bench_discover.json").read_text())["rows"]
    assert {k: third[k] for k in ("right", "found_count", "laws", "train_s")} \
        == {k: row[k] for k in ("right", "found_count", "laws", "train_s")}
    assert third["discover_s"] > 0


def test_bench_failed_command_is_a_failed_row(tmp_path, capsys):
    args = ["--systems", "morse", "--noise", "0.01", "--n-traj", "10",
            "--train-flags", "--epochs 0", "--results-dir", str(tmp_path)]
    assert cli(_bench().main)(args) == 0
    (row,) = json.loads((tmp_path / "bench_discover.json").read_text())["rows"]
    assert row["failed"] and not row["right"]
    assert row["error"].startswith("train: error: --epochs")
    assert (tmp_path / "bench_discover" / "data" / "morse-noise0.01.npz").exists()
    out = capsys.readouterr().out
    assert "FAILED (train: error: --epochs" in out and "right: 0 of 1" in out


def test_bench_bad_flags_exit_2(tmp_path, capsys):
    assert cli(_bench().main)(["--systems", "warp-drive", "--results-dir",
                               str(tmp_path)]) == 2
    assert "warp-drive" in capsys.readouterr().err
    assert not (tmp_path / "bench_discover.json").exists()
