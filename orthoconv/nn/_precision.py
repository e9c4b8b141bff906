"""Precision of the kernel computations: full precision under autocast, float32 for half parameters.

A layer's kernel is an exact construction (QR, projector products, FFTs, solves) whose guarantee
lives in the rounding of its dtype: built in bfloat16 under ``torch.autocast`` a BCOP kernel deviates
from orthogonality by 1.2e-2. So every kernel is built with autocast disabled, in the parameters'
precision, and float16/bfloat16 parameters are promoted to float32 for the construction; the kernel
is then rounded to the parameters' dtype. Only the convolution itself runs in low precision (under
autocast, or for a half-precision layer).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from ..math import _autocast

HALF_DTYPES = (torch.float16, torch.bfloat16)


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16, else ``dtype`` itself."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def promote(tensor: Tensor) -> Tensor:
    """``tensor`` in its working dtype (differentiable)."""
    return tensor.to(working_dtype(tensor.dtype))


def full_precision(device: torch.device):
    """A context in which autocast is off on ``device`` (a no-op where autocast does not exist)."""
    if _autocast.autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def autocast_enabled(device: torch.device) -> bool:
    return _autocast.autocast_enabled(device.type)


def check_true(condition: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless the 0-d boolean ``condition`` holds (``torch._assert_async`` under
    ``torch.compile``/``torch.export``; skipped on ``meta``), as :func:`check_finite` does."""
    if condition.device.type == "meta":
        return
    if torch.compiler.is_compiling():
        torch._assert_async(condition, message)
    elif not bool(condition):
        raise ValueError(message)


def check_finite(tensor: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` where ``tensor`` has a nan or inf.

    Eager: a host check. Under ``torch.compile``/``torch.export`` (where a data-dependent branch would
    break the graph): ``torch._assert_async``, which fails when the compiled graph runs. Skipped on
    the ``meta`` device (no data).
    """
    check_true(torch.isfinite(tensor).all(), message)
