"""Constant tensors of a kernel build (DFT matrices, wrapped indices, frequency masks), built once per
argument and device.

Each is a function of integers, a dtype and a device only, so rebuilding it at every forward dispatches the
same few operations (``arange``, ``remainder``, ``polar``, ...) each time: on a GPU, kernel launches for
nothing. :func:`constant` keeps them. While a tracer records (``torch.compile``, ``torch.export``,
``make_fx``, fake tensors) the constant is built afresh, so that a graph owns its constants and no traced
tensor is kept.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.fx.experimental.proxy_tensor import get_proxy_mode

_CACHE: dict[tuple, Tensor] = {}


def tracing() -> bool:
    """Whether a tracer records (torch.compile, torch.export, make_fx, fake tensors)."""
    if torch.compiler.is_compiling() or get_proxy_mode() is not None:  # make_fx, pre-dispatch (orthoconv.verify) too
        return True
    return torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is not None


def constant(build: Callable[..., Tensor], *args, device) -> Tensor:
    """``build(*args, device=device)``, built once per ``(build, args, device)`` (``args`` hashable: integers,
    dtypes). The tensor is shared: never modify it in place."""
    if tracing():
        return build(*args, device=device)
    key = (build, *args, torch.device(device))
    value = _CACHE.get(key)
    if value is None:
        with torch.inference_mode(False), torch.no_grad():
            value = _CACHE[key] = build(*args, device=device)
    return value
