"""Exact rational orthogonal matrices and projectors, for concrete instances of the theorems.

Every symmetric projector of rank r is V (V^T V)^{-1} V^T for an n x r matrix V of full column rank
(its range spanned by the columns of V), and the Cayley transform (I - A)(I + A)^{-1} of a skew A is
orthogonal with determinant +1; both are rational in the entries, so instances stay exact.
"""

from __future__ import annotations

import sympy as sp


def projector(V: sp.Matrix) -> sp.Matrix:
    """The orthogonal projector V (V^T V)^{-1} V^T onto the column space of V (full column rank)."""
    if V.cols == 0:
        return sp.zeros(V.rows, V.rows)
    return V * (V.T * V).inv() * V.T


def cayley(A: sp.Matrix) -> sp.Matrix:
    """(I - A)(I + A)^{-1} for skew-symmetric A: orthogonal, determinant +1."""
    if A != -A.T:
        raise ValueError("cayley: A must be skew-symmetric")
    identity = sp.eye(A.rows)
    return (identity - A) * (identity + A).inv()


def skew(entries: list[sp.Rational], n: int) -> sp.Matrix:
    """The skew-symmetric n x n matrix whose strict upper triangle is `entries`, row by row."""
    A = sp.zeros(n, n)
    upper = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if len(entries) != len(upper):
        raise ValueError(f"skew: need {len(upper)} entries for n = {n}, got {len(entries)}")
    for (i, j), value in zip(upper, entries):
        A[i, j] = value
        A[j, i] = -value
    return A


def orthogonal(entries: list[sp.Rational], n: int, sign: int) -> sp.Matrix:
    """A rational orthogonal matrix with determinant `sign`: cayley(skew) times diag(1, ..., sign)."""
    if sign not in (1, -1):
        raise ValueError(f"orthogonal: sign must be +1 or -1, got {sign}")
    flip = sp.diag(*([1] * (n - 1) + [sign]))
    return cayley(skew(entries, n)) * flip


def circle_point(t: sp.Rational) -> tuple[sp.Rational, sp.Rational]:
    """((1 - t^2)/(1 + t^2), 2t/(1 + t^2)): a rational point of the unit circle."""
    t = sp.Rational(t)
    return (1 - t**2) / (1 + t**2), 2 * t / (1 + t**2)
