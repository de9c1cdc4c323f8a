"""A realistic fake ``dashboard_data.js`` for the dashboard tests (format: dashboard/DATA.md).

Three systems, shaped like what ``evaluate.py`` writes:

* ``projectile`` -- 4-D (x, y, vx, vy), canonical q,q,p,p, with truth, a standard run that
  drifts in energy and a physics-aware run that keeps it; two conserved quantities found.
* ``spring`` -- 2-D (x, v), canonical q,p, with truth; the standard rollout spirals outwards.
* ``lab-pendulum`` -- user data without ground truth: ``has_truth`` false, no canonical labels,
  no standard run, every energy/drift/R^2/match value null.

``write_recording_csv`` writes a different thing: one real-looking recording (a damped pendulum
with measurement noise, in the long CSV format the loader reads) for the tests that run the real
train -> discover -> evaluate pipeline on a recording.

Pure Python (no numpy) so it runs anywhere. ``python tests/dashboard_fixture.py DIR`` writes
``DIR/dashboard_data.js`` for a quick look at the page without running the pipeline.
"""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

N_STEPS = 100
G = 9.81
K_SPRING, M_SPRING = 5.0, 1.0


def _r(v: float | None, digits: int = 6) -> float | None:
    """Round to `digits` significant digits (keeps the file small, like evaluate.py's output)."""
    if v is None:
        return None
    if v == 0 or not math.isfinite(v):
        return 0.0 if v == 0 else None
    return float(f"{v:.{digits}g}")


def _rows(states):
    return [[_r(v) for v in row] for row in states]


def _add_trajectory(trajectories, energies, tid, t, true, std, phys, energy):
    """One trajectory and its energies (true, standard, physics-aware), as DATA.md has them."""
    trajectories.append({"id": tid, "t": [_r(s) for s in t], "true": _rows(true),
                         "standard": _rows(std), "physics": _rows(phys)})
    energies.append({"id": tid, "t": [_r(s) for s in t],
                     "true": [_r(energy(s)) for s in true],
                     "standard": [_r(energy(s)) for s in std],
                     "physics": [_r(energy(s)) for s in phys]})


def _linspace(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * i / (n - 1) for i in range(n)]


def _pareto(rng: random.Random, candidates: list[tuple[int, str, str]], chosen: int,
            loss0: float, floor: float) -> list[dict]:
    """A decreasing loss along complexity, flattening at `floor` once the truth is found."""
    out = []
    loss = loss0
    for i, (complexity, expr, tex) in enumerate(candidates):
        if i > 0:
            loss = max(floor * rng.uniform(0.7, 1.0), loss * rng.uniform(0.02, 0.3)) if i <= chosen \
                else out[-1]["loss"] * rng.uniform(0.8, 0.97)
        out.append({"complexity": complexity, "loss": _r(loss), "expression": expr,
                    "latex": tex, "chosen": i == chosen})
    return out


# ------------------------------------------------------------------------- projectile (4-D)

def _projectile(rng: random.Random, n_traj: int) -> dict:
    t = _linspace(0.0, 2.0, N_STEPS)

    def energy(s):
        return 0.5 * (s[2] ** 2 + s[3] ** 2) + G * s[1]

    trajectories, energies = [], []
    for k in range(n_traj):
        speed, angle = rng.uniform(8, 13), math.radians(rng.uniform(35, 65))
        x0, y0 = rng.uniform(-1, 1), rng.uniform(0, 2)
        vx0, vy0 = speed * math.cos(angle), speed * math.sin(angle)
        true = [[x0 + vx0 * s, y0 + vy0 * s - 0.5 * G * s * s, vx0, vy0 - G * s] for s in t]
        # standard net: slightly wrong gravity and a slow loss of horizontal speed
        g_std, decay = G * rng.uniform(0.82, 0.88), rng.uniform(0.08, 0.15)
        std = []
        for s in t:
            vx = vx0 * math.exp(-decay * s)
            x = x0 + vx0 * (1 - math.exp(-decay * s)) / decay
            std.append([x + 0.01 * rng.gauss(0, 1), y0 + vy0 * s - 0.5 * g_std * s * s,
                        vx, vy0 - g_std * s])
        # physics-aware net: tiny, bounded error
        phys = [[a + 2e-3 * math.sin(3 * s + j) for j, a in enumerate(row)] for s, row in zip(t, true)]
        tid = 11 + 7 * k
        _add_trajectory(trajectories, energies, tid, t, true, std, phys, energy)

    n = 400
    e_vals, px_vals, pts = [], [], []
    for _ in range(n):
        e, px = rng.uniform(40, 110), rng.uniform(3, 9)
        a, b = (e - 75) / 20, (px - 6) / 2
        pts.append([_r(2.1 * a + 0.4 * b + 0.15 * rng.gauss(0, 1)),
                    _r(-0.3 * a + 1.2 * b + 0.15 * rng.gauss(0, 1))])
        e_vals.append(_r(e))
        px_vals.append(_r(px))
    e_disc = [_r(0.99995 * v + 0.02 * rng.gauss(0, 1)) for v in e_vals]

    eq_e = {"kind": "energy", "name": "E",
            "expression": "0.5*vx**2 + 0.5*vy**2 + 9.81*y",
            "latex": r"0.5 v_{x}^{2} + 0.5 v_{y}^{2} + 9.81 y",
            "complexity": 11, "r2": 0.999987, "conservation_ratio": 3.2e-7,
            "matched": "E", "structure_match": True,
            "pareto": _pareto(rng, [
                (1, "vy", "v_{y}"), (3, "vy**2", "v_{y}^{2}"),
                (5, "0.5*vy**2 + 9.8*y", r"0.5 v_{y}^{2} + 9.8 y"),
                (7, "0.5*vy**2 + 9.81*y + vx", r"0.5 v_{y}^{2} + 9.81 y + v_{x}"),
                (11, "0.5*vx**2 + 0.5*vy**2 + 9.81*y", r"0.5 v_{x}^{2} + 0.5 v_{y}^{2} + 9.81 y"),
                (15, "0.5*vx**2 + 0.5*vy**2 + 9.81*y + 1e-4*x",
                 r"0.5 v_{x}^{2} + 0.5 v_{y}^{2} + 9.81 y + 10^{-4} x")],
                chosen=4, loss0=2.3, floor=4e-7)}
    eq_px = {"kind": "invariant", "name": "p_x", "expression": "vx", "latex": "v_{x}",
             "complexity": 1, "r2": 1.0, "conservation_ratio": 1.1e-9, "matched": "px",
             "structure_match": True,
             "pareto": _pareto(rng, [(1, "vx", "v_{x}"), (3, "1.0*vx", r"1.0 v_{x}"),
                                     (5, "vx + 1e-5*y", r"v_{x} + 10^{-5} y")],
                               chosen=0, loss0=1e-9, floor=1e-10)}
    return {
        "variables": ["x", "y", "vx", "vy"], "canonical": ["q", "q", "p", "p"], "has_truth": True,
        "trajectories": trajectories, "energy": energies,
        "drift": {"standard": {"mean": 0.118, "max": 0.347}, "physics": {"mean": 0.0041, "max": 0.0112}},
        "latent": {"explained_variance": [0.6214, 0.2731, 0.0702, 0.0353],
                   "points": pts, "color_by": {"true energy": e_vals, "E (discovered)": e_disc,
                                               "px": px_vals}},
        "n_conserved": 2, "equations": [eq_e, eq_px],
    }


# ------------------------------------------------------------------------------ spring (2-D)

def _spring(rng: random.Random, n_traj: int) -> dict:
    t = _linspace(0.0, 6.0, N_STEPS)
    w = math.sqrt(K_SPRING / M_SPRING)

    def energy(s):
        return 0.5 * s[1] ** 2 / M_SPRING + 0.5 * K_SPRING * s[0] ** 2

    trajectories, energies = [], []
    for k in range(n_traj):
        amp, ph = rng.uniform(0.6, 1.8), rng.uniform(0, 2 * math.pi)
        true = [[amp * math.cos(w * s + ph), -amp * w * math.sin(w * s + ph)] for s in t]
        grow, dw = rng.uniform(0.05, 0.09), rng.uniform(0.03, 0.06)     # standard: spirals out
        std = [[amp * math.exp(grow * s) * math.cos((w + dw) * s + ph),   # same start as the truth
                -amp * math.exp(grow * s) * w * math.sin((w + dw) * s + ph)] for s in t]
        phys = [[amp * (1 + 1e-3 * math.sin(s)) * math.cos((w + 1e-3) * s + ph),
                 -amp * (1 + 1e-3 * math.sin(s)) * w * math.sin((w + 1e-3) * s + ph)] for s in t]
        tid = 3 + 5 * k
        _add_trajectory(trajectories, energies, tid, t, true, std, phys, energy)

    n = 300
    pts, e_vals, phase = [], [], []
    for _ in range(n):
        amp, ph = rng.uniform(0.5, 2.0), rng.uniform(-math.pi, math.pi)
        pts.append([_r(amp * math.cos(ph) + 0.03 * rng.gauss(0, 1)),
                    _r(0.8 * amp * math.sin(ph) + 0.03 * rng.gauss(0, 1))])
        e_vals.append(_r(0.5 * K_SPRING * amp * amp))
        phase.append(_r(ph))
    return {
        "variables": ["x", "v"], "canonical": ["q", "p"], "has_truth": True,
        "trajectories": trajectories, "energy": energies,
        "drift": {"standard": {"mean": 0.412, "max": 1.63}, "physics": {"mean": 0.0022, "max": 0.0061}},
        "latent": {"explained_variance": [0.552, 0.431, 0.017], "points": pts,
                   "color_by": {"true energy": e_vals, "phase": phase}},
        "n_conserved": 1,
        "equations": [{
            "kind": "energy", "name": "E", "expression": "0.5*v**2 + 2.5*x**2",
            "latex": r"0.5 v^{2} + 2.5 x^{2}", "complexity": 9, "r2": 0.999994,
            "conservation_ratio": 8.4e-8, "matched": "E", "structure_match": True,
            "pareto": _pareto(rng, [(1, "x", "x"), (3, "x**2", "x^{2}"),
                                    (5, "v**2 + x", "v^{2} + x"),
                                    (7, "v**2 + 5.0*x**2", r"v^{2} + 5.0 x^{2}"),
                                    (9, "0.5*v**2 + 2.5*x**2", r"0.5 v^{2} + 2.5 x^{2}"),
                                    (13, "0.5*v**2 + 2.5*x**2 - 1e-4*x*v",
                                     r"0.5 v^{2} + 2.5 x^{2} - 10^{-4} x v")],
                              chosen=4, loss0=1.9, floor=2e-7)}],
    }


# ------------------------------------------------------------- user data without ground truth

def _user_pendulum(rng: random.Random, n_traj: int) -> dict:
    t = _linspace(0.0, 5.0, N_STEPS)
    trajectories, energies = [], []
    for k in range(n_traj):
        th0, w = rng.uniform(0.3, 1.2), 3.1
        true = [[th0 * math.cos(w * s) + 0.01 * rng.gauss(0, 1),
                 -th0 * w * math.sin(w * s) + 0.03 * rng.gauss(0, 1)] for s in t]
        phys = [[th0 * math.cos(w * s), -th0 * w * math.sin(w * s)] for s in t]
        trajectories.append({"id": k, "t": [_r(s) for s in t], "true": _rows(true),
                             "standard": None, "physics": _rows(phys)})
        energies.append({"id": k, "t": [_r(s) for s in t], "true": None, "standard": None,
                         "physics": None})
    n = 200
    pts, e_disc = [], []
    for i in range(n):
        a = rng.uniform(-1, 1)
        pts.append([_r(a), _r(0.3 * rng.gauss(0, 1))])
        e_disc.append(None if i == 7 else _r(4.8 * a * a))
    return {
        "variables": ["theta", "omega"], "canonical": None, "has_truth": False,
        "trajectories": trajectories, "energy": energies,
        "drift": {"standard": None, "physics": None},
        "latent": {"explained_variance": [0.91, 0.09], "points": pts,
                   "color_by": {"E (discovered)": e_disc}},
        "n_conserved": 1,
        "equations": [{
            "kind": "latent", "name": "I_1", "expression": "0.5*omega**2 - 9.6*cos(theta)",
            "latex": r"0.5 \omega^{2} - 9.6 \cos{\left(\theta \right)}", "complexity": 8,
            "r2": None, "conservation_ratio": 2.7e-5, "matched": None, "structure_match": None,
            "pareto": _pareto(rng, [(1, "omega", r"\omega"), (3, "omega**2", r"\omega^{2}"),
                                    (6, "omega**2 + 9*theta**2", r"\omega^{2} + 9 \theta^{2}"),
                                    (8, "0.5*omega**2 - 9.6*cos(theta)",
                                     r"0.5 \omega^{2} - 9.6 \cos{\left(\theta \right)}")],
                              chosen=3, loss0=0.8, floor=3e-5)}],
    }


HNN_TABLE = [
    {"task": "spring", "model": "baseline", "train_loss": 0.0371, "test_loss": 0.0368,
     "energy_mse": 0.171, "energy_mse_std": 0.02, "reversibility": 4.1e-3, "wall_time": 9.4,
     "paper_energy_mse": 0.17},
    {"task": "spring", "model": "hnn", "train_loss": 0.0362, "test_loss": 0.0365,
     "energy_mse": 3.4e-4, "energy_mse_std": 1.1e-4, "reversibility": 1.2e-6, "wall_time": 10.2,
     "paper_energy_mse": 3.8e-4},
    {"task": "pendulum", "model": "baseline", "train_loss": 0.0332, "test_loss": 0.0349,
     "energy_mse": 0.0418, "energy_mse_std": 0.006, "reversibility": 2.9e-3, "wall_time": 9.9,
     "paper_energy_mse": 0.042},
    {"task": "pendulum", "model": "hnn", "train_loss": 0.0335, "test_loss": 0.0351,
     "energy_mse": 0.026, "energy_mse_std": None, "reversibility": 9.8e-7, "wall_time": 11.0,
     "paper_energy_mse": None},
]


HNN_PIXEL = {
    "ratios_by_horizon": {"euler": {"span": 2100.0, "200": 2700.0, "400": 3000.0},
                          "rk4": {"span": 1.6, "200": 3.1, "400": 18.5, "1000": 92.0}},
    "latent_discovery": [
        {"model": "baseline", "seed": 1, "n_conserved": 0, "kind": "approximate",
         "expression": "z0**2 + 0.91*z1**2 - 0.05*z0**4",
         "latex": "z_{0}^{2} + 0.91 z_{1}^{2} - 0.05 z_{0}^{4}",
         "mu": 8.1e3, "r2_true_energy": 0.9952},
        {"model": "hnn", "seed": 1, "n_conserved": 0, "kind": None, "expression": None,
         "latex": None, "mu": None, "r2_true_energy": None},
    ],
}


def _plain_fields(system: dict) -> dict:
    """The fields DATA.md gives every system and equation that these simulated, exactly
    conserving ones leave empty: not a recording, no decay, no uncertainty."""
    system.update(recording=False, recording_info=None, decay=None)
    for eq in system["equations"]:
        counted = eq["kind"] in ("energy", "invariant")
        eq.update(conservation_ratio_discover=eq["conservation_ratio"], counted=counted,
                  approximate=False, mu=0.9 if counted else None,
                  mu_threshold=1.85 if counted else None, reason=None,
                  source="library" if counted else None, uncertainty=None, decay=None)
    return system


def make_data(seed: int = 0, n_traj: int = 3, hnn: bool = True) -> dict:
    """The DASHBOARD_DATA dict (deterministic for a given seed)."""
    rng = random.Random(seed)
    systems = {"projectile": _projectile(rng, n_traj), "spring": _spring(rng, n_traj),
               "lab-pendulum": _user_pendulum(rng, 2)}
    return {
        "generated": "2026-11-23T18:00:00Z",
        "backend": "operon+sparse",
        "systems": {name: _plain_fields(system) for name, system in systems.items()},
        "hnn_table": [dict(row) for row in HNN_TABLE] if hnn else None,
        "hnn_pixel": dict(HNN_PIXEL) if hnn else None,
    }


# ------------------------------------------------------------------ a recording (for the pipeline)

# A pendulum recorded like the real one of Schmidt & Lipson (2009): angle and angular velocity
# at 6 frames per time unit, losing energy to friction: theta'' = -W2 sin(theta) - GAMMA theta'.
# Its energy H = omega^2/2 - W2 cos(theta) decays at dH/dt = -GAMMA omega^2.
W2, GAMMA = 2.47, 0.012
FRAME_DT, SUBSTEPS = 1.0 / 6.0, 8
NOISE = (0.005, 0.003)          # measurement noise of theta and omega


def damped_pendulum(frames: int, theta0: float = 1.3) -> tuple[list[float], list[list[float]]]:
    """(t, states) of the noise-free recording, RK4 with SUBSTEPS steps per frame."""
    def rhs(th, om):
        return om, -W2 * math.sin(th) - GAMMA * om

    h = FRAME_DT / SUBSTEPS
    th, om = theta0, 0.0
    t, states = [], []
    for k in range(frames):
        t.append(k * FRAME_DT)
        states.append([th, om])
        for _ in range(SUBSTEPS):
            a1, b1 = rhs(th, om)
            a2, b2 = rhs(th + 0.5 * h * a1, om + 0.5 * h * b1)
            a3, b3 = rhs(th + 0.5 * h * a2, om + 0.5 * h * b2)
            a4, b4 = rhs(th + h * a3, om + h * b3)
            th += h * (a1 + 2 * a2 + 2 * a3 + a4) / 6
            om += h * (b1 + 2 * b2 + 2 * b3 + b4) / 6
    return t, states


def write_recording_csv(path: str | Path, frames: int = 480, seed: int = 0) -> Path:
    """One damped-pendulum recording with measurement noise as the loader's long CSV
    (trajectory, t, theta:q, omega:p): a single trajectory, which the loader cuts into windows."""
    rng = random.Random(seed)
    t, states = damped_pendulum(frames)
    lines = ["trajectory,t,theta:q,omega:p"]
    for tt, (th, om) in zip(t, states):
        lines.append(f"0,{tt!r},{th + rng.gauss(0, NOISE[0])!r},{om + rng.gauss(0, NOISE[1])!r}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_data_js(folder: str | Path, data: object) -> Path:
    """Write `data` as ``folder/dashboard_data.js`` (``window.DASHBOARD_DATA = {...};``)."""
    path = Path(folder) / "dashboard_data.js"
    path.write_text("window.DASHBOARD_DATA = " + json.dumps(data, allow_nan=False,
                                                           separators=(",", ":")) + ";\n",
                    encoding="utf-8")
    return path


def write_fixture(folder: str | Path, **kwargs) -> dict:
    """Write a realistic fake ``dashboard_data.js`` into `folder`; returns the data written."""
    data = make_data(**kwargs)
    write_data_js(folder, data)
    return data


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/dashboard_fixture.py DIR   (writes DIR/dashboard_data.js)")
    out = write_data_js(sys.argv[1], make_data())
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
