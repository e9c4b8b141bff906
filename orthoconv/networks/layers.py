"""Every 1-Lipschitz convolution of the library by name, for networks and critics built from any of them.

``bcop`` (Li et al. 2019), ``rko`` (Cisse et al. 2017; Li et al. 2019), ``ossn`` (Miyato et al. 2018,
convolution-aware), ``svcm`` (Sedghi et al. 2019), ``rkl2ne`` (Qian & Wegman 2019), ``cayley``
(Trockman & Kolter 2021), ``soc`` (Singla & Feizi 2021), ``lot`` (Xu et al. 2022) and ``bro`` (Lai et
al. 2025), exact per frequency of the input's size, ``aol`` (Prach & Lampert 2022), ``cpl`` (Meunier et al.
2022), ``sll`` (Araujo et al. 2023), ``sandwich`` (Wang & Manchester 2023) and ``conv``: a plain ``nn.Conv2d`` whose
reshaped weight matrix is spectrally normalized by ``torch.nn.utils.parametrizations.spectral_norm``.
That normalization does not bound the convolution's norm (up to ``sqrt(kh kw)`` more), which is why it
is here: for contrast, and so that a measured Lipschitz constant has something to catch.

The residual layers (CPL, SLL) keep their width: a change of width around one is a zero channel padding before
it (an isometry) or the first channels after it (a coordinate projection), both 1-Lipschitz.

A strided convolution is an invertible downsampling (a permutation, norm 1) followed by a stride-1
layer of kernel ``ceil(k / s)`` on ``s^2`` times the channels (Li et al. 2019, Sec. 5).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..math.checks import image_size, positive_int
from ..math.conv import pad
from ..nn import (
    AOL,
    BCOP,
    BRO,
    CPL,
    LOT,
    OSSN,
    RKL2NE,
    RKO,
    SLL,
    SOC,
    SVCM,
    CayleyConv,
    InvertibleDownsampling,
    Sandwich,
)
from ..nn.fixed import FirstChannels, ZeroChannelPad

CONV_LAYERS = ("bcop", "rko", "ossn", "svcm", "rkl2ne", "cayley", "soc", "conv")
CONV_LAYERS += ("lot", "bro", "aol", "cpl", "sll", "sandwich")
RESIDUAL = {"cpl": CPL, "sll": SLL}


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose circular padding is :func:`orthoconv.math.conv.pad` (7 aten operations forward and
    backward where ``F.pad(mode="circular")`` takes 35); the same values, parameters and state dict."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.padding_mode != "circular":
            return super()._conv_forward(input, weight, bias)
        padded = pad(input, tuple(self._reversed_padding_repeated_twice), "circular")
        return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)


def _residual(cls, in_channels: int, out_channels: int, kernel_size: int, **options) -> nn.Module:
    """``cls`` on ``max(in_channels, out_channels)`` channels, zero-padded into or cut down to the widths. The
    wrapper carries ``in_channels`` / ``out_channels`` like the convolutions it stands for."""
    width = max(in_channels, out_channels)
    layer = cls(width, width, kernel_size, **options)
    if in_channels == out_channels:
        return layer
    if in_channels < out_channels:
        wrapper = nn.Sequential(ZeroChannelPad(width), layer)
    else:
        wrapper = nn.Sequential(layer, FirstChannels(out_channels))
    wrapper.in_channels, wrapper.out_channels = in_channels, out_channels
    return wrapper


def conv_layer(name: str, in_channels: int, out_channels: int, kernel_size: int, input_size, **options) -> nn.Module:
    """A stride-1, same-size convolution ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` of kind ``name``.

    ``input_size = (H, W)`` is the image it acts on (SVCM and Cayley are built for one size; OSSN uses
    it for its norm). ``options`` go to the layer's constructor (e.g. ``padding_mode``, ``terms``).
    Raises ``ValueError`` for an unknown name.
    """
    size = image_size(input_size)
    common = {"in_channels": in_channels, "out_channels": out_channels, "kernel_size": kernel_size}
    if name == "bcop":
        return BCOP(**common, **options)
    if name == "rko":
        return RKO(**common, **options)
    if name == "ossn":
        return OSSN(**common, input_size=size, **options)
    if name == "svcm":
        return SVCM(**common, input_size=size, **options)
    if name == "rkl2ne":
        return RKL2NE(**common, **options)
    if name == "cayley":
        return CayleyConv(**common, input_size=size, **options)
    if name == "soc":
        return SOC(**common, **options)
    if name == "lot":
        return LOT(**common, **options)
    if name == "bro":
        return BRO(**common, **options)
    if name == "aol":
        return AOL(**common, **options)
    if name in RESIDUAL:
        return _residual(RESIDUAL[name], in_channels, out_channels, kernel_size, **options)
    if name == "sandwich":
        return Sandwich(**common, **options)
    if name == "conv":
        padding_mode = options.pop("padding_mode", "circular")
        conv = Conv2d(**common, padding="same", padding_mode=padding_mode, **options)
        return nn.utils.parametrizations.spectral_norm(conv)
    raise ValueError(f"layer must be one of {CONV_LAYERS}, got {name!r}")


def strided_conv_layer(
    name: str, in_channels: int, out_channels: int, kernel_size: int, stride: int, input_size, **options
) -> nn.Module:
    """``(N, c_in, H, W) -> (N, c_out, H / s, W / s)``: ``InvertibleDownsampling(s)`` then a stride-1 layer
    of kernel ``ceil(k / s)`` on ``c_in s^2`` channels. ``stride = 1`` is :func:`conv_layer` itself."""
    s = positive_int(stride, "stride")
    H, W = image_size(input_size)
    if s == 1:
        return conv_layer(name, in_channels, out_channels, kernel_size, (H, W), **options)
    if H % s or W % s:
        raise ValueError(f"stride {s} must divide the input size {(H, W)}")
    inner = conv_layer(name, in_channels * s * s, out_channels, math.ceil(kernel_size / s), (H // s, W // s), **options)
    return nn.Sequential(InvertibleDownsampling(s), inner)
