"""BCOP kernels as exact sympy matrices: transfer functions, taps, and the paraunitarity defect.

Convention (Li et al., NeurIPS 2019, arXiv 1911.00937, Sec. 4): a kernel W of shape
(c_out, c_in, kh, kw) has transfer function K(z1, z2) = sum_{p,q} W[:, :, p, q] z1^p z2^q, and
composing kernels multiplies transfer functions. The BCOP kernel of size k is

    K(z1, z2) = H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1}),   B(P, Q) = (P + (I - P) z1)(Q + (I - Q) z2),

with H orthogonal and P_i, Q_i symmetric projectors. K is paraunitary when K(z)^T K(1/z) = I.
"""

from __future__ import annotations

from typing import Sequence

import sympy as sp

Z1, Z2 = sp.symbols("z1 z2")

Taps = dict[tuple[int, ...], sp.Matrix]


def factor(P: sp.Matrix, z: sp.Symbol) -> sp.Matrix:
    """The one-variable factor P + (I - P) z."""
    return P + (sp.eye(P.rows) - P) * z


def block(P: sp.Matrix, Q: sp.Matrix) -> sp.Matrix:
    """B(P, Q)(z1, z2) = (P + (I - P) z1)(Q + (I - Q) z2)."""
    return sp.expand(factor(P, Z1) * factor(Q, Z2))


def bcop_transfer(H: sp.Matrix, Ps: Sequence[sp.Matrix], Qs: Sequence[sp.Matrix]) -> sp.Matrix:
    """K(z1, z2) = H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1})."""
    K = H
    for P, Q in zip(Ps, Qs, strict=True):
        K = sp.expand(K * block(P, Q))
    return K


def transfer_1d(H: sp.Matrix, Ps: Sequence[sp.Matrix], z: sp.Symbol = Z1) -> sp.Matrix:
    """The 1-D BCOP K(z) = H (P_1 + (I - P_1) z) ... (P_{k-1} + (I - P_{k-1}) z)."""
    K = H
    for P in Ps:
        K = sp.expand(K * factor(P, z))
    return K


def taps_of(K: sp.Matrix, zs: Sequence[sp.Symbol] = (Z1, Z2)) -> Taps:
    """The coefficient matrices W_e of K = sum_e W_e z^e, keyed by the exponent tuple e."""
    taps: Taps = {}
    for (i, j), entry in K.todok().items():
        for exponents, coefficient in sp.Poly(entry, *zs).terms():
            tap = taps.setdefault(exponents, sp.zeros(K.rows, K.cols))
            tap[i, j] += coefficient
    return taps


def taps_1d(K: sp.Matrix, z: sp.Symbol = Z1) -> list[sp.Matrix]:
    """The taps W_0, ..., W_deg of a one-variable K(z) = sum_p W_p z^p, as a list."""
    taps = taps_of(K, (z,))
    size = max(exponents[0] for exponents in taps) + 1
    return [taps.get((p,), sp.zeros(K.rows, K.cols)) for p in range(size)]


def kernel_array(K: sp.Matrix, size: int) -> list:
    """Nested lists W[c_out][c_in][p][q] of the 2-D taps, zero-filled to size x size."""
    taps = taps_of(K)
    return [
        [
            [[taps.get((p, q), sp.zeros(K.rows, K.cols))[i, j] for q in range(size)] for p in range(size)]
            for j in range(K.cols)
        ]
        for i in range(K.rows)
    ]


def paraunitary_defect(K: sp.Matrix, zs: Sequence[sp.Symbol] = (Z1, Z2)) -> sp.Matrix:
    """K(z)^T K(1/z) - I, expanded; zero exactly when K is paraunitary."""
    inverse_point = {z: 1 / z for z in zs}
    return sp.expand(K.T * K.subs(inverse_point) - sp.eye(K.cols))


def symbolic_taps(c_out: int, c_in: int, k: int, name: str = "w") -> list[sp.Matrix]:
    """Generic 1-D taps W_0, ..., W_{k-1} whose entries are independent real symbols."""
    return [
        sp.Matrix(c_out, c_in, lambda i, j, p=p: sp.Symbol(f"{name}{p}_{i}{j}", real=True))
        for p in range(k)
    ]


def gram_coefficients(taps: Sequence[sp.Matrix]) -> dict[int, sp.Matrix]:
    """C_d = sum_{q - p = d} W_p^T W_q, so that K(1/z)^T K(z) = sum_d C_d z^d; d in [-(k-1), k-1].

    K is paraunitary iff C_0 = I and C_d = 0 for d != 0.
    """
    k = len(taps)
    return {
        d: sp.expand(
            sum(
                (taps[p].T * taps[p + d] for p in range(k) if 0 <= p + d < k),
                sp.zeros(taps[0].cols, taps[0].cols),
            )
        )
        for d in range(-(k - 1), k)
    }
