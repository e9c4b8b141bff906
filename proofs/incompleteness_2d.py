"""Theorem 6 (2-D BCOP of kernel size 2 is incomplete).

Let P = diag(1, 0) and Q = [[1, 1], [1, 1]] / 2, so PQ != QP, and

    R(z1, z2) = (Q + (I - Q) z2)(P + (I - P) z1)
              = QP + Q(I - P) z1 + (I - Q)P z2 + (I - Q)(I - P) z1 z2.

R is a paraunitary 2 x 2-tap kernel (a composition of paraunitary factors, Theorem 1), hence an
orthogonal convolution for every image size, yet no 2-D BCOP of size 2,
H (P' + (I - P') z1)(Q' + (I - Q') z2), equals R, for any 2 x 2 matrices H, P', Q' whatsoever.
R is a BCOP of size 3: H = I, P_1 = I, Q_1 = Q, P_2 = P, Q_2 = I give
I (I)(Q + (I - Q) z2)(P + (I - P) z1)(I) = R. So this theorem is about size 2 only; Theorem 7 gives
a kernel that no BCOP of any size equals.

Proof (structural, checked symbolically). The four taps of the BCOP sum to
H (P' + I - P')(Q' + I - Q') = H, and R's taps sum to I, so H = I. Then the taps [0,0] + [1,0] give
Q' = QP + Q(I - P) = Q and the taps [0,0] + [0,1] give P' = QP + (I - Q)P = P; the tap [0,0] becomes
P'Q' = PQ, which must equal QP: a contradiction since PQ != QP. Independently, the 16 polynomial
equations "BCOP tap = R tap" in the 12 unknown entries of H, P', Q' generate the unit ideal (their
Groebner basis is [1]), so they have no solution even over C. The same computation with commuting
P, Q finds a solution, so the test can fail.

(Li et al., NeurIPS 2019, arXiv 1911.00937, conclusion: 2-D BCOP is not complete.)
"""

from __future__ import annotations

import sympy as sp

from .kernels import Z1, Z2, bcop_transfer, paraunitary_defect, taps_of
from .noncommutative import equal_modulo, matrices, normal_form
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "incompleteness_2d"
STATEMENT = (
    "2-D BCOP of kernel size 2 is incomplete: R = (Q + (I-Q) z2)(P + (I-P) z1) with P = diag(1,0), "
    "Q = [[1,1],[1,1]]/2 is orthogonal but is not H (P' + (I-P') z1)(Q' + (I-Q') z2) for any H, P', Q'; "
    "R is a BCOP of size 3 (H = I, P1 = I, Q1 = Q, P2 = P, Q2 = I)"
)

P_EXAMPLE = sp.diag(1, 0)
Q_EXAMPLE = sp.Matrix([[1, 1], [1, 1]]) / 2


def reversed_block(P: sp.Matrix, Q: sp.Matrix) -> sp.Matrix:
    """R(z1, z2) = (Q + (I - Q) z2)(P + (I - P) z1)."""
    identity = sp.eye(P.rows)
    return sp.expand((Q + (identity - Q) * Z2) * (P + (identity - P) * Z1))


def unknown_bcop_taps() -> tuple[list[sp.Symbol], dict[tuple[int, int], sp.Matrix]]:
    """Taps of H (P' + (I-P') z1)(Q' + (I-Q') z2) with H, P', Q' fully unknown 2 x 2 matrices."""
    h, p, q = sp.symbols("h0:4"), sp.symbols("p0:4"), sp.symbols("q0:4")
    H, P, Q = sp.Matrix(2, 2, h), sp.Matrix(2, 2, p), sp.Matrix(2, 2, q)
    identity = sp.eye(2)
    kernel = sp.expand(H * (P + (identity - P) * Z1) * (Q + (identity - Q) * Z2))
    return [*h, *p, *q], taps_of(kernel)


def check(P: sp.Matrix, Q: sp.Matrix) -> Check:
    """No H, P', Q' make the BCOP of size 2 equal R(P, Q): the tap equations generate the unit ideal."""
    unknowns, bcop = unknown_bcop_taps()
    target = taps_of(reversed_block(P, Q))
    keys = set(bcop) | set(target)
    zero = sp.zeros(2, 2)
    equations = [e for key in keys for e in sp.expand(bcop.get(key, zero) - target.get(key, zero)) if e != 0]
    basis = sp.groebner(equations, *unknowns, order="grevlex")
    return Check("the equations BCOP taps = R taps have Groebner basis [1] (no solution over C)", basis.exprs == [1])


def structural_check(factor) -> Check:
    """The taps of H factor(P, z1) factor(Q, z2) (factor(X, z) = X + (I-X) z) sum to H, and the partial
    sums give H Q' and H P' (non-commutative symbols, any n)."""
    H, P, Q = matrices("H P Q")
    kernel = normal_form([H, factor(P, Z1), factor(Q, Z2)], {})
    taps = {(p, q): sp.S.Zero for p in (0, 1) for q in (0, 1)}
    for word, coefficient in kernel.items():
        for (p, q), c in sp.Poly(coefficient, Z1, Z2).terms():
            taps[p, q] += c * sp.Mul(*word)
    return Check(
        "BCOP taps: sum = H, W00 + W10 = H Q', W00 + W01 = H P' (all n)",
        equal_modulo([sum(taps.values())], [H], {})
        and equal_modulo([taps[0, 0] + taps[1, 0]], [H * Q], {})
        and equal_modulo([taps[0, 0] + taps[0, 1]], [H * P], {}),
    )


def example_checks(P: sp.Matrix, Q: sp.Matrix) -> list[Check]:
    """The example's three facts for R(P, Q); the proof passes P = diag(1, 0), Q = [[1, 1], [1, 1]]/2."""
    R = reversed_block(P, Q)
    taps = taps_of(R)
    zero = sp.zeros(2, 2)
    return [
        Check(
            "P, Q are symmetric projectors and PQ != QP",
            all(M.T == M and M * M == M for M in (P, Q)) and P * Q != Q * P,
        ),
        Check("R is paraunitary: R(z)^T R(1/z) = I", paraunitary_defect(R) == zero),
        Check(
            "R's taps sum to I, so H = I; then P' = P, Q' = Q and P'Q' = PQ != QP = R's tap [0,0]",
            sum(taps.values(), zero) == sp.eye(2)
            and taps.get((0, 0), zero) + taps.get((1, 0), zero) == Q
            and taps.get((0, 0), zero) + taps.get((0, 1), zero) == P
            and taps.get((0, 0), zero) == Q * P
            and taps.get((0, 0), zero) != P * Q,
        ),
    ]


def size_three_check(H: sp.Matrix, Ps: list[sp.Matrix], Qs: list[sp.Matrix]) -> Check:
    """The BCOP H B(P_1, Q_1) B(P_2, Q_2) equals the example R."""
    return Check(
        "R = BCOP of size 3 with H = I, P1 = I, Q1 = Q, P2 = P, Q2 = I",
        bcop_transfer(H, Ps, Qs) == reversed_block(P_EXAMPLE, Q_EXAMPLE),
    )


def claims(full: bool) -> list[Check]:
    return [
        all_hold("the example", example_checks(P_EXAMPLE, Q_EXAMPLE)),
        structural_check(lambda X, z: X + (1 - X) * z),
        check(P_EXAMPLE, Q_EXAMPLE),
        size_three_check(sp.eye(2), [sp.eye(2), P_EXAMPLE], [Q_EXAMPLE, sp.eye(2)]),
    ]


def scope(full: bool) -> str:
    return "kernel size 2 only (R is a size-3 BCOP): the explicit 2-channel kernel; structural step for all n"


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
