"""Certified zeros of square quadratic systems over QQ: Krawczyk's test in exact rational arithmetic.

Let F: R^m -> R^m have polynomial components of degree <= 2 with rational coefficients, c a rational
point, Y a rational m x m matrix and X = c + [-r, r]^m. Krawczyk's theorem (Krawczyk 1969; Moore,
"A test for existence of solutions to nonlinear systems", SIAM J. Numer. Anal. 1977): if

    K(X) = c - Y F(c) + (I - Y J(X)) (X - c)

lies in the interior of X, then F has exactly one zero in X. For degree <= 2 the Jacobian J is affine
in x, so J(X) lies in J(c) + [-r, r] G with G_ij = sum_k |d^2 F_i / dx_j dx_k|, and K(X) lies in the
interior of X as soon as, componentwise,

    |Y F(c)| + r (|I - Y J(c)| + r |Y| G) 1 < r 1.

Every number here is a Python Fraction, so the test involves no rounding at all; the rational
centre c and the matrix Y come from a Newton iteration rounded to a grid, and only the inequality
above is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import sympy as sp

Vector = list[Fraction]
Matrix = list[list[Fraction]]


@dataclass(frozen=True)
class QuadraticSystem:
    """F_i(x) = sum over monomials of coefficient * prod x_j^e_j, every monomial of degree <= 2."""

    variables: tuple[sp.Symbol, ...]
    components: tuple[dict[tuple[int, ...], Fraction], ...]


def quadratic_system(expressions: Sequence[sp.Expr], variables: Sequence[sp.Symbol]) -> QuadraticSystem:
    """Compile expressions with rational coefficients; ValueError if one has degree > 2 or is not square."""
    if len(expressions) != len(variables):
        raise ValueError(f"quadratic_system: {len(expressions)} equations in {len(variables)} unknowns")
    components = []
    for expression in expressions:
        poly = sp.Poly(sp.expand(expression), *variables, domain=sp.QQ)
        if poly.total_degree() > 2:
            raise ValueError(f"quadratic_system: degree {poly.total_degree()} > 2")
        components.append({monomial: Fraction(int(c.p), int(c.q)) for monomial, c in poly.terms()})
    return QuadraticSystem(tuple(variables), tuple(components))


def _monomial(exponents: tuple[int, ...], x: Vector) -> Fraction:
    value = Fraction(1)
    for j, e in enumerate(exponents):
        if e:
            value *= x[j] ** e
    return value


def evaluate(system: QuadraticSystem, x: Vector) -> Vector:
    return [sum((c * _monomial(e, x) for e, c in component.items()), Fraction(0)) for component in system.components]


def jacobian(system: QuadraticSystem, x: Vector) -> Matrix:
    m = len(system.variables)
    rows = []
    for component in system.components:
        row = [Fraction(0)] * m
        for exponents, c in component.items():
            for j, e in enumerate(exponents):
                if e:
                    lowered = tuple(f - (i == j) for i, f in enumerate(exponents))
                    row[j] += c * e * _monomial(lowered, x)
        rows.append(row)
    return rows


def curvature(system: QuadraticSystem) -> Matrix:
    """G_ij = sum_k |d^2 F_i / dx_j dx_k|, a constant for a quadratic system."""
    m = len(system.variables)
    rows = []
    for component in system.components:
        row = [Fraction(0)] * m
        for exponents, c in component.items():
            if sum(exponents) < 2:
                continue
            touched = [j for j, e in enumerate(exponents) if e]
            if len(touched) == 1:  # c x_j^2: d^2/dx_j^2 = 2c
                row[touched[0]] += 2 * abs(c)
            else:  # c x_j x_k: both mixed second derivatives are c
                for j in touched:
                    row[j] += abs(c)
        rows.append(row)
    return rows


def inverse(A: Matrix) -> Matrix:
    """Exact inverse by Gauss-Jordan elimination; ValueError when A is singular."""
    m = len(A)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(m)] for i, row in enumerate(A)]
    for col in range(m):
        pivot = next((r for r in range(col, m) if rows[r][col] != 0), None)
        if pivot is None:
            raise ValueError("inverse: singular matrix")
        rows[col], rows[pivot] = rows[pivot], rows[col]
        scale = rows[col][col]
        rows[col] = [v / scale for v in rows[col]]
        for r in range(m):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [v - factor * w for v, w in zip(rows[r], rows[col])]
    return [row[m:] for row in rows]


def _mat_vec(A: Matrix, x: Vector) -> Vector:
    return [sum((a * v for a, v in zip(row, x)), Fraction(0)) for row in A]


def _round(x: Vector, grid: int) -> Vector:
    return [Fraction(round(v * grid), grid) for v in x]


def approximate_inverse(A: Matrix, grid: int) -> Matrix:
    """The exact inverse of A rounded entrywise to multiples of 1/grid: small numbers, any accuracy needed."""
    return inverse([_round(row, grid) for row in A])


def refine(system: QuadraticSystem, start: Vector, tolerance: Fraction, max_steps: int) -> tuple[Vector, Matrix]:
    """Newton c <- c - Y F(c), Y an approximate inverse of J(c), each iterate rounded to a grid below tolerance.

    Stops once the step is below the tolerance (or after max_steps); returns c and the last Y.
    """
    grid = 10 * int(1 / tolerance)
    x = list(start)
    for _ in range(max_steps):
        Y = approximate_inverse(jacobian(system, x), grid)
        step = _mat_vec(Y, evaluate(system, x))
        x = _round([v - d for v, d in zip(x, step)], grid)
        if max(abs(d) for d in step) < tolerance:
            break
    return x, Y


def krawczyk(system: QuadraticSystem, center: Vector, radius: Fraction, Y: Matrix) -> bool:
    """Whether Krawczyk's test proves exactly one zero of the system in center + [-radius, radius]^m."""
    m = len(center)
    step = _mat_vec(Y, evaluate(system, center))
    J = jacobian(system, center)
    G = curvature(system)
    YJ = [[sum((Y[i][l] * J[l][j] for l in range(m)), Fraction(0)) for j in range(m)] for i in range(m)]
    YG = [[sum((abs(Y[i][l]) * G[l][j] for l in range(m)), Fraction(0)) for j in range(m)] for i in range(m)]
    for i in range(m):
        spread = sum((abs(int(i == j) - YJ[i][j]) + radius * YG[i][j] for j in range(m)), Fraction(0))
        if abs(step[i]) + radius * spread >= radius:
            return False
    return True


def certify(system: QuadraticSystem, start: Vector, radius: Fraction) -> tuple[Vector, bool]:
    """Refine `start` to a rational centre and run Krawczyk's test on a box of the given radius."""
    center, Y = refine(system, start, tolerance=radius / 10**6, max_steps=12)
    return center, krawczyk(system, center, radius, Y)
