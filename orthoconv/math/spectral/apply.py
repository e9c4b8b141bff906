"""Applying a :class:`.geometry.ConvOperator` and its adjoint, and a certified power-iteration lower bound.

The padding is an index gather (any mode, circular wraps any number of times), then
``torch.nn.functional.conv{1,2,3}d`` without padding, cropped to the operator's output size; the
adjoint is the gradient of ``<A x, y>`` in ``x``. Used for lower bounds: a lower bound on ``||A||``
is ``||A x||`` for a unit ``x``, and power iteration on ``A^T A`` finds a good ``x``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import ConvOperator, padded_source

EPS64 = 2.0**-53
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def pad(x: Tensor, op: ConvOperator) -> Tensor:
    """``x`` ``(B, C, *N)`` padded by ``op.padding`` in ``op.padding_mode`` (:func:`.geometry.padded_source`)."""
    for d, (n, (before, after)) in enumerate(zip(op.input_size, op.padding)):
        src, valid = padded_source(torch.arange(-before, n + after, device=x.device), n, op.padding_mode)
        axis = 2 + d
        x = x.index_select(axis, src)
        if not bool(valid.all()):
            x = x * valid.to(x.dtype).reshape([-1 if a == axis else 1 for a in range(x.dim())])
    return x


def convolve(op: ConvOperator, x: Tensor) -> Tensor:
    """The forward convolution ``(B, c_in, *N) -> (B, c_out, *L)`` (bias excluded)."""
    y = CONV[op.dims](pad(x, op), op.kernel.to(x.dtype), stride=op.stride, dilation=op.dilation, groups=op.groups)
    return y[(..., *(slice(0, l) for l in op.output_size))]


def convolve_adjoint(op: ConvOperator, y: Tensor) -> Tensor:
    """The adjoint ``(B, c_out, *L) -> (B, c_in, *N)``: the gradient of ``<conv(x), y>`` in ``x``."""
    x = torch.zeros(y.shape[0], *op.forward_shapes[0], dtype=y.dtype, device=y.device, requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(convolve(op, x), x, y)
    return grad


def apply(op: ConvOperator, x: Tensor) -> Tensor:
    """The map itself (the adjoint convolution for a transposed one), batched."""
    return convolve_adjoint(op, x) if op.adjoint else convolve(op, x)


def apply_transpose(op: ConvOperator, y: Tensor) -> Tensor:
    return convolve(op, y) if op.adjoint else convolve_adjoint(op, y)


def rounding_bound(op: ConvOperator) -> float:
    """An upper bound on ``||fl(A x) - A x||`` (or ``A^T``) for unit ``x`` in float64: ``gamma_m || |A| ||_2``
    with ``m`` the products that can enter one entry (plus a ``log2`` allowance for FFT-based
    convolution algorithms) and ``|| |A| ||_2 <= sqrt(||A||_1 ||A||_inf)``: the kernel's largest
    absolute row sum, and its largest absolute column sum times the most outputs that read one input
    position through one tap."""
    W = op.kernel.detach().abs().to(torch.float64)
    rows = float(W.flatten(1).sum(1).max())
    columns = float(W.transpose(0, 1).flatten(1).sum(1).max())
    reads = 1
    for d in range(op.dims):
        src, valid = op.source_index(d)
        taps = torch.arange(src.shape[1]).expand_as(src)
        counts = torch.zeros(src.shape[1], op.input_size[d], dtype=torch.long)
        counts.index_put_((taps[valid], src[valid]), torch.ones((), dtype=torch.long), accumulate=True)
        reads *= max(int(counts.max()), 1)
    terms = op.kernel.numel() * reads + 2 * math.log2(math.prod(op.input_size) + 1) + 8
    return 2 * terms * EPS64 * math.sqrt(rows * columns * reads)


def power_iteration_lower_bound(op: ConvOperator, n_iter: int = 50, seed: int = 0) -> float:
    """A certified lower bound on ``||A||_2``: ``||A x||`` for the unit ``x`` reached by ``n_iter`` steps
    of power iteration on ``A^T A`` from a seeded Gaussian (drawn on the CPU, so a seed gives the same
    start on every device), in float64, minus the rounding allowance of :func:`rounding_bound`."""
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    device = op.kernel.device
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *op.input_shape, generator=generator, dtype=torch.float64).to(device)
    with torch.no_grad():
        for _ in range(n_iter):
            x = x / torch.linalg.vector_norm(x)
            x = apply_transpose(op, apply(op, x))
            if not bool(torch.linalg.vector_norm(x) > 0):
                return 0.0
        x = x / torch.linalg.vector_norm(x)
        value = float(torch.linalg.vector_norm(apply(op, x)))
    size = math.prod(op.input_shape)
    return max(0.0, (value * (1 - 4 * EPS64) - rounding_bound(op)) / (1 + (size + 4) * EPS64))
