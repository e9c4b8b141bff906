"""Lipschitz networks built from the library's layers."""

from .layers import CONV_LAYERS, conv_layer, strided_conv_layer

__all__ = ["CONV_LAYERS", "conv_layer", "strided_conv_layer"]
