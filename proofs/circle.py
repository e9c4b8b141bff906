"""Exact polynomial matrices over products of unit circles, for symbolic 2-channel BCOP kernels.

The algebra is QQ[z1, z2, sigma, c_1, s_1, ..., c_m, s_m] modulo sigma^2 = 1 and c_i^2 + s_i^2 = 1.
Every 2 x 2 rotation with a sign is [[c, -sigma s], [s, sigma c]] (det = sigma), and every rank-1
symmetric projector in R^2 is [[c^2, c s], [c s, s^2]] = u u^T with u = (c, s) a unit vector. The
relations have pairwise coprime leading monomials (sigma^2, c_i^2 in lex order), so they form a
Groebner basis and the remainder of the division by them is a unique normal form: two polynomials
agree on the whole parameter space iff their normal forms are equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sympy import QQ
from sympy.polys.matrices import DomainMatrix
from sympy.polys.rings import ring


@dataclass(frozen=True)
class CircleAlgebra:
    """The polynomial ring with its generators and the circle relations."""

    domain: Any
    z1: Any
    z2: Any
    sigma: Any
    angles: tuple[tuple[Any, Any], ...]
    relations: tuple[Any, ...]


def circle_algebra(angles: int) -> CircleAlgebra:
    """QQ[z1, z2, sigma, c_i, s_i] with `angles` unit-circle pairs (c_i, s_i)."""
    names = ["z1", "z2", "sigma"] + [f"{letter}{i}" for i in range(angles) for letter in "cs"]
    R, *gens = ring(",".join(names), QQ)
    z1, z2, sigma = gens[:3]
    pairs = tuple((gens[3 + 2 * i], gens[4 + 2 * i]) for i in range(angles))
    relations = (sigma**2 - 1,) + tuple(c**2 + s**2 - 1 for c, s in pairs)
    return CircleAlgebra(R.to_domain(), z1, z2, sigma, pairs, relations)


def matrix(algebra: CircleAlgebra, rows: list[list[Any]]) -> DomainMatrix:
    """A DomainMatrix over the algebra from rows of ring elements or rationals."""
    ring_ = algebra.domain.ring
    converted = [[ring_(entry) for entry in row] for row in rows]
    return DomainMatrix(converted, (len(rows), len(rows[0])), algebra.domain)


def identity(algebra: CircleAlgebra, n: int) -> DomainMatrix:
    return DomainMatrix.eye(n, algebra.domain)


def reduce(algebra: CircleAlgebra, M: DomainMatrix) -> DomainMatrix:
    """Entrywise normal form modulo the circle relations."""
    return M.applyfunc(lambda entry: entry.rem(list(algebra.relations)), algebra.domain)


def normal_form(algebra: CircleAlgebra, f: Any) -> Any:
    """Normal form of one polynomial modulo the circle relations."""
    return algebra.domain.ring(f).rem(list(algebra.relations))


def product(algebra: CircleAlgebra, *factors: DomainMatrix) -> DomainMatrix:
    """The reduced matrix product, reducing after each multiplication to keep entries small."""
    result = factors[0]
    for M in factors[1:]:
        result = reduce(algebra, result * M)
    return result


def rotation(algebra: CircleAlgebra, angle: int) -> DomainMatrix:
    """[[c, -sigma s], [s, sigma c]]: every 2 x 2 orthogonal matrix, with determinant sigma."""
    c, s = algebra.angles[angle]
    sigma = algebra.sigma
    return matrix(algebra, [[c, -sigma * s], [s, sigma * c]])


def projector(algebra: CircleAlgebra, rank: int, angle: int) -> DomainMatrix:
    """Every symmetric projector of R^2 of the given rank (rank 1 uses the unit vector (c, s))."""
    if rank == 0:
        return DomainMatrix.zeros((2, 2), algebra.domain)
    if rank == 2:
        return identity(algebra, 2)
    if rank == 1:
        c, s = algebra.angles[angle]
        return matrix(algebra, [[c * c, c * s], [c * s, s * s]])
    raise ValueError(f"projector: rank must be 0, 1 or 2, got {rank}")


def factor(algebra: CircleAlgebra, P: DomainMatrix, z: Any) -> DomainMatrix:
    """P + (I - P) z."""
    return P + (identity(algebra, P.shape[0]) - P) * z


def bcop_kernel(algebra: CircleAlgebra, H: DomainMatrix, Ps: list, Qs: list) -> DomainMatrix:
    """K = H (P_1 + (I-P_1) z1)(Q_1 + (I-Q_1) z2) ..., reduced modulo the circle relations."""
    factors = [H]
    for P, Q in zip(Ps, Qs, strict=True):
        factors += [factor(algebra, P, algebra.z1), factor(algebra, Q, algebra.z2)]
    return product(algebra, *factors)


def generic_factors(ranks_P: tuple[int, ...], ranks_Q: tuple[int, ...]) -> tuple:
    """``(algebra, H, Ps, Qs)``: a 2-channel BCOP with a rotation ``H`` and projectors of the given ranks, each
    on its own angle of the circle, so that identities in ``algebra`` hold for every such factor."""
    algebra = circle_algebra(1 + len(ranks_P) + len(ranks_Q))
    Ps = [projector(algebra, r, 1 + i) for i, r in enumerate(ranks_P)]
    Qs = [projector(algebra, r, 1 + len(ranks_P) + i) for i, r in enumerate(ranks_Q)]
    return algebra, rotation(algebra, 0), Ps, Qs


def taps(algebra: CircleAlgebra, K: DomainMatrix) -> dict[tuple[int, int], DomainMatrix]:
    """The coefficient matrices W_pq of K = sum W_pq z1^p z2^q (z1, z2 are the first generators)."""
    ring_ = algebra.domain.ring
    rows, cols = K.shape
    entries: dict[tuple[int, int], list[list[Any]]] = {}
    for i, row in enumerate(K.to_list()):
        for j, entry in enumerate(row):
            for monomial, coefficient in entry.terms():
                tap = entries.setdefault(monomial[:2], [[ring_.zero] * cols for _ in range(rows)])
                tap[i][j] += ring_({(0, 0) + monomial[2:]: coefficient})
    return {key: matrix(algebra, tap) for key, tap in entries.items()}


def squared_norm(algebra: CircleAlgebra, M: DomainMatrix) -> Any:
    """||M||_F^2 = sum of squared entries, in normal form."""
    return normal_form(algebra, sum((entry**2 for row in M.to_list() for entry in row), algebra.domain.ring.zero))


def determinant(algebra: CircleAlgebra, M: DomainMatrix) -> Any:
    """det M by cofactor expansion along the first row, in normal form (small matrices only)."""
    rows = M.to_list()
    return normal_form(algebra, _cofactor_det(rows, algebra.domain.ring.zero))


def _cofactor_det(rows: list[list[Any]], zero: Any) -> Any:
    if len(rows) == 1:
        return rows[0][0]
    total = zero
    for j, entry in enumerate(rows[0]):
        if entry:
            minor = [row[:j] + row[j + 1 :] for row in rows[1:]]
            total += (-1) ** j * entry * _cofactor_det(minor, zero)
    return total


def block_diagonal(algebra: CircleAlgebra, A: DomainMatrix, B: DomainMatrix) -> DomainMatrix:
    """[[A, 0], [0, B]]."""
    zero = algebra.domain.ring.zero
    a, b = A.shape[0], B.shape[0]
    rows = [row + [zero] * b for row in A.to_list()] + [[zero] * a + row for row in B.to_list()]
    return matrix(algebra, rows)


def trace(algebra: CircleAlgebra, M: DomainMatrix) -> Any:
    """tr M in normal form."""
    entries = M.to_list()
    return normal_form(algebra, sum((entries[i][i] for i in range(len(entries))), algebra.domain.ring.zero))
