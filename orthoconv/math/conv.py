"""Stride-1 "same" convolutions with circular or zero padding, and their adjoints.

Padding follows ``torch.nn.Conv2d(padding="same")``: a kernel of size k pads ``(k - 1) // 2``
before and ``k - 1 - (k - 1) // 2`` after, so ``y[i] = sum_p W[p] x[i + p - (k - 1) // 2]``.
Circular padding wraps around any number of times, so kernels larger than the image are allowed:
the operator is then the convolution with the kernel folded modulo the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._autocast import autocast_enabled
from .constants import constant, tracing

PADDING_MODES = ("circular", "zeros")


def same_padding(k: int) -> tuple[int, int]:
    """``(before, after)`` padding of a size-k kernel in a same-size convolution."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


def check_padding_mode(padding_mode: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")


def _wrap_index(n: int, before: int, after: int, device: torch.device) -> Tensor:
    """``[-before, n + after) mod n``: the source of every position of a circular pad (any pad size)."""
    return torch.arange(-before, n + after, device=device) % n


def _wrap(x: Tensor, dim: int, before: int, after: int) -> Tensor:
    """``x`` with its last ``before`` entries along ``dim`` put in front and its first ``after`` behind."""
    n = x.shape[dim]
    parts = [x.narrow(dim, n - before, before)] if before else []
    parts.append(x)
    if after:
        parts.append(x.narrow(dim, 0, after))
    return torch.cat(parts, dim) if len(parts) > 1 else x


def _fold(grad: Tensor, dim: int, before: int, after: int) -> Tensor:
    """The adjoint of :func:`_wrap`: the gradient of every copy added to the entry it copies."""
    n = grad.shape[dim] - before - after
    out = grad.narrow(dim, before, n).clone()
    if before:
        out.narrow(dim, n - before, before).add_(grad.narrow(dim, 0, before))
    if after:
        out.narrow(dim, 0, after).add_(grad.narrow(dim, before + n, after))
    return out


class _CircularPad(torch.autograd.Function):
    """Circular padding within the image: one ``cat`` per padded dimension forward, a copy and two in-place adds
    backward (no ``index_add``: its scatter is several times slower on the CPU)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
        return _wrap(_wrap(x, -2, top, bottom), -1, left, right)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.pads = inputs[1:]

    @staticmethod
    def jvp(ctx, tangent: Tensor, *_) -> Tensor:  # forward-mode AD: the map is linear
        left, right, top, bottom = ctx.pads
        return _wrap(_wrap(tangent, -2, top, bottom), -1, left, right)

    @staticmethod
    def backward(ctx, grad: Tensor):
        left, right, top, bottom = ctx.pads
        if left or right:
            grad = _fold(grad, -1, left, right)
        if top or bottom:
            grad = _fold(grad, -2, top, bottom)
        return grad, None, None, None, None


def pad(x: Tensor, pads: tuple[int, int, int, int], padding_mode: str) -> Tensor:
    """Pad the last two dims by ``pads = (left, right, top, bottom)``, circularly or with zeros.

    Circular padding wraps modulo the size, any number of times (F.pad refuses pads larger than the size);
    it needs a non-empty image (``ValueError`` otherwise). Eager, pads within the size are one ``cat`` per
    padded dimension, and the backward adds the wrapped entries' gradients back in place (:class:`_CircularPad`:
    14 aten operations forward and backward for a one-sided pad, 22 for a two-sided one, where
    ``F.pad(mode="circular")`` dispatches 35; and about twice as fast on the CPU); larger pads are one
    ``index_select`` per padded dimension, with the wrapped indices built once per size and device.
    Traced, pads within the size use ``F.pad`` and larger ones one gather: under ``torch.compile``, which
    fuses the padding into its own kernels anyway, because inductor (torch 2.13, CPU) miscompiles the
    backward of the ``index_select`` form (wrong gradients for SOC's parameters, or a crash;
    tests/test_compile.py, slow); under ``make_fx`` (:mod:`orthoconv.verify`) because a circular ``F.pad``
    feeding a convolution is read as its padding mode.
    """
    check_padding_mode(padding_mode)
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have positive height and width, got {x.shape[-2]}x{x.shape[-1]}")
    if padding_mode == "zeros":
        return F.pad(x, pads)
    left, right, top, bottom = pads
    H, W = x.shape[-2:]
    within = max(top, bottom) <= H and max(left, right) <= W
    if tracing():
        if within:
            return F.pad(x, pads, mode="circular")
        return x[..., _wrap_index(H, top, bottom, x.device)[:, None], _wrap_index(W, left, right, x.device)]
    if within:
        return _CircularPad.apply(x, left, right, top, bottom)
    if top or bottom:
        x = x.index_select(-2, constant(_wrap_index, H, top, bottom, device=x.device))
    if left or right:
        x = x.index_select(-1, constant(_wrap_index, W, left, right, device=x.device))
    return x


def _check_input(x: Tensor, kernel: Tensor) -> None:
    """``x`` a non-empty ``(N, C, H, W)`` batch of the kernel's dtype (any dtypes under autocast, which casts)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D batch (N, C, H, W), got shape {tuple(x.shape)}")
    if kernel.dim() != 4:
        raise ValueError(f"kernel must be 4-D (c_out, c_in, kh, kw), got shape {tuple(kernel.shape)}")
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have positive height and width, got {x.shape[-2]}x{x.shape[-1]}")
    if x.dtype != kernel.dtype and not autocast_enabled(x.device.type):
        raise TypeError(f"x has dtype {x.dtype} but the kernel has dtype {kernel.dtype}; convert one of them")


def conv2d_same(x: Tensor, kernel: Tensor, padding_mode: str = "circular", bias: Tensor | None = None) -> Tensor:
    """``y = conv(W) x + b`` with stride 1 and output size equal to the input size (the bias is fused
    into the convolution, as ``nn.Conv2d`` does)."""
    _check_input(x, kernel)
    if x.shape[1] != kernel.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but the kernel expects c_in = {kernel.shape[1]}")
    kh, kw = kernel.shape[-2:]
    return F.conv2d(pad(x, same_padding(kw) + same_padding(kh), padding_mode), kernel, bias)


def conv2d_same_adjoint(y: Tensor, kernel: Tensor, padding_mode: str = "circular") -> Tensor:
    """The adjoint ``conv(W)^T y`` of :func:`conv2d_same` (same padding mode).

    ``x[i] = sum_p W[p]^T y[i - p + before]``: a same-size convolution with the flipped,
    transposed kernel and the padding mirrored (``after`` before, ``before`` after).
    """
    _check_input(y, kernel)
    if y.shape[1] != kernel.shape[0]:
        raise ValueError(f"y has {y.shape[1]} channels but the kernel produces c_out = {kernel.shape[0]}")
    kh, kw = kernel.shape[-2:]
    pads = same_padding(kw)[::-1] + same_padding(kh)[::-1]
    return F.conv2d(pad(y, pads, padding_mode), kernel.transpose(0, 1).flip(-2, -1))
