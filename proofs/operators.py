"""Exact matrices of 1-D and 2-D convolution operators with circular or zero padding.

A kernel with taps W_e (c_out x c_in, e an exponent tuple) acts on signals x[i] in R^{c_in},
i in {0, ..., N-1}^d, by cross-correlation as torch's conv does:

    y[i] = sum_e W_e x[i + e - pad].

Circular padding reads x modulo N, so taps fold modulo N when the kernel is larger than the image;
zero padding drops the terms whose index leaves the image. Rows and columns are ordered position
first, channel second, so the operator is sum_e S^(e_1) (x) ... (x) W_e with S the cyclic shift.
"""

from __future__ import annotations

import itertools

import sympy as sp

from .kernels import Taps


def shift(N: int) -> sp.Matrix:
    """The cyclic shift (S x)[i] = x[(i + 1) mod N]: orthogonal, S^N = I."""
    return sp.Matrix(N, N, lambda i, j: 1 if j == (i + 1) % N else 0)


def _operator(taps: Taps, N: int, pad: int, circular: bool) -> sp.Matrix:
    W0 = next(iter(taps.values()))
    c_out, c_in = W0.shape
    dims = len(next(iter(taps)))
    positions = list(itertools.product(range(N), repeat=dims))
    index = {position: k for k, position in enumerate(positions)}
    T = sp.zeros(c_out * len(positions), c_in * len(positions))
    for row, i in enumerate(positions):
        for exponents, W in taps.items():
            source = tuple(a + e - pad for a, e in zip(i, exponents))
            if circular:
                source = tuple(s % N for s in source)
            elif any(s < 0 or s >= N for s in source):
                continue
            column = index[source]
            T[row * c_out : (row + 1) * c_out, column * c_in : (column + 1) * c_in] += W
    return T


def circular_operator(taps: Taps, N: int, pad: int = 0) -> sp.Matrix:
    """The convolution on the discrete torus (Z/N)^d, taps folded modulo N."""
    return _operator(taps, N, pad, circular=True)


def zero_padded_operator(taps: Taps, N: int, pad: int) -> sp.Matrix:
    """The convolution on {0..N-1}^d with zero padding: `pad` zeros before, k - 1 - pad after."""
    return _operator(taps, N, pad, circular=False)


def as_taps(taps_1d: list[sp.Matrix]) -> Taps:
    """1-D taps W_0, ..., W_{k-1} keyed by exponent tuples (p,)."""
    return {(p,): W for p, W in enumerate(taps_1d)}


def is_orthogonal(T: sp.Matrix) -> bool:
    """T^T T = I exactly."""
    return sp.expand(T.T * T) == sp.eye(T.cols)
