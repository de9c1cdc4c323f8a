"""Tests of the dissipative HNN (models/hnn.py) and experiments/hnn_real.py (a few seconds each;
the end-to-end run 10-25 s)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from experiments.hnn_real import (RECORDING, TASKS, finite_differences, frame_counts, main,
                                  read_recording, reference_energy, split_recording)
from experiments.hnn_table import rollout
from models.hnn import DissipativeHNN, HNNConfig, build_hamiltonian_model
from models.hnn_training import fit
from utils import UsageError, cli


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


class Scalar(nn.Module):
    """A closed-form scalar field standing in for an MLP: x (B, D) -> (B, 1)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x).unsqueeze(-1)


def random_dhnn(seed: int = 0) -> DissipativeHNN:
    model = build_hamiltonian_model("dissipative-hnn", HNNConfig(input_dim=2, hidden_dim=16),
                                    [0], [1], generator=torch.Generator().manual_seed(seed))
    return model.double().eval()


# ---------------------------------------------------------------------------- the model

def test_fields_are_the_symplectic_gradient_of_h_plus_the_gradient_of_d():
    # H = p^2/2 + 2 (1 - cos q), D = -c p^2 / 2 + q p / 10:
    # dq/dt = dH/dp + dD/dq = p + p/10; dp/dt = -dH/dq + dD/dp = -2 sin q - c p + q/10.
    c = 0.3
    model = random_dhnn()
    model.hnn.net = Scalar(lambda x: x[:, 1] ** 2 / 2 + 2 * (1 - torch.cos(x[:, 0])))
    model.d_net = Scalar(lambda x: -c * x[:, 1] ** 2 / 2 + x[:, 0] * x[:, 1] / 10)
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-1.0, 0.0]], dtype=torch.float64)
    q, p = x[:, 0], x[:, 1]
    expected = torch.stack([p + p / 10, -2 * torch.sin(q) - c * p + q / 10], dim=1)
    torch.testing.assert_close(model.time_derivative(x), expected, rtol=1e-12, atol=1e-12)
    # dH/dt = grad H . grad D = 2 sin q * p / 10 + p * (-c p + q / 10)
    rate = 2 * torch.sin(q) * p / 10 + p * (-c * p + q / 10)
    torch.testing.assert_close(model.energy_rate(x), rate, rtol=1e-12, atol=1e-12)


def test_conservative_part_conserves_its_own_h_and_the_full_model_does_not():
    model = random_dhnn(1)
    x0 = np.array([[0.5, -0.3], [-1.0, 0.8]])
    t = np.linspace(0.0, 5.0, 101)
    h = lambda s: model(torch.from_numpy(s.reshape(-1, 2))).detach().numpy().reshape(s.shape[:2])
    off, info = rollout(model.hnn, x0, t)        # D switched off: J grad H only
    on, info_on = rollout(model, x0, t)
    assert info["success"] and info_on["success"]
    h_off, h_on = h(off), h(on)
    scale = np.abs(h_off[:, :1]).max()
    assert np.abs(h_off - h_off[:, :1]).max() < 1e-7 * scale
    assert np.abs(h_on - h_on[:, :1]).max() > 1e-3 * scale      # D really acts


def test_energy_rate_is_the_change_of_h_along_the_models_own_flow():
    # Where energy_rate < 0 (the model says it loses energy), H falls along its flow, and by
    # that much: central differences of H on a dense rollout against grad H . grad D.
    model = random_dhnn(2)
    # A learned H and a D whose gradient turns (random MLPs at initialisation are nearly
    # linear over this range, so grad H . grad D would keep one sign).
    model.d_net = Scalar(lambda x: 0.5 * torch.sin(2 * x[:, 0] + x[:, 1]))
    t = np.linspace(0.0, 2.0, 2001)
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    x0 = 1.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    traj, info = rollout(model, x0, t)
    assert info["success"]
    flat = torch.from_numpy(traj.reshape(-1, 2))
    h = model(flat).detach().numpy().reshape(traj.shape[:2])
    dh = np.gradient(h, t, axis=1)[:, 1:-1]
    rate = model.energy_rate(flat).detach().numpy().reshape(traj.shape[:2])[:, 1:-1]
    np.testing.assert_allclose(dh, rate, atol=1e-5 * np.abs(rate).max())
    losing = rate < -0.01 * np.abs(rate).max()
    gaining = rate > 0.01 * np.abs(rate).max()
    assert losing.any() and gaining.any()       # this D both drains and pumps
    assert (dh[losing] < 0).all() and (dh[gaining] > 0).all()


def test_viscous_friction_loses_energy_everywhere_at_the_closed_form_rate():
    # H = (q^2 + p^2) / 2, D = -c p^2 / 2: a damped oscillator; dH/dt = -c p^2 <= 0 at every
    # state, and for c = 0 the energy would stay put.
    c = 0.2
    model = random_dhnn()
    model.hnn.net = Scalar(lambda x: (x ** 2).sum(-1) / 2)
    model.d_net = Scalar(lambda x: -c * x[:, 1] ** 2 / 2)
    t = np.linspace(0.0, 10.0, 201)
    traj, _ = rollout(model, np.array([[1.0, 0.0]]), t)
    h = model(torch.from_numpy(traj[0])).detach().numpy()
    assert (np.diff(h) <= 1e-12).all()
    rate = model.energy_rate(torch.from_numpy(traj[0])).detach().numpy()
    np.testing.assert_allclose(rate, -c * traj[0, :, 1] ** 2, rtol=1e-12, atol=1e-14)
    # Underdamped oscillator, x(t) = e^{-ct/2} (cos wt + c/(2w) sin wt), w^2 = 1 - c^2/4.
    w = math.sqrt(1 - c ** 2 / 4)
    q = np.exp(-c * t / 2) * (np.cos(w * t) + c / (2 * w) * np.sin(w * t))
    np.testing.assert_allclose(traj[0, :, 0], q, atol=1e-7)


def test_a_trained_dissipative_hnn_follows_a_decaying_energy():
    # Damped oscillator q' = p, p' = -q - c p (exact derivatives): the trained D-HNN's rollout
    # keeps the share of the energy that the true motion keeps, within a few per cent.
    c = 0.2
    g = torch.Generator().manual_seed(0)
    radius = 0.2 + 0.8 * torch.rand(256, generator=g, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(256, generator=g, dtype=torch.float64)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1).float()
    dxdt = torch.stack([x[:, 1], -x[:, 0] - c * x[:, 1]], 1)
    model = build_hamiltonian_model("dissipative-hnn", HNNConfig(input_dim=2, hidden_dim=32),
                                    [0], [1], generator=torch.Generator().manual_seed(1))
    hist = fit(model, x, dxdt, steps=400, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert hist["final_train_loss"] < 1e-3
    t = np.linspace(0.0, 6.0, 61)
    traj, _ = rollout(model, np.array([[0.8, 0.0]]), t)
    energy = (traj[0] ** 2).sum(-1) / 2
    w = math.sqrt(1 - c ** 2 / 4)
    q = np.exp(-c * t / 2) * (np.cos(w * t) + c / (2 * w) * np.sin(w * t))
    p = np.gradient(q, t)
    true_ratio = (q[-1] ** 2 + p[-1] ** 2) / (q[0] ** 2 + p[0] ** 2)
    assert abs(energy[-1] / energy[0] - true_ratio) < 0.05
    assert energy[-1] / energy[0] < 0.5


# ---------------------------------------------------------------------------- the protocol

def test_finite_differences_use_the_recorded_times():
    t = np.array([0.0, 1 / 6, 2 / 6, 4 / 6, 5 / 6, 7 / 6, 8 / 6])   # two dropped frames
    x = np.stack([t ** 2, 3 * t], axis=1)
    xs, ts, d = finite_differences(x, t, "central")
    np.testing.assert_allclose(d, np.stack([2 * t, np.full_like(t, 3.0)], 1), atol=1e-12)
    xs, ts, d = finite_differences(x, t, "forward")
    assert len(xs) == len(ts) == len(d) == len(t) - 1
    np.testing.assert_allclose(d[:, 0], t[:-1] + t[1:], atol=1e-12)   # exact at the midpoint


def test_shipped_recording_split_and_reference_energy():
    t, x, names = read_recording(RECORDING)
    assert names == ["theta", "omega"] and x.shape == (556, 2)
    split = split_recording(t, x, 0.8, "central")
    assert len(split["train"]["t"]) == 444 and len(split["test"]["t"]) == 112
    assert split["train"]["t"].max() < split["test"]["t"].min()       # contiguous, later held out
    frames = frame_counts(t)      # steps of 1/6, eight of 1/3 and two of 1/2
    assert frames["gaps"] == 10 and frames["dropped_frames"] == 12
    ref = reference_energy(t, x)
    # The pendulum law with its decay: k = 2 g/l in the paper's scale, positive friction.
    assert 2.3 < ref["k"] < 2.6 and ref["r2_domega"] > 0.99
    assert ref["c"] > 0 and ref["energy_ratio"] < 0.5
    # Forward differences lag half a step: a spurious friction of about dt a b / 2.
    spurious = frames["median_step"] * ref["a"] * ref["b"] / 2
    assert ref["c_forward"] > 5 * ref["c"]
    assert abs(ref["c_forward"] - ref["c"] - spurious) < 0.2 * spurious


def test_quick_experiment_writes_the_table_rows(tmp_path):
    result = main(["--quick", "--seeds", "0", "--results-dir", str(tmp_path), "--plots-dir",
                   str(tmp_path), "--quiet"])
    written = json.loads((tmp_path / "hnn_real.json").read_text())
    assert written["hnn_table"] == json.loads(json.dumps(result["hnn_table"]))
    rows = written["hnn_table"]
    keys = {"task", "model", "train_loss", "test_loss", "energy_mse", "energy_mse_std",
            "reversibility", "wall_time", "paper_energy_mse"}
    assert all(set(r) == keys for r in rows)
    assert {(r["task"], r["model"]) for r in rows} == {
        (task, m) for task in TASKS.values() for m in ("baseline", "hnn", "dissipative-hnn")}
    paper = {(r["task"], r["model"]): r["paper_energy_mse"] for r in rows}
    assert paper[("real-pendulum", "baseline")] == 3.86e-1
    assert paper[("real-pendulum", "hnn")] == 1.45e-2
    assert paper[("real-pendulum", "dissipative-hnn")] is None
    assert all(v is None for (task, _), v in paper.items() if task != "real-pendulum")
    assert all(math.isfinite(r[k]) for r in rows for k in keys - {"task", "model",
                                                                  "paper_energy_mse"})
    runs = written["runs"]
    # The HNN's own H is conserved along its own rollout even after 40 steps of training.
    assert all(r["own_h_rel_drift"] < 1e-6 for r in runs if r["model"] == "hnn")
    assert written["protocol"]["notes"] and written["reference_energy"]["k"] > 0
    assert (tmp_path / "hnn_real_pendulum.png").stat().st_size > 10_000


@pytest.mark.parametrize("argv", [["--recording", "no/such.csv"], ["--models", "gru"],
                                  ["--derivatives", "backward"], ["--train-fraction", "1.5"],
                                  ["--recording", "{two}"]])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv):
    two = tmp_path / "two.csv"
    two.write_text("trajectory,t,q:q,p:p\n" + "".join(
        f"{i},{j / 10},{j},{-j}\n" for i in (0, 1) for j in range(30)))
    argv = [a.replace("{two}", str(two)) for a in argv]
    rc = cli(main)(argv + ["--quick", "--results-dir", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError):
        main(argv + ["--quick", "--results-dir", str(tmp_path / "out"), "--quiet"])
