"""Physics simulators: write one trajectory file per system.

    python data/simulate.py                                   # projectile, spring, orbit
    python data/simulate.py --systems pendulum two-body --n-traj 500
    python data/simulate.py --systems spring --noise 0.01     # -> data/spring-noise0.01.npz

Every system is one entry of the registry (data/systems.py: state names, parameters,
right-hand side, sampler of initial states, and the ground-truth invariants that only the
evaluation code and the tests read). All trajectories of a system are solved by one scipy RK45 call on the stacked state; the
trajectories whose own invariants drift more than the tolerance are solved again one at a
time with tighter tolerances, so every trajectory meets it (see bench/bench_simulate.py).
Motion that is not an autonomous ODE (the benchmark's random walk and driven oscillator,
data/benchmark_systems.py) is drawn by the system's own `generate` instead.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

try:
    from threadpoolctl import threadpool_limits  # installed with scikit-learn
except ImportError:  # pragma: no cover
    threadpool_limits = None

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.loader import BUILTIN_SYSTEMS, DEFAULT_SYSTEMS, default_split  # noqa: E402
from data.benchmark_systems import BENCHMARK_SYSTEMS  # noqa: E402
from data.systems import CORE_SYSTEMS, System  # noqa: E402
from utils import (DATA_DIR, atomic_write_npz, check_output_dir, cli, describe,  # noqa: E402
                   fail, flag, parse_flags, require_known, seed_everything)

Array = np.ndarray
DRIFT_TOL = 1e-8
RTOL, ATOL = 1e-10, 1e-12          # stacked solve
RTOL_RETRY, ATOL_RETRY = 1e-12, 1e-14  # per-trajectory re-solve


SYSTEMS: dict[str, System] = {s.name: s for s in CORE_SYSTEMS + BENCHMARK_SYSTEMS}
assert tuple(SYSTEMS) == BUILTIN_SYSTEMS, "data/loader.py BUILTIN_SYSTEMS is out of date"


# ---------------------------------------------------------------------------- integration

def relative_drift(system: System, states: Array, params: dict | None = None) -> dict[str, Array]:
    """max_t |I(t) - I(0)| / |I(0)| per trajectory for every checked invariant; (N,) each."""
    params = system.params if params is None else params
    out = {}
    for name in system.checked:
        values = system.invariant_fn(name, params)(states)
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
    if system.generate is not None:     # not an autonomous ODE: drawn, not solved
        clean = system.generate(rng, x0, t, params)
        info = {"method": "generated (System.generate)", "drift_tol": DRIFT_TOL,
                "stacked": stacked, "resolved": 0}
    else:
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
                  "conserved": list(system.conserved),
                  "expressions": {k: system.invariant_text(k, params) for k in invariant_names},
                  "latex": {k: system.invariant_latex(k) for k in invariant_names}}
    arrays = {
        "states": observed, "t": t, "names": np.array(system.names), "split": split,
        "meta": np.array(json.dumps(meta)),
        "truth_meta": np.array(json.dumps(truth_meta)),
        "truth_invariant_names": np.array(invariant_names),
        "truth_invariants": system.invariant_values(clean, params),
        "truth_drift_names": np.array(list(drift)) if drift else np.array([], dtype="<U1"),
        "truth_drift": (np.stack(list(drift.values()), axis=-1) if drift
                        else np.zeros((n_traj, 0))),
    }
    if system.canonical is not None:
        arrays["canonical"] = np.array(system.canonical)
    if noise > 0:
        arrays["truth_clean_states"] = clean
    return arrays


def output_path(out: Path, name: str, noise: float) -> Path:
    return out / (f"{name}-noise{noise:g}.npz" if noise > 0 else f"{name}.npz")


@dataclass
class SimulateFlags:
    """Flags of data/simulate.py."""

    systems: list[str] = flag(list(DEFAULT_SYSTEMS), "systems to simulate (known: "
                              + ", ".join(BUILTIN_SYSTEMS) + ")")
    n_traj: int = flag(2000, "trajectories per system")
    steps: int | None = flag(None, "time steps per trajectory (default: per system, see "
                                   "data/README.md)")
    noise: float = flag(0.0, "Gaussian observation noise, relative to each variable's spread")
    seed: int = flag(0, "seed of each system's numpy Generator")
    out: Path | None = flag(None, "output folder (default: the repository's data/)")
    quiet: bool = flag(False, "no per-system line")


def main(argv=None) -> None:
    args = parse_flags(SimulateFlags, argv, describe(__doc__))
    require_known(args.systems, SYSTEMS, "system(s)")
    if args.n_traj < 2:
        fail(f"--n-traj must be at least 2, got {args.n_traj}")
    if args.steps is not None and args.steps < 3:
        fail(f"--steps must be at least 3, got {args.steps}")
    if args.seed < 0:
        fail(f"--seed must be a non-negative integer, got {args.seed}")
    if not (0.0 <= args.noise < 1.0):
        fail(f"--noise must be in [0, 1), got {args.noise}")
    out = args.out or DATA_DIR
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder")
    check_output_dir(out, "--out")      # before the simulations, not after them
    seed_everything(args.seed)
    for name in args.systems:
        # Each system draws from its own Generator(seed): adding a system to the command
        # never changes another system's data.
        start = time.perf_counter()
        arrays = simulate(name, args.n_traj, args.steps, args.noise, args.seed)
        seconds = time.perf_counter() - start
        path = output_path(out, name, args.noise)
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
