"""Theorem 8 (why rank n: the largest component).

The symmetric projectors of rank r in R^m form the Grassmannian Gr(r, m), a manifold of dimension
r (m - r). For m = 2n,

    n^2 - r (2n - r) = (n - r)^2 >= 0,

so r (2n - r) is maximal exactly at r = n. The BCOP parameter set with ranks (r_i, r'_i) is
O(2n)^{+-} times the product of Gr(r_i, 2n) and Gr(r'_i, 2n); its dimension
dim O(2n) + sum_i r_i (2n - r_i) + sum_i r'_i (2n - r'_i) is therefore largest when every rank is n,
the component that Theorem 7 shows to represent every n-channel BCOP.

Proof. The identity is expanded symbolically in n and r. The dimension r (m - r) is computed as the
exact dimension of the tangent space at P0 = diag(I_r, 0) in two independent ways: as the solution
space {X = X^T : X P0 + P0 X = X} of the differentiated constraints P^2 = P = P^T, and as the rank of
the orbit map A -> A P0 - P0 A on skew-symmetric A (the derivative of U -> U P0 U^T at U = I).
Every projector of rank r is U P0 U^T for an orthogonal U, so P0 is a representative point.

(Li et al., NeurIPS 2019, arXiv 1911.00937, Sec. 4 and Theorem 2.)
"""

from __future__ import annotations

import sympy as sp

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


def maximum_check() -> Check:
    n, r = sp.symbols("n r", real=True)
    return Check(
        "n^2 - r(2n - r) = (n - r)^2, zero only at r = n",
        sp.expand(n**2 - r * (2 * n - r) - (n - r) ** 2) == 0 and sp.solve((n - r) ** 2, r) == [n],
    )


def component_dimension_check(max_n: int) -> Check:
    """Over 1-D rank tuples (k - 1 = 2 factors), the parameter dimension is maximal only at all ranks n."""
    holds = True
    for n in range(1, max_n + 1):
        m = 2 * n
        dims = {(r1, r2): r1 * (m - r1) + r2 * (m - r2) for r1 in range(m + 1) for r2 in range(m + 1)}
        best = max(dims.values())
        holds &= [ranks for ranks, d in dims.items() if d == best] == [(n, n)]
    return Check(f"sum_i r_i (2n - r_i) is maximal only at r_i = n (two factors, n <= {max_n})", holds)


def claims(full: bool) -> list[Check]:
    max_n = 4 if full else 3
    return [
        maximum_check(),
        all_hold(
            f"tangent dimension r(2n - r) for n <= {max_n}, every r",
            (check(2 * n, r, r * (2 * n - r)) for n in range(1, max_n + 1) for r in range(2 * n + 1)),
        ),
        component_dimension_check(max_n),
    ]


def scope(full: bool) -> str:
    return f"symbolic in n, r; tangent spaces exactly for n <= {4 if full else 3}"


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
