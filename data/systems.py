"""The physical systems: one registry entry each (state, parameters, right-hand side, sampler of
initial states, and the ground-truth invariants).

Each invariant is written once, as a sympy string in the state variables and the parameters;
its numpy function (`System.invariant_fn`), its text with the parameters filled in
(`System.invariant_text`, what evaluation compares discovered laws with) and its LaTeX are
derived from that string. Only data/simulate.py, the evaluation code, the paper experiments and
the tests import this module; train.py and discover.py never do.

A new system is one `System(...)` entry added to CORE_SYSTEMS (here, or to the list in
data/benchmark_systems.py for the discovery benchmark's systems), plus its name in the
matching list of data/loader.py, which must not import this module (simulate.py asserts that
the two agree).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from utils import parse_expression

Array = np.ndarray


@dataclass(frozen=True)
class System:
    """One physical system. rhs and sample take/return states of shape (..., D).

    invariants: name -> sympy string in `names` and `params` keys; the energy first when the
    system has one. checked: invariants whose per-trajectory relative drift must stay below the
    simulator's tolerance. conserved: what the system really conserves (the damped spring's
    energy is listed in invariants but not here). exact: closed-form solution
    (x0 (N, D), t (T,), params) -> (N, T, D), where one exists. canonical: "q"/"p" per
    variable, or None for a system without canonical coordinates. generate: for motion that
    is not the solution of an autonomous ODE in the state (a random walk, an explicitly
    time-dependent force), (rng, x0 (N, D), t (T,), params) -> states (N, T, D) drawn in place
    of the RK45 solve; rhs is then None.
    """

    name: str
    names: tuple[str, ...]
    canonical: tuple[str, ...] | None
    params: dict
    t_end: float
    steps: int
    rhs: Callable[[Array, dict], Array] | None
    sample: Callable[[np.random.Generator, int, dict], Array]
    invariants: dict[str, str]
    checked: tuple[str, ...]
    conserved: tuple[str, ...]
    description: str
    exact: Callable[[Array, Array, dict], Array] | None = None
    generate: Callable[[np.random.Generator, Array, Array, dict], Array] | None = None

    def invariant_expr(self, name: str, params: dict | None = None):
        """The sympy expression of invariant `name` in the state symbols (real), with the
        parameters substituted (this system's own unless `params` is given)."""
        return _expression(self.names, self.invariants[name],
                           _frozen({**self.params, **(params or {})}))

    def invariant_text(self, name: str, params: dict | None = None) -> str:
        import sympy as sp

        return sp.sstr(self.invariant_expr(name, params))

    def invariant_fn(self, name: str, params: dict | None = None) -> Callable[[Array], Array]:
        """Numpy function of states (..., D) -> (...)."""
        return _function(self.names, self.invariants[name],
                         _frozen({**self.params, **(params or {})}))

    def invariant_values(self, states: Array, params: dict | None = None,
                         names: tuple[str, ...] | None = None) -> Array:
        """Invariants `names` (default all) of states (..., D) -> (..., K)."""
        names = names or tuple(self.invariants)
        return np.stack([self.invariant_fn(n, params)(states) for n in names], axis=-1)

    def invariant_latex(self, name: str) -> str:
        """LaTeX of the invariant with its parameters as symbols."""
        import sympy as sp

        symbols = {n: sp.Symbol(n, real=True) for n in (*self.names, *self.params)}
        return sp.latex(parse_expression(self.invariants[name], symbols))


def _frozen(params: dict) -> tuple:
    return tuple(sorted((k, float(v)) for k, v in params.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)))


@functools.lru_cache(maxsize=512)
def _expression(names: tuple[str, ...], text: str, params: tuple):
    import sympy as sp

    symbols = {n: sp.Symbol(n, real=True) for n in names}
    values = dict(params)
    symbols.update({k: sp.Float(v) if v != int(v) else sp.Integer(int(v))
                    for k, v in values.items() if k not in symbols})
    return parse_expression(text, symbols)


@functools.lru_cache(maxsize=512)
def _function(names: tuple[str, ...], text: str, params: tuple) -> Callable[[Array], Array]:
    import sympy as sp

    expr = _expression(names, text, params)
    fn = sp.lambdify([sp.Symbol(n, real=True) for n in names], expr, "numpy")

    def evaluate(states: Array) -> Array:
        states = np.asarray(states, dtype=np.float64)
        out = fn(*np.moveaxis(states, -1, 0))
        return np.broadcast_to(np.asarray(out, dtype=np.float64), states.shape[:-1])

    return evaluate


# ---------------------------------------------------------------------------- projectile

def _projectile_rhs(s, p):
    x, y, vx, vy = np.moveaxis(s, -1, 0)
    return np.stack([vx, vy, np.zeros_like(vx), np.full_like(vy, -p["g"])], axis=-1)


def _projectile_sample(rng, n, p):
    speed = rng.uniform(5.0, 15.0, n)
    angle = rng.uniform(np.radians(20), np.radians(70), n)
    x0 = rng.uniform(-1.0, 1.0, n)
    y0 = rng.uniform(0.0, 2.0, n)
    return np.stack([x0, y0, speed * np.cos(angle), speed * np.sin(angle)], axis=-1)


def _projectile_exact(s0, t, p):
    x0, y0, vx0, vy0 = (s0[:, i, None] for i in range(4))
    return np.stack([x0 + vx0 * t, y0 + vy0 * t - 0.5 * p["g"] * t**2,
                     np.broadcast_to(vx0, (len(s0), len(t))), vy0 - p["g"] * t], axis=-1)


PROJECTILE = System(
    name="projectile", names=("x", "y", "vx", "vy"), canonical=("q", "q", "p", "p"),
    params={"g": 9.81, "m": 1.0}, t_end=2.0, steps=100,
    rhs=_projectile_rhs, sample=_projectile_sample,
    invariants={"E": "0.5*vx**2 + 0.5*vy**2 + g*y", "px": "vx",
                "x + vx*vy/g": "x + vx*vy/g"},
    checked=("E",), conserved=("E", "px", "x + vx*vy/g"),
    description="point mass under uniform gravity g = 9.81 (m = 1), launched at 5-15 m/s, "
                "20-70 degrees, from x in [-1, 1], y in [0, 2]; no ground",
    exact=_projectile_exact,
)


# ---------------------------------------------------------------------------- spring

def _spring_rhs(s, p):
    x, v = s[..., 0], s[..., 1]
    return np.stack([v / p["m"], -p["k"] * x - p.get("c", 0.0) * v / p["m"]], axis=-1)


def _spring_sample(rng, n, p):
    amplitude = rng.uniform(0.5, 2.0, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    omega = np.sqrt(p["k"] / p["m"])
    return np.stack([amplitude * np.cos(phase), -amplitude * omega * np.sin(phase)], axis=-1)


def _spring_exact(s0, t, p):
    omega = np.sqrt(p["k"] / p["m"])
    x0, v0 = s0[:, 0, None], s0[:, 1, None]
    x = x0 * np.cos(omega * t) + v0 / omega * np.sin(omega * t)
    v = -x0 * omega * np.sin(omega * t) + v0 * np.cos(omega * t)
    return np.stack([x, v], axis=-1)


def _damped_spring_exact(s0, t, p):
    """Under-damped m x'' + c x' + k x = 0 with v = m x' (the spring when c = 0)."""
    m, gamma = p["m"], p.get("c", 0.0) / (2 * p["m"])
    omega0_sq = p["k"] / m
    omega = np.sqrt(omega0_sq - gamma**2)
    x0, xdot0 = s0[:, 0, None], s0[:, 1, None] / m
    decay, cos, sin = np.exp(-gamma * t), np.cos(omega * t), np.sin(omega * t)
    x = decay * (x0 * cos + (xdot0 + gamma * x0) / omega * sin)
    xdot = decay * (xdot0 * cos - (omega0_sq * x0 + gamma * xdot0) / omega * sin)
    return np.stack([x, m * xdot], axis=-1)


SPRING_ENERGY = "0.5*v**2/m + 0.5*k*x**2"

SPRING = System(
    name="spring", names=("x", "v"), canonical=("q", "p"),
    params={"k": 5.0, "m": 1.0}, t_end=6.0, steps=100,
    rhs=_spring_rhs, sample=_spring_sample,
    invariants={"E": SPRING_ENERGY}, checked=("E",), conserved=("E",),
    description="1-D harmonic oscillator, k = 5, m = 1 (period 2.81 s), amplitude 0.5-2",
    exact=_spring_exact,
)

DAMPED_SPRING = System(
    name="damped-spring", names=("x", "v"), canonical=("q", "p"),
    params={"k": 5.0, "m": 1.0, "c": 0.3}, t_end=6.0, steps=100,
    rhs=_spring_rhs, sample=_spring_sample,
    invariants={"E": SPRING_ENERGY}, checked=(), conserved=(),
    description="the spring with linear damping c = 0.3: nothing is conserved (a negative "
                "control for discovery)",
    exact=_damped_spring_exact,
)


# ---------------------------------------------------------------------------- Kepler orbit

def _orbit_rhs(s, p):
    x, y, vx, vy = np.moveaxis(s, -1, 0)
    r2 = x * x + y * y
    c = -p["GM"] / (r2 * np.sqrt(r2))       # sqrt is several times cheaper than ** 1.5
    return np.stack([vx, vy, c * x, c * y], axis=-1)


def _orbit_sample(rng, n, p):
    """Bound ellipses: semi-major axis a, eccentricity e, random orientation, phase and sense."""
    a = rng.uniform(0.8, 1.5, n)
    e = rng.uniform(0.0, 0.5, n)
    nu = rng.uniform(0, 2 * np.pi, n)          # true anomaly
    w = rng.uniform(0, 2 * np.pi, n)           # argument of periapsis
    sense = rng.choice([-1.0, 1.0], n)
    semi_latus = a * (1 - e**2)
    r = semi_latus / (1 + e * np.cos(nu))
    h = np.sqrt(p["GM"] / semi_latus)
    v_r, v_t = h * e * np.sin(nu), h * (1 + e * np.cos(nu))
    theta = nu + w
    x, y = r * np.cos(theta), r * np.sin(theta)
    vx = v_r * np.cos(theta) - v_t * np.sin(theta)
    vy = v_r * np.sin(theta) + v_t * np.cos(theta)
    return np.stack([x, sense * y, vx, sense * vy], axis=-1)


_LRL_X = "vy*(x*vy - y*vx) - GM*x/sqrt(x**2 + y**2)"
_LRL_Y = "-vx*(x*vy - y*vx) - GM*y/sqrt(x**2 + y**2)"

ORBIT = System(
    name="orbit", names=("x", "y", "vx", "vy"), canonical=("q", "q", "p", "p"),
    params={"GM": 1.0, "m": 1.0}, t_end=6.0, steps=100,
    rhs=_orbit_rhs, sample=_orbit_sample,
    invariants={"E": "0.5*vx**2 + 0.5*vy**2 - GM/sqrt(x**2 + y**2)", "L": "x*vy - y*vx",
                "A_angle": f"atan2({_LRL_Y}, {_LRL_X})", "A_x": _LRL_X, "A_y": _LRL_Y},
    checked=("E", "L"), conserved=("E", "L", "A_angle", "A_x", "A_y"),
    description="Kepler problem, GM = 1, m = 1: bound ellipses with a in [0.8, 1.5], "
                "e in [0, 0.5], random orientation, phase and sense of rotation",
)


# ---------------------------------------------------------------------------- pendulum (HNN paper)

def _pendulum_rhs(s, p):
    q, mom = s[..., 0], s[..., 1]
    m, g, l = p["m"], p["g"], p["l"]
    return np.stack([l**2 * mom / m, -2 * m * g * l * np.sin(q)], axis=-1)


def _pendulum_sample(rng, n, p):
    """Energies uniform in [1, 10] (below the separatrix at 4mgl = 12), random phase."""
    m, g, l = p["m"], p["g"], p["l"]
    energy = rng.uniform(1.0, 10.0, n)
    q_max = np.arccos(1 - energy / (2 * m * g * l))
    q0 = rng.uniform(-1, 1, n) * q_max
    kinetic = np.clip(energy - 2 * m * g * l * (1 - np.cos(q0)), 0, None)
    p0 = rng.choice([-1.0, 1.0], n) * np.sqrt(2 * m * kinetic) / l
    return np.stack([q0, p0], axis=-1)


PENDULUM = System(
    name="pendulum", names=("q", "p"), canonical=("q", "p"),
    params={"m": 1.0, "g": 3.0, "l": 1.0}, t_end=6.0, steps=100,
    rhs=_pendulum_rhs, sample=_pendulum_sample,
    invariants={"E": "2*m*g*l*(1 - cos(q)) + l**2*p**2/(2*m)"},
    checked=("E",), conserved=("E",),
    description="the Hamiltonian-NN paper's ideal pendulum, H = 2mgl(1 - cos q) + l^2 p^2/(2m), "
                "m = l = 1, g = 3; energies 1-10 (librations)",
)


# ---------------------------------------------------------------------------- two-body (HNN paper)

def _two_body_rhs(s, p):
    # Column by column: on the stacked state this is ~3x faster than (.., 2)-vector slices
    # with a keepdims sum and ** 1.5, and the rhs dominates the stacked solve's time.
    x1, y1, x2, y2, px1, py1, px2, py2 = np.moveaxis(s, -1, 0)
    m1, m2 = p["m1"], p["m2"]
    dx, dy = x2 - x1, y2 - y1
    r2 = dx * dx + dy * dy
    c = p["G"] * m1 * m2 / (r2 * np.sqrt(r2))
    fx, fy = c * dx, c * dy                 # force on body 1
    return np.stack([px1 / m1, py1 / m1, px2 / m2, py2 / m2, fx, fy, -fx, -fy], axis=-1)


def _two_body_sample(rng, n, p):
    """Near-circular orbits about a centre of mass at 0, zero total momentum (paper's recipe:
    circular velocities, then Gaussian noise of `orbit_noise` relative size)."""
    m1, m2, G = p["m1"], p["m2"], p["G"]
    d = rng.uniform(0.5, 1.5, n)
    theta = rng.uniform(0, 2 * np.pi, n)
    u = np.stack([np.cos(theta), np.sin(theta)], -1)
    q1 = -m2 / (m1 + m2) * d[:, None] * u
    q2 = m1 / (m1 + m2) * d[:, None] * u
    v_rel = np.sqrt(G * (m1 + m2) / d)                # circular relative speed
    perp = np.stack([-u[:, 1], u[:, 0]], -1)
    mu = m1 * m2 / (m1 + m2)
    p1 = -mu * v_rel[:, None] * perp
    p1 = p1 * (1 + p["orbit_noise"] * rng.standard_normal((n, 2)))
    return np.concatenate([q1, q2, p1, -p1], axis=-1)


TWO_BODY = System(
    name="two-body", names=("x1", "y1", "x2", "y2", "px1", "py1", "px2", "py2"),
    canonical=("q", "q", "q", "q", "p", "p", "p", "p"),
    params={"m1": 1.0, "m2": 1.0, "G": 1.0, "orbit_noise": 0.05}, t_end=5.0, steps=100,
    rhs=_two_body_rhs, sample=_two_body_sample,
    invariants={"E": "(px1**2 + py1**2)/(2*m1) + (px2**2 + py2**2)/(2*m2)"
                     " - G*m1*m2/sqrt((x2 - x1)**2 + (y2 - y1)**2)",
                "Px": "px1 + px2", "Py": "py1 + py2",
                "L": "x1*py1 - y1*px1 + x2*py2 - y2*px2"},
    checked=("E", "L"), conserved=("E", "Px", "Py", "L"),
    description="the Hamiltonian-NN paper's two-body problem, m1 = m2 = G = 1, separation "
                "0.5-1.5, near-circular (5 % velocity noise), zero total momentum",
)

CORE_SYSTEMS = (PROJECTILE, SPRING, ORBIT, PENDULUM, TWO_BODY, DAMPED_SPRING)
