"""Tests of the pixel pendulum (experiments/pixel_pendulum.py, models/pixel_hnn.py,
models/pixel_training.py): the renderer and the stored truth against closed forms, the loss
terms on hand-made latents, and the whole path (render -> train both models -> table row) on
a tiny configuration (~10-20 s)."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
import torch

from experiments.pixel_pendulum import (INERTIA, PixelSettings, centroid_angle, fit_chart,
                                        main, make_dataset, monotone_r2, pendulum_energy,
                                        quick_settings, render_frames)
from data.loader import load_trajectories
from experiments.pixel_latent import LAW_KINDS, discover_on_latents
from models.pixel_hnn import PixelConfig, PixelDynamicsAE
from models.pixel_training import canonical_loss, pair_inputs, transition_index
from utils import UsageError, cli, read_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


# ---------------------------------------------------------------------------- data

def test_rendered_rod_points_at_the_true_angle():
    theta = np.linspace(-np.pi / 6, np.pi / 6, 41)
    frames = render_frames(theta)
    assert frames.shape == (41, 28, 28) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1
    assert np.all(frames[:, :3, :3] == 1.0)                 # white background in the corners
    # The centroid of the darkness lies on the rod's axis: the angle to a few milliradians
    # (a pixel at the rod's tip subtends ~0.1 rad).
    np.testing.assert_allclose(centroid_angle(frames), theta, atol=5e-3)
    # Hanging straight down: dark pixels below the centre, none above the axle's row span.
    down = render_frames(np.array(0.0))
    assert (1 - down[16:]).sum() > 20 * (1 - down[:12]).sum()
    # Positive angles swing counter-clockwise from the bottom: to the right of the image.
    right = render_frames(np.array(0.4))
    assert (1 - right[:, 15:]).sum() > (1 - right[:, :13]).sum()


def test_truth_is_an_exactly_conserved_rod_pendulum():
    s = replace_quick()
    data = make_dataset(s, np.random.default_rng(0))
    n, f = s.n_traj, s.frames
    assert data["frames"].shape == (n, f, 28, 28)
    for key in ("truth_theta", "truth_omega", "truth_energy"):
        assert data[key].shape == (n, f)
    theta, omega, e = data["truth_theta"], data["truth_omega"], data["truth_energy"]
    assert np.abs(theta).max() <= np.pi / 6 + 1e-9            # the paper's max displacement
    assert np.ptp(e, axis=1).max() < 1e-8 * e.max()            # frictionless
    # gym's rod: theta'' = -(3 g / 2 l) sin theta = -15 sin theta, energy omega^2/6 + 5(1 - cos)
    np.testing.assert_allclose(e, omega ** 2 / 6 + 5 * (1 - np.cos(theta)), rtol=1e-12)
    dt = s.dt
    acc = (theta[:, 2:] - 2 * theta[:, 1:-1] + theta[:, :-2]) / dt ** 2
    np.testing.assert_allclose(acc, -15 * np.sin(theta[:, 1:-1]), atol=2e-2)
    # central differences lag the truth by omega'' dt^2 / 6 = 15 omega dt^2 / 6 (< 0.012)
    np.testing.assert_allclose((theta[:, 2:] - theta[:, :-2]) / (2 * dt), omega[:, 1:-1],
                               atol=2e-2)
    assert INERTIA == pytest.approx(1 / 3)
    # The frames show the stored angle.
    np.testing.assert_allclose(centroid_angle(data["frames"]), theta, atol=5e-3)


def replace_quick() -> PixelSettings:
    return quick_settings(PixelSettings())


def test_inputs_are_a_frame_and_its_successor():
    frames = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)   # N=2, F=5, P=3
    seq, t = transition_index(2, 5)
    assert len(seq) == 2 * 3
    x, x_next = pair_inputs(frames, seq, t)
    assert x.shape == x_next.shape == (6, 6)
    torch.testing.assert_close(x[4], torch.cat([frames[1, 1], frames[1, 2]]))
    torch.testing.assert_close(x_next[4], torch.cat([frames[1, 2], frames[1, 3]]))


# ---------------------------------------------------------------------------- model, metrics

def test_canonical_loss_is_zero_when_p_is_the_step_of_q():
    q = torch.tensor([[0.0], [0.3], [0.5]])
    z = torch.cat([q[:-1], q[1:] - q[:-1]], 1)                 # p_t = q_{t+1} - q_t
    z_next = torch.cat([q[1:], torch.zeros(2, 1)], 1)
    assert float(canonical_loss(z, z_next)) == 0.0
    assert float(canonical_loss(z, z_next + torch.tensor([[0.1, 0.0]]))) == pytest.approx(0.01)


def test_latent_hnn_step_keeps_its_h_and_the_baseline_has_none():
    model = PixelDynamicsAE(PixelConfig(hidden_dim=16, dyn_hidden_dim=16, dynamics="hnn"),
                            generator=torch.Generator().manual_seed(0)).double().eval()
    z = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h0 = model.hamiltonian(z)
    z1 = model.step(z, 0.05, create_graph=False)
    # RK4's local error is O(h^5): H moves far less than the state does.
    assert (model.hamiltonian(z1) - h0).abs().max() < 1e-6 * (z1 - z).abs().max()
    baseline = PixelDynamicsAE(PixelConfig(hidden_dim=16, dyn_hidden_dim=16,
                                           dynamics="baseline"))
    with pytest.raises(TypeError):
        baseline.hamiltonian(z.float())
    assert model.encode(torch.zeros(3, 2 * 28 * 28, dtype=torch.float64)).shape == (3, 2)


def test_chart_and_monotone_r2_recover_smooth_monotone_maps():
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (2000, 2))
    y = np.stack([u[:, 0] + 0.3 * u[:, 1] ** 2, np.sin(u[:, 1])], 1)
    chart = fit_chart(u[:1500], y[:1500], degree=5)
    np.testing.assert_allclose(chart(u[1500:]), y[1500:], atol=1e-3)
    h = rng.uniform(0, 2, 3000)
    e = np.exp(-h)                                             # decreasing: the map may be
    assert monotone_r2(h[:2000], e[:2000], h[2000:], e[2000:]) > 0.999   # either way
    noise = rng.uniform(0, 1, 3000)                             # unrelated to h
    assert monotone_r2(h[:2000], noise[:2000], h[2000:], noise[2000:]) < 0.05
    assert pendulum_energy(np.array(np.pi / 6), np.array(0.0)) == pytest.approx(
        5 * (1 - math.cos(np.pi / 6)))


def _fit_linear_turn(loss_step: str, phi: float = 0.3, h: float = 0.2, steps: int = 400):
    """A baseline's latent MLP fitted, by the pixel loss's one-frame step, to pairs (z, R z)
    of a turn R by phi per frame; returns the model and the mean divergence of its field."""
    torch.manual_seed(0)
    model = PixelDynamicsAE(PixelConfig(hidden_dim=8, dyn_hidden_dim=32, dynamics="baseline",
                                        frame_time=h, loss_step=loss_step),
                            generator=torch.Generator().manual_seed(0)).double()
    c, s = math.cos(phi), math.sin(phi)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    z = 2 * torch.rand(512, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) - 1
    opt = torch.optim.Adam(model.dynamics.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        (model.loss_step(z, h) - z @ rot.T).pow(2).mean().backward()
        opt.step()
    zz = z.clone().requires_grad_(True)
    f = model.time_derivative(zz, create_graph=True)
    div = sum(torch.autograd.grad(f[:, i].sum(), zz, retain_graph=True)[0][:, i]
              for i in range(2))
    return model, float(div.mean())


def test_an_euler_step_loss_teaches_a_contracting_field_and_an_rk4_step_does_not():
    # One Euler step fits f to the secant (R - 1) z / h, whose divergence is
    # 2 (cos phi - 1) / h: the paper's loss makes a free field contract (and its rollouts lose
    # energy); one RK4 step fits the generator of the turn, divergence-free.
    phi, h = 0.3, 0.2
    euler, div_euler = _fit_linear_turn("euler", phi, h)
    _, div_rk4 = _fit_linear_turn("rk4", phi, h)
    expected = 2 * (math.cos(phi) - 1) / h                          # -0.447
    assert div_euler == pytest.approx(expected, rel=0.15)
    assert abs(div_rk4) < 0.15 * abs(expected)
    z = torch.randn(4, 2, dtype=torch.float64)
    assert torch.allclose(euler.loss_step(z, h), z + h * euler.time_derivative(z))
    with pytest.raises(ValueError):
        PixelDynamicsAE(PixelConfig(hidden_dim=8, loss_step="midpoint")).loss_step(z.float(), h)


# ---------------------------------------------------------------------------- end to end

ROW_KEYS = {"task", "model", "train_loss", "test_loss", "energy_mse", "energy_mse_std",
            "reversibility", "wall_time", "paper_energy_mse"}


def test_quick_experiment_renders_trains_all_four_and_writes_the_rows(tmp_path):
    result = main(["--quick", "--seeds", "0", "--results-dir", str(tmp_path), "--plots-dir",
                   str(tmp_path), "--quiet", "--device", "cpu", "--save-data"])
    written = json.loads((tmp_path / "hnn_pixel.json").read_text())
    assert written["hnn_table"] == json.loads(json.dumps(result["hnn_table"]))
    rows = written["hnn_table"]
    assert [(r["task"], r["model"]) for r in rows] == [
        ("pixel-pendulum", m) for m in ("baseline", "hnn", "baseline+rk4", "hnn+rk4")]
    assert all(set(r) == ROW_KEYS for r in rows)
    assert all(math.isfinite(r[k]) for r in rows for k in ROW_KEYS - {"task", "model"})
    paper = {r["model"]: r["paper_energy_mse"] for r in rows}
    assert paper == {"baseline": 9.3e-3, "hnn": 1.5e-4, "baseline+rk4": 9.3e-3,
                     "hnn+rk4": 1.5e-4}
    runs = {r["model"]: r for r in written["runs"]}
    # The HNNs conserve their own latent H along their own rollouts (up to RK45's tolerance),
    # whatever they learned in 60 steps; their fields keep phase-space area, a baseline's
    # does not; whichever step the loss takes.
    for suffix in ("", "+rk4"):
        hnn, base = runs["hnn" + suffix], runs["baseline" + suffix]
        assert hnn["own_h_drift"] < 1e-5
        assert hnn["latent_divergence"] < 1e-8
        assert base["latent_divergence"] > 1e3 * max(hnn["latent_divergence"], 1e-12)
        assert base["own_h_drift"] is None and base["h_energy_r2_monotone"] is None
        assert -1 <= hnn["h_energy_r2_monotone"] <= 1
        assert hnn["rollout_ok"] and base["rollout_ok"]
    assert set(written["baseline_over_hnn_by_horizon"]) == {"euler", "rk4"}
    assert written["baseline_over_hnn_by_horizon"]["euler"]["span"] == pytest.approx(
        runs["baseline"]["energy_mse"] / runs["hnn"]["energy_mse"])
    # All learnt: 60 steps take the total loss well below the untrained one (step 0).
    for run in runs.values():
        losses = run["history"]["train_loss"]
        assert run["history"]["step"][0] == 0 and losses[-1] == pytest.approx(run["train_loss"])
        assert losses[-1] < 0.5 * losses[0]
    assert written["protocol"]["notes"] and written["protocol"]["settings"]["n_traj"] == 12
    assert (tmp_path / "hnn_pixel_pendulum.png").stat().st_size > 10_000
    with np.load(tmp_path / "pixel_pendulum_s0.npz") as saved:
        assert saved["frames"].shape == (12, 30, 28, 28)
        assert {"truth_theta", "truth_omega", "truth_energy"} <= set(saved.files)
        frames = torch.as_tensor(saved["frames"][:1, :2].reshape(1, -1))
    # The checkpoint alone rebuilds the model (weights_only load: tensors and plain values).
    ckpt = read_checkpoint(tmp_path / "pixel_pendulum" / "hnn__s0.pt")
    model = PixelDynamicsAE(PixelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model_state"])
    assert model.cfg.dynamics == "hnn" and model.cfg.hidden_dim == 48
    assert model.cfg.loss_step == "euler"
    assert torch.isfinite(model.hamiltonian(model.encode(frames))).all()
    # Each model's latent trajectories went through train.py + discover.py as a user file
    # that hides the frames' truth from them.
    for run in runs.values():
        found = run["latent_discovery"]
        latent = load_trajectories(found["file"])
        assert latent.names == ["z0", "z1"] and latent.states.shape == (12, 29, 2)
        assert not latent.truth
        assert load_trajectories(found["file"], with_truth=True).truth["energy"].shape == (12, 29)
        assert all(law["kind"] in LAW_KINDS and law["r2_true_energy"] <= 1
                   for law in found["laws"])


def test_discovery_on_a_perfect_encoders_latent_finds_the_pendulum_energy(tmp_path):
    # An encoder whose latent is (theta, omega) itself: the pipeline, blind to the names and
    # the truth, must find the energy's structure: omega^2 and cos(theta) in the ratio
    # (I / 2) / (m g l / 2) = 1 / 30 of gym's rod.
    settings = replace(quick_settings(PixelSettings()), n_traj=30, n_train=24, frames=40)
    data = make_dataset(settings, np.random.default_rng(0))
    truth = {k: data[f"truth_{k}"][:, :-1] for k in ("theta", "omega", "energy")}
    z = np.stack([truth["theta"], truth["omega"]], -1)
    found = discover_on_latents(z, data["t"][:-1], data["n_train"], truth, tmp_path)
    assert found["n_conserved"] == 1
    law = next(law for law in found["laws"] if law["kind"] != "approximate")
    terms = sp.Add.make_args(sp.expand(sp.sympify(law["expression"])))
    coef = {str(sp.Mul(*[f for f in t.args if not f.is_Number])): float(t.as_coeff_Mul()[0])
            for t in terms}
    assert set(coef) == {"z1**2", "cos(z0)"}
    assert coef["z1**2"] / coef["cos(z0)"] == pytest.approx(-1 / 30, rel=1e-3)
    assert law["r2_true_energy"] > 0.95     # isotonic map fitted on 24 energy levels only


@pytest.mark.parametrize("argv", [["--models", "gru"], ["--steps", "0"], ["--seeds", "-1"],
                                  ["--device", "tpu"], ["--n-traj", "2"], ["--no-such-flag"]])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv):
    out = tmp_path / "out"
    rc = cli(main)(argv + ["--quick", "--results-dir", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and err.count("\n") == 1
    assert not out.exists()
    with pytest.raises(UsageError):
        main(argv + ["--quick", "--results-dir", str(out), "--quiet"])


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert all(f in out for f in ("--quick", "--seeds", "--results-dir", "--plots-dir",
                                  "--quiet", "--device", "--frame-time"))
