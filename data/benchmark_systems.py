"""The discovery benchmark's systems (issue #16): kinds the core three are not, each with its
TRUE number of functionally independent, time-independent global invariants.

    python data/simulate.py --systems quartic henon-heiles --n-traj 1000
    python bench/bench_discover.py                       # every system, train + discover + score

Registered in data/simulate.py beside the core systems (same `System` entries, see
data/systems.py). For each: `invariants` lists every exact invariant worth naming (the energy
first, as "E", when the system has one), `conserved` a functionally independent subset whose
size is the true count, and the description says why that count is right. Negative controls
(damped, driven, random walk) conserve nothing: their `invariants` are the candidates a method
might wrongly accept, `conserved` is empty. Parameters were picked once, varied on purpose,
and never tuned to any discovery method.

Time spans and steps follow data/README.md ("Why these time steps"): at least ~40 samples per
period of the fastest motion, so that the Savitzky-Golay derivatives are accurate, and one or
more periods per trajectory.
"""
from __future__ import annotations

import numpy as np

from data.systems import System

Array = np.ndarray


def _energy_shell_phase(rng, energy: Array, x_max: Array, potential) -> tuple[Array, Array]:
    """(x0, v0) of a 1-D oscillator with the given energies (unit mass): x0 uniform in
    [-x_max, x_max]*0.999, v0 from the energy with a random sign."""
    x0 = rng.uniform(-1.0, 1.0, len(energy)) * x_max * 0.999
    v0 = rng.choice([-1.0, 1.0], len(energy)) * np.sqrt(np.clip(
        2 * (energy - potential(x0)), 0.0, None))
    return x0, v0


def _harmonic(rng, n: int, omega: float, e_lo: float, e_hi: float) -> tuple[Array, Array]:
    """(position, velocity) of a unit-mass oscillator of frequency omega, energy uniform in
    [e_lo, e_hi], random phase."""
    amplitude = np.sqrt(2 * rng.uniform(e_lo, e_hi, n))
    phase = rng.uniform(0.0, 2 * np.pi, n)
    return amplitude * np.cos(phase) / omega, -amplitude * np.sin(phase)


# ---------------------------------------------------------------------------- quartic oscillator

def _quartic_rhs(s, p):
    x, v = s[..., 0], s[..., 1]
    return np.stack([v, -p["k"] * x - p["lam"] * x**3], axis=-1)


def _quartic_potential(x, p):
    return 0.5 * p["k"] * x**2 + 0.25 * p["lam"] * x**4


def _quartic_sample(rng, n, p):
    energy = rng.uniform(0.3, 3.0, n)
    # turning point: (lam/4) u^2 + (k/2) u = E with u = x^2
    u = (-0.5 * p["k"] + np.sqrt(0.25 * p["k"]**2 + p["lam"] * energy)) / (0.5 * p["lam"])
    x0, v0 = _energy_shell_phase(rng, energy, np.sqrt(u), lambda x: _quartic_potential(x, p))
    return np.stack([x0, v0], axis=-1)


QUARTIC = System(
    name="quartic", names=("x", "v"), canonical=("q", "p"),
    params={"k": 1.5, "lam": 0.8}, t_end=6.0, steps=120,
    rhs=_quartic_rhs, sample=_quartic_sample,
    invariants={"E": "0.5*v**2 + 0.5*k*x**2 + 0.25*lam*x**4"},
    checked=("E",), conserved=("E",),
    description="anharmonic (undamped, unforced Duffing) oscillator x'' = -k x - lam x^3, "
                "k = 1.5, lam = 0.8, energies 0.3-3 (the quartic term dominates at the top); "
                "1 invariant: a 2-D phase space holds at most one",
)


# ---------------------------------------------------------------------------- 2-D oscillators

def _oscillator2_rhs(s, p):
    x, y, vx, vy = np.moveaxis(s, -1, 0)
    return np.stack([vx, vy, -p["wx"]**2 * x, -p["wy"]**2 * y], axis=-1)


def _oscillator2_sample(rng, n, p):
    x, vx = _harmonic(rng, n, p["wx"], 0.2, 2.0)
    y, vy = _harmonic(rng, n, p["wy"], 0.2, 2.0)
    return np.stack([x, y, vx, vy], axis=-1)


_EX = "0.5*{vx}**2 + 0.5*wx**2*{x}**2"
_EY = "0.5*{vy}**2 + 0.5*wy**2*{y}**2"


def _oscillator2(name, names, params, t_end, steps, extra, conserved, description):
    x, y, vx, vy = names
    fill = dict(x=x, y=y, vx=vx, vy=vy)
    ex, ey = _EX.format(**fill), _EY.format(**fill)
    return System(
        name=name, names=names, canonical=("q", "q", "p", "p"), params=params,
        t_end=t_end, steps=steps, rhs=_oscillator2_rhs, sample=_oscillator2_sample,
        invariants={"E": f"{ex} + {ey}", "E_x": ex, "E_y": ey,
                    **{k: v.format(**fill) for k, v in extra.items()}},
        checked=("E",), conserved=conserved, description=description)


# a1 = wx x + i vx and a2 = wy y + i vy turn as exp(-i w t): for wy = 2 wx, a1^2 conj(a2) is
# constant; its real and imaginary parts are cubic polynomials.
OSCILLATOR_1TO2 = _oscillator2(
    "oscillator-1to2", ("x", "y", "vx", "vy"), {"wx": 0.9, "wy": 1.8}, 8.0, 160,
    {"K_re": "wy*{y}*(wx**2*{x}**2 - {vx}**2) + 2*wx*{x}*{vx}*{vy}",
     "K_im": "2*wx*wy*{x}*{y}*{vx} - {vy}*(wx**2*{x}**2 - {vx}**2)"},
    ("E", "E_x", "K_re"),
    "2-D anisotropic oscillator at the commensurate ratio 1:2 (wx = 0.9, wy = 1.8), each "
    "energy 0.2-2, random phases; 3 invariants: every orbit is closed, so E_x, E_y and the "
    "cubic Re(a1^2 conj(a2)) (a_j = w_j q_j + i v_j) are independent (Im is a function of "
    "them); 4-D phase space, at most 3")

# a1 conj(a2) is constant for equal frequencies: its real part w^2 x y + px py and its
# imaginary part (the angular momentum) are quadratic.
OSCILLATOR_1TO1 = _oscillator2(
    "oscillator-1to1", ("x", "y", "px", "py"), {"wx": 1.25, "wy": 1.25}, 8.0, 160,
    {"L": "{x}*{vy} - {y}*{vx}", "K": "wx*wy*{x}*{y} + {vx}*{vy}"},
    ("E", "E_x", "L"),
    "2-D isotropic oscillator, w = 1.25 for both axes, each energy 0.2-2, random phases; "
    "3 invariants: closed orbits; E_x, E_y, L = x py - y px and K = w^2 x y + px py are all "
    "exact quadratics but only 3 are independent (K^2 + w^2 L^2 = 4 E_x E_y)")

OSCILLATOR_IRRATIONAL = _oscillator2(
    "oscillator-irrational", ("q1", "q2", "p1", "p2"),
    {"wx": 1.1, "wy": 1.1 * np.sqrt(2.0)}, 8.0, 160, {}, ("E", "E_x"),
    "2-D anisotropic oscillator at the incommensurate ratio 1:sqrt(2) (w1 = 1.1, "
    "w2 = 1.556), each energy 0.2-2, random phases; 2 invariants: each orbit fills its "
    "2-torus densely, so only the two energies are global invariants")


# ---------------------------------------------------------------------------- coupled oscillators

def _coupled_rhs(s, p):
    x1, x2, v1, v2 = np.moveaxis(s, -1, 0)
    k, kc = p["k"], p["kc"]
    return np.stack([v1, v2, -k * x1 - kc * (x1 - x2), -k * x2 - kc * (x2 - x1)], axis=-1)


def _coupled_sample(rng, n, p):
    """Each normal mode with its own energy and phase, mapped to the masses' coordinates."""
    w1, w2 = np.sqrt(p["k"]), np.sqrt(p["k"] + 2 * p["kc"])
    q1, u1 = _harmonic(rng, n, w1, 0.1, 1.5)
    q2, u2 = _harmonic(rng, n, w2, 0.1, 1.5)
    r = 1 / np.sqrt(2.0)
    return np.stack([r * (q1 + q2), r * (q1 - q2), r * (u1 + u2), r * (u1 - u2)], axis=-1)


COUPLED_OSCILLATORS = System(
    name="coupled-oscillators", names=("x1", "x2", "v1", "v2"),
    canonical=("q", "q", "p", "p"), params={"k": 1.2, "kc": 0.7}, t_end=8.0, steps=160,
    rhs=_coupled_rhs, sample=_coupled_sample,
    invariants={"E": "0.5*v1**2 + 0.5*v2**2 + 0.5*k*(x1**2 + x2**2) + 0.5*kc*(x1 - x2)**2",
                "E_sym": "0.25*(v1 + v2)**2 + 0.25*k*(x1 + x2)**2",
                "E_anti": "0.25*(v1 - v2)**2 + 0.25*(k + 2*kc)*(x1 - x2)**2"},
    checked=("E",), conserved=("E", "E_sym"),
    description="two unit masses, each tied to a wall (k = 1.2) and to each other (kc = 0.7); "
                "normal modes at w = 1.095 and 1.612 (ratio sqrt(13/6), incommensurate), "
                "mode energies 0.1-1.5, random phases; 2 invariants: the two mode energies "
                "(quadratics with cross terms in x1, x2), nothing else on a dense 2-torus",
)


# ---------------------------------------------------------------------------- Lotka-Volterra

def _lv2_rhs(s, p):
    x, y = s[..., 0], s[..., 1]
    return np.stack([x * (p["a"] - p["b"] * y), y * (p["d"] * x - p["c"])], axis=-1)


def _lv2_sample(rng, n, p):
    x_star, y_star = p["c"] / p["d"], p["a"] / p["b"]
    return np.stack([x_star * rng.uniform(0.35, 0.9, n),
                     y_star * rng.uniform(0.7, 1.3, n)], axis=-1)


LOTKA_VOLTERRA_2 = System(
    name="lotka-volterra-2", names=("prey", "predator"), canonical=None,
    params={"a": 1.1, "b": 0.6, "c": 0.9, "d": 0.45}, t_end=10.0, steps=160,
    rhs=_lv2_rhs, sample=_lv2_sample,
    invariants={"V": "d*prey - c*log(prey) + b*predator - a*log(predator)"},
    checked=("V",), conserved=("V",),
    description="predator-prey prey' = prey (a - b predator), predator' = predator "
                "(d prey - c), a = 1.1, b = 0.6, c = 0.9, d = 0.45 (equilibrium (2, 1.83)); "
                "prey 35-90 % and predator 70-130 % of equilibrium at t = 0; 1 invariant "
                "(with logarithms): a 2-D phase space holds at most one",
)

# Antisymmetric interactions A around an equilibrium s: x_i' = x_i (A (x - s))_i conserves
# V = sum(x_i - s_i log x_i); every v in the kernel of A adds sum(v_i log x_i).
_LV3_A = "[[0, a, -b], [-a, 0, c], [b, -c, 0]]"
_LV4_M = np.array([[0, 1, 1, -1], [-1, 0, 2, -3], [-1, -2, 0, -1], [1, 3, 1, 0]], dtype=float)


def _lv3_matrix(p):
    a, b, c = p["a"], p["b"], p["c"]
    return np.array([[0.0, a, -b], [-a, 0.0, c], [b, -c, 0.0]])


def _lv_antisymmetric_rhs(matrix):
    def rhs(s, p):
        star = np.array([p[f"s{i + 1}"] for i in range(s.shape[-1])])
        return s * ((s - star) @ matrix(p).T)
    return rhs


def _lv_sample(rng, n, p, dim, spread=0.5):
    star = np.array([p[f"s{i + 1}"] for i in range(dim)])
    return star * np.exp(rng.uniform(-spread, spread, (n, dim)))


LOTKA_VOLTERRA_3 = System(
    name="lotka-volterra-3", names=("x1", "x2", "x3"), canonical=None,
    params={"a": 0.8, "b": 0.5, "c": 1.1, "s1": 1.0, "s2": 1.5, "s3": 0.7},
    t_end=10.0, steps=160,
    rhs=_lv_antisymmetric_rhs(_lv3_matrix), sample=lambda rng, n, p: _lv_sample(rng, n, p, 3),
    invariants={"V": "x1 + x2 + x3 - s1*log(x1) - s2*log(x2) - s3*log(x3)",
                "W": "c*log(x1) + b*log(x2) + a*log(x3)"},
    checked=("V",), conserved=("V", "W"),
    description="3-species Lotka-Volterra food web x_i' = x_i (A (x - s))_i with antisymmetric "
                f"A = {_LV3_A}, a = 0.8, b = 0.5, c = 1.1, equilibrium s = (1, 1.5, 0.7); "
                "each x_i = s_i exp(U(-0.5, 0.5)) at t = 0; 2 invariants: V = sum(x_i - s_i "
                "log x_i) and, from A's kernel (c, b, a), W = c log x1 + b log x2 + a log x3; "
                "3-D phase space, at most 2",
)

LOTKA_VOLTERRA_4 = System(
    name="lotka-volterra-4", names=("x1", "x2", "x3", "x4"), canonical=None,
    params={"kappa": 0.4, "s1": 0.8, "s2": 1.2, "s3": 1.0, "s4": 0.6},
    t_end=10.0, steps=200,
    rhs=_lv_antisymmetric_rhs(lambda p: p["kappa"] * _LV4_M),
    sample=lambda rng, n, p: _lv_sample(rng, n, p, 4, spread=0.4),
    invariants={"V": "x1 + x2 + x3 + x4 - s1*log(x1) - s2*log(x2) - s3*log(x3) - s4*log(x4)",
                "W1": "-2*log(x1) + log(x2) - log(x3)",
                "W2": "-log(x1) + log(x3) + log(x4)"},
    checked=("V",), conserved=("V", "W1", "W2"),
    description="4-species Lotka-Volterra food web x_i' = x_i (A (x - s))_i, A = kappa (u w^T "
                "- w u^T) with u = (1, 2, 0, 1), w = (0, 1, 1, -1) (rank 2), kappa = 0.4, "
                "equilibrium s = (0.8, 1.2, 1, 0.6); x_i = s_i exp(U(-0.4, 0.4)) at t = 0; "
                "3 invariants: V = sum(x_i - s_i log x_i) and one log invariant per kernel "
                "vector of A, (-2, 1, -1, 0) and (-1, 0, 1, 1); 4-D phase space, at most 3",
)


# ---------------------------------------------------------------------------- double pendulum

def _double_pendulum_rhs(s, p):
    th1, th2, w1, w2 = np.moveaxis(s, -1, 0)
    m1, m2, l1, l2, g = p["m1"], p["m2"], p["l1"], p["l2"], p["g"]
    total = m1 + m2
    delta = th1 - th2
    cos, sin = np.cos(delta), np.sin(delta)
    # Lagrange's equations: [[M l1, m2 l2 cos], [l1 cos, l2]] (w1', w2') = (b1, b2)
    b1 = -m2 * l2 * w2**2 * sin - total * g * np.sin(th1)
    b2 = l1 * w1**2 * sin - g * np.sin(th2)
    det = l1 * l2 * (total - m2 * cos**2)
    return np.stack([w1, w2, (l2 * b1 - m2 * l2 * cos * b2) / det,
                     (total * l1 * b2 - l1 * cos * b1) / det], axis=-1)


def _double_pendulum_sample(rng, n, p):
    return np.stack([rng.uniform(-1.1, 1.1, n), rng.uniform(-1.1, 1.1, n),
                     rng.uniform(-1.5, 1.5, n), rng.uniform(-1.5, 1.5, n)], axis=-1)


DOUBLE_PENDULUM = System(
    name="double-pendulum", names=("theta1", "theta2", "omega1", "omega2"), canonical=None,
    params={"m1": 1.0, "m2": 0.7, "l1": 1.0, "l2": 0.8, "g": 9.81}, t_end=3.0, steps=300,
    rhs=_double_pendulum_rhs, sample=_double_pendulum_sample,
    invariants={"E": "0.5*(m1 + m2)*l1**2*omega1**2 + 0.5*m2*l2**2*omega2**2"
                     " + m2*l1*l2*omega1*omega2*cos(theta1 - theta2)"
                     " + (m1 + m2)*g*l1*(1 - cos(theta1)) + m2*g*l2*(1 - cos(theta2))"},
    checked=("E",), conserved=("E",),
    description="planar double pendulum in angle coordinates (theta1, theta2, omega1, omega2; "
                "no canonical labels), m1 = 1, m2 = 0.7, l1 = 1, l2 = 0.8, g = 9.81; angles "
                "uniform in +-1.3 rad, angular velocities in +-2.5 rad/s (from near-linear "
                "to chaotic motion); 1 invariant: the energy (non-integrable)",
)


# ---------------------------------------------------------------------------- Henon-Heiles

def _henon_heiles_rhs(s, p):
    x, y, px, py = np.moveaxis(s, -1, 0)
    lam = p["lam"]
    return np.stack([px, py, -x - 2 * lam * x * y, -y - lam * (x * x - y * y)], axis=-1)


def _henon_heiles_potential(x, y, lam):
    return 0.5 * (x * x + y * y) + lam * (x * x * y - y**3 / 3)


def _henon_heiles_sample(rng, n, p):
    """Energy uniform in [0.125, 0.16]/lam^2 (escape at 1/(6 lam^2)); position uniform in
    the bounded part of {V < E} (the triangle of the three saddles), momentum direction
    uniform."""
    lam = p["lam"]
    energy = rng.uniform(0.125, 0.16, n) / lam**2
    x, y = np.zeros(n), np.zeros(n)
    todo = np.arange(n)
    while len(todo):
        cx = rng.uniform(-1.0, 1.0, len(todo)) / lam
        cy = rng.uniform(-0.5, 1.0, len(todo)) / lam
        inside = (cy < (1.0 - np.sqrt(3.0) * np.abs(cx * lam)) / lam) & \
                 (_henon_heiles_potential(cx, cy, lam) < energy[todo])
        x[todo[inside]], y[todo[inside]] = cx[inside], cy[inside]
        todo = todo[~inside]
    speed = np.sqrt(2 * (energy - _henon_heiles_potential(x, y, lam)))
    angle = rng.uniform(0.0, 2 * np.pi, n)
    return np.stack([x, y, speed * np.cos(angle), speed * np.sin(angle)], axis=-1)


HENON_HEILES = System(
    name="henon-heiles", names=("x", "y", "px", "py"), canonical=("q", "q", "p", "p"),
    params={"lam": 1.0}, t_end=12.0, steps=160,
    rhs=_henon_heiles_rhs, sample=_henon_heiles_sample,
    invariants={"E": "0.5*(px**2 + py**2) + 0.5*(x**2 + y**2) + lam*(x**2*y - y**3/3)"},
    checked=("E",), conserved=("E",),
    description="Henon-Heiles, lam = 1, energies 0.125-0.16 (escape at 1/6): the range where "
                "most of the energy surface is chaotic (about half at 1/8, nearly all near "
                "1/6), so no approximate second invariant holds across trajectories; "
                "positions uniform in the bounded well, momentum direction uniform; "
                "1 invariant: the energy (non-integrable)",
)


# ---------------------------------------------------------------------------- three bodies

def _three_body_rhs(s, p):
    x1, y1, x2, y2, x3, y3, px1, py1, px2, py2, px3, py3 = np.moveaxis(s, -1, 0)
    m1, m2, m3, G = p["m1"], p["m2"], p["m3"], p["G"]

    def pull(xa, ya, xb, yb, ma, mb):          # force on a from b
        dx, dy = xb - xa, yb - ya
        r2 = dx * dx + dy * dy
        c = G * ma * mb / (r2 * np.sqrt(r2))
        return c * dx, c * dy

    f12x, f12y = pull(x1, y1, x2, y2, m1, m2)
    f13x, f13y = pull(x1, y1, x3, y3, m1, m3)
    f23x, f23y = pull(x2, y2, x3, y3, m2, m3)
    return np.stack([px1 / m1, py1 / m1, px2 / m2, py2 / m2, px3 / m3, py3 / m3,
                     f12x + f13x, f12y + f13y, -f12x + f23x, -f12y + f23y,
                     -f13x - f23x, -f13y - f23y], axis=-1)


def _three_body_sample(rng, n, p):
    """Lagrange's rotating equilateral triangle (side 0.8-1.2, Omega^2 = G M / side^3, either
    sense), velocities perturbed by 3 % per component, then a centre-of-mass offset and
    velocity of up to 0.2 per component so that both momenta vary between trajectories.
    The triangle is unstable for these masses: 2 s (0.4-0.8 of a period) keeps close
    approaches rare (1 in 300 comes within 0.3 of its side)."""
    m = np.array([p["m1"], p["m2"], p["m3"]])
    total = m.sum()
    side = rng.uniform(0.8, 1.2, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)[:, None] + 2 * np.pi * np.arange(3) / 3
    pos = side[:, None, None] / np.sqrt(3.0) * np.stack([np.cos(angle), np.sin(angle)], -1)
    pos -= np.einsum("k,nkd->nd", m, pos)[:, None] / total               # (n, 3, 2)
    omega = rng.choice([-1.0, 1.0], n) * np.sqrt(p["G"] * total / side**3)
    vel = omega[:, None, None] * np.stack([-pos[..., 1], pos[..., 0]], -1)
    vel *= 1 + 0.03 * rng.standard_normal(vel.shape)
    vel -= np.einsum("k,nkd->nd", m, vel)[:, None] / total
    vel += rng.uniform(-0.2, 0.2, (n, 1, 2))
    pos += rng.uniform(-0.2, 0.2, (n, 1, 2))
    mom = m[None, :, None] * vel
    return np.concatenate([pos.reshape(n, 6), mom.reshape(n, 6)], axis=-1)


_R = "sqrt((x{a} - x{b})**2 + (y{a} - y{b})**2)"

THREE_BODY = System(
    name="three-body",
    names=("x1", "y1", "x2", "y2", "x3", "y3", "px1", "py1", "px2", "py2", "px3", "py3"),
    canonical=("q",) * 6 + ("p",) * 6,
    params={"m1": 1.0, "m2": 0.8, "m3": 1.2, "G": 1.0}, t_end=2.0, steps=100,
    rhs=_three_body_rhs, sample=_three_body_sample,
    invariants={"E": "(px1**2 + py1**2)/(2*m1) + (px2**2 + py2**2)/(2*m2)"
                     " + (px3**2 + py3**2)/(2*m3)"
                     f" - G*m1*m2/{_R.format(a=1, b=2)} - G*m1*m3/{_R.format(a=1, b=3)}"
                     f" - G*m2*m3/{_R.format(a=2, b=3)}",
                "Px": "px1 + px2 + px3", "Py": "py1 + py2 + py3",
                "L": "x1*py1 - y1*px1 + x2*py2 - y2*px2 + x3*py3 - y3*px3"},
    checked=("E", "L"), conserved=("E", "Px", "Py", "L"),
    description="planar three-body problem, m = (1, 0.8, 1.2), G = 1: Lagrange's rotating "
                "triangle (side 0.8-1.2, periods 2.6-4.8, 2 s observed) with 3 % velocity "
                "perturbations, "
                "plus a centre-of-mass offset and drift; 4 invariants: E, Px, Py, L (no "
                "further global integral, Bruns/Poincare; the centre of mass minus P t / M "
                "depends on t)",
)


# ---------------------------------------------------------------------------- magnetic field

def _magnetic_rhs(s, p):
    x, y, vx, vy = np.moveaxis(s, -1, 0)
    w = p["omega"]
    return np.stack([vx, vy, w * vy, -w * vx], axis=-1)


def _magnetic_sample(rng, n, p):
    centre = rng.uniform(-2.0, 2.0, (n, 2))
    speed = rng.uniform(0.3, 2.0, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    vx, vy = speed * np.cos(phase), speed * np.sin(phase)
    # the guiding centre is (x + vy/w, y - vx/w)
    return np.stack([centre[:, 0] - vy / p["omega"], centre[:, 1] + vx / p["omega"],
                     vx, vy], axis=-1)


MAGNETIC = System(
    name="magnetic", names=("x", "y", "vx", "vy"), canonical=None,
    params={"omega": 1.6}, t_end=5.0, steps=120,
    rhs=_magnetic_rhs, sample=_magnetic_sample,
    invariants={"E": "0.5*(vx**2 + vy**2)", "X": "x + vy/omega", "Y": "y - vx/omega"},
    checked=("E",), conserved=("E", "X", "Y"),
    description="charged particle (q = m = 1) in a uniform magnetic field along z, "
                "cyclotron frequency omega = qB/m = 1.6, given as (x, y, vx, vy) without "
                "canonical labels (vx, vy are not canonical momenta); guiding centres in "
                "[-2, 2]^2, speeds 0.3-2; 3 invariants: the kinetic energy and both "
                "guiding-centre coordinates (every orbit is a closed circle)",
)


# ---------------------------------------------------------------------------- exponential energies

def _morse_rhs(s, p):
    x, mom = s[..., 0], s[..., 1]
    decay = np.exp(-p["alpha"] * x)
    return np.stack([mom, -2 * p["D"] * p["alpha"] * decay * (1 - decay)], axis=-1)


def _morse_sample(rng, n, p):
    depth, alpha = p["D"], p["alpha"]
    energy = rng.uniform(0.1, 0.75, n) * depth
    root = np.sqrt(energy / depth)
    lo, hi = -np.log(1 + root) / alpha, -np.log(1 - root) / alpha
    x0 = lo + (hi - lo) * rng.uniform(0.0005, 0.9995, n)
    potential = depth * (1 - np.exp(-alpha * x0))**2
    sign = rng.choice([-1.0, 1.0], n)
    return np.stack([x0, sign * np.sqrt(np.clip(2 * (energy - potential), 0.0, None))], -1)


MORSE = System(
    name="morse", names=("x", "p"), canonical=("q", "p"),
    params={"D": 2.0, "alpha": 1.3}, t_end=6.0, steps=160,
    rhs=_morse_rhs, sample=_morse_sample,
    invariants={"E": "0.5*p**2 + D*(1 - exp(-alpha*x))**2"},
    checked=("E",), conserved=("E",),
    description="Morse oscillator H = p^2/2 + D (1 - exp(-alpha x))^2, D = 2, alpha = 1.3, "
                "energies 10-75 % of the well depth (periods 2.4-4.8); 1 invariant: a 2-D "
                "phase space holds at most one",
)


def _toda_rhs(s, p):
    q1, q2, q3, p1, p2, p3 = np.moveaxis(s, -1, 0)
    a, b = p["A"], p["B"]
    e12, e23, e31 = np.exp(b * (q1 - q2)), np.exp(b * (q2 - q3)), np.exp(b * (q3 - q1))
    return np.stack([p1, p2, p3, -a * b * (e12 - e31), -a * b * (e23 - e12),
                     -a * b * (e31 - e23)], axis=-1)


def _toda_sample(rng, n, p):
    q = rng.uniform(-0.6, 0.6, (n, 3))
    mom = rng.normal(0.0, 0.9, (n, 3)) + rng.uniform(-0.5, 0.5, (n, 1))
    return np.concatenate([q, mom], axis=-1)


TODA = System(
    name="toda", names=("q1", "q2", "q3", "p1", "p2", "p3"),
    canonical=("q", "q", "q", "p", "p", "p"), params={"A": 1.2, "B": 0.9},
    t_end=6.0, steps=160, rhs=_toda_rhs, sample=_toda_sample,
    invariants={"E": "0.5*(p1**2 + p2**2 + p3**2) + A*(exp(B*(q1 - q2)) + exp(B*(q2 - q3))"
                     " + exp(B*(q3 - q1)))",
                "P": "p1 + p2 + p3",
                "I3": "p1*p2*p3 - A*(p1*exp(B*(q2 - q3)) + p2*exp(B*(q3 - q1))"
                      " + p3*exp(B*(q1 - q2)))"},
    checked=("E",), conserved=("E", "P", "I3"),
    description="periodic Toda lattice of 3 particles, H = sum p^2/2 + A sum exp(B (q_i - "
                "q_i+1)), A = 1.2, B = 0.9; positions in +-0.6, momenta N(0, 0.9) plus a "
                "common U(-0.5, 0.5); 3 invariants: E, the total momentum and Henon's cubic "
                "I3 with exponentials (integrable; the relative motion runs on 2-tori of "
                "incommensurate frequencies, the centre of mass minus P t / 3 depends on t)",
)


# ---------------------------------------------------------------------------- negative controls

def _damped_pendulum_rhs(s, p):
    theta, mom = s[..., 0], s[..., 1]
    return np.stack([mom, -p["w2"] * np.sin(theta) - p["gamma"] * mom], axis=-1)


def _damped_pendulum_sample(rng, n, p):
    return np.stack([rng.uniform(-2.0, 2.0, n), rng.uniform(-1.5, 1.5, n)], axis=-1)


DAMPED_PENDULUM = System(
    name="damped-pendulum", names=("theta", "p"), canonical=("q", "p"),
    params={"w2": 6.0, "gamma": 0.25}, t_end=6.0, steps=120,
    rhs=_damped_pendulum_rhs, sample=_damped_pendulum_sample,
    invariants={"E": "0.5*p**2 + w2*(1 - cos(theta))"}, checked=(), conserved=(),
    description="pendulum with linear damping, theta'' = -w2 sin(theta) - gamma theta', "
                "w2 = 6, gamma = 0.25 (energy down to about exp(-1.5) = 0.22 of its start "
                "by t = 6); 0 invariants: a negative control (E is listed as the candidate "
                "that is not conserved)",
)


def _driven_closed_form(x0: Array, phase: Array, t: Array, p: dict) -> Array:
    """x'' = -k x + F cos(Omega t + phase): free oscillation plus the forced response
    C cos(Omega t + phase), C = F / (k - Omega^2). x0 (N, 2), phase (N,), t (T,) -> (N, T, 2)."""
    w, big_w = np.sqrt(p["k"]), p["Omega"]
    c = p["F"] / (p["k"] - big_w**2)
    drive = big_w * t[None, :] + phase[:, None]
    a = (x0[:, 0] - c * np.cos(phase))[:, None]
    b = ((x0[:, 1] + c * big_w * np.sin(phase)) / w)[:, None]
    wt = w * t[None, :]
    x = c * np.cos(drive) + a * np.cos(wt) + b * np.sin(wt)
    v = -c * big_w * np.sin(drive) - a * w * np.sin(wt) + b * w * np.cos(wt)
    return np.stack([x, v], axis=-1)


def _driven_generate(rng, x0, t, p):
    """Each trajectory sees the drive at its own random phase (recordings start at any time)."""
    return _driven_closed_form(x0, rng.uniform(0.0, 2 * np.pi, len(x0)), t, p)


def _driven_sample(rng, n, p):
    x, v = _harmonic(rng, n, np.sqrt(p["k"]), 0.25, 2.0)
    return np.stack([x, v], axis=-1)


DRIVEN_OSCILLATOR = System(
    name="driven-oscillator", names=("x", "v"), canonical=("q", "p"),
    params={"k": 2.0, "F": 1.0, "Omega": 0.9}, t_end=8.0, steps=120,
    rhs=None, sample=_driven_sample, generate=_driven_generate,
    invariants={"E": "0.5*v**2 + 0.5*k*x**2"}, checked=(), conserved=(),
    description="harmonic oscillator (k = 2) driven by F cos(Omega t + phase), F = 1, "
                "Omega = 0.9, a random phase per trajectory, free energy 0.25-2; solved in "
                "closed form; 0 invariants: an explicitly time-dependent force leaves no "
                "time-independent invariant of (x, v) (a negative control; E is the candidate)",
)


def _random_walk_generate(rng, x0, t, p):
    steps = p["sigma"] * np.sqrt(np.diff(t))[None, :, None] * rng.standard_normal(
        (len(x0), len(t) - 1, x0.shape[1]))
    return x0[:, None, :] + np.concatenate([np.zeros_like(x0[:, None]), np.cumsum(steps, 1)], 1)


RANDOM_WALK = System(
    name="random-walk", names=("x", "y"), canonical=None,
    params={"sigma": 0.5}, t_end=5.0, steps=100,
    rhs=None, sample=lambda rng, n, p: rng.uniform(-1.0, 1.0, (n, 2)),
    generate=_random_walk_generate,
    invariants={"R2": "x**2 + y**2", "x": "x"}, checked=(), conserved=(),
    description="2-D Gaussian random walk, increments N(0, sigma^2 dt) per step, sigma = 0.5, "
                "start uniform in [-1, 1]^2; 0 invariants: not even a deterministic motion "
                "(a negative control; x^2 + y^2 and x are candidates)",
)

BENCHMARK_SYSTEMS = (QUARTIC, OSCILLATOR_1TO1, OSCILLATOR_1TO2, OSCILLATOR_IRRATIONAL,
                     COUPLED_OSCILLATORS, LOTKA_VOLTERRA_2, LOTKA_VOLTERRA_3, LOTKA_VOLTERRA_4,
                     DOUBLE_PENDULUM, HENON_HEILES, THREE_BODY, MAGNETIC, MORSE, TODA,
                     DAMPED_PENDULUM, DRIVEN_OSCILLATOR, RANDOM_WALK)
