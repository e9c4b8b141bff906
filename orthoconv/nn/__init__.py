"""Layers: thin ``nn.Module``s that hold parameters around :mod:`orthoconv.math`.

Orthogonal convolutions (BCOP, Li et al. 2019; CayleyConv; SOC; StridedBCOP; LOT and BRO, exact; the
upsampling BCOPTranspose), Lipschitz-bounded ones (RKO, OSSN, SVCM, RK-L2NE; AOL), 1-Lipschitz residual and
sandwich layers (CPL, SLL, Sandwich), orthogonal linear maps, invertible downsampling and 1-Lipschitz
activations. Kernel checks never synchronize inside a forward (:func:`raise_failed_checks` reads them,
:func:`strict_checks` makes them immediate; see :mod:`orthoconv.nn._precision`). :func:`cached` builds each
kernel once for a block of forwards; :func:`from_config` rebuilds a layer from the config saved in its
``state_dict``.
"""

from ._precision import raise_failed_checks, strict_checks
from .activations import GroupSort, MaxMin
from .aol import AOL
from .base import KernelConv2d
from .bcop import BCOP
from .bro import BRO
from .cache import cached
from .cayley import CayleyConv
from .config import from_config
from .cpl import CPL
from .downsample import InvertibleDownsampling, StridedBCOP
from .fixed import FirstChannels, GlobalMaxPool, Normalize, ZeroChannelPad
from .fourier import FourierConv2d
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

__all__ = [
    "AOL",
    "BCOP",
    "BCOPTranspose",
    "BRO",
    "CPL",
    "CayleyConv",
    "FirstChannels",
    "FourierConv2d",
    "GlobalMaxPool",
    "GroupSort",
    "InvertibleDownsampling",
    "KernelConv2d",
    "LOT",
    "MaxMin",
    "Normalize",
    "OSSN",
    "OrthogonalLinear",
    "RKL2NE",
    "RKO",
    "SLL",
    "SOC",
    "SVCM",
    "Sandwich",
    "StridedBCOP",
    "ZeroChannelPad",
    "cached",
    "from_config",
    "raise_failed_checks",
    "strict_checks",
]
