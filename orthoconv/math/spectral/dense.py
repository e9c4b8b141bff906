"""The dense matrix of a convolution, by index arithmetic: the exact reference on small sizes.

Built from the definition in :mod:`.geometry` (``y[o, i] = sum_{c, t} W[o, c, t] x[c, pad(s i + d t - b)]``)
without any convolution routine: per dimension a 0/1 tensor ``P_d[t, i, j]`` says that output ``i``
reads input ``j`` through tap ``t``, and the operator is ``sum_t W[:, :, t] (x) P_1[t_1] (x) ... (x) P_D[t_D]``,
contracted one dimension at a time. Rows and columns are ordered as ``torch`` flattens ``(C, *spatial)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_input_size, check_kernel
from .geometry import ConvOperator, conv_operator

DENSE_LIMIT = 4096


def block_diagonal_kernel(kernel: Tensor, groups: int) -> Tensor:
    """The ``(c_out, c_in, *k)`` kernel of a grouped convolution: group ``g``'s ``(c_out / g, c_in / g)``
    block on the diagonal, zeros elsewhere."""
    if groups == 1:
        return kernel
    c_out, c_in_g = kernel.shape[:2]
    full = kernel.new_zeros(groups, c_out // groups, groups, c_in_g, *kernel.shape[2:])
    index = torch.arange(groups, device=kernel.device)
    full[index, :, index] = kernel.reshape(groups, c_out // groups, c_in_g, *kernel.shape[2:])
    return full.reshape(c_out, groups * c_in_g, *kernel.shape[2:])


def tap_matrices(op: ConvOperator, dim: int, dtype, device) -> Tensor:
    """``P[t, i, j] = 1`` when output ``i`` reads input ``j`` through tap ``t`` along ``dim``: ``(k_d, L_d, N_d)``."""
    src, valid = op.source_index(dim)
    L, k = src.shape
    P = torch.zeros(k, L, op.input_size[dim], dtype=dtype)
    t = torch.arange(k)[None, :].expand(L, k)
    i = torch.arange(L)[:, None].expand(L, k)
    P.index_put_((t[valid], i[valid], src[valid]), torch.ones((), dtype=dtype), accumulate=True)
    return P.to(device)


def operator_matrix(op: ConvOperator, dtype: torch.dtype = torch.float64) -> Tensor:
    """The matrix of ``op`` (the map the module computes: the adjoint for a transposed convolution),
    ``(prod output_shape, prod input_shape)``, in ``dtype`` (float64 by default), by index arithmetic."""
    X = block_diagonal_kernel(op.kernel.detach().to(dtype), op.groups)
    for d in range(op.dims):
        X = torch.tensordot(X, tap_matrices(op, d, dtype, X.device), dims=([2], [0]))  # taps out, (L_d, N_d) in
    dims = op.dims
    X = X.permute([0, *(2 + 2 * d for d in range(dims)), 1, *(3 + 2 * d for d in range(dims))])
    rows, cols = math.prod(op.forward_shapes[1]), math.prod(op.forward_shapes[0])
    A = X.reshape(rows, cols)
    return A.T if op.adjoint else A


def dense_operator(kernel: Tensor, input_size, padding: str = "circular") -> Tensor:
    """The ``(c_out H W) x (c_in H W)`` matrix of the stride-1 "same" 2-D convolution (row-major ``(c, i, j)``).

    ``y[o, i, j] = sum_{c,p,q} W[o, c, p, q] x[c, i + p - ph, j + q - pw]`` (``ph, pw`` the "before"
    paddings ``(k - 1) // 2``; indices wrap for ``"circular"``, fall off for ``"zeros"``), built by
    :func:`operator_matrix`, independently of the convolution code, as the reference for tests.
    Small sizes only: ``max(c_out, c_in) * H * W`` must not exceed ``DENSE_LIMIT``. For strides,
    groups, dilation, other paddings and dimensions use :func:`operator_matrix` of a
    :func:`.geometry.conv_operator`.
    """
    kernel = check_kernel(kernel)
    H, W = check_input_size(input_size)
    if padding not in ("circular", "zeros"):
        raise ValueError(f"padding_mode must be one of ('circular', 'zeros'), got {padding!r}")
    if max(kernel.shape[0], kernel.shape[1]) * H * W > DENSE_LIMIT:
        raise ValueError(
            f"dense_operator is for small sizes: max(c_out, c_in) * H * W = {max(kernel.shape[0], kernel.shape[1]) * H * W} "
            f"exceeds DENSE_LIMIT = {DENSE_LIMIT}"
        )
    op = conv_operator(kernel, (H, W), padding="same", padding_mode=padding)
    return operator_matrix(op, kernel.dtype)
