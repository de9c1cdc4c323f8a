"""Symbolic-regression engines behind one interface.

Each engine is a module with

    NAME: str
    usable() -> (bool, reason)                      # can it run here, and why not
    front(states, y, inputs, settings) -> list[Candidate]   # a Pareto front for y(states)

where states are raw states (n, D), y the values to explain (n,), inputs the
discovery.expressions.Inputs of the data, and settings the `Settings` below. Candidates carry a
sympy expression in the input symbols and a loss (residual variance / variance of y).

A new engine is one file in this folder plus one line in ENGINES.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from discovery.engines import operon, pysr, sparse

ENGINES = {sparse.NAME: sparse, operon.NAME: operon, pysr.NAME: pysr}


@dataclass
class Settings:
    """What an engine may spend and how it is seeded (each engine reads what it needs)."""

    library: list = field(default_factory=list)   # sparse: candidate terms (sympy)
    max_terms: int = 10                            # sparse: largest number of terms
    budget: int = 200_000                          # operon: model evaluations
    generations: int = 400                         # operon: generations at most
    niterations: int = 40                          # pysr: iterations
    seed: int = 0
    threads: int = 1


def resolve(backend: str, log=print) -> list[str]:
    """--backend -> the engines to run: auto = PySR when usable, else Operon, each beside the
    sparse library regression; a named engine alone (pysr: with the sparse one), failing with
    a one-line error when it cannot run here."""
    from utils import fail

    if backend in ("auto", "pysr"):
        ok, why = pysr.usable()
        if ok:
            return [pysr.NAME, sparse.NAME]
        if backend == "pysr":
            fail(f"--backend pysr: PySR is not usable here ({why}); use --backend operon")
        log(f"PySR not usable ({why}); using the embedded engines (Operon + sparse regression)")
        return [operon.NAME, sparse.NAME]
    if backend not in ENGINES:
        fail(f"unknown --backend {backend!r} (choose auto, {', '.join(ENGINES)})")
    ok, why = ENGINES[backend].usable()
    if not ok:
        fail(f"--backend {backend}: not usable here ({why})")
    return [backend]
