"""Simulators against closed forms, conservation per trajectory, reproducibility and the CLI.

    python -m pytest -q tests/test_simulate.py

Every data file here is made by the simulate CLI in a temporary folder, never in data/.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data import simulate as sim
from data.loader import CORE_SYSTEMS, DEFAULT_SYSTEMS, load_trajectories
from data.derivatives import time_derivatives
from utils import DATA_DIR, cli, parse_flags

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "data" / "simulate.py"
N_TRAJ, SEED = 150, 3
CONSERVATIVE = ("projectile", "spring", "orbit", "pendulum", "two-body")
# What each system must check per trajectory: the energy, and L where it is conserved.
CHECKED = {"projectile": ("E",), "spring": ("E",), "orbit": ("E", "L"), "pendulum": ("E",),
           "two-body": ("E", "L")}


def run_script(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=120)


def run_main(argv: list) -> int:
    """The CLI in-process: the same code path as the script, without interpreter start-up."""
    return cli(sim.main)([str(a) for a in argv])


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    """All six core systems, made once by the CLI (in-process: the script's start-up is
    tested in test_same_seed_gives_identical_bytes_and_another_seed_other_data; the
    benchmark's systems are tested in tests/test_benchmark_systems.py)."""
    out = tmp_path_factory.mktemp("sim")
    assert run_main(["--systems", *CORE_SYSTEMS, "--n-traj", N_TRAJ, "--seed", SEED,
                     "--out", out, "--quiet"]) == 0
    return out


def load(sim_dir: Path, name: str):
    return load_trajectories(sim_dir / f"{name}.npz", with_truth=True)


def invariant(name: str, key: str, states: np.ndarray) -> np.ndarray:
    system = sim.SYSTEMS[name]
    return system.invariant_fn(key)(states)


# ---------------------------------------------------------------------------- file layout

@pytest.mark.parametrize("name", CORE_SYSTEMS)
def test_file_layout(sim_dir, name):
    system = sim.SYSTEMS[name]
    with np.load(sim_dir / f"{name}.npz", allow_pickle=False) as npz:
        keys = set(npz.files)
    assert {"states", "t", "names", "canonical", "split", "meta"} <= keys
    assert {"truth_invariants", "truth_invariant_names", "truth_meta"} <= keys
    assert all(k in {"states", "t", "names", "canonical", "split", "meta"}
               or k.startswith("truth_") for k in keys)

    data = load(sim_dir, name)
    T, D = system.steps, len(system.names)
    assert data.states.shape == (N_TRAJ, T, D)
    assert data.t.shape == (N_TRAJ, T)
    np.testing.assert_array_equal(data.t[0], np.linspace(0.0, system.t_end, T))
    assert data.names == list(system.names) and data.canonical == list(system.canonical)
    counts = {s: int((data.split == s).sum()) for s in ("train", "val", "test")}
    assert counts == {"train": 120, "val": 15, "test": 15}
    meta = data.meta
    assert (meta["system"], meta["n_traj"], meta["steps"], meta["seed"], meta["noise"]) == \
        (name, N_TRAJ, T, SEED, 0.0)
    assert meta["dt"] == pytest.approx(system.t_end / (T - 1))
    assert meta["solver"]["method"] == "RK45" and meta["solver"]["drift_tol"] == 1e-8
    assert data.truth["invariants"].shape == (N_TRAJ, T, len(system.invariants))
    assert list(data.truth["invariant_names"]) == list(system.invariants)
    np.testing.assert_allclose(data.truth["invariants"][..., 0],
                               invariant(name, "E", data.states), rtol=0, atol=1e-12)

    assert load_trajectories(sim_dir / f"{name}.npz").truth == {}   # dropped by default


# ---------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("name", ["projectile", "spring", "damped-spring"])
def test_matches_closed_form(sim_dir, name):
    system = sim.SYSTEMS[name]
    data = load(sim_dir, name)
    exact = system.exact(data.states[:, 0], data.t[0], system.params)  # (N, T, D)
    scale = np.abs(exact).max(axis=(1, 2))
    error = np.abs(data.states - exact).max(axis=(1, 2)) / scale
    assert error.max() <= 1e-8, f"{name}: worst relative error {error.max():.2e}"


def test_initial_states_follow_documented_ranges(sim_dir):
    """The sampling ranges that data/README.md documents."""
    s0 = load(sim_dir, "projectile").states[:, 0]
    speed, angle = np.hypot(s0[:, 2], s0[:, 3]), np.degrees(np.arctan2(s0[:, 3], s0[:, 2]))
    assert speed.min() >= 5 and speed.max() <= 15 and angle.min() >= 20 and angle.max() <= 70
    assert np.abs(s0[:, 0]).max() <= 1 and s0[:, 1].min() >= 0 and s0[:, 1].max() <= 2

    s0 = load(sim_dir, "spring").states[:, 0]
    amplitude = np.hypot(s0[:, 0], s0[:, 1] / np.sqrt(5.0))
    assert amplitude.min() >= 0.5 - 1e-12 and amplitude.max() <= 2 + 1e-12

    s0 = load(sim_dir, "orbit").states[:, 0]
    E, L = invariant("orbit", "E", s0), invariant("orbit", "L", s0)
    a, e = -1 / (2 * E), np.sqrt(np.clip(1 + 2 * E * L**2, 0, None))
    assert a.min() >= 0.8 - 1e-9 and a.max() <= 1.5 + 1e-9 and e.max() <= 0.5 + 1e-9
    assert (L > 0).any() and (L < 0).any()             # both senses of rotation

    E = invariant("pendulum", "E", load(sim_dir, "pendulum").states)
    assert E[:, 0].min() >= 1 - 1e-9 and E[:, 0].max() <= 10 + 1e-9
    assert np.abs(load(sim_dir, "pendulum").states[..., 0]).max() < np.pi  # librations only

    s0 = load(sim_dir, "two-body").states[:, 0]
    separation = np.hypot(s0[:, 2] - s0[:, 0], s0[:, 3] - s0[:, 1])
    assert separation.min() >= 0.5 and separation.max() <= 1.5
    np.testing.assert_allclose(s0[:, 0:2] + s0[:, 2:4], 0, atol=1e-15)  # centre of mass at 0


# ---------------------------------------------------------------------------- conservation

@pytest.mark.parametrize("name", CONSERVATIVE)
def test_every_trajectory_conserves_its_invariants(sim_dir, name):
    assert sim.SYSTEMS[name].checked == CHECKED[name]
    data = load(sim_dir, name)
    for key in CHECKED[name]:
        values = invariant(name, key, data.states)                       # (N, T)
        drift = np.abs(values - values[:, :1]).max(axis=1) / np.abs(values[:, 0])
        assert drift.max() <= 1e-8, f"{name} {key}: worst drift {drift.max():.2e}"
    stored = dict(zip(data.truth["drift_names"], data.truth["drift"].T))
    assert set(stored) == set(CHECKED[name]) and max(v.max() for v in stored.values()) <= 1e-8


def test_two_body_total_momentum_is_conserved(sim_dir):
    states = load(sim_dir, "two-body").states
    momentum = np.stack([invariant("two-body", "Px", states),
                         invariant("two-body", "Py", states)], -1)       # (N, T, 2)
    assert np.abs(momentum - momentum[:, :1]).max() <= 1e-12
    assert np.abs(momentum).max() <= 1e-12                                # sampled at rest
    # while each body's own momentum turns with the orbit
    assert np.ptp(states[..., 4], axis=1).min() > 0.1


def test_orbit_runge_lenz_vector_is_conserved(sim_dir):
    states = load(sim_dir, "orbit").states
    for key in ("A_x", "A_y"):
        values = invariant("orbit", key, states)
        assert np.abs(values - values[:, :1]).max() <= 1e-7


def test_pendulum_energy_is_the_papers_hamiltonian(sim_dir):
    """Energy conserved per trajectory, and q^2 + p^2 (the paper notebooks' stand-in) is not."""
    states = load(sim_dir, "pendulum").states
    E = invariant("pendulum", "E", states)
    assert (np.abs(E - E[:, :1]).max(axis=1) / E[:, 0]).max() <= 1e-8
    proxy = (states**2).sum(-1)
    assert (np.ptp(proxy, axis=1) / proxy.mean(axis=1)).max() > 0.1


def test_damped_spring_energy_strictly_decays(sim_dir):
    data = load(sim_dir, "damped-spring")
    E = invariant("damped-spring", "E", data.states)                    # (N, T)
    assert (np.diff(E, axis=1) < 0).all()
    ratio = E[:, -1] / E[:, 0]                       # about exp(-c t_end) = exp(-1.8) = 0.17
    assert ratio.min() > 0.1 and ratio.max() < 0.25
    assert sim.SYSTEMS["damped-spring"].conserved == () and data.truth["drift"].shape == (N_TRAJ, 0)


def test_stacked_solve_matches_one_at_a_time():
    system = sim.SYSTEMS["orbit"]
    x0 = system.sample(np.random.default_rng(1), 6, system.params)
    t = np.linspace(0.0, system.t_end, system.steps)
    stacked, _ = sim.integrate(system, x0, t, stacked=True)
    looped, info = sim.integrate(system, x0, t, stacked=False)
    assert stacked.shape == looped.shape == (6, system.steps, 4) and not info["stacked"]
    assert np.abs(stacked - looped).max() <= 1e-7


def test_trajectories_over_the_tolerance_are_solved_again(monkeypatch):
    """With a 100x stricter tolerance some stacked orbits exceed it; each is re-solved alone
    and then meets it."""
    monkeypatch.setattr(sim, "DRIFT_TOL", 1e-10)
    system = sim.SYSTEMS["orbit"]
    x0 = system.sample(np.random.default_rng(SEED), 12, system.params)
    t = np.linspace(0.0, system.t_end, system.steps)
    states, info = sim.integrate(system, x0, t)
    assert info["resolved"] > 0
    worst = max(v.max() for v in sim.relative_drift(system, states).values())
    assert worst <= 1e-10


# ---------------------------------------------------------------------------- reproducibility

def test_same_seed_gives_identical_bytes_and_another_seed_other_data(tmp_path, monkeypatch):
    args = ["--systems", "projectile", "spring", "--n-traj", 40, "--quiet"]
    # the script itself, started outside the repository
    first = run_script(*args, "--seed", 5, "--out", tmp_path / "a", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # A day later, in another process: zip entries carry a time stamp, the bytes must not.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86400)
    assert run_main([*args, "--seed", 5, "--out", tmp_path / "b"]) == 0
    assert run_main([*args, "--seed", 6, "--out", tmp_path / "c"]) == 0
    for name in ("projectile", "spring"):
        a, b, c = ((tmp_path / d / f"{name}.npz").read_bytes() for d in "abc")
        assert a == b
        assert a != c
        sa = load_trajectories(tmp_path / "a" / f"{name}.npz").states
        sc = load_trajectories(tmp_path / "c" / f"{name}.npz").states
        assert np.abs(sa - sc).max() > 0.1


def test_noise_model_keeps_trajectories_and_split(sim_dir, tmp_path):
    noise = 0.05
    assert run_main(["--systems", "spring", "--n-traj", N_TRAJ, "--seed", SEED, "--noise", noise,
                     "--out", tmp_path, "--quiet"]) == 0
    noisy = load_trajectories(tmp_path / "spring-noise0.05.npz", with_truth=True)
    clean = load(sim_dir, "spring")
    np.testing.assert_array_equal(noisy.truth["clean_states"], clean.states)
    np.testing.assert_array_equal(noisy.split, clean.split)
    residual = (noisy.states - clean.states).reshape(-1, 2)
    spread = clean.states.reshape(-1, 2).std(axis=0)
    np.testing.assert_allclose(residual.std(axis=0) / spread, noise, rtol=0.05)
    assert np.abs(residual.mean(axis=0) / spread).max() < 0.01
    assert noisy.meta["noise"] == noise


# ---------------------------------------------------------------------------- CLI

def test_unknown_system_exits_2_with_one_line(tmp_path):
    proc = run_script("--systems", "spring", "warp-drive", "--n-traj", 10, "--out", tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "warp-drive" in line and all(name in line for name in sim.SYSTEMS)
    assert list(tmp_path.iterdir()) == []              # checked before anything is written


@pytest.mark.parametrize("argv, expected", [
    (["--n-traj", "1"], "--n-traj"),
    (["--n-traj", "abc"], "--n-traj"),
    (["--steps", "2"], "--steps"),
    (["--noise", "-0.1"], "--noise"),
    (["--noise", "nan"], "--noise"),
    (["--seed", "-1"], "--seed"),
    (["--no-such-flag"], "--no-such-flag"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    assert run_main(["--systems", "spring", "--out", tmp_path, *argv]) == 2
    assert expected in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "not-a-folder"
    target.write_text("keep me")
    assert run_main(["--systems", "spring", "--n-traj", 10, "--out", target]) == 2
    assert "not a folder" in one_error_line(capsys.readouterr().err)
    assert target.read_text() == "keep me"


def test_failed_write_leaves_the_old_file_intact(tmp_path, capsys, monkeypatch):
    assert run_main(["--systems", "spring", "--n-traj", 20, "--out", tmp_path, "--quiet"]) == 0
    path = tmp_path / "spring.npz"
    old = path.read_bytes()

    real_write = np.lib.format.write_array

    def write_then_fail(fh, array, *args, **kwargs):
        real_write(fh, array, *args, **kwargs)
        raise OSError(28, "No space left on device")   # after part of the archive is out

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    assert run_main(["--systems", "spring", "--n-traj", 20, "--seed", 9, "--out", tmp_path]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "spring.npz" in line and "No space left" in line
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spring.npz"]  # no temporary left
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None


def test_no_flags_makes_the_default_systems(tmp_path, monkeypatch, capsys):
    """`python data/simulate.py` with no flags: projectile, spring, orbit x 2000 into data/
    (redirected here to a temporary folder)."""
    args = parse_flags(sim.SimulateFlags, [], "")
    assert args.out is None and sim.DATA_DIR == DATA_DIR == ROOT / "data"   # None: data/
    assert (args.systems, args.n_traj, args.steps, args.noise, args.seed) == \
        (list(DEFAULT_SYSTEMS), 2000, None, 0.0, 0)
    monkeypatch.setattr(sim, "DATA_DIR", tmp_path)
    assert run_main([]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.npz" for s in DEFAULT_SYSTEMS)
    for name in DEFAULT_SYSTEMS:
        meta = json.loads(str(np.load(tmp_path / f"{name}.npz")["meta"]))
        assert meta["n_traj"] == 2000 and meta["seed"] == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(DEFAULT_SYSTEMS)


def test_benchmark_runs_end_to_end(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_simulate",
                                                  ROOT / "bench" / "bench_simulate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    args = ["--systems", "projectile", "orbit", "--n-traj", 12, "--loop-n", 3, "--repeat", 1,
            "--json", out]
    assert cli(bench.main)([str(a) for a in args]) == 0
    stdout = capsys.readouterr().out
    rows = json.loads(out.read_text())["systems"]
    assert [r["system"] for r in rows] == ["projectile", "orbit"]
    for r in rows:
        assert r["drift_stacked"] <= 1e-8 and r["drift_loop"] <= 1e-8
        assert r["loop_s"] == pytest.approx(r["loop_measured_s"] * 4)
        assert r["max_abs_diff"] <= 1e-7
    assert "extrapolated" in stdout and "speed-up" in stdout


# ---------------------------------------------------------------------------- derivatives

def _spring_on(t: np.ndarray, n: int = 20):
    """Exact spring states (n, T, 2) and derivatives on the time grid t ((T,) or (n, T))."""
    system = sim.SYSTEMS["spring"]
    x0 = system.sample(np.random.default_rng(0), n, system.params)
    grid = np.broadcast_to(t, (n, t.shape[-1]))
    states = np.stack([system.exact(x0[i:i + 1], grid[i], system.params)[0] for i in range(n)])
    return states, system.rhs(states, system.params)


def _derivative_error(t: np.ndarray) -> float:
    states, exact = _spring_on(t)
    estimate = time_derivatives(states, t)
    assert estimate.shape == states.shape
    return float(np.abs(estimate - exact).max() / np.abs(exact).max())


def test_time_derivatives_uniform_grid_is_fourth_order():
    coarse = _derivative_error(np.linspace(0.0, 6.0, 100))   # dt = 0.061, the spring's
    fine = _derivative_error(np.linspace(0.0, 6.0, 199))     # dt / 2
    assert coarse <= 5e-4
    assert coarse / fine > 10                                  # O(dt^4): 16x in theory


def test_time_derivatives_non_uniform_grid_is_second_order():
    rng = np.random.default_rng(2)
    steps = rng.uniform(0.03, 0.09, (20, 100))                 # (n, T) times, one grid each
    t = np.concatenate([np.zeros((20, 1)), np.cumsum(steps, axis=1)[:, :-1]], axis=1)
    halved = np.concatenate([t[:, :-1, None], (t[:, :-1, None] + t[:, 1:, None]) / 2],
                            axis=2).reshape(20, -1)
    coarse, fine = _derivative_error(t), _derivative_error(halved)
    assert coarse <= 2e-2
    assert coarse / fine > 3                                   # O(dt^2): 4x in theory
