"""``lipschitz_bound``: the certified upper end of :func:`orthoconv.verify.check_model` for image models."""

from __future__ import annotations

import torch
from torch import nn

from ..math.checks import image_size
from .model import check_model


def _input_channels(model: nn.Module) -> int:
    for module in model.modules():
        channels = getattr(module, "in_channels", None)
        if isinstance(channels, int):
            return channels
    raise ValueError("lipschitz_bound: no layer with in_channels found; call check_model with an example input")


def lipschitz_bound(model: nn.Module, input_size) -> float:
    """A certified upper bound on the L2 Lipschitz constant of ``model`` on ``(H, W)`` images.

    The same number as ``check_model(model, x).lipschitz_upper`` for a zero batch ``x`` of shape
    ``(1, C, H, W)``, ``C`` the ``in_channels`` of the model's first convolution: exact per-layer norms of
    the operators the model really applies (stride, groups, dilation, padding), composed along its
    ``torch.fx`` graph (:mod:`orthoconv.verify.graph`). Raises ``TypeError`` for a layer it cannot bound.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    H, W = image_size(input_size)
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    device = param.device if param is not None else None
    x = torch.zeros(1, _input_channels(model), H, W, dtype=dtype, device=device)
    return check_model(model, x, lower_steps=0).lipschitz_upper
