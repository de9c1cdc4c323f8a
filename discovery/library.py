"""The hypothesis space of discovery: library terms chosen from properties of the data.

What the data show decides which kinds of term are tried, never a system's name:

  * monomials of the state variables, to a degree that shrinks as the state grows (so the
    library stays a few hundred terms);
  * for variables that stay positive in every observed state: their logarithm and
    reciprocal (the invariants of predator-prey-like flows need them);
  * for variables that behave like positions (canonical q, or unlabelled variables whose
    rate of change is a multiple of another variable, their "velocity"): cos and sin of each
    and of their differences, and those times products of the velocities (the kinetic
    coupling of linked rotors);
  * for derived distances (discovery.expressions.make_inputs): d, 1/d, 1/d^2 and the state
    variables over d.

The library is small enough that its conserved combinations are found exactly (discovery
.nullspace); what it cannot hold is left to the open-ended engines (discovery/engines).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from discovery.expressions import Inputs

# Largest monomial degree for a state of D variables (index D, capped at the last entry).
DEGREE_BY_DIM = {1: 6, 2: 6, 3: 4, 4: 4, 5: 3, 6: 3}
DEFAULT_DEGREE = 2
# Two variables are a position/velocity pair when the position's change along every
# trajectory is explained by the integral of c * velocity to this R^2 (noise-robust: no
# derivative is taken).
KINEMATIC_R2 = 0.999
# Trig terms are built for at most this many positions (their pairs and velocity products grow
# quadratically).
MAX_ANGLES = 3


@dataclass
class DataProperties:
    """What the observed states say about each variable."""

    positive: list[str] = field(default_factory=list)    # > 0 in every observed state
    positions: list[str] = field(default_factory=list)   # canonical q, or kinematic positions
    velocities: list[str] = field(default_factory=list)  # their partners (p, or d/dt partner)


def data_properties(states: np.ndarray, t: np.ndarray, names: list[str],
                    canonical: list[str] | None) -> DataProperties:
    """states (N, T, D) observed, t (N, T)."""
    flat = states.reshape(-1, states.shape[-1])
    positive = [n for n, col in zip(names, flat.T) if col.min() > 0]
    if canonical is not None:
        q = [i for i, c in enumerate(canonical) if c == "q"]
        p = [i for i, c in enumerate(canonical) if c == "p"]
        return DataProperties(positive, [names[i] for i in q], [names[i] for i in p])
    pairs = kinematic_pairs(states, t)
    return DataProperties(positive, [names[i] for i, _ in pairs], [names[j] for _, j in pairs])


def kinematic_pairs(states: np.ndarray, t: np.ndarray) -> list[tuple[int, int]]:
    """(i, j) with s_i(t) - s_i(0) = c * integral of s_j along every trajectory (R^2 above
    KINEMATIC_R2): s_j is s_i's velocity up to a constant factor. Each variable is used once,
    best fits first."""
    x = states - states[:, :1]                                          # (N, T, D)
    dt = np.diff(t, axis=1)[..., None]
    integral = np.concatenate([np.zeros_like(states[:, :1]),
                               np.cumsum(0.5 * dt * (states[:, 1:] + states[:, :-1]), axis=1)],
                              axis=1)                                   # (N, T, D)
    D = states.shape[-1]
    scored = []
    for i, j in itertools.permutations(range(D), 2):
        a, b = x[..., i].ravel(), integral[..., j].ravel()
        if a @ a == 0 or b @ b == 0:
            continue
        c = (a @ b) / (b @ b)
        r2 = 1.0 - float(np.sum((a - c * b) ** 2) / (a @ a))
        if r2 > KINEMATIC_R2:
            scored.append((round(r2, 3), i, j))
    used, pairs = set(), []
    # best fits first; among equally good ones (x' = vx and vx' = w vy are both exact for a
    # charged particle) the earlier variables, so that positions listed first pair up
    for _, i, j in sorted(scored, key=lambda s: (-s[0], s[1], s[2])):
        if i not in used and j not in used:
            used |= {i, j}
            pairs.append((i, j))
    return sorted(pairs)


def monomial_degree(dim: int) -> int:
    return DEGREE_BY_DIM.get(dim, DEFAULT_DEGREE)


def build_library(inputs: Inputs, props: DataProperties | None = None,
                  degree: int | None = None) -> list[sp.Expr]:
    """Library terms (no constant), simplest first within each kind."""
    props = props or DataProperties()
    states = inputs.state_symbols
    sym = inputs.symbols
    degree = degree or monomial_degree(len(states))
    feats: list[sp.Expr] = []
    for k in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(states, k):
            feats.append(sp.Mul(*combo))
    for name in props.positive:
        feats += [sp.log(sym[name]), 1 / sym[name]]
    for name in inputs.derived:
        d = sym[name]
        feats += [d, 1 / d, 1 / d**2] + [s / d for s in states]
    feats += trig_terms([sym[n] for n in props.positions[:MAX_ANGLES]],
                        [sym[n] for n in props.velocities[:MAX_ANGLES]])
    return list(dict.fromkeys(feats))


def trig_terms(angles: list[sp.Symbol], velocities: list[sp.Symbol]) -> list[sp.Expr]:
    """cos/sin of each angle and of each difference of two, and the products of those with
    the velocities' quadratic monomials."""
    trig = [f(a) for a in angles for f in (sp.cos, sp.sin)]
    trig += [f(a - b) for a, b in itertools.combinations(angles, 2) for f in (sp.cos, sp.sin)]
    quadratic = [a * b for a, b in itertools.combinations_with_replacement(velocities, 2)]
    return trig + [g * v for g in trig for v in quadratic]


# ---------------------------------------------------------------------------- exponentials

# Rates tried for exponential terms, in units of 1 / (spread of the argument): a grid, then a
# bounded refinement around its best point.
RATE_GRID = np.geomspace(0.05, 6.0, 16)


@dataclass
class Exponentials:
    """exp(+-lam a), exp(+-2 lam a) of arguments a (positions and their differences) and each
    of those times each velocity: the terms of potentials like Morse's or Toda's and of the
    invariants built on them, with one rate lam that the data decide (discovery/rates.py fits
    it; the potential may hold exp(lam a) or exp(2 lam a), so both carry velocity terms)."""

    args: list[tuple[int, int | None]]      # (i, j): a = s_i - s_j, or s_i when j is None
    velocities: list[int]

    @classmethod
    def of(cls, names: list[str], props: DataProperties) -> "Exponentials | None":
        pos = [names.index(n) for n in props.positions[:MAX_ANGLES]]
        if not pos:
            return None
        args = [(i, None) for i in pos] + list(itertools.combinations(pos, 2))
        return cls(args, [names.index(n) for n in props.velocities[:MAX_ANGLES]])

    def values(self, states: np.ndarray, lam: float) -> np.ndarray:
        """(..., D) states -> (..., E) terms."""
        out = []
        for i, j in self.args:
            a = states[..., i] - (states[..., j] if j is not None else 0.0)
            for sign in (1.0, -1.0):
                e = np.exp(np.clip(sign * lam * a, -700, 700))
                out += [e, e * e] + [e * states[..., v] for v in self.velocities]
                out += [e * e * states[..., v] for v in self.velocities]
        return np.stack(out, axis=-1)

    def exprs(self, symbols: list[sp.Symbol], lam: float) -> list[sp.Expr]:
        out = []
        for i, j in self.args:
            a = symbols[i] - (symbols[j] if j is not None else 0)
            for sign in (1, -1):
                e, e2 = sp.exp(sp.Float(sign * lam) * a), sp.exp(sp.Float(2 * sign * lam) * a)
                out += [e, e2] + [e * symbols[v] for v in self.velocities]
                out += [e2 * symbols[v] for v in self.velocities]
        return out

    def spread(self, states: np.ndarray) -> float:
        """Typical size of the arguments (their pooled standard deviation)."""
        flat = states.reshape(-1, states.shape[-1])
        a = [flat[:, i] - (flat[:, j] if j is not None else 0.0) for i, j in self.args]
        return float(np.sqrt(np.mean([np.var(x) for x in a]))) or 1.0
