"""Theorem 7 (the 2n-channel theorem; Li et al. 2019, Theorem 2).

Let C = H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1}) be an n-channel BCOP and set

    P'_i = P_i (+) (I - P_i),  Q'_i = Q_i (+) (I - Q_i),  H' = H (+) H''  with det H'' = det H.

Then each P'_i, Q'_i is a symmetric projector of rank exactly n, det H' = (det H)^2 = 1, and
C' = H' B(P'_1, Q'_1) ... B(P'_{k-1}, Q'_{k-1}) = C (+) C'' is block diagonal, so
C'(x)_{1:n} = C(x_{1:n}): the largest component (all ranks n, det +1) of 2n-channel BCOP
represents every n-channel BCOP.

Converse: if K' = [[A, B], [C, D]] is a paraunitary 2n-channel kernel whose top-left block A is
paraunitary, then B = 0 and C = 0. Indeed, with taps W'_p = [[A_p, B_p], [C_p, D_p]],

    sum_p ||C_p||^2 = tr[sum_p W'_p^T W'_p - I]_{1:n,1:n} - tr[sum_p A_p^T A_p - I],
    sum_p ||B_p||^2 = tr[sum_p W'_p W'_p^T - I]_{1:n,1:n} - tr[sum_p A_p A_p^T - I],

and all four brackets vanish (they are the constant coefficients of K'(z)^T K'(1/z) - I,
K'(1/z) K'(z)^T - I and the same for A; for square matrices a one-sided inverse over the field of
rational functions is two-sided). A real sum of squares that vanishes has every term zero.

(Li et al., NeurIPS 2019, arXiv 1911.00937, Theorem 2.)

Proof. The construction is verified with 2 x 2 block matrices whose entries are non-commutative
symbols (every n; k = 2, 3, 4): the products stay block diagonal with top-left block C, the blocks of
P' are idempotent under P^2 -> P, and tr P' = tr P + (n - tr P) = n with tr = rank for projectors.
It is verified again with explicit matrices for n = 1 (scalar projectors, H = +-1) and n = 2
(unit-circle parametrization, every rank choice, det H = sigma), for k = 2 and 3. The two trace
identities of the converse are expanded for generic taps with n = 1, 2 and k = 2, 3.
"""

from __future__ import annotations

import itertools

import sympy as sp
from sympy.polys.matrices import DomainMatrix

from . import circle
from .circle import CircleAlgebra
from .kernels import symbolic_taps
from .noncommutative import equal_modulo, idempotent_rules, matrices
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "channel_doubling"
STATEMENT = (
    "every n-channel BCOP C is the top-left block of a 2n-channel BCOP C' with rank-n projectors "
    "P_i (+) (I-P_i), Q_i (+) (I-Q_i) and det H' = +1; paraunitary K' with paraunitary top-left "
    "block has zero off-diagonal blocks"
)


def symbolic_construction_check(k: int) -> Check:
    """Block matrices of non-commutative symbols: C' = C (+) C'' for every n."""
    H, H2 = matrices("H H''")
    Ps, Qs = matrices(f"P1:{k}"), matrices(f"Q1:{k}")
    z1, z2 = sp.symbols("z1 z2")
    rules = idempotent_rules(Ps + Qs)

    def doubled_factor(X: sp.Symbol, z: sp.Symbol) -> sp.Matrix:
        X2 = sp.diag(X, 1 - X)
        return X2 + (sp.eye(2) - X2) * z

    C_factors = [H] + [f for P, Q in zip(Ps, Qs) for f in (P + (1 - P) * z1, Q + (1 - Q) * z2)]
    C_doubled = sp.diag(H, H2)
    for P, Q in zip(Ps, Qs):
        C_doubled = (C_doubled * doubled_factor(P, z1) * doubled_factor(Q, z2)).applyfunc(sp.expand)
    idempotent = all(
        equal_modulo([entry], [square], rules)
        for X in Ps + Qs
        for entry, square in zip(sp.diag(X, 1 - X), (sp.diag(X, 1 - X) ** 2).applyfunc(sp.expand))
    )
    n, rank = sp.symbols("n r")
    trace_is_n = sp.expand(rank + (n - rank)) == n
    return Check(
        f"k = {k}, all n: C' = [[C, 0], [0, C'']], P' idempotent, tr P' = n",
        C_doubled[0, 1] == 0 and C_doubled[1, 0] == 0 and equal_modulo([C_doubled[0, 0]], C_factors, rules)
        and idempotent and trace_is_n,
    )


def check(
    algebra: CircleAlgebra, H: DomainMatrix, H2: DomainMatrix, Ps: list, Qs: list, P2s: list, Q2s: list
) -> Check:
    """C' built from H (+) H2, P_i (+) P2_i, Q_i (+) Q2_i has rank-n projectors, det +1 and C' = C (+) *."""
    n = H.shape[0]
    doubled_P = [circle.block_diagonal(algebra, P, P2) for P, P2 in zip(Ps, P2s)]
    doubled_Q = [circle.block_diagonal(algebra, Q, Q2) for Q, Q2 in zip(Qs, Q2s)]
    H_doubled = circle.block_diagonal(algebra, H, H2)
    C = circle.bcop_kernel(algebra, H, Ps, Qs)
    C_doubled = circle.bcop_kernel(algebra, H_doubled, doubled_P, doubled_Q).to_list()
    zero = algebra.domain.ring.zero
    projectors = doubled_P + doubled_Q
    return all_hold(
        "doubling",
        [
            Check(
                "P', Q' are symmetric idempotents",
                all(X.transpose() == X and circle.reduce(algebra, X * X - X).is_zero_matrix for X in projectors),
            ),
            Check("rank P' = tr P' = n", all(circle.trace(algebra, X) == n for X in projectors)),
            Check("det H' = 1", circle.determinant(algebra, H_doubled) == 1),
            Check("top-left block of C' is C", [row[:n] for row in C_doubled[:n]] == C.to_list()),
            Check("off-diagonal blocks of C' vanish",
                  all(entry == zero for row in C_doubled[:n] for entry in row[n:])
                  and all(entry == zero for row in C_doubled[n:] for entry in row[:n])),
        ],
    )


def projector(algebra: CircleAlgebra, n: int, rank: int, angle: int) -> DomainMatrix:
    """Every symmetric projector of R^n of the given rank, for n = 1 (the scalar rank) and n = 2."""
    if n == 1:
        return circle.matrix(algebra, [[rank]])
    return circle.projector(algebra, rank, angle)


def explicit_checks(n: int, k: int) -> Check:
    """All rank choices; H = (sigma) for n = 1 or the signed rotation for n = 2 (det H = sigma); H'' = H."""
    algebra = circle.circle_algebra(2 * k - 1)
    identity = circle.identity(algebra, n)
    H = circle.matrix(algebra, [[algebra.sigma]]) if n == 1 else circle.rotation(algebra, 0)
    results = []
    for ranks in itertools.product(range(n + 1), repeat=2 * (k - 1)):
        Ps = [projector(algebra, n, r, 2 * i + 1) for i, r in enumerate(ranks[0::2])]
        Qs = [projector(algebra, n, r, 2 * i + 2) for i, r in enumerate(ranks[1::2])]
        results.append(check(algebra, H, H, Ps, Qs, [identity - P for P in Ps], [identity - Q for Q in Qs]))
    return all_hold(f"explicit n = {n}, k = {k}: all {len(results)} rank choices", results)


def converse_check(n: int, k: int) -> Check:
    """The two trace identities for generic taps of a 2n-channel kernel."""
    taps = symbolic_taps(2 * n, 2 * n, k)
    A = [W[:n, :n] for W in taps]
    B = [W[:n, n:] for W in taps]
    C = [W[n:, :n] for W in taps]
    zero, identity_2n, identity_n = sp.zeros(2 * n), sp.eye(2 * n), sp.eye(n)
    right = sum((W.T * W for W in taps), zero) - identity_2n
    left = sum((W * W.T for W in taps), zero) - identity_2n
    right_A = sum((X.T * X for X in A), sp.zeros(n)) - identity_n
    left_A = sum((X * X.T for X in A), sp.zeros(n)) - identity_n
    squares_C = sum(entry**2 for X in C for entry in X)
    squares_B = sum(entry**2 for X in B for entry in X)
    return Check(
        f"n = {n}, k = {k}: sum ||C_p||^2 and sum ||B_p||^2 are differences of paraunitarity traces",
        sp.expand(right[:n, :n].trace() - right_A.trace() - squares_C) == 0
        and sp.expand(left[:n, :n].trace() - left_A.trace() - squares_B) == 0,
    )


def claims(full: bool) -> list[Check]:
    return [
        *(symbolic_construction_check(k) for k in ((2, 3, 4) if full else (2, 3))),
        *(explicit_checks(n, k) for n in (1, 2) for k in (2, 3)),
        *(converse_check(n, k) for n in (1, 2) for k in (2, 3)),
    ]


def scope(full: bool) -> str:
    return (
        f"construction all n (k = {'2..4' if full else '2, 3'}) and explicit n = 1, 2, k = 2, 3 (all ranks); "
        "converse n = 1, 2, k = 2, 3"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
