"""Rebuild a layer from its :meth:`config` (the dict every orthoconv layer saves in its ``state_dict``)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from .activations import GroupSort, MaxMin
from .aol import AOL
from .bcop import BCOP
from .bro import BRO
from .cayley import CayleyConv
from .cpl import CPL
from .downsample import InvertibleDownsampling, StridedBCOP
from .linear import OrthogonalLinear
from .lot import LOT
from .ossn import OSSN
from .rkl2ne import RKL2NE
from .rko import RKO
from .sandwich import Sandwich
from .sll import SLL
from .soc import SOC
from .svcm import SVCM
from .upsample import BCOPTranspose

LAYERS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (BCOP, CayleyConv, GroupSort, InvertibleDownsampling, MaxMin, OSSN, OrthogonalLinear, RKL2NE, RKO,
                SOC, SVCM, StridedBCOP)
}
LAYERS.update({cls.__name__: cls for cls in (AOL, BCOPTranspose, BRO, CPL, LOT, SLL, Sandwich)})


def from_config(config: Mapping, **kwargs) -> nn.Module:
    """``LAYERS[config["type"]](**config_without_type, **kwargs)``: the layer ``config`` describes.

    ``config`` is what ``layer.config()`` returned (or the ``"<prefix>_extra_state"`` entry of a saved
    ``state_dict``). It fixes the structure of the kernel, not ``bias``, ``device`` or ``dtype``: pass
    those as ``kwargs`` (e.g. ``bias=False, dtype=torch.float64``) to match the saved tensors before
    ``load_state_dict``. Raises ``TypeError`` for a config that is not a mapping with a ``"type"``
    and ``ValueError`` for an unknown type.
    """
    if not isinstance(config, Mapping) or "type" not in config:
        raise TypeError(f"config must be a mapping with a 'type' entry (layer.config()), got {config!r}")
    name = config["type"]
    if name not in LAYERS:
        raise ValueError(f"unknown layer type {name!r} in config; known: {', '.join(sorted(LAYERS))}")
    return LAYERS[name](**{key: value for key, value in config.items() if key != "type"}, **kwargs)
