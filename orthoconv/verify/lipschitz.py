"""``lipschitz_bound``: the certified upper end of :func:`orthoconv.verify.check_model` for image models."""

from __future__ import annotations

import torch
from torch import nn

from ..math.checks import image_size, positive_int
from ..nn import GroupSort, InvertibleDownsampling, Normalize
from .model import check_model

KEEPS_CHANNELS = (nn.Identity, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU, nn.Dropout,
                  nn.modules.batchnorm._BatchNorm, GroupSort, Normalize)


def _input_channels(model: nn.Module, pixels: int) -> int:
    """The channels of the model's input on images of ``pixels`` pixels, read from its first leaf module
    that names its input width: ``in_channels`` (a convolution), or ``in_features / pixels`` (a linear map
    after a flatten). Every leaf before it (in registration order) must keep the channel count, flatten,
    or be a space-to-depth permutation (which multiplies it by ``f^2``); otherwise a ``ValueError``. A wrong
    guess cannot pass silently: :func:`check_model` runs the model on an input of that shape."""
    factor = 1
    for module in model.modules():
        channels = getattr(module, "in_channels", None)
        if isinstance(channels, int) and channels % factor == 0:
            return channels // factor
        features = getattr(module, "in_features", None)
        if isinstance(features, int) and features % pixels == 0:
            return features // pixels
        if isinstance(module, (InvertibleDownsampling, nn.PixelUnshuffle)):
            factor *= getattr(module, "factor", getattr(module, "downscale_factor", 1)) ** 2
        elif not list(module.children()) and not isinstance(module, (*KEEPS_CHANNELS, nn.Flatten)):
            break
    raise ValueError("lipschitz_bound cannot tell the model's input channels: pass input_size as (C, H, W), "
                     "or call check_model with an example input")


def lipschitz_bound(model: nn.Module, input_size) -> float:
    """A certified upper bound on the L2 Lipschitz constant of ``model`` on one input image.

    ``input_size`` is ``(H, W)`` or ``(C, H, W)``; with ``(H, W)`` the channels are read from the model's
    first module with ``in_channels``, provided nothing before it can change them (an invertible
    downsampling can: then pass ``(C, H, W)``). The same number as ``check_model(model, x).lipschitz_upper``
    for a zero batch ``x`` of shape ``(1, C, H, W)``: exact per-layer norms of the operators the model
    really applies (stride, groups, dilation, padding), composed along the traced graph of what it runs
    (:mod:`orthoconv.verify.graph`). Raises ``TypeError`` for a layer it cannot bound.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(input_size, (tuple, list)) and len(input_size) == 3:
        channels, (H, W) = positive_int(input_size[0], "input_size channels"), image_size(input_size[1:])
    else:
        H, W = image_size(input_size)
        channels = _input_channels(model, H * W)
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    device = param.device if param is not None else None
    x = torch.zeros(1, channels, H, W, dtype=dtype, device=device)
    return check_model(model, x, lower_steps=0).lipschitz_upper
