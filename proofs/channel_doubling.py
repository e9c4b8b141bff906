"""Theorem 8 (the 2n-channel theorem; Li et al. 2019, Theorem 2).

Let C = H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1}) be an n-channel BCOP and set

    P'_i = P_i (+) (I - P_i),  Q'_i = Q_i (+) (I - Q_i),  H' = H (+) H''  with det H'' = det H.

Then each P'_i, Q'_i is a symmetric projector of rank exactly n, det H' = (det H)^2 = 1, and
C' = H' B(P'_1, Q'_1) ... B(P'_{k-1}, Q'_{k-1}) = C (+) C'' is block diagonal, so
C'(x)_{1:n} = C(x_{1:n}): the largest component (all ranks n, det +1) of 2n-channel BCOP
represents every n-channel BCOP.

Converse: if K' = [[A, B], [C, D]] is a paraunitary 2n-channel kernel whose top-left block A is
paraunitary, then B = 0 and C = 0. With taps W'_p = [[A_p, B_p], [C_p, D_p]],

    sum_p ||C_p||^2 = tr[sum_p W'_p^T W'_p - I]_{1:n,1:n} - tr[sum_p A_p^T A_p - I],
    sum_p ||B_p||^2 = tr[sum_p W'_p W'_p^T - I]_{1:n,1:n} - tr[sum_p A_p A_p^T - I],

and all four brackets vanish (they are the constant coefficients of K'(z)^T K'(1/z) - I,
K'(1/z) K'(z)^T - I and the same for A; for square matrices a one-sided inverse over the field of
rational functions is two-sided). A real sum of squares that vanishes has every term zero.

(Li et al., NeurIPS 2019, arXiv 1911.00937, Theorem 2.)

Proof, for every n and every k. The blocks are non-commutative symbols (:mod:`proofs.noncommutative`),
so each identity holds for n x n blocks of any n.
  - Induction on k: C'_1 = H' = H (+) H''; if C'_k = C_k (+) C''_k (letters C, C''), then
    C'_k B(P', Q') = (C_k B(P, Q)) (+) (C''_k B(I - P, I - Q)), checked blockwise modulo P^2 = P.
  - P' is symmetric and idempotent blockwise, and its trace is computed from its blocks with the
    linear, cyclic trace of :func:`proofs.noncommutative.trace`: tr P + tr(I_n - P) = n. For a
    projector rank = trace, so rank P' = n.
  - det H' is the product of the determinants of the diagonal blocks of the block-diagonal H':
    sigma * sigma = 1 modulo sigma^2 = 1, where sigma = det H = det H''.
  - Converse: [W^T W]_{11} - A^T A = C^T C and [W W^T]_{11} - A A^T = B B^T for one tap of blocks;
    summing over the taps is linear, so the identities hold for every k, and tr(C^T C) = ||C||_F^2.
The doubled projectors and H' are also checked with explicit matrices for n = 1 (scalar projectors,
H = +-1) and n = 2 (unit-circle parametrization, every rank, det H = sigma), and the converse's trace
identities for generic symbolic taps (n = 1, 2).
"""

from __future__ import annotations

import sympy as sp
from sympy.polys.matrices import DomainMatrix

from . import circle
from .circle import CircleAlgebra
from .kernels import symbolic_taps
from .noncommutative import equal_modulo, idempotent_rules, matrices, trace, transpose
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "channel_doubling"
STATEMENT = (
    "every n-channel BCOP C is the top-left block of a 2n-channel BCOP C' with rank-n projectors "
    "P_i (+) (I-P_i), Q_i (+) (I-Q_i) and det H' = +1; paraunitary K' with paraunitary top-left "
    "block has zero off-diagonal blocks"
)


def complement_double(X: sp.Expr) -> sp.Matrix:
    """The construction's doubled projector X (+) (I - X)."""
    return sp.diag(X, 1 - X)


def doubled_factor(double, X: sp.Symbol, z: sp.Symbol) -> sp.Matrix:
    X2 = double(X)
    return X2 + (sp.eye(2) - X2) * z


def step_check(double) -> Check:
    """diag(C, C'') B(P', Q') = diag(C B(P, Q), C'' B(I-P, I-Q)) for letters C, C'', P, Q: the k -> k+1 step."""
    C, C2, P, Q = matrices("C C'' P Q")
    z1, z2 = sp.symbols("z1 z2")
    rules = idempotent_rules([P, Q])
    product = (sp.diag(C, C2) * doubled_factor(double, P, z1) * doubled_factor(double, Q, z2)).applyfunc(sp.expand)
    return Check(
        "all n, induction step k -> k+1: C'_k = C_k (+) C''_k gives C'_(k+1) = C_k B(P,Q) (+) C''_k B(I-P,I-Q)",
        equal_modulo([product[0, 1]], [0], rules) and equal_modulo([product[1, 0]], [0], rules)
        and equal_modulo([product[0, 0]], [C, P + (1 - P) * z1, Q + (1 - Q) * z2], rules)
        and equal_modulo([product[1, 1]], [C2, (1 - P) + P * z1, (1 - Q) + Q * z2], rules),
    )


def projector_check(double) -> Check:
    """P' symmetric and idempotent blockwise, and tr P' = n computed from its diagonal blocks."""
    (P,) = matrices("P")
    n = sp.Symbol("n")
    rules = idempotent_rules([P])
    P2 = double(P)
    transposed = P2.T.applyfunc(lambda entry: transpose(entry, {P: P}))
    square = (P2 * P2).applyfunc(sp.expand)
    return Check(
        "all n: P' = P (+) (I-P) is symmetric, idempotent and tr P' = tr P + tr(I-P) = n = rank P'",
        all(equal_modulo([a], [b], rules) for a, b in zip(transposed, P2))
        and all(equal_modulo([a], [b], rules) for a, b in zip(square, P2))
        and trace(P2[0, 0], n, rules) + trace(P2[1, 1], n, rules) == n,
    )


def determinant_check(H_doubled: sp.Matrix, determinants: dict) -> Check:
    """det H' from its diagonal blocks (it must be block diagonal), reduced modulo sigma^2 = 1."""
    sigma = sp.Symbol("sigma")
    blocks = (H_doubled[0, 0], H_doubled[1, 1])
    holds = H_doubled[0, 1] == 0 and H_doubled[1, 0] == 0 and all(block in determinants for block in blocks)
    if holds:
        value = sp.expand(determinants[blocks[0]] * determinants[blocks[1]])
        holds = sp.rem(value, sigma**2 - 1, sigma) == 1
    return Check(
        "all n: det H' = det H det H'' = sigma^2 = 1 (det H'' = det H = sigma, sigma^2 = 1 as H^T H = I)", holds
    )


def converse_block_check(transpose_blocks) -> Check:
    """[W^T W]_11 - A^T A = C^T C and [W W^T]_11 - A A^T = B B^T for a tap W = [[A, B], [C, D]] of letters."""
    A, B, C, D, At, Bt, Ct, Dt = matrices("A B C D A^T B^T C^T D^T")
    W = sp.Matrix([[A, B], [C, D]])
    Wt = transpose_blocks(At, Bt, Ct, Dt)
    right = (Wt * W).applyfunc(sp.expand)
    left = (W * Wt).applyfunc(sp.expand)
    return Check(
        "all n, k: [sum W_p^T W_p]_11 - sum A_p^T A_p = sum C_p^T C_p, [sum W_p W_p^T]_11 - sum A_p A_p^T = "
        "sum B_p B_p^T (per tap; linear in the taps)",
        equal_modulo([right[0, 0] - At * A], [Ct * C], {}) and equal_modulo([left[0, 0] - A * At], [B * Bt], {}),
    )


def block_transpose(At: sp.Symbol, Bt: sp.Symbol, Ct: sp.Symbol, Dt: sp.Symbol) -> sp.Matrix:
    """[[A, B], [C, D]]^T = [[A^T, C^T], [B^T, D^T]]."""
    return sp.Matrix([[At, Ct], [Bt, Dt]])


def check(algebra: CircleAlgebra, H: DomainMatrix, H2: DomainMatrix, doubled: list[DomainMatrix]) -> list[Check]:
    """Each doubled projector is a symmetric idempotent of rank n, and H (+) H2 has det +1."""
    n = H.shape[0]
    return [
        Check(
            "P' is a symmetric idempotent",
            all(X.transpose() == X and circle.reduce(algebra, X * X - X).is_zero_matrix for X in doubled),
        ),
        Check("rank P' = tr P' = n", all(circle.trace(algebra, X) == n for X in doubled)),
        Check("det H' = 1", circle.determinant(algebra, circle.block_diagonal(algebra, H, H2)) == 1),
    ]


def explicit_checks(n: int) -> Check:
    """Every projector P of R^n (n = 1: 0, 1; n = 2: every rank, unit-circle angle) doubled to P (+) (I - P);
    H = (sigma) for n = 1 or the signed rotation for n = 2 (det H = sigma), H'' = H."""
    algebra = circle.circle_algebra(2)
    identity = circle.identity(algebra, n)
    H = circle.matrix(algebra, [[algebra.sigma]]) if n == 1 else circle.rotation(algebra, 0)
    projectors = [circle.matrix(algebra, [[r]]) if n == 1 else circle.projector(algebra, r, 1) for r in range(n + 1)]
    doubled = [circle.block_diagonal(algebra, P, identity - P) for P in projectors]
    return all_hold(f"explicit n = {n}: every projector and det H = sigma", check(algebra, H, H, doubled))


def converse_check(n: int, k: int, swap_off_diagonal: bool = False) -> Check:
    """The two trace identities for generic taps of a 2n-channel kernel (swapping B and C breaks them)."""
    taps = symbolic_taps(2 * n, 2 * n, k)
    A = [W[:n, :n] for W in taps]
    B = [W[:n, n:] for W in taps]
    C = [W[n:, :n] for W in taps]
    if swap_off_diagonal:
        B, C = C, B
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
    H, H2 = matrices("H H''")
    sigma = sp.Symbol("sigma")
    return [
        step_check(complement_double),
        projector_check(complement_double),
        determinant_check(sp.diag(H, H2), {H: sigma, H2: sigma}),
        converse_block_check(block_transpose),
        *(explicit_checks(n) for n in (1, 2)),
        *(converse_check(n, k) for n in (1, 2) for k in ((2, 3) if full else (2,))),
    ]


def scope(full: bool) -> str:
    return (
        "all n, all k (induction on k with block symbols; converse per tap); explicit projectors and H' for "
        f"n = 1, 2; generic-tap converse n = 1, 2, k = {'2, 3' if full else '2'}"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
