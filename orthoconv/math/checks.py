"""Argument checks shared by the whole library: each raises ``ValueError`` (bad value) or ``TypeError``
(bad type) naming the argument and what is expected."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def non_negative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints as ``(a, b)`` (each positive)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return positive_int(value[0], name), positive_int(value[1], name)
    value = positive_int(value, name)
    return value, value


def image_size(input_size, name: str = "input_size") -> tuple[int, int]:
    """``(H, W)`` from an int or a pair of positive ints."""
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    try:
        H, W = (int(s) for s in input_size)
        exact = all(int(s) == s and not isinstance(s, bool) for s in input_size)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair (H, W) of positive integers, got {input_size!r}") from None
    if not exact or H < 1 or W < 1:
        raise ValueError(f"{name} must be positive integers (H, W), got {input_size!r}")
    return H, W


def check_kernel(kernel: Tensor) -> Tensor:
    """Raise unless ``kernel`` is a finite, real, 4-D ``(c_out, c_in, kh, kw)`` tensor; return it, promoted to
    float32 when it is float16 or bfloat16 (LAPACK and the FFT have no half-precision kernels, and every
    half value is exact in float32)."""
    if not isinstance(kernel, Tensor):
        raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.dim() != 4:
        raise ValueError(f"kernel must be 4-D (c_out, c_in, kh, kw), got shape {tuple(kernel.shape)}")
    if not kernel.is_floating_point():
        raise TypeError(f"kernel must be a real floating point tensor, got dtype {kernel.dtype}")
    if kernel.device.type != "meta" and not torch.compiler.is_compiling() and not bool(torch.isfinite(kernel).all()):
        raise ValueError("kernel has non-finite entries (nan or inf)")
    return kernel.float() if kernel.dtype in (torch.float16, torch.bfloat16) else kernel


def check_input_size(input_size) -> tuple[int, int]:
    """``(H, W)`` from a pair of positive integers, or a clear error naming ``input_size``."""
    try:
        H, W = (int(s) for s in input_size)
    except (TypeError, ValueError):
        raise TypeError(f"input_size must be a pair (H, W) of positive integers, got {input_size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"input_size must be positive, got {input_size!r}")
    return H, W
