"""Unit tests of the evaluation's metric functions (evaluation/) against hand-made cases with
known answers."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import evaluate
from data.loader import load_trajectories
from data.simulate import SYSTEMS, simulate
from evaluation import metrics, report
from evaluation.truth import Truth, read_truth
from utils import UsageError, atomic_write_json, atomic_write_npz, conservation_ratio

PROJ_VARS = ["x", "y", "vx", "vy"]
PROJ_E = "0.5*vx**2 + 0.5*vy**2 + 9.81*y"


@pytest.fixture(scope="module")
def projectile_states():
    """(n, 4) clean projectile states from the simulator (40 trajectories x 100 steps)."""
    arrays = simulate("projectile", n_traj=40, seed=3)
    return arrays["states"].reshape(-1, 4)


def truth_expressions(name, params):
    """The registry's true invariants of a system as formulas, with `params` filled in."""
    return {k: SYSTEMS[name].invariant_text(k, params) for k in SYSTEMS[name].invariants}


def _match(text, truth, states, variables=PROJ_VARS, derived=None):
    """(affine R^2 on the states, structural match) of `text` against `truth`."""
    found = metrics.parse_formula(text, variables, derived)
    true = metrics.parse_formula(truth, variables)
    h = metrics.evaluate_expression(found, variables, states)
    target = metrics.evaluate_expression(true, variables, states)
    r2, _, _ = metrics.affine_fit(h, target)
    return r2, metrics.structure_match(found, true, None, variables, states)


# ---------------------------------------------------------------------------- truth table

@pytest.mark.parametrize("name", list(SYSTEMS))
def test_truth_expressions_agree_with_the_registry(name):
    system = SYSTEMS[name]
    arrays = simulate(name, n_traj=6, seed=1)
    states = arrays["states"]                                   # (6, T, D)
    exprs = truth_expressions(name, system.params)
    assert set(exprs) == set(system.invariants)
    for inv, text in exprs.items():
        expr = metrics.parse_formula(text, list(system.names))
        got = metrics.evaluate_expression(expr, list(system.names), states)
        want = system.invariant_fn(inv)(states)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=f"{name} {inv}")


def test_truth_expressions_use_the_given_parameters(tmp_path):
    assert "3.7*y" in truth_expressions("projectile", {"g": 3.7, "m": 1.0})["E"]
    # a file whose meta names no registry system, and that stores no formulas of its own, has
    # no formulas to compare with
    arrays = simulate("spring", n_traj=6, seed=1)
    arrays["meta"] = np.array('{"system": "not-a-system"}')
    arrays["truth_meta"] = np.array('{"params": {}}')
    atomic_write_npz(tmp_path / "other.npz", **arrays)
    assert read_truth(load_trajectories(tmp_path / "other.npz", with_truth=True)).expressions == {}


# ---------------------------------------------------------------------------- structural match

def test_structure_accepts_coefficients_within_two_percent(projectile_states):
    r2, s = _match("0.498*(vx**2 + vy**2) + 9.81*y", PROJ_E, projectile_states)
    assert r2 > 0.9999
    assert s["match"], s
    assert 0.0 < s["max_rel_error"] <= 0.005          # 0.4 % off on the kinetic terms
    assert not s["missing"] and not s["extra"]


def test_structure_is_blind_to_scale_and_offset(projectile_states):
    r2, s = _match("3*vx**2 + 3*vy**2 + 58.86*y + 7", PROJ_E, projectile_states)
    assert r2 == pytest.approx(1.0, abs=1e-12)
    assert s["match"] and s["max_rel_error"] < 1e-9 and s["scale"] == pytest.approx(6.0)


def test_structure_rejects_a_missing_term(projectile_states):
    _, s = _match("0.5*vx**2 + 9.81*y", PROJ_E, projectile_states)
    assert not s["match"]
    assert s["missing"] == ["vy**2"]


def test_structure_rejects_an_extra_term(projectile_states):
    _, s = _match(PROJ_E + " + 0.3*x*vx", PROJ_E, projectile_states)
    assert not s["match"] and s["extra"] == ["vx*x"]


@pytest.mark.parametrize("text", ["0.5*vx**2 + 0.5*vy**2 + 10.1043*y",     # g 3 % high
                                  "0.515*vx**2 + 0.5*vy**2 + 9.81*y"])     # one kinetic term
def test_structure_rejects_a_three_percent_coefficient_error(projectile_states, text):
    r2, s = _match(text, PROJ_E, projectile_states)
    assert r2 > 0.99                          # numerically close, structurally wrong
    assert not s["match"], s
    assert 0.028 < s["max_rel_error"] < 0.031


def test_structure_with_explicit_scale():
    x, v = sp.symbols("x v", real=True)
    truth = 0.5 * v**2 + 2.5 * x**2
    assert metrics.structure_match(0.5 * v**2 + 2.5 * 1.019 * x**2, truth, 1.0)["match"]
    s = metrics.structure_match(0.5 * v**2 + 2.5 * 1.03 * x**2, truth, 1.0)
    assert not s["match"] and s["max_rel_error"] == pytest.approx(0.03)
    # two terms, 3 % apart: no scale puts both within 2 % of the truth's ratio
    assert not metrics.structure_match(0.5 * v**2 + 2.5 * 1.03 * x**2, truth)["match"]
    assert metrics.structure_match(0.501 * v**2 + 2.47 * x**2, truth)["match"]  # README's spring


def test_structure_substitutes_derived_inputs():
    states = simulate("orbit", n_traj=20, seed=2)["states"].reshape(-1, 4)
    truth = truth_expressions("orbit", {"GM": 1.0})["E"]
    r2, s = _match("0.5027*vx**2 + 0.5038*vy**2 - 1.003/r", truth, states,
                   derived={"r": "sqrt(x**2 + y**2)"})
    assert r2 > 0.999 and s["match"], s
    _, s = _match("0.5*vx**2 + 0.5*vy**2 - 1.0/r**2", truth, states,
                  derived={"r": "sqrt(x**2 + y**2)"})
    assert not s["match"]                     # 1/r^2 is not the Kepler potential


@pytest.mark.parametrize("name, text, derived", [
    ("pendulum", "0.5001*p**2 - 5.99*cos(q)", None),
    ("two-body", "0.5*px1**2 + 0.5*py1**2 + 0.5*px2**2 + 0.5*py2**2 - 1.0/r12",
     {"r12": "sqrt((x1 - x2)**2 + (y1 - y2)**2)"}),
])
def test_structure_of_other_systems_energies(name, text, derived):
    system = SYSTEMS[name]
    names = list(system.names)
    states = simulate(name, n_traj=10, seed=5)["states"].reshape(-1, len(names))
    truth = truth_expressions(name, system.params)["E"]
    r2, s = _match(text, truth, states, names, derived)
    assert r2 > 0.999 and s["match"], s


def test_structure_normalises_float_exponents(projectile_states):
    _, s = _match("0.5*vx**2.0 + 0.5*vy**2.0 + 9.81*y**1.0", PROJ_E, projectile_states)
    assert s["match"], s


def test_negligible_terms_are_set_aside_only_with_states(projectile_states):
    text = PROJ_E + " + 1e-9*x"
    _, s = _match(text, PROJ_E, projectile_states)
    assert s["match"] and s["negligible"] == ["x"]
    found, true = (metrics.parse_formula(t, PROJ_VARS) for t in (text, PROJ_E))
    assert not metrics.structure_match(found, true, 1.0)["match"]


def test_expression_terms():
    x, y = sp.symbols("x y", real=True)
    terms = metrics.expression_terms(2 * (x + y) ** 2 + 5)
    assert terms == {x**2: 2.0, y**2: 2.0, x * y: 4.0}      # constant left out


def test_parse_expression_rejects_unknown_symbols():
    with pytest.raises(ValueError, match="unknown symbol"):
        metrics.parse_formula("x + z", ["x", "v"])
    with pytest.raises(ValueError, match="cannot parse"):
        metrics.parse_formula("x +* v", ["x", "v"])


# ---------------------------------------------------------------------------- R^2 and ratios

def test_affine_r2_of_an_affine_function_is_one():
    rng = np.random.default_rng(0)
    E = rng.normal(size=500)
    r2, a, b = metrics.affine_fit(-3.2 * E + 7.0, E)
    assert r2 == pytest.approx(1.0, abs=1e-12)
    assert a == pytest.approx(-3.2) and b == pytest.approx(7.0)


def test_functional_r2_sees_a_curved_function():
    rng = np.random.default_rng(1)
    px = rng.uniform(1.0, 10.0, 2000)
    h = px ** 2                                   # vx^2 against the true invariant px = vx
    r2, _, _ = metrics.affine_fit(h, px)
    assert r2 < 0.99
    assert metrics.functional_r2(h, px) == pytest.approx(1.0, abs=1e-9)
    assert metrics.functional_r2(rng.normal(size=2000), px) < 0.05


def test_r2_of_constants_is_undefined():
    assert metrics.affine_fit(np.ones(50), np.arange(50.0))[0] is None
    assert metrics.functional_r2(np.arange(50.0), np.ones(50)) is None


def test_joint_match_finds_the_invariants_a_quantity_is_a_function_of():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3))
    h = X[:, 0] - 0.5 * X[:, 2] ** 2 + 3                  # (E - px^2/2)-like: E and px
    assert metrics.joint_r2(h, X) == pytest.approx(1.0, abs=1e-12)
    assert metrics.joint_r2(h, X[:, :2]) < 0.9
    names, r2 = metrics.joint_match(h, X, ["E", "L", "px"], n_traj=400)
    assert names == ["E", "px"] and r2 == pytest.approx(1.0)
    assert metrics.joint_match(rng.normal(size=400), X, ["E", "L", "px"], 400)[0] is None
    assert metrics.joint_match(h, X, ["E", "L", "px"], n_traj=20) == (None, None)  # too few


def test_conservation_ratio():
    rng = np.random.default_rng(3)
    per_traj = rng.normal(size=(30, 1))
    assert conservation_ratio(np.repeat(per_traj, 50, axis=1)) == pytest.approx(0, abs=1e-24)
    noisy = per_traj + 0.1 * rng.normal(size=(30, 50))
    assert 0.0 < conservation_ratio(noisy) < 0.05
    # within variance 1/12 per trajectory, means all equal -> inf
    ramp = np.tile(np.linspace(0, 1, 50), (30, 1))
    assert conservation_ratio(ramp) == float("inf")
    # exact: within = var of [0, 2] = 1; means 1 and 5 -> between 4
    assert conservation_ratio(np.array([[0.0, 2.0], [4.0, 6.0]])) == pytest.approx(0.25)


def test_relative_drift():
    energy = np.array([[2.0, 2.0, 2.2, 1.6], [-1.0, -1.0, -1.0, -1.1]])
    d = metrics.relative_drift(energy, energy[:, 0], start=2)
    assert d["mean"] == pytest.approx((0.1 + 0.2 + 0.0 + 0.1) / 4)
    assert d["max"] == pytest.approx(0.2)
    assert d["max_abs"] == pytest.approx(0.4)
    assert d["final_mean"] == pytest.approx(0.15)
    assert metrics.relative_drift(np.full((2, 3), np.nan), np.ones(2))["mean"] is None


# ---------------------------------------------------------------------------- on a data file

@pytest.fixture(scope="module")
def projectile_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "projectile.npz"
    atomic_write_npz(path, **simulate("projectile", n_traj=300, seed=4, noise=0.01))
    return load_trajectories(path, with_truth=True)


def test_assess_equation_matches_functions_and_structure(projectile_file):
    data = projectile_file
    truth = read_truth(data)
    assert truth.system == "projectile" and truth.energy_fn is not None
    assert truth.clean is not data.states                         # noisy file: clean states
    test = data.indices("test")
    clean, tvals = truth.clean[test], truth.values[test]
    idx = np.arange(clean.shape[0] * clean.shape[1])
    disc = {"variables": data.names, "derived_inputs": {}}
    energy = metrics.assess_equation({"kind": "energy", "name": "E",
                                 "expression": "1.002*vx**2 + vy**2 + 19.62*y"},
                                disc, truth, clean, tvals, idx)
    assert energy["matched"] == "E" and energy["relation"] == "affine"
    assert energy["r2"] > 0.9999 and energy["structure_match"] is True
    assert energy["conservation_ratio"] < 1e-4
    square = metrics.assess_equation({"kind": "invariant", "name": "I1", "expression": "vx**2"},
                                disc, truth, clean, tvals, idx)
    assert square["matched"] == "px" and square["relation"] == "function"
    assert square["functional_r2"] > 0.9999 and square["structure_match"] is False
    both = metrics.assess_equation({"kind": "invariant", "name": "I3",
                               "expression": "0.0509684*vy**2 + y"}, disc, truth, clean, tvals,
                              idx)
    assert both["matched"] == "f(E, px)" and both["relation"] == "joint"
    assert both["joint_r2"] > 0.9999
    junk = metrics.assess_equation({"kind": "invariant", "name": "I2", "expression": "x*y"},
                              disc, truth, clean, tvals, idx)
    assert junk["matched"] is None and junk["conservation_ratio"] > 0.1
    bad = metrics.assess_equation({"kind": "invariant", "name": "I3", "expression": "w + 1"},
                             disc, truth, clean, tvals, idx)
    assert bad["error"] and bad["matched"] is None


def test_assess_equation_without_truth(projectile_file):
    data = projectile_file
    test = data.indices("test")
    truth = Truth(None, {}, [], None, data.states, {}, None)
    out = metrics.assess_equation({"kind": "energy", "name": "E", "expression": PROJ_E},
                             {"variables": data.names}, truth, data.states[test], None,
                             np.arange(10))
    assert out["matched"] is None and out["r2"] is None
    assert 0 < out["conservation_ratio"] < 1e-2        # observed states are noisy


# ---------------------------------------------------------------------------- README

def _metrics():
    eq = {"kind": "energy", "name": "E", "expression": "0.5*v**2 + 2.5*x**2", "matched": "E",
          "relation": "affine", "r2": 0.99999, "functional_r2": 1.0, "structure_match": True,
          "max_coef_error": 0.001, "conservation_ratio": 1e-7, "per_invariant": {"E": {}}}
    drift = {"standard": {"tag": "standard", "mean": 0.1, "max": 0.3, "max_abs": 0.5,
                          "state_nrmse": 0.2, "run": "a"},
             "physics": {"tag": "physics-aware", "mean": 0.001, "max": 0.004, "max_abs": 0.01,
                         "state_nrmse": 0.05, "run": "b"}, "ratio": 100.0, "target_met": True}
    training = [{"tag": "standard", "beta": 0.0, "latent_dim": 32, "epochs": 100,
                 "epochs_asked": 100, "train_seconds": 12.0, "device": "cpu",
                 "final_train_loss": 1e-3, "final_val_loss": 2e-3}]
    return {"generated": "now", "settings": {"prefix": 10},
            "systems": {"spring": {"equations": [eq], "drift": drift, "training": training}}}


def test_readme_section_is_rewritten_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\nintro\n{report.README_START}\nold text\n{report.README_END}\nend\n")
    report.rewrite_readme(readme, _metrics())
    text = readme.read_text()
    assert text.startswith("# Title\nintro\n") and text.endswith(f"{report.README_END}\nend\n")
    assert "old text" not in text
    assert "| spring | energy | E | `0.5*v**2 + 2.5*x**2` | E |" in text
    assert "10%" in text and "100x" in text
    report.rewrite_readme(readme, _metrics())                # idempotent
    assert readme.read_text() == text


def test_readme_without_markers_fails(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    with pytest.raises(UsageError, match="markers"):
        report.rewrite_readme(readme, _metrics())
    assert readme.read_text() == "# no markers here\n"


def test_bad_flags_are_usage_errors():
    with pytest.raises(UsageError):
        evaluate.parse_args(["--prefix", "0"])
    with pytest.raises(UsageError):
        evaluate.parse_args(["--no-such-flag"])
    assert evaluate.parse_args(["--hnn-table"]).hnn_table == ""
    assert evaluate.parse_args(["--hnn-table", "--quick --seeds 0"]).hnn_table == "--quick --seeds 0"
    assert evaluate.parse_args(["--hnn-table=--quick"]).hnn_table == "--quick"


def test_pixel_extras_pick_each_runs_best_latent_law_and_reach_the_readme(tmp_path):
    from types import SimpleNamespace

    from evaluation.dashboard import pixel_extras
    law = lambda kind, expr, mu, r2: {"kind": kind, "expression": expr, "latex": expr,
                                      "mu": mu, "r2_true_energy": r2}
    runs = [{"model": "hnn", "seed": 1, "latent_discovery": {"n_conserved": 1, "laws": [
                law("invariant", "z0**2 + 0.5*z1**2 - 0.1*cos(z0 + z1)", 0.9, 0.9999),
                law("approximate", "z0*z1", 50.0, 0.2)]}},
            {"model": "baseline", "seed": 1, "latent_discovery": {"n_conserved": 0,
                                                                  "laws": []}},
            {"model": "baseline", "seed": 2}]          # run without discovery: left out
    atomic_write_json(tmp_path / "hnn_pixel.json", {
        "runs": runs, "baseline_over_hnn_by_horizon": {"euler": {"span": 2000.0, "400": 3000.0},
                                                        "rk4": {"span": 1.5, "400": 20.0},
                                                        "flat": 3.0}})   # not per horizon: dropped
    extras = pixel_extras(SimpleNamespace(results_dir=tmp_path))
    hnn, base = extras["latent_discovery"]
    assert extras["ratios_by_horizon"] == {"euler": {"span": 2000.0, "400": 3000.0},
                                           "rk4": {"span": 1.5, "400": 20.0}}
    assert (hnn["kind"], hnn["terms"], hnn["mu"], hnn["r2_true_energy"]) == (
        "invariant", 3, 0.9, 0.9999)
    assert base["n_conserved"] == 0 and base["expression"] is None and base["terms"] is None
    text = report.pixel_paragraph(extras)
    assert "the paper's loss (one Euler step per frame; baseline / hnn): the data span 2e+03×, " \
           "400 frames 3e+03×" in text
    assert "RK4 step in the loss (baseline+rk4 / hnn+rk4): the data span 1.5×, 400 frames 20×" \
           in text
    assert "| hnn | 1 | 1 | invariant | 3 | 0.9 | 0.9999 |" in text
    assert "| baseline | 1 | 0 | - | - | - | - |" in text
    assert pixel_extras(SimpleNamespace(results_dir=tmp_path / "none")) is None
