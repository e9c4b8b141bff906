"""Theorem 9 (why rank n: the largest component).

The symmetric projectors of rank r in R^m form the Grassmannian Gr(r, m), a manifold of dimension
r (m - r). For m = 2n,

    n^2 - r (2n - r) = (n - r)^2 >= 0,

so r (2n - r) is maximal exactly at r = n. The BCOP parameter set with ranks (r_i, r'_i) is
O(2n)^{+-} times the product of Gr(r_i, 2n) and Gr(r'_i, 2n); its dimension
dim O(2n) + sum_i r_i (2n - r_i) + sum_i r'_i (2n - r'_i) = dim O(2n) + 2(k-1) n^2 - sum (n - r)^2
is therefore largest exactly when every rank is n, the component that Theorem 8 shows to represent
every n-channel BCOP.

Proof, for every m and r. Every projector of rank r is U P0 U^T with U orthogonal and
P0 = diag(I_r, 0) (spectral theorem), so the set is one orbit of O(m) and its tangent space at P0
has the dimension of the manifold. With blocks of sizes r and m - r as non-commutative symbols, the
differentiated constraints P^2 = P = P^T at P0 read X P0 + P0 X - X = [[X11, 0], [0, -X22]] = 0 for
X = [[X11, X12], [X12^T, X22]] symmetric, so the tangent space is {[[0, B], [B^T, 0]]}; the orbit
map's derivative A -> A P0 - P0 A on skew A = [[A11, A12], [-A12^T, A22]] is [[0, -A12], [-A12^T, 0]],
the same space. B is an arbitrary r x (m - r) block: dimension r (m - r). The two dimension counts
are also computed as exact matrix ranks for m = 2n <= 6 (8 with --full), every r. The identity
n^2 - r(2n - r) = (n - r)^2 is expanded in symbols n, r; the per-factor identities add up, so the
maximum over rank tuples is at all ranks n for every number of factors.

(Li et al., NeurIPS 2019, arXiv 1911.00937, Sec. 4 and Theorem 2.)
"""

from __future__ import annotations

import sympy as sp

from .noncommutative import matrices
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "grassmannian"
STATEMENT = (
    "rank-r projectors in R^(2n) form a manifold of dimension r(2n - r) = n^2 - (n - r)^2, "
    "maximal exactly at r = n"
)


def base_point(m: int, r: int) -> sp.Matrix:
    return sp.diag(*([1] * r + [0] * (m - r)))


def constraint_tangent_dimension(m: int, r: int) -> int:
    """dim {X symmetric : X P0 + P0 X = X}."""
    unknowns = {(i, j): sp.Symbol(f"x{i}_{j}") for i in range(m) for j in range(i, m)}
    X = sp.Matrix(m, m, lambda i, j: unknowns[min(i, j), max(i, j)])
    P = base_point(m, r)
    equations = [e for e in (X * P + P * X - X) if e != 0]
    if not equations:
        return len(unknowns)
    coefficients, _ = sp.linear_eq_to_matrix(equations, list(unknowns.values()))
    return len(unknowns) - coefficients.rank()


def orbit_tangent_dimension(m: int, r: int) -> int:
    """rank of A -> A P0 - P0 A on the skew-symmetric matrices."""
    P = base_point(m, r)
    columns = []
    for i in range(m):
        for j in range(i + 1, m):
            A = sp.zeros(m, m)
            A[i, j], A[j, i] = 1, -1
            columns.append(list(A * P - P * A))
    if not columns:
        return 0
    return sp.Matrix(columns).T.rank()


def check(m: int, r: int, dimension: int) -> Check:
    """Both tangent-space computations at a rank-r projector of R^m give `dimension`."""
    return Check(
        f"tangent dimension at rank {r} in R^{m} is {dimension}",
        constraint_tangent_dimension(m, r) == dimension == orbit_tangent_dimension(m, r),
    )


def maximum_check(dimension: sp.Expr) -> Check:
    """n^2 - dimension(n, r) = (n - r)^2: the dimension r(2n - r) is maximal exactly at r = n."""
    n, r = sp.symbols("n r", real=True)
    return Check(
        "n^2 - r(2n - r) = (n - r)^2, zero only at r = n",
        sp.expand(n**2 - dimension - (n - r) ** 2) == 0 and sp.solve((n - r) ** 2, r) == [n],
    )


def block_tangent_check(P0: sp.Matrix) -> Check:
    """At P0 (blocks r, m - r): the constraint tangent and the orbit tangent are {[[0, B], [B^T, 0]]}."""
    X11, X12, X12t, X22, A11, A12, A12t, A22 = matrices("X11 X12 X12^T X22 A11 A12 A12^T A22")
    X = sp.Matrix([[X11, X12], [X12t, X22]])
    A = sp.Matrix([[A11, A12], [-A12t, A22]])
    constraint = (X * P0 + P0 * X - X).applyfunc(sp.expand)
    orbit = (A * P0 - P0 * A).applyfunc(sp.expand)
    return Check(
        "all m, r: X P0 + P0 X - X = [[X11, 0], [0, -X22]] and A P0 - P0 A = [[0, -A12], [-A12^T, 0]], "
        "so both tangent spaces are {[[0, B], [B^T, 0]]}, B of size r x (m - r): dimension r(m - r)",
        constraint == sp.Matrix([[X11, 0], [0, -X22]]) and orbit == sp.Matrix([[0, -A12], [-A12t, 0]]),
    )


def factor_sum_check(per_factor: sp.Expr) -> Check:
    """sum_i r_i (2n - r_i) = (number of factors) n^2 - sum_i (n - r_i)^2, given the per-factor deficit."""
    n, r = sp.symbols("n r", real=True)
    ranks = sp.symbols("r1:4", real=True)
    total = sum(per_factor.subs(r, ri) for ri in ranks)
    return Check(
        "sum_i r_i (2n - r_i) = (k-1) n^2 - sum_i (n - r_i)^2 (three factors; the identity is termwise), "
        "maximal only at all r_i = n",
        sp.expand(total - (len(ranks) * n**2 - sum((n - ri) ** 2 for ri in ranks))) == 0,
    )


def component_dimension_check(max_n: int, dimension) -> Check:
    """With dimension(r, m) (= r(m - r)) per factor, two factors' total is maximal only at ranks (n, n)."""
    holds = True
    for n in range(1, max_n + 1):
        m = 2 * n
        dims = {(r1, r2): dimension(r1, m) + dimension(r2, m) for r1 in range(m + 1) for r2 in range(m + 1)}
        best = max(dims.values())
        holds &= [ranks for ranks, d in dims.items() if d == best] == [(n, n)]
    return Check(f"enumerated: sum_i r_i (2n - r_i) is maximal only at r_i = n (two factors, n <= {max_n})", holds)


def claims(full: bool) -> list[Check]:
    max_n = 4 if full else 3
    n, r = sp.symbols("n r", real=True)
    return [
        maximum_check(r * (2 * n - r)),
        block_tangent_check(sp.diag(1, 0)),
        factor_sum_check(r * (2 * n - r)),
        all_hold(
            f"tangent dimension r(2n - r) as exact ranks for n <= {max_n}, every r",
            (check(2 * n_, r_, r_ * (2 * n_ - r_)) for n_ in range(1, max_n + 1) for r_ in range(2 * n_ + 1)),
        ),
        component_dimension_check(max_n, lambda r_, m: r_ * (m - r_)),
    ]


def scope(full: bool) -> str:
    return (
        "every m, r (block symbols; the orbit structure from the spectral theorem taken as known), every number "
        f"of factors; ranks cross-checked for n <= {4 if full else 3}"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
