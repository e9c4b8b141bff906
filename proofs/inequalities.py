"""Consequences of linear inequalities in symbolic sizes, decided by an exact Farkas certificate.

A conclusion c(x) >= 0 follows from hypotheses h_1(x) >= 0, ..., h_m(x) >= 0 whenever

    c = lambda_0 + sum_i lambda_i h_i   identically, with rationals lambda_i >= 0 and lambda_0 >= 0,

because then c(x) >= lambda_0 >= 0 at every real (hence every integer) point where the hypotheses
hold. The multipliers are found by an exact rational linear program (sympy's simplex) and the
identity is then re-expanded, so a True answer is a checked certificate. Over the integers a strict
inequality a < b is written b - a - 1 >= 0, and an equality as two inequalities. A product of two
symbols is one more unknown; a hypothesis may be the product of two hypotheses, which is
nonnegative when both are. Proving -1 >= 0 shows that the hypotheses have no common solution.
"""

from __future__ import annotations

from typing import Sequence

import sympy as sp
from sympy.solvers.simplex import InfeasibleLPError, lpmin


def follows(conclusion: sp.Expr, hypotheses: Sequence[sp.Expr]) -> bool:
    """Whether conclusion >= 0 is a nonnegative combination of the hypotheses (each >= 0) plus a constant >= 0."""
    conclusion = sp.expand(conclusion)
    hypotheses = [sp.expand(h) for h in hypotheses]
    symbols = sorted(set().union(conclusion.free_symbols, *(h.free_symbols for h in hypotheses)), key=str)
    if not symbols:
        return bool(conclusion >= 0)
    multipliers = sp.symbols(f"lambda0:{len(hypotheses)}")
    residual = sp.Poly(conclusion - sum(m * h for m, h in zip(multipliers, hypotheses)), *symbols)
    constraints = [m >= 0 for m in multipliers]
    constant = sp.S.Zero
    for monomial, coefficient in residual.terms():
        if any(monomial):
            constraints.append(sp.Eq(coefficient, 0))
        else:
            constant = coefficient
    constraints.append(constant >= 0)
    try:
        _, solution = lpmin(sum(multipliers, sp.S.Zero), constraints)
    except InfeasibleLPError:
        return False
    values = [solution.get(m, sp.S.Zero) for m in multipliers]
    remainder = sp.expand(conclusion - sum(v * h for v, h in zip(values, hypotheses)))
    return all(v >= 0 for v in values) and remainder.is_number and remainder >= 0


def contradictory(hypotheses: Sequence[sp.Expr]) -> bool:
    """Whether the hypotheses (each >= 0) have no common real solution, certified by -1 >= 0."""
    return follows(sp.Integer(-1), hypotheses)
