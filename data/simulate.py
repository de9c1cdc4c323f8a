"""Physics simulators: write one trajectory file per system.

    python data/simulate.py                                   # projectile, spring, orbit
    python data/simulate.py --systems pendulum two-body --n-traj 500
    python data/simulate.py --systems spring --noise 0.01     # -> data/spring-noise0.01.npz

Every system is one entry of SYSTEMS (state names, parameters, right-hand side, sampler of
initial states, and the ground-truth invariants that only evaluate.py and the tests read).
All trajectories of a system are solved by one scipy RK45 call on the stacked state; the
trajectories whose own invariants drift more than the tolerance are solved again one at a
time with tighter tolerances, so every trajectory meets it (see bench/bench_simulate.py).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

try:
    from threadpoolctl import threadpool_limits  # installed with scikit-learn
except ImportError:  # pragma: no cover
    threadpool_limits = None

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.loader import BUILTIN_SYSTEMS, DEFAULT_SYSTEMS, default_split  # noqa: E402
from utils import (DATA_DIR, atomic_write_npz, cli, fail, require_known,  # noqa: E402
                   seed_everything)

Array = np.ndarray
DRIFT_TOL = 1e-8
RTOL, ATOL = 1e-10, 1e-12          # stacked solve
RTOL_RETRY, ATOL_RETRY = 1e-12, 1e-14  # per-trajectory re-solve


@dataclass(frozen=True)
class System:
    """One physical system. Functions take states of shape (..., D) and the params dict.

    invariants: name -> H(states, params) of shape (...,); the first one is the energy.
    checked: invariants whose per-trajectory relative drift must stay below DRIFT_TOL.
    exact: closed-form solution (x0 (N, D), t (T,), params) -> (N, T, D), where one exists.
    """

    name: str
    names: tuple[str, ...]
    canonical: tuple[str, ...]
    params: dict
    t_end: float
    steps: int
    rhs: Callable[[Array, dict], Array]
    sample: Callable[[np.random.Generator, int, dict], Array]
    invariants: dict[str, Callable[[Array, dict], Array]]
    checked: tuple[str, ...]
    conserved: tuple[str, ...]
    description: str
    exact: Callable[[Array, Array, dict], Array] | None = None
    latex: dict = field(default_factory=dict)


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
    invariants={
        "E": lambda s, p: 0.5 * (s[..., 2]**2 + s[..., 3]**2) + p["g"] * s[..., 1],
        "px": lambda s, p: s[..., 2],
        "x + vx*vy/g": lambda s, p: s[..., 0] + s[..., 2] * s[..., 3] / p["g"],
    },
    checked=("E",), conserved=("E", "px", "x + vx*vy/g"),
    description="point mass under uniform gravity g = 9.81 (m = 1), launched at 5-15 m/s, "
                "20-70 degrees, from x in [-1, 1], y in [0, 2]; no ground",
    exact=_projectile_exact,
    latex={"E": r"\tfrac12(v_x^2+v_y^2)+g\,y", "px": r"v_x",
           "x + vx*vy/g": r"x + v_x v_y/g"},
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


def _spring_energy(s, p):
    return 0.5 * s[..., 1]**2 / p["m"] + 0.5 * p["k"] * s[..., 0]**2


SPRING = System(
    name="spring", names=("x", "v"), canonical=("q", "p"),
    params={"k": 5.0, "m": 1.0}, t_end=6.0, steps=100,
    rhs=_spring_rhs, sample=_spring_sample,
    invariants={"E": _spring_energy}, checked=("E",), conserved=("E",),
    description="1-D harmonic oscillator, k = 5, m = 1 (period 2.81 s), amplitude 0.5-2",
    exact=_spring_exact, latex={"E": r"\tfrac12 v^2 + \tfrac12 k x^2"},
)

DAMPED_SPRING = System(
    name="damped-spring", names=("x", "v"), canonical=("q", "p"),
    params={"k": 5.0, "m": 1.0, "c": 0.3}, t_end=6.0, steps=100,
    rhs=_spring_rhs, sample=_spring_sample,
    invariants={"E": _spring_energy}, checked=(), conserved=(),
    description="the spring with linear damping c = 0.3: nothing is conserved (a negative "
                "control for discovery)",
    exact=_damped_spring_exact, latex={"E": r"\tfrac12 v^2 + \tfrac12 k x^2"},
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


def _runge_lenz(s, p):
    x, y, vx, vy = np.moveaxis(s, -1, 0)
    L = x * vy - y * vx
    r = np.hypot(x, y)
    return vy * L - p["GM"] * x / r, -vx * L - p["GM"] * y / r


ORBIT = System(
    name="orbit", names=("x", "y", "vx", "vy"), canonical=("q", "q", "p", "p"),
    params={"GM": 1.0, "m": 1.0}, t_end=6.0, steps=100,
    rhs=_orbit_rhs, sample=_orbit_sample,
    invariants={
        "E": lambda s, p: 0.5 * (s[..., 2]**2 + s[..., 3]**2) - p["GM"] / np.hypot(s[..., 0], s[..., 1]),
        "L": lambda s, p: s[..., 0] * s[..., 3] - s[..., 1] * s[..., 2],
        "A_angle": lambda s, p: np.arctan2(*_runge_lenz(s, p)[::-1]),
        "A_x": lambda s, p: _runge_lenz(s, p)[0],
        "A_y": lambda s, p: _runge_lenz(s, p)[1],
    },
    checked=("E", "L"), conserved=("E", "L", "A_angle", "A_x", "A_y"),
    description="Kepler problem, GM = 1, m = 1: bound ellipses with a in [0.8, 1.5], "
                "e in [0, 0.5], random orientation, phase and sense of rotation",
    latex={"E": r"\tfrac12(v_x^2+v_y^2) - GM/r", "L": r"x v_y - y v_x",
           "A_angle": r"\arg\vec A", "A_x": r"A_x", "A_y": r"A_y"},
)


# ---------------------------------------------------------------------------- pendulum (HNN paper)

def _pendulum_rhs(s, p):
    q, mom = s[..., 0], s[..., 1]
    m, g, l = p["m"], p["g"], p["l"]
    return np.stack([l**2 * mom / m, -2 * m * g * l * np.sin(q)], axis=-1)


def _pendulum_energy(s, p):
    m, g, l = p["m"], p["g"], p["l"]
    return 2 * m * g * l * (1 - np.cos(s[..., 0])) + l**2 * s[..., 1]**2 / (2 * m)


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
    invariants={"E": _pendulum_energy}, checked=("E",), conserved=("E",),
    description="the Hamiltonian-NN paper's ideal pendulum, H = 2mgl(1 - cos q) + l^2 p^2/(2m), "
                "m = l = 1, g = 3; energies 1-10 (librations)",
    latex={"E": r"2mgl(1-\cos q) + \tfrac{l^2 p^2}{2m}"},
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


def _two_body_energy(s, p):
    q1, q2, p1, p2 = s[..., 0:2], s[..., 2:4], s[..., 4:6], s[..., 6:8]
    kinetic = (p1**2).sum(-1) / (2 * p["m1"]) + (p2**2).sum(-1) / (2 * p["m2"])
    return kinetic - p["G"] * p["m1"] * p["m2"] / np.linalg.norm(q2 - q1, axis=-1)


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


def _ang_mom(s):
    return (s[..., 0] * s[..., 5] - s[..., 1] * s[..., 4]) + (s[..., 2] * s[..., 7] - s[..., 3] * s[..., 6])


TWO_BODY = System(
    name="two-body", names=("x1", "y1", "x2", "y2", "px1", "py1", "px2", "py2"),
    canonical=("q", "q", "q", "q", "p", "p", "p", "p"),
    params={"m1": 1.0, "m2": 1.0, "G": 1.0, "orbit_noise": 0.05}, t_end=5.0, steps=100,
    rhs=_two_body_rhs, sample=_two_body_sample,
    invariants={"E": _two_body_energy,
                "Px": lambda s, p: s[..., 4] + s[..., 6],
                "Py": lambda s, p: s[..., 5] + s[..., 7],
                "L": lambda s, p: _ang_mom(s)},
    checked=("E", "L"), conserved=("E", "Px", "Py", "L"),
    description="the Hamiltonian-NN paper's two-body problem, m1 = m2 = G = 1, separation "
                "0.5-1.5, near-circular (5 % velocity noise), zero total momentum",
    latex={"E": r"\sum_i \tfrac{|p_i|^2}{2m_i} - \tfrac{G m_1 m_2}{|q_1-q_2|}",
           "Px": r"p_{x1}+p_{x2}", "Py": r"p_{y1}+p_{y2}", "L": r"\sum_i q_i\times p_i"},
)

SYSTEMS: dict[str, System] = {s.name: s for s in
                              (PROJECTILE, SPRING, ORBIT, PENDULUM, TWO_BODY, DAMPED_SPRING)}
assert tuple(SYSTEMS) == BUILTIN_SYSTEMS, "data/loader.py BUILTIN_SYSTEMS is out of date"


# ---------------------------------------------------------------------------- integration

def relative_drift(system: System, states: Array, params: dict | None = None) -> dict[str, Array]:
    """max_t |I(t) - I(0)| / |I(0)| per trajectory for every checked invariant; (N,) each."""
    params = system.params if params is None else params
    out = {}
    for name in system.checked:
        values = system.invariants[name](states, params)
        out[name] = np.max(np.abs(values - values[:, :1]), axis=1) / np.abs(values[:, 0])
    return out


def integrate(system: System, x0: Array, t: Array, params: dict | None = None,
              stacked: bool = True) -> tuple[Array, dict]:
    """Solve all trajectories from x0 (N, D) at times t (T,) -> (states (N, T, D), info).

    stacked=True: one RK45 call on the (N*D,) state, then a per-trajectory re-solve of any
    trajectory whose checked invariants drift above DRIFT_TOL. stacked=False: one call per
    trajectory (the reference for bench/).
    """
    params = system.params if params is None else params
    n, d = x0.shape

    def solve(block: Array, rtol: float, atol: float) -> Array:
        k = block.shape[0]
        # Variable-major layout (D, k): each variable of all k trajectories is one contiguous
        # row, so the rhs's per-variable arithmetic runs on contiguous memory.
        fun = lambda _t, y: system.rhs(y.reshape(d, k).T, params).T.ravel()
        sol = solve_ivp(fun, (t[0], t[-1]), block.T.ravel(), method="RK45", t_eval=t,
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"{system.name}: RK45 failed ({sol.message})")
        # (k, T, D) view of the (D, k, T) solution: each variable stays contiguous, which
        # halves the cost of evaluating the invariants on it (the projectile's main cost)
        return sol.y.reshape(d, k, len(t)).transpose(1, 2, 0)

    info = {"method": "RK45", "rtol": RTOL, "atol": ATOL, "retry_rtol": RTOL_RETRY,
            "retry_atol": ATOL_RETRY, "drift_tol": DRIFT_TOL, "stacked": stacked, "resolved": 0}
    with _single_blas_thread():
        if not stacked:
            return np.stack([solve(x0[i:i + 1], RTOL, ATOL)[0] for i in range(n)]), info
        states = solve(x0, RTOL, ATOL)
        if system.checked:
            drift = relative_drift(system, states, params)
            bad = np.flatnonzero(np.max(np.stack(list(drift.values())), axis=0) > DRIFT_TOL)
            for i in bad:
                states[i] = solve(x0[i:i + 1], RTOL_RETRY, ATOL_RETRY)[0]
            info["resolved"] = int(len(bad))
    return states, info


def _single_blas_thread():
    """RK45 takes a (n_stages, N*D) BLAS product every step: far too small to share between
    threads, and on a busy 2-core machine OpenBLAS's threads made the stacked two-body solve
    10-30x slower (0.4 s -> 4-18 s); one thread was as fast on an idle machine."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def simulate(name: str, n_traj: int = 2000, steps: int | None = None, noise: float = 0.0,
             seed: int = 0, params: dict | None = None, stacked: bool = True) -> dict:
    """Simulate one system; returns the arrays of its trajectory file (see data/README.md)."""
    system = SYSTEMS[name]
    params = {**system.params, **(params or {})}
    steps = steps or system.steps
    rng = np.random.default_rng(seed)
    x0 = system.sample(rng, n_traj, params)
    # The split is drawn before the noise, so a noisy file has the same trajectories and the
    # same split as the clean one made with the same seed.
    split = default_split(n_traj, rng)
    t = np.linspace(0.0, system.t_end, steps)
    # No wall time goes into the file: the same seed must give the same bytes.
    clean, info = integrate(system, x0, t, params, stacked=stacked)
    drift = relative_drift(system, clean, params)
    worst = {k: float(v.max()) for k, v in drift.items()}
    if any(v > DRIFT_TOL for v in worst.values()):
        raise RuntimeError(f"{name}: invariant drift {worst} exceeds {DRIFT_TOL} after re-solve")
    observed = clean
    if noise > 0:
        spread = clean.reshape(-1, clean.shape[-1]).std(axis=0)
        observed = clean + noise * spread * rng.standard_normal(clean.shape)
    invariant_names = list(system.invariants)
    meta = {"system": name, "n_traj": n_traj, "steps": steps, "t_end": system.t_end,
            "dt": float(t[1] - t[0]), "noise": noise, "noise_kind": "gaussian, relative to "
            "each variable's standard deviation", "seed": seed, "solver": info}
    truth_meta = {"params": params, "description": system.description,
                  "conserved": list(system.conserved), "latex": system.latex}
    arrays = {
        "states": observed, "t": t, "names": np.array(system.names),
        "canonical": np.array(system.canonical), "split": split,
        "meta": np.array(json.dumps(meta)),
        "truth_meta": np.array(json.dumps(truth_meta)),
        "truth_invariant_names": np.array(invariant_names),
        "truth_invariants": np.stack([system.invariants[k](clean, params)
                                      for k in invariant_names], axis=-1),
        "truth_drift_names": np.array(list(drift)) if drift else np.array([], dtype="<U1"),
        "truth_drift": (np.stack(list(drift.values()), axis=-1) if drift
                        else np.zeros((n_traj, 0))),
    }
    if noise > 0:
        arrays["truth_clean_states"] = clean
    return arrays


def output_path(out: Path, name: str, noise: float) -> Path:
    return out / (f"{name}-noise{noise:g}.npz" if noise > 0 else f"{name}.npz")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (UsageError -> exit 2), not usage + error."""

    def error(self, message: str):
        fail(f"{message} (see --help)")


def parse_args(argv=None) -> argparse.Namespace:
    ap = _Parser(description=__doc__.split("\n\n")[0],
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=list(DEFAULT_SYSTEMS),
                    help=f"systems to simulate (known: {', '.join(SYSTEMS)})")
    ap.add_argument("--n-traj", type=int, default=2000, help="trajectories per system")
    ap.add_argument("--steps", type=int, default=None,
                    help="time steps per trajectory (default: per system, see data/README.md)")
    ap.add_argument("--noise", type=float, default=0.0,
                    help="Gaussian observation noise, relative to each variable's spread")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    require_known(args.systems, SYSTEMS, "system(s)")
    if args.n_traj < 2:
        fail(f"--n-traj must be at least 2, got {args.n_traj}")
    if args.steps is not None and args.steps < 3:
        fail(f"--steps must be at least 3, got {args.steps}")
    if args.seed < 0:
        fail(f"--seed must be a non-negative integer, got {args.seed}")
    if not (0.0 <= args.noise < 1.0):
        fail(f"--noise must be in [0, 1), got {args.noise}")
    if args.out.exists() and not args.out.is_dir():
        fail(f"--out {args.out} exists and is not a folder")
    seed_everything(args.seed)
    for name in args.systems:
        # Each system draws from its own Generator(seed): adding a system to the command
        # never changes another system's data.
        start = time.perf_counter()
        arrays = simulate(name, args.n_traj, args.steps, args.noise, args.seed)
        seconds = time.perf_counter() - start
        path = output_path(args.out, name, args.noise)
        try:
            atomic_write_npz(path, **arrays)
        except OSError as err:  # the old file, if any, is left as it was
            fail(f"cannot write {path}: {err.strerror or err}")
        meta = json.loads(str(arrays["meta"]))
        drift = arrays["truth_drift"]
        worst = f"{drift.max():.1e}" if drift.size else "n/a"
        if not args.quiet:
            print(f"{name:>13}: {arrays['states'].shape[0]} trajectories x {meta['steps']} steps, "
                  f"dt={meta['dt']:.4f}, {seconds:.2f}s, worst drift {worst}, "
                  f"re-solved {meta['solver']['resolved']} -> {path}")


if __name__ == "__main__":
    sys.exit(cli(main)())
