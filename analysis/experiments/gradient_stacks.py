"""The networks of the gradient-norm experiment: deep stacks ``[conv, act] x L`` of every convolution.

A network of depth L is ``f = (act o conv_L) o ... o (act o conv_1)`` with a constant channel count,
stride 1 and circular padding. :data:`LAYERS` names every convolution compared (the library's and a
plain ``nn.Conv2d`` rescaled to spectral norm 1, :class:`UnitNormConv2d`); a layer that cannot be
imported or built is reported by :class:`LayerUnavailable` instead of stopping the experiment.
"""

from __future__ import annotations

import importlib
import inspect
import zlib

import torch
from torch import nn

from orthoconv import MaxMin
from orthoconv.spectral import conv_spectral_norm

LAYERS = {
    "BCOP": ("orthoconv.nn.bcop", "BCOP"),
    "RKO": ("orthoconv.nn.rko", "RKO"),
    "OSSN": ("orthoconv.nn.ossn", "OSSN"),
    "SVCM": ("orthoconv.nn.svcm", "SVCM"),
    "RK-L2NE": ("orthoconv.nn.rkl2ne", "RKL2NE"),
    "Cayley": ("orthoconv.nn.cayley", "CayleyConv"),
    "SOC": ("orthoconv.nn.soc", "SOC"),
    "Conv2d": (__name__, "UnitNormConv2d"),
}
ACTIVATIONS = {"MaxMin": MaxMin, "ReLU": nn.ReLU}


class LayerUnavailable(RuntimeError):
    """A registered convolution whose module or class cannot be loaded or built."""


class UnitNormConv2d(nn.Conv2d):
    """A plain ``nn.Conv2d`` (circular padding, same size) divided by its exact spectral norm on ``input_size``.

    ``y = conv(W / ||conv(W)||_2) x + b`` with ``||conv(W)||_2`` the largest singular value over the
    frequencies of ``input_size`` (:func:`orthoconv.spectral.conv_spectral_norm`, Sedghi et al. 2019),
    recomputed at every forward and treated as a constant by the gradient: the layer has spectral
    norm exactly 1 whatever its weight, and its other singular values spread in ``[0, 1]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, input_size, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding="same", padding_mode="circular", bias=bias,
                         device=device, dtype=dtype)
        self.input_size = tuple(int(s) for s in input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"UnitNormConv2d was normalized for images {self.input_size}, got {tuple(x.shape[-2:])}")
        sigma = conv_spectral_norm(self.weight.detach(), self.input_size).value
        return self._conv_forward(x, self.weight / sigma, self.bias)


def load_layer(name: str) -> type:
    """The class registered as ``name`` in :data:`LAYERS`; :class:`LayerUnavailable` says why it cannot load."""
    if name not in LAYERS:
        raise LayerUnavailable(f"unknown layer {name!r}; registered: {', '.join(LAYERS)}")
    module_name, class_name = LAYERS[name]
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise LayerUnavailable(f"{name}: cannot import {module_name} ({type(err).__name__}: {err})") from err
    except AttributeError as err:
        raise LayerUnavailable(f"{name}: {module_name} has no class {class_name}") from err


def build_conv(name: str, channels: int, kernel_size: int, input_size: tuple[int, int]) -> nn.Module:
    """``cls(channels, channels, kernel_size)`` like ``nn.Conv2d``, plus ``input_size`` and
    ``padding_mode="circular"`` where the constructor takes them."""
    cls = load_layer(name)
    params = inspect.signature(cls).parameters
    kwargs = {"input_size": input_size} if "input_size" in params else {}
    if "padding_mode" in params:
        kwargs["padding_mode"] = "circular"
    return cls(channels, channels, kernel_size, **kwargs)


def derive_seed(*parts) -> int:
    """A stable 31-bit seed for one random draw, from the base seed and the names that identify it."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def build_network(layer: str, activation: str, depth: int, channels: int, image_size: int, kernel_size: int,
                  seed: int, dtype: torch.dtype, device) -> nn.Sequential:
    """``[conv_1, act, conv_2, act, ..., conv_L, act]``, parameters drawn under ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        modules = []
        for _ in range(depth):
            modules += [build_conv(layer, channels, kernel_size, (image_size, image_size)), ACTIVATIONS[activation]()]
    return nn.Sequential(*modules).to(device=device, dtype=dtype)


def check_layer(name: str, channels: int, image_size: int, kernel_size: int, dtype: torch.dtype, device) -> None:
    """Build one ``name`` layer and check it maps ``(1, c, n, n)`` to the same shape, else :class:`LayerUnavailable`."""
    try:
        conv = build_network(name, "ReLU", 1, channels, image_size, kernel_size, 0, dtype, device)[0]
        shape = (1, channels, image_size, image_size)
        out = conv(torch.zeros(shape, dtype=dtype, device=device))
    except LayerUnavailable:
        raise
    except Exception as err:
        raise LayerUnavailable(f"{name}: building or running the layer failed ({type(err).__name__}: {err})") from err
    if tuple(out.shape) != shape:
        raise LayerUnavailable(f"{name}: maps {shape} to {tuple(out.shape)}, not a same-size convolution")

