"""Expressions of discovery: candidates and Pareto fronts, the inputs a formula may use, the
feature library, and evaluating formulas and their gradients on states.

Nothing here knows which physical system the data come from: derived inputs and library terms
follow from the variables' names, their canonical labels and nothing else.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp



# ---------------------------------------------------------------------------- candidates

@dataclass
class Candidate:
    """One member of a Pareto front."""

    expr: sp.Expr
    loss: float
    source: str
    complexity: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.complexity = self.complexity or complexity(self.expr)


def complexity(expr: sp.Expr) -> int:
    """Number of nodes of the expression tree (PySR's default measure)."""
    return sum(1 for _ in sp.preorder_traversal(expr))


def term_cost(expr: sp.Expr) -> int:
    """How elaborate a library term is, for preferring the simplest exact basis: a monomial
    costs its degree, a reciprocal one more than its power, a function (cos, log, sqrt, ...)
    four plus its argument. So x^4 (4) is cheaper than cos(x) (5): of two exact laws with as
    many terms, a polynomial beats a trig stand-in."""
    expr = sp.sympify(expr)               # a plain 0 where every coefficient vanished
    if expr.is_Number:
        return 0
    if expr.is_Symbol:
        return 1
    if expr.is_Pow:
        base, exp = expr.args
        if exp.is_Integer:
            k = int(exp)
            return k * term_cost(base) if k > 0 else (-k) * term_cost(base) + 1
        return 4 + term_cost(base)
    if expr.is_Mul or expr.is_Add:
        return sum(term_cost(a) for a in expr.args)
    return 4 + sum(term_cost(a) for a in expr.args)


def round_floats(expr: sp.Expr, digits: int = 4) -> sp.Expr:
    """Round every float in `expr` to `digits` significant digits (for display only)."""
    return expr.xreplace({f: sp.Float(float(f"{float(f):.{digits}g}"), 15)
                          for f in expr.atoms(sp.Float)})


def to_text(expr: sp.Expr) -> str:
    return sp.sstr(round_floats(expr, 6))


def to_latex(expr: sp.Expr, symbols: dict[str, sp.Symbol]) -> str:
    names = {s: _latex_name(n) for n, s in symbols.items()}
    return sp.latex(round_floats(expr, 4), symbol_names=names)


GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
         "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
         "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"}


def _latex_name(name: str) -> str:
    base = re.fullmatch(r"([A-Za-z]+?)(\d*)", name)
    if base and base.group(1) in GREEK:
        return "\\" + base.group(1) + (f"_{{{base.group(2)}}}" if base.group(2) else "")
    m = re.fullmatch(r"([A-Za-z]+?)(\d+|[xyz])?", name)
    if m and m.group(2) and len(m.group(1)) <= 2:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    return name if len(name) == 1 else rf"\mathrm{{{name}}}"


def pareto(cands: list[Candidate]) -> list[Candidate]:
    """Non-dominated candidates by (complexity, loss), sorted by complexity."""
    best: dict[int, Candidate] = {}
    for c in cands:
        if not np.isfinite(c.loss):
            continue
        if c.complexity not in best or c.loss < best[c.complexity].loss:
            best[c.complexity] = c
    out, floor = [], float("inf")
    for k in sorted(best):
        if best[k].loss < floor:
            out.append(best[k])
            floor = best[k].loss
    return out


def front_json(front: list[Candidate], chosen: Candidate | None, symbols) -> list[dict]:
    return [{"complexity": c.complexity, "loss": float(c.loss), "expression": to_text(c.expr),
             "latex": to_latex(c.expr, symbols), "source": c.source, "chosen": c is chosen}
            for c in front]


def linear_form(expr: sp.Expr) -> tuple[list[sp.Expr], np.ndarray] | None:
    """a*f + b*g + c -> ([f, g], [a, b]) (constants dropped, terms in a fixed order), or None
    when expr is not a sum of terms with numeric coefficients."""
    coefs: dict[sp.Expr, float] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, rest = term.as_coeff_Mul()
        if rest == 1:
            continue
        if rest.atoms(sp.Float):
            return None
        coefs[rest] = coefs.get(rest, 0.0) + float(coeff)
    if not coefs:
        return None
    terms = sorted(coefs, key=sp.default_sort_key)
    return terms, np.array([coefs[t] for t in terms])


def split_terms(expr: sp.Expr) -> list[sp.Expr] | None:
    """a*f + b*g + c -> [f, g] (constants dropped), or None when expr is not such a sum."""
    form = linear_form(expr)
    return None if form is None else form[0]


# ---------------------------------------------------------------------------- inputs and library

@dataclass
class Inputs:
    """State symbols plus derived inputs that any data with canonical labels allows."""

    names: list[str]                      # state variable names, in file order
    symbols: dict[str, sp.Symbol]         # every input symbol (states and derived)
    derived: dict[str, sp.Expr]           # derived name -> expression in the state symbols
    positions: list[str] = field(default_factory=list)   # names marked "q" (canonical data)

    @property
    def state_symbols(self) -> list[sp.Symbol]:
        return [self.symbols[n] for n in self.names]

    @property
    def all_names(self) -> list[str]:
        return self.names + list(self.derived)

    def expand_derived(self, expr: sp.Expr) -> sp.Expr:
        """Express `expr` in the state variables only."""
        return expr.xreplace({self.symbols[k]: v for k, v in self.derived.items()})

    def evaluate(self, states: np.ndarray) -> np.ndarray:
        """(n, D) states -> (n, D + n_derived) inputs."""
        cols = [states]
        for expr in self.derived.values():
            fn = sp.lambdify(self.state_symbols, expr, "numpy")
            cols.append(np.asarray(fn(*states.T), dtype=np.float64).reshape(-1, 1))
        return np.concatenate(cols, axis=1)


def make_inputs(names: list[str], canonical: list[str] | None) -> Inputs:
    """Derived inputs: the norm of the position vector when the data marks 2 or 3 position
    coordinates, and, for more positions in 2-D blocks, the distance between each pair of
    blocks (the layout of many-body data). Users' files decide; no system is special-cased."""
    symbols = {n: sp.Symbol(n, real=True) for n in names}
    derived: dict[str, sp.Expr] = {}
    if canonical is not None:
        q = [symbols[n] for n, c in zip(names, canonical) if c == "q"]
        taken = set(names)

        def fresh(base: str) -> str:
            name = base
            while name in taken:
                name += "_"
            taken.add(name)
            return name

        if len(q) in (2, 3):
            derived[fresh("r")] = sp.sqrt(sum(s**2 for s in q))
        elif len(q) >= 4 and len(q) % 2 == 0:
            blocks = [q[i:i + 2] for i in range(0, len(q), 2)]
            for (i, a), (j, b) in itertools.combinations(enumerate(blocks, 1), 2):
                derived[fresh(f"r{i}{j}")] = sp.sqrt((a[0] - b[0])**2 + (a[1] - b[1])**2)
    for name in derived:
        symbols[name] = sp.Symbol(name, positive=True)
    positions = [n for n, c in zip(names, canonical or []) if c == "q"]
    return Inputs(list(names), symbols, derived, positions)


def gradient_fn(expr: sp.Expr, inputs: Inputs):
    """Gradient w.r.t. the state variables, as a numpy function (n, D) -> (n, D)."""
    full = inputs.expand_derived(expr)
    grads = [sp.diff(full, s) for s in inputs.state_symbols]
    fns = [sp.lambdify(inputs.state_symbols, g, "numpy") for g in grads]

    def grad(states: np.ndarray) -> np.ndarray:
        return np.stack([np.broadcast_to(np.asarray(f(*states.T), dtype=np.float64),
                                         len(states)) for f in fns], axis=1)

    return grad


class CompiledTerms:
    """Library terms as one numpy function of states (n, D) -> (n, F)."""

    def __init__(self, exprs: list[sp.Expr], inputs: Inputs):
        self.exprs = list(exprs)
        self.inputs = inputs
        full = [inputs.expand_derived(e) for e in self.exprs]
        self._fn = sp.lambdify(inputs.state_symbols, full, "numpy")

    def __call__(self, states: np.ndarray) -> np.ndarray:
        states = np.asarray(states, dtype=np.float64)
        shape = states.shape[:-1]
        flat = states.reshape(-1, states.shape[-1])
        with np.errstate(all="ignore"):
            cols = self._fn(*flat.T)
        out = np.column_stack([np.broadcast_to(np.asarray(c, dtype=np.float64), len(flat))
                               for c in cols]) if cols else np.zeros((len(flat), 0))
        return out.reshape(*shape, len(self.exprs))

    def jacobian(self, states: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """d phi / d s by central differences: states (n, D), steps (D,) -> (n, F, D)."""
        out = []
        for d, h in enumerate(steps):
            e = np.zeros(states.shape[-1])
            e[d] = h
            out.append((self(states + e) - self(states - e)) / (2 * h))
        return np.stack(out, axis=-1)
