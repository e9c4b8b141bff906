"""Theorem 7 (a 2-D orthogonal convolution that no BCOP of any kernel size equals).

There is a real 2-channel kernel K with 3 x 3 taps, paraunitary (hence orthogonal under circular
padding for every image size, Theorem 2), such that K != H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1}) for
every k >= 1, every orthogonal 2 x 2 matrix H and all symmetric 2 x 2 projectors P_i, Q_i. K lies
within 10^-30 (each tap entry) of the rational kernel printed by :func:`kernel_taps`.

Invariant (the peel lemma, all n). In a BCOP drop the factors equal to I. If K is not constant, the
last remaining factor is F = X + (I - X) z_j with X != I, so K = K' F and, modulo X^2 = X,

    K (I - X) = K' F (I - X) = K' (I - X) z_j.

Hence K at z_j = 0 annihilates the nonzero subspace range(I - X): the coefficient matrices
W_{0q} (j = 1) or W_{p0} (j = 2), stacked, have a common nonzero null vector. A non-constant kernel
whose two stacks both have full column rank is therefore no BCOP of any size.

The kernel. For real f, g in R[z1, z2] with taps in {0, 1, 2}^2 and m = z1^2 z2^2, let

    K = [[f, g], [-m g~, m f~]],   h~(z1, z2) = h(1/z1, 1/z2).

Then K(1/z)^T K(z) = (f f~ + g g~) I, so K is paraunitary iff the Laurent
polynomial f f~ + g g~ - 1 vanishes: 13 quadratic equations (its coefficients at the shifts d with
d1 > 0, or d1 = 0 <= d2; the others repeat them) in the 18 coefficients of f and g. Five coefficients
of g are fixed to rationals; Krawczyk's test (:mod:`proofs.certified_zero`) proves that the remaining
13 equations in 13 unknowns have exactly one real solution in a box of radius 10^-30 around a
rational centre. On that whole box a 2 x 2 minor of each stack is bounded away from zero, so both
stacks have rank 2: the exact solution is such a K, and it is not constant (its tap [2, 2] is not 0).

Every step is exact rational arithmetic; the numbers are found by a Newton iteration, but
only the Krawczyk inequality and the minor bounds are trusted. This answers the conclusion of
Li et al. (NeurIPS 2019, arXiv 1911.00937) that 2-D BCOP is incomplete for every kernel size, not
only for size 2 (Theorem 6). It does not say whether K is a block of a BCOP with more channels.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import sympy as sp

from . import certified_zero
from .certified_zero import QuadraticSystem
from .noncommutative import equal_modulo, idempotent_rules, matrices
from .result import Check, ProofResult, run_theorem

NAME = "unfactorable_2d"
STATEMENT = (
    "a real 2-channel, 3x3-tap paraunitary kernel (within 1e-30 of a printed rational one) is no 2-D "
    "BCOP of any kernel size: its coefficients at z1 = 0 and at z2 = 0 have no common null vector"
)

Z1, Z2 = sp.symbols("z1 z2", nonzero=True)
F_COEFFICIENTS = sp.Matrix(3, 3, lambda p, q: sp.Symbol(f"f{p}{q}", real=True))
G_COEFFICIENTS = sp.Matrix(3, 3, lambda p, q: sp.Symbol(f"g{p}{q}", real=True))
SHIFTS = [(d1, d2) for d1 in range(3) for d2 in range(-2, 3) if d1 > 0 or d2 >= 0]

FIXED = {
    G_COEFFICIENTS[0, 2]: sp.Rational(3, 20),
    G_COEFFICIENTS[1, 0]: sp.Integer(0),
    G_COEFFICIENTS[1, 1]: sp.Rational(-3, 20),
    G_COEFFICIENTS[1, 2]: sp.Rational(1, 20),
    G_COEFFICIENTS[2, 1]: sp.Rational(1, 4),
}
UNKNOWNS = [x for x in (*F_COEFFICIENTS, *G_COEFFICIENTS) if x not in FIXED]
START = [
    "0.235452629543", "-0.235824608887", "0.0291624513037", "0.520740510639", "0.527484644580",
    "-0.0729359564288", "0.183724444287", "-0.207730238671", "0.0153096231065",
    "0.184012435505", "-0.332726468857", "-0.0357190343988", "-0.0195893881185",
]
RADIUS = Fraction(1, 10**30)


def polynomial(coefficients: sp.Matrix) -> sp.Expr:
    return sum(coefficients[p, q] * Z1**p * Z2**q for p in range(3) for q in range(3))


def reflect(h: sp.Expr) -> sp.Expr:
    """h~(z1, z2) = h(1/z1, 1/z2)."""
    return h.subs({Z1: 1 / Z1, Z2: 1 / Z2}, simultaneous=True)


def kernel(f: sp.Expr, g: sp.Expr, m: sp.Expr) -> sp.Matrix:
    """[[f, g], [-m g~, m f~]]."""
    return sp.Matrix([[f, g], [-m * reflect(g), m * reflect(f)]])


def gram_identity_check(m: sp.Expr) -> Check:
    """K(1/z)^T K(z) = (f f~ + g g~) I for generic f, g: paraunitary iff f f~ + g g~ = 1."""
    f, g = polynomial(F_COEFFICIENTS), polynomial(G_COEFFICIENTS)
    K = kernel(f, g, m)
    gram = sp.expand(K.subs({Z1: 1 / Z1, Z2: 1 / Z2}, simultaneous=True).T * K)
    return Check(
        f"K = [[f, g], [-m g~, m f~]], m = {m}: K(1/z)^T K(z) = (f f~ + g g~) I for generic 3x3 f, g",
        sp.expand(gram - sp.expand(f * reflect(f) + g * reflect(g)) * sp.eye(2)) == sp.zeros(2, 2),
    )


def autocorrelation(f: sp.Expr, g: sp.Expr) -> dict[tuple[int, int], sp.Expr]:
    """The coefficients of f f~ + g g~ - 1 keyed by the shift (d1, d2) of z1^d1 z2^d2."""
    laurent = sp.expand((f * reflect(f) + g * reflect(g) - 1) * Z1**2 * Z2**2)
    return {(d1 - 2, d2 - 2): c for (d1, d2), c in sp.Poly(laurent, Z1, Z2).terms()}


def symmetry_check(shifts: list[tuple[int, int]]) -> Check:
    """The coefficient at -d equals the one at d, so `shifts` (SHIFTS) hold one of each pair: every equation."""
    coefficients = autocorrelation(polynomial(F_COEFFICIENTS), polynomial(G_COEFFICIENTS))
    complete = set(coefficients) == {(d1, d2) for d1 in range(-2, 3) for d2 in range(-2, 3)}
    return Check(
        "f f~ + g g~ - 1 has coefficients at the 25 shifts |d1|, |d2| <= 2, and the one at -d equals the one at d",
        complete and all(sp.expand(c - coefficients[-d1, -d2]) == 0 for (d1, d2), c in coefficients.items())
        and {(d1, d2) for d1, d2 in shifts} | {(-d1, -d2) for d1, d2 in shifts} == set(coefficients)
        and len(shifts) == 13,
    )


def paraunitarity_system(
    f_coefficients: sp.Matrix, g_coefficients: sp.Matrix, fixed: dict, unknowns: Sequence[sp.Symbol]
) -> QuadraticSystem:
    """The 13 equations with `fixed` substituted, as a square system in `unknowns`."""
    coefficients = autocorrelation(polynomial(f_coefficients), polynomial(g_coefficients))
    return certified_zero.quadratic_system([coefficients[d].subs(fixed) for d in SHIFTS], unknowns)


def certified_solution(system: QuadraticSystem, start: Sequence[str], radius: Fraction) -> tuple[dict, bool]:
    """The rational centre (all 18 coefficients) and whether Krawczyk proves a unique zero around it."""
    center, proved = certified_zero.certify(system, [Fraction(v) for v in start], radius)
    values = {x: Fraction(int(v.p), int(v.q)) for x, v in FIXED.items()}
    values.update(dict(zip(system.variables, center)))
    return values, proved


def taps(values: dict) -> dict[tuple[int, int], list[list[Fraction]]]:
    """W_pq = [[f_pq, g_pq], [-g_(2-p)(2-q), f_(2-p)(2-q)]], the taps of [[f, g], [-m g~, m f~]]."""
    f = [[values[F_COEFFICIENTS[p, q]] for q in range(3)] for p in range(3)]
    g = [[values[G_COEFFICIENTS[p, q]] for q in range(3)] for p in range(3)]
    return {(p, q): [[f[p][q], g[p][q]], [-g[2 - p][2 - q], f[2 - p][2 - q]]] for p in range(3) for q in range(3)}


def full_rank_on_box(stack: list[list[Fraction]], radius: Fraction) -> bool:
    """Some 2 x 2 minor of the stacked rows stays nonzero when every entry moves by at most `radius`.

    For rows (a, b), (c, d): |det - det'| <= radius (|a| + |b| + |c| + |d|) + 2 radius^2.
    """
    for i, (a, b) in enumerate(stack):
        for c, d in stack[i + 1 :]:
            spread = radius * (abs(a) + abs(b) + abs(c) + abs(d)) + 2 * radius**2
            if abs(a * d - b * c) > spread:
                return True
    return False


def stacks(W: dict) -> tuple[list, list]:
    """The rows of W_00, W_01, W_02 (the kernel at z1 = 0) and of W_00, W_10, W_20 (at z2 = 0)."""
    at_z1_zero = [row for q in range(3) for row in W[0, q]]
    at_z2_zero = [row for p in range(3) for row in W[p, 0]]
    return at_z1_zero, at_z2_zero


def check(W: dict, radius: Fraction) -> Check:
    """Neither stack has a common null vector anywhere in the box, and the kernel is not constant."""
    at_z1_zero, at_z2_zero = stacks(W)
    not_constant = any(abs(entry) > radius for row in W[2, 2] for entry in row)
    return Check(
        "no common null vector of W_0q nor of W_p0 (a 2x2 minor bounded away from 0 on the box); W_22 != 0",
        full_rank_on_box(at_z1_zero, radius) and full_rank_on_box(at_z2_zero, radius) and not_constant,
    )


def peel_check(rules: dict) -> Check:
    """K' (X + (I - X) z)(I - X) = K' (I - X) z modulo the given relations for X (all n)."""
    K, X = matrices("K' X")
    z = sp.Symbol("z")
    return Check(
        "peel lemma: K = K' (X + (I-X) z) gives K (I - X) = K' (I - X) z, so K|_(z=0) kills range(I - X), all n",
        equal_modulo([K, X + (1 - X) * z, 1 - X], [K, 1 - X, z], rules),
    )


def kernel_taps() -> dict[tuple[int, int], list[list[Fraction]]]:
    """The rational centre's taps; the proved kernel differs from them by at most 1e-30 per entry."""
    system = paraunitarity_system(F_COEFFICIENTS, G_COEFFICIENTS, FIXED, UNKNOWNS)
    values, _ = certified_solution(system, START, RADIUS)
    return taps(values)


def claims(full: bool) -> list[Check]:
    (X,) = matrices("X")
    system = paraunitarity_system(F_COEFFICIENTS, G_COEFFICIENTS, FIXED, UNKNOWNS)
    values, proved = certified_solution(system, START, RADIUS)
    return [
        peel_check(idempotent_rules([X])),
        gram_identity_check(Z1**2 * Z2**2),
        symmetry_check(SHIFTS),
        Check("Krawczyk: exactly one real zero of the 13 equations within 1e-30 of the rational centre", proved),
        check(taps(values), RADIUS),
    ]


def scope(full: bool) -> str:
    return (
        "BCOP of every kernel size with the same 2 channels (peel lemma for all n); the kernel certified to "
        "1e-30; blocks of wider BCOPs not covered"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))


__all__ = ["NAME", "STATEMENT", "kernel_taps", "prove"]
