"""Lipschitz networks built from the library's layers: ``build(arch, layer, ...)`` and ``load(path)``."""

from ..nn.fixed import FirstChannels, GlobalMaxPool, Normalize, ZeroChannelPad
from .architectures import (
    ACTIVATIONS,
    ARCHITECTURES,
    LipschitzNetwork,
    build,
    convnet_blocks,
)
from .checkpoint import load, network_record, read_record, save, unwrap
from .layers import CONV_LAYERS, conv_layer, strided_conv_layer

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "CONV_LAYERS",
    "FirstChannels",
    "GlobalMaxPool",
    "LipschitzNetwork",
    "Normalize",
    "ZeroChannelPad",
    "build",
    "conv_layer",
    "convnet_blocks",
    "load",
    "network_record",
    "read_record",
    "save",
    "strided_conv_layer",
    "unwrap",
]
