"""Argument checks shared by the Lipschitz and orthogonal layers (``nn.Conv2d``-like constructors).

Every check raises ``ValueError`` (bad value) or ``TypeError`` (bad type) naming the argument and
what is supported, so that no layer silently ignores or reinterprets an argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..math.checks import pair
from ..math.conv import check_padding_mode
from ..math.orthogonal import METHODS
from ._precision import autocast_enabled

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def square_kernel_size(kernel_size) -> int:
    """``k`` from ``k`` or ``(k, k)``; rectangular kernels are not supported by these layers."""
    kh, kw = pair(kernel_size, "kernel_size")
    if kh != kw:
        raise ValueError(f"kernel_size must be square (k or (k, k)): square kernels only, got {kernel_size!r}")
    return kh


def check_stride_padding(stride, padding, kernel_size: int, layer: str) -> None:
    """Stride-1 "same" layers: ``stride`` must be 1 and ``padding`` ``"same"`` (or the int that means
    "same" for an odd kernel). Anything else raises instead of being ignored."""
    if pair(stride, "stride") != (1, 1):
        raise ValueError(
            f"{layer} supports stride 1 only, got stride={stride!r}; for a strided orthogonal layer use "
            "orthoconv.StridedBCOP (invertible downsampling followed by an orthogonal convolution)"
        )
    if padding == "same":
        return
    same = (kernel_size - 1) // 2
    as_pair = isinstance(padding, Sequence) and not isinstance(padding, str) and tuple(padding) == (same, same)
    if not (kernel_size % 2 == 1 and (padding == same or as_pair)):
        raise ValueError(
            f"{layer} keeps the image size: padding must be 'same' (or {same} for an odd kernel), "
            f"got padding={padding!r}"
        )


def check_mode(padding_mode: str, supported=("circular", "zeros"), layer: str = "layer") -> str:
    check_padding_mode(padding_mode)
    if padding_mode not in supported:
        raise ValueError(f"{layer} supports padding_mode in {supported}, got {padding_mode!r}")
    return padding_mode


def check_method(method: str) -> str:
    """An orthogonalization method of :func:`orthoconv.orthogonal.orthogonal`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def check_dtype(dtype) -> None:
    """float32, float64, or float16/bfloat16 (kernels built in float32, then rounded: see ``_precision``)."""
    if dtype is not None and dtype not in DTYPES:
        raise TypeError(
            f"dtype must be torch.float32, torch.float64, torch.float16 or torch.bfloat16 (or None for the "
            f"default), got {dtype}"
        )


def check_image(x: Tensor, channels: int, layer: str, dtype: torch.dtype | None = None) -> None:
    """``x`` must be a floating ``(N, channels, H, W)`` batch with ``H, W >= 1``, of the layer's ``dtype``
    (any floating dtype under autocast, which casts for the convolution)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{layer}: x must be a 4-D batch (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{layer}: x has {x.shape[1]} channels, the layer expects in_channels = {channels}")
    if not x.is_floating_point():
        raise TypeError(f"{layer}: x must be a floating point tensor, got dtype {x.dtype}")
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"{layer}: the image must have positive height and width, got {x.shape[-2]}x{x.shape[-1]}")
    check_dtypes(x, dtype, layer)


def check_dtypes(x: Tensor, dtype: torch.dtype | None, layer: str) -> None:
    """``x`` of the layer's ``dtype``, or any dtype under autocast except float64 on one side only (autocast
    leaves float64 alone, so the convolution would see two dtypes)."""
    if dtype is None or x.dtype == dtype:
        return
    if not autocast_enabled(x.device):
        raise TypeError(
            f"{layer}: x has dtype {x.dtype} but the layer's parameters are {dtype}; convert one of them "
            f"(layer.to({x.dtype}) or x.to({dtype})), or run under torch.autocast"
        )
    if torch.float64 in (x.dtype, dtype):
        raise TypeError(f"{layer}: x has dtype {x.dtype} but the layer's parameters are {dtype}, and autocast does "
                        "not cast float64; convert one of them")
