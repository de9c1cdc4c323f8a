"""Tests of models/hnn.py and experiments/hnn_table.py (fast: a few seconds each)."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from data.simulate import SYSTEMS
from models.hnn import HNN, Baseline, HNNConfig, build_hamiltonian_model
from experiments.hnn_table import (MODELS, TASKS, evaluate_model, main, make_dataset,
                                   quick_task, rollout, run_one, sample_two_body_paper)
from models.hnn_training import (fit, fused_supported, hnn_loss_and_grads, mse,
                                  pointwise_sq_error)


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


class ClosedFormH(nn.Module):
    """A hand-written H(x) standing in for the HNN's MLP: x (B, D) -> (B, 1)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x).unsqueeze(-1)


def hnn_with_h(fn, dim, q_idx, p_idx, dtype=torch.float64) -> HNN:
    model = HNN(HNNConfig(input_dim=dim, hidden_dim=4), q_idx, p_idx).to(dtype)
    model.net = ClosedFormH(fn)
    return model


# ---------------------------------------------------------------------------- models

def test_symplectic_gradient_matches_hand_computed_1d():
    # H = q^2 p + sin q + p^3 / 3: dH/dq = 2qp + cos q, dH/dp = q^2 + p^2.
    model = hnn_with_h(lambda x: x[:, 0] ** 2 * x[:, 1] + torch.sin(x[:, 0]) + x[:, 1] ** 3 / 3,
                       2, [0], [1])
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-1.0, 0.0]], dtype=torch.float64)
    q, p = x[:, 0], x[:, 1]
    expected = torch.stack([q ** 2 + p ** 2, -(2 * q * p + torch.cos(q))], dim=1)
    torch.testing.assert_close(model.time_derivative(x), expected, rtol=1e-12, atol=1e-12)


def test_symplectic_gradient_respects_an_arbitrary_canonical_layout():
    # Layout (p1, q0, q1, p0): q_idx = [1, 2], p_idx = [3, 0].
    # H = q0 * p0^2 + cos(q1) * p1 + q0 * q1.
    def h(x):
        p1, q0, q1, p0 = x.unbind(-1)
        return q0 * p0 ** 2 + torch.cos(q1) * p1 + q0 * q1

    model = hnn_with_h(h, 4, [1, 2], [3, 0])
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    p1, q0, q1, p0 = x.unbind(-1)
    dH_dq0, dH_dq1 = p0 ** 2 + q1, -torch.sin(q1) * p1 + q0
    dH_dp0, dH_dp1 = 2 * q0 * p0, torch.cos(q1)
    expected = torch.stack([-dH_dq1, dH_dp0, dH_dp1, -dH_dq0], dim=1)  # (dp1, dq0, dq1, dp0)
    torch.testing.assert_close(model.time_derivative(x), expected, rtol=1e-12, atol=1e-12)


def test_mlp_symplectic_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    model = build_hamiltonian_model("hnn", HNNConfig(input_dim=4, hidden_dim=32), [0, 1], [2, 3],
                                    generator=g).double().eval()
    x = torch.randn(6, 4, dtype=torch.float64, generator=g)
    eps = 1e-6
    grad = torch.stack([(model(x + eps * e) - model(x - eps * e)) / (2 * eps)
                        for e in torch.eye(4, dtype=torch.float64)], dim=1)   # (B, D)
    expected = torch.cat([grad[:, 2:], -grad[:, :2]], dim=1)
    torch.testing.assert_close(model.time_derivative(x), expected, rtol=1e-6, atol=1e-8)


def test_create_graph_follows_training_mode():
    model = build_hamiltonian_model("hnn", HNNConfig(input_dim=2, hidden_dim=8))
    x = torch.randn(3, 2)
    model.train()
    assert model.time_derivative(x).requires_grad
    model.eval()
    assert not model.time_derivative(x).requires_grad
    assert model(x).shape == (3,)


@pytest.mark.parametrize("dim", [2, 8])
def test_baseline_time_derivative_shape(dim):
    model = build_hamiltonian_model("baseline", HNNConfig(input_dim=dim, hidden_dim=16))
    assert isinstance(model, Baseline)
    assert model.time_derivative(torch.randn(7, dim)).shape == (7, dim)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        build_hamiltonian_model("gru", HNNConfig(input_dim=2))
    with pytest.raises(ValueError):
        HNN(HNNConfig(input_dim=4), [0, 1], [2, 2])
    with pytest.raises(ValueError):
        HNN(HNNConfig(input_dim=4, activation="cosine"), [0, 1], [2, 3])


def test_same_generator_same_weights():
    make = lambda: build_hamiltonian_model("hnn", HNNConfig(input_dim=8),
                                           generator=torch.Generator().manual_seed(7))
    a, b = make(), make()
    assert all(torch.equal(u, v) for u, v in zip(a.parameters(), b.parameters()))


# ---------------------------------------------------------------------------- conservation

@pytest.mark.parametrize("dim", [2, 8])
def test_hnn_conserves_its_own_h_along_rk45(dim):
    g = torch.Generator().manual_seed(dim)
    half = dim // 2
    model = build_hamiltonian_model("hnn", HNNConfig(input_dim=dim, hidden_dim=64),
                                    list(range(half)), list(range(half, dim)), generator=g)
    x0 = torch.randn(6, dim, dtype=torch.float64, generator=g).numpy()
    states, info = rollout(model, x0, np.linspace(0.0, 3.0, 50))
    assert info["success"]
    with torch.no_grad():
        h = model.double()(torch.from_numpy(states.reshape(-1, dim))).numpy().reshape(6, 50)
    scale = np.abs(h[:, 0]).mean()
    assert scale > 1e-2
    assert np.max(np.abs(h - h[:, :1])) / scale < 1e-6
    # The test has teeth: following grad H instead of the symplectic gradient changes H.
    model.J = torch.eye(dim, dtype=torch.float64)
    states, _ = rollout(model, x0, np.linspace(0.0, 3.0, 50))
    with torch.no_grad():
        h = model(torch.from_numpy(states.reshape(-1, dim))).numpy().reshape(6, 50)
    assert np.max(np.abs(h - h[:, :1])) / scale > 1e-2


def test_energy_metric_is_zero_for_the_true_hamiltonian():
    # An HNN whose H is the pendulum's true Hamiltonian: its rollouts are the truth, so the
    # energy MSE, state MSE and reversibility error are integrator-level.
    task = quick_task(TASKS["pendulum"])
    data = make_dataset(task, np.random.default_rng(0))
    p = data["params"]
    h = lambda x: (2 * p["m"] * p["g"] * p["l"] * (1 - torch.cos(x[:, 0]))
                   + p["l"] ** 2 * x[:, 1] ** 2 / (2 * p["m"]))
    metrics, _ = evaluate_model(hnn_with_h(h, 2, [0], [1], torch.float32), task, data)
    assert metrics["energy_mse"] < 1e-14
    assert metrics["energy_mse_train_span"] < 1e-12
    assert metrics["state_mse"] < 1e-12
    assert metrics["reversibility"] < 1e-6
    assert metrics["test_loss"] > 0  # noisy inputs: the true field still has a test loss


def test_two_body_sampler_follows_the_paper():
    p = TASKS["two-body"].params
    x = sample_two_body_paper(np.random.default_rng(0), 500, p)
    np.testing.assert_allclose(x[:, 4:6] + x[:, 6:8], 0.0, atol=1e-15)      # total momentum
    np.testing.assert_allclose(x[:, 0:2] + x[:, 2:4], 0.0, atol=1e-15)      # centre of mass
    assert x[:, 0:2].min() >= 0.5 and x[:, 0:2].max() <= 1.5
    sep = np.linalg.norm(x[:, 2:4] - x[:, 0:2], axis=1)
    # Circular speed of each body (m1 = m2 = G = 1): v^2 = 1 / (2 sep), before the noise.
    speed = np.linalg.norm(x[:, 4:6], axis=1) * np.sqrt(2 * sep)
    assert abs(np.mean(speed) - 1) < 0.01 and 0.04 < np.std(speed) < 0.06
    # Velocity perpendicular to the separation: the orbit starts at a circular-orbit phase.
    np.testing.assert_allclose(np.sum(x[:, 4:6] * (x[:, 2:4] - x[:, 0:2]), axis=1), 0, atol=1e-12)
    energy = SYSTEMS["two-body"].invariant_fn("E", p)(x)
    assert np.all(energy < 0)


# ---------------------------------------------------------------------------- training

def _spring_problem(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    dxdt = np.stack([2 * x[:, 1], -2 * x[:, 0]], axis=1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(dxdt, dtype=torch.float32)


@pytest.mark.parametrize("n_layers,q_idx,p_idx", [(2, [0], [1]), (3, [1, 3], [2, 0]),
                                                   (4, [0, 1, 2, 3], [4, 5, 6, 7])])
def test_fused_gradients_equal_autograd(n_layers, q_idx, p_idx):
    dim = len(q_idx) * 2
    g = torch.Generator().manual_seed(n_layers)
    model = HNN(HNNConfig(input_dim=dim, hidden_dim=24, n_layers=n_layers), q_idx, p_idx,
                generator=g).double()
    assert fused_supported(model)
    x = torch.randn(17, dim, dtype=torch.float64, generator=g)
    y = torch.randn(17, dim, dtype=torch.float64, generator=g)
    loss = hnn_loss_and_grads(model, x, y)
    fused = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    reference = mse(model.time_derivative(x, create_graph=True), y)
    reference.backward()
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-12, atol=0)
    for a, p in zip(fused, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-10, atol=1e-13)
    assert not fused_supported(build_hamiltonian_model("baseline", HNNConfig(input_dim=2)))
    assert not fused_supported(HNN(HNNConfig(input_dim=2, activation="relu"), [0], [1]))


def test_fused_and_autograd_engines_train_alike():
    x, y = _spring_problem()
    runs = {}
    for engine in ("fused", "autograd"):
        model = build_hamiltonian_model("hnn", HNNConfig(input_dim=2, hidden_dim=32), [0], [1],
                                        generator=torch.Generator().manual_seed(0)).double()
        runs[engine] = fit(model, x.double(), y.double(), steps=60, batch_size=32,
                           generator=torch.Generator().manual_seed(1), log_every=20,
                           engine=engine)
    assert runs["fused"]["engine"] == "fused" and runs["autograd"]["engine"] == "autograd"
    np.testing.assert_allclose(runs["fused"]["train_loss"], runs["autograd"]["train_loss"],
                               rtol=1e-8)


@pytest.mark.parametrize("kind,batch", [("hnn", None), ("baseline", None), ("hnn", 32)])
def test_fit_lowers_the_loss(kind, batch):
    x, y = _spring_problem()
    model = build_hamiltonian_model(kind, HNNConfig(input_dim=2, hidden_dim=32), [0], [1],
                                    generator=torch.Generator().manual_seed(0))
    hist = fit(model, x, y, steps=150, batch_size=batch, lr=3e-3,
               generator=torch.Generator().manual_seed(0), x_test=x[:32], dxdt_test=y[:32],
               log_every=50)
    assert hist["step"] == [0, 50, 100, 150]
    assert hist["final_train_loss"] < 0.1 * hist["train_loss"][0]
    assert math.isfinite(hist["final_test_loss"]) and hist["seconds"] > 0
    assert not model.training


def test_fit_cosine_schedule_and_bad_options():
    x, y = _spring_problem()
    model = build_hamiltonian_model("hnn", HNNConfig(input_dim=2, hidden_dim=32), [0], [1],
                                    generator=torch.Generator().manual_seed(0))
    hist = fit(model, x, y, steps=100, lr=3e-3, generator=torch.Generator().manual_seed(0),
               log_every=50, lr_schedule="cosine")
    assert hist["final_train_loss"] < 0.1 * hist["train_loss"][0]
    with pytest.raises(ValueError):
        fit(model, x, y, steps=1, generator=torch.Generator(), lr_schedule="step")
    with pytest.raises(ValueError):
        fit(build_hamiltonian_model("baseline", HNNConfig(input_dim=2)), x, y, steps=1,
            generator=torch.Generator(), engine="fused")


def test_fit_is_reproducible():
    x, y = _spring_problem()

    def once():
        model = build_hamiltonian_model("hnn", HNNConfig(input_dim=2, hidden_dim=16), [0], [1],
                                        generator=torch.Generator().manual_seed(3))
        return fit(model, x, y, steps=40, batch_size=16, generator=torch.Generator().manual_seed(4),
                   log_every=0)["final_train_loss"]

    assert once() == once()


def test_weight_average_leaves_training_alone():
    # The average rides along: the last weights are those of a run without it, and the
    # averaged weights are a different (smoother) point that fits the data as well.
    x, y = _spring_problem()

    def once(average):
        model = build_hamiltonian_model("hnn", HNNConfig(input_dim=2, hidden_dim=16), [0], [1],
                                        generator=torch.Generator().manual_seed(3))
        hist = fit(model, x, y, steps=300, batch_size=16, lr=1e-2,
                   generator=torch.Generator().manual_seed(4), log_every=0, average=average)
        return model, hist

    plain, plain_hist = once(0.0)
    model, hist = once(0.99)
    assert "average_state" not in plain_hist
    for a, b in zip(plain.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    averaged = copy.deepcopy(model)
    averaged.load_state_dict(hist["average_state"])
    w_last, w_avg = model.net[0].weight, averaged.net[0].weight
    assert (w_last - w_avg).abs().max() > 1e-4
    loss = lambda m: float(pointwise_sq_error(m, x, y).mean())
    assert loss(averaged) < 2 * loss(model)


def test_same_seed_same_numbers():
    task = quick_task(TASKS["spring"])
    a, _ = run_one(task, 5, kinds=("hnn",))
    b, _ = run_one(task, 5, kinds=("hnn",))
    for ra, rb in zip(a, b):
        for key in ("train_loss", "test_loss", "energy_mse", "reversibility"):
            assert ra[key] == rb[key]


# ---------------------------------------------------------------------------- end to end

def test_quick_table_end_to_end(tmp_path):
    main(["--quick", "--seeds", "0", "--results-dir", str(tmp_path), "--plots-dir",
          str(tmp_path / "plots"), "--quiet"])
    result = json.loads((tmp_path / "hnn_table.json").read_text())
    pairs = {(r["task"], r["model"]) for r in result["hnn_table"]}
    kinds = [*MODELS, *(f"{m}+avg" for m in MODELS)]       # last weights and weight averages
    assert pairs == {(t, m) for t in TASKS for m in kinds}
    for row in result["hnn_table"]:
        for key in ("train_loss", "test_loss", "energy_mse", "reversibility", "wall_time",
                    "paper_energy_mse"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row, key)
        assert set(row) == {"task", "model", "train_loss", "test_loss", "energy_mse",
                            "energy_mse_std", "reversibility", "wall_time", "paper_energy_mse"}
    assert len(result["runs"]) == len(TASKS) * len(kinds)
    assert set(result["targets_check"]) == set(TASKS)
    assert all("avg" in c for c in result["targets_check"].values())
    for task in TASKS:
        assert (tmp_path / "plots" / f"hnn_{task}.png").stat().st_size > 10_000
