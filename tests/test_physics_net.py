"""PhysicsNet and its loss terms: shapes, size, the energy head's properties, closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from models import losses
from models.physics_net import PhysicsNet, PhysicsNetConfig

torch.set_num_threads(2)


def make_model(D=4, **kw) -> PhysicsNet:
    torch.manual_seed(0)
    half = D // 2
    return PhysicsNet(PhysicsNetConfig(state_dim=D, q_idx=list(range(half)),
                                       p_idx=list(range(half, D)), **kw))


# ---------------------------------------------------------------------------- model

def test_shapes_and_parameter_count():
    model = make_model(4)
    n = model.n_parameters()
    print(f"PhysicsNet parameters: D=4 {n}, D=2 {make_model(2).n_parameters()}")
    assert 160_000 <= n <= 180_000            # the original README's ~170K for a 4-D state
    traj = torch.randn(3, 7, 4)
    out = model(traj)
    assert out["latent"].shape == (3, 7, 32)
    assert out["recon"].shape == out["next"].shape == (3, 7, 4)
    assert out["energy"].shape == (3, 7)
    assert out["invariants"].shape == (3, 7, 0)
    assert model.encode(traj).shape == (3, 7, 32)
    assert model.energy(traj[0, 0]).shape == ()
    inv = make_model(4, n_invariants=2, latent_dim=8)
    assert inv.invariants(traj).shape == (3, 7, 2)
    assert inv.encode(traj).shape == (3, 7, 8)


def test_invariant_heads_read_the_pairwise_products_of_the_normalised_state():
    model = make_model(4, n_invariants=1)
    first = model.invariant_heads[0][0]
    assert first.in_features == 4 + 10                  # s and s_i s_j for i <= j
    pairs = [tuple(p) for p in torch.triu_indices(4, 4).T.tolist()]
    with torch.no_grad():                           # a head that reads only s_0 * s_3
        first.weight.zero_()
        first.weight[:, 4 + pairs.index((0, 3))] = torch.linspace(-1, 1, first.out_features)
    s = torch.tensor([[2.0, 0.3, -0.7, 0.5], [0.5, -1.0, 0.2, 2.0], [1.0, 0.0, 0.0, 0.5]])
    with torch.no_grad():                           # statistics are 0/1: raw = normalised
        out = model.invariants(s)[:, 0].tolist()
    assert out[0] == pytest.approx(out[1], abs=1e-6)               # same product s_0 s_3 = 1
    assert abs(out[0] - out[2]) > 1e-3                             # product 0.5


def test_checkpoints_from_before_the_product_inputs_still_load():
    from dataclasses import asdict

    from models.physics_net import build_physics_net

    old = asdict(PhysicsNetConfig(state_dim=4, n_invariants=1, invariant_products=0.0))
    del old["invariant_products"]
    model = build_physics_net(old)
    assert model.invariant_heads[0][0].in_features == 4
    assert model.invariants(torch.randn(5, 4)).shape == (5, 1)


def test_energy_is_a_function_of_the_state_not_of_the_history():
    model = make_model(4)
    with torch.no_grad():
        model.energy_head[-1].bias.fill_(0.3)   # not a trivial head
    shared = torch.randn(4)
    a, b = torch.randn(2, 9, 4)
    a[5], b[2] = shared, shared                 # same state, reached by different histories
    out = model(torch.stack([a, b]))
    assert torch.equal(out["energy"][0, 5], out["energy"][1, 2])
    assert torch.allclose(out["energy"][0, 5], model.energy(shared))
    # ...while the latent (the GRU's summary of the history) does depend on the history
    assert not torch.allclose(out["latent"][0, 5], out["latent"][1, 2])


def test_energy_gradient_is_with_respect_to_the_raw_state():
    model = make_model(2)
    model.set_statistics(torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5]),
                         torch.tensor([0.1, 0.1]), energy_scale=7.0)
    s = torch.tensor([[0.3, -1.0], [2.0, 0.4]], dtype=torch.float64)
    model = model.double()
    E, grad = model.energy_and_gradient(s)
    h = 1e-6
    for i in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[i] = h
        fd = (model.energy(s + e) - model.energy(s - e)) / (2 * h)
        assert torch.allclose(grad[:, i], fd, rtol=1e-6, atol=1e-9)
    assert torch.allclose(E, model.energy(s))


def test_projection_lands_on_the_level_set():
    model = make_model(4).double()
    s = torch.randn(5, 4, dtype=torch.float64)
    target = model.energy(s) + 0.01
    projected = model.project_to_energy(s, target, newton_steps=3)
    assert torch.allclose(model.energy(projected), target, atol=1e-9)
    assert (projected - s).norm(dim=-1).max() < 1.0


def test_rollout_shapes_and_projected_rollouts_keep_energy():
    model = make_model(4).double()
    prefix = torch.randn(3, 4, 4, dtype=torch.float64)
    free = model.rollout(prefix, 6, project=False)
    assert free.shape == (3, 10, 4)
    assert torch.equal(free[:, :4], prefix)
    target = model.energy(prefix).mean(1, keepdim=True).expand(3, 6)
    kept = model.rollout(prefix, 6, project=True, newton_steps=3)   # Newton: error squares
    assert torch.allclose(model.energy(kept[:, 4:]), target, atol=1e-9)
    spread = model.energy(free).std().item()
    kept = model.rollout(prefix, 6, project=True)                   # default: 2 steps
    assert (model.energy(kept[:, 4:]) - target).abs().max() < 1e-4 * spread
    assert not torch.allclose(model.energy(free[:, 4:]), target, atol=1e-3 * spread)
    # the first predicted state without projection is the decoder's next-state prediction
    assert torch.allclose(free[:, 4], model(prefix)["next"][:, -1])


def test_config_validation():
    with pytest.raises(ValueError):
        PhysicsNet(PhysicsNetConfig(state_dim=4, q_idx=[0, 1], p_idx=[2, 2]))
    with pytest.raises(ValueError):
        PhysicsNet(PhysicsNetConfig(state_dim=4, q_idx=[0, 1]))


# ---------------------------------------------------------------------------- losses

def test_prediction_loss():
    target = torch.zeros(2, 3, 2)
    scale = torch.tensor([2.0, 0.5])
    pred = target + torch.tensor([2.0, 1.0])     # 1 and 2 spreads off -> mean of 1 and 4
    assert losses.prediction_loss(pred, target, scale).item() == pytest.approx(2.5)


def test_conservation_ratio():
    values = torch.tensor([[0.0, 2.0], [4.0, 6.0]])   # within var 1 each; means 1, 5 -> var 4
    assert losses.conservation_ratio(values).item() == pytest.approx(0.25)
    # scale-free
    assert losses.conservation_ratio(1e3 * values + 7).item() == pytest.approx(0.25)
    assert losses.conservation_ratio(torch.tensor([[1.0, 1.0], [3.0, 3.0]])).item() == 0.0


def test_symplectic_gradient_and_hamiltonian_loss_on_the_oscillator():
    # H = (p^2 + q^2) / 2 -> dH/ds = (q, p), Hamilton: dq/dt = p, dp/dt = -q
    s = torch.tensor([[1.0, 2.0], [-0.5, 3.0]])
    field = losses.symplectic_gradient(s.clone(), [0], [1])
    assert torch.equal(field, torch.stack([s[:, 1], -s[:, 0]], 1))
    scale = torch.tensor([2.0, 1.0])
    assert losses.hamiltonian_loss(s, field, [0], [1], scale).item() == 0.0
    off = field + torch.tensor([2.0, 0.0])          # 1 spread off in q-dot only -> mean 1/2
    assert losses.hamiltonian_loss(s, off, [0], [1], scale).item() == pytest.approx(0.5)
    # two degrees of freedom, (q1, q2, p1, p2): dq_i/dt = dH/dp_i, dp_i/dt = -dH/dq_i
    g = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.equal(losses.symplectic_gradient(g, [0, 1], [2, 3]),
                       torch.tensor([[3.0, 4.0, -1.0, -2.0]]))


def test_energy_keeping_loss():
    now = torch.tensor([[1.0, 1.0], [3.0, 3.0]])      # variance 1
    assert losses.energy_keeping_loss(now.clone(), now).item() == 0.0
    assert losses.energy_keeping_loss(now + 0.5, now).item() == pytest.approx(0.25)


def test_latent_smoothness():
    t = torch.arange(4.0)
    z = torch.stack([t, 2 * t], -1)[None]              # (1, 4, 2): steps (1, 2) -> |dz|^2 = 5
    total_var = t.var(unbiased=False) * 5              # var(t) + var(2t)
    assert losses.latent_smoothness(z).item() == pytest.approx(5 / total_var.item())
    assert losses.latent_smoothness(100 * z).item() == pytest.approx(5 / total_var.item())


def test_polynomial_basis_and_residual_variance():
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)
    y = torch.linspace(0, 3, 50, dtype=torch.float64)
    basis = losses.polynomial_basis(torch.stack([x, y], 1), 3)
    assert basis.shape == (50, 10)                       # 1 + 2 + 3 + 4 monomials
    quadratic = 1 + 2 * x - 3 * x ** 2
    basis_x = losses.polynomial_basis(x[:, None], 3)
    assert losses.residual_variance(quadratic, basis_x).item() < 1e-10
    other = torch.sin(40 * x)
    assert losses.residual_variance(other, basis_x).item() > 0.5 * other.var().item()


def test_invariant_ratio_gives_no_credit_to_functions_of_the_energy():
    torch.manual_seed(0)
    E = torch.rand(64, dtype=torch.float64) + 1
    L = torch.randn(64, dtype=torch.float64)
    wiggle = 1e-3 * torch.randn(64, 10, dtype=torch.float64)
    head_of_E = (E ** 2)[:, None] + wiggle            # a function of E (plus a little noise)
    head_indep = L[:, None] + wiggle
    known = E[:, None]
    r_E = losses.invariant_ratio(head_of_E, known).item()
    r_L = losses.invariant_ratio(head_indep, known).item()
    assert r_L < 1e-4 < 1e-1 < r_E
    # without anything to explain it, the function of E looks conserved too
    assert losses.invariant_ratio(head_of_E, None).item() < 1e-4
    # the plain ratio equals conservation_ratio when nothing is known
    assert losses.invariant_ratio(head_indep, None).item() == pytest.approx(
        losses.conservation_ratio(head_indep).item())


def test_l2_penalty():
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    assert losses.l2_penalty(params).item() == 14.0


def test_losses_are_finite_for_constant_inputs():
    const = torch.ones(3, 5)
    assert math.isfinite(losses.conservation_ratio(const).item())
    assert math.isfinite(losses.latent_smoothness(torch.ones(2, 5, 3)).item())
