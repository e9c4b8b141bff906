"""Layers: thin ``nn.Module``s that hold parameters around :mod:`orthoconv.math`.

Orthogonal convolutions (BCOP, Li et al. 2019; CayleyConv; SOC; StridedBCOP), Lipschitz-bounded ones
(RKO, OSSN, SVCM, RK-L2NE), orthogonal linear maps, invertible downsampling and 1-Lipschitz
activations.
"""

from .activations import GroupSort, MaxMin
from .base import KernelConv2d
from .bcop import BCOP
from .cayley import CayleyConv
from .downsample import InvertibleDownsampling, StridedBCOP
from .linear import OrthogonalLinear
from .ossn import OSSN
from .rkl2ne import RKL2NE
from .rko import RKO
from .soc import SOC
from .svcm import SVCM

__all__ = [
    "BCOP",
    "CayleyConv",
    "GroupSort",
    "InvertibleDownsampling",
    "KernelConv2d",
    "MaxMin",
    "OSSN",
    "OrthogonalLinear",
    "RKL2NE",
    "RKO",
    "SOC",
    "SVCM",
    "StridedBCOP",
]
