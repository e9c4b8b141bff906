"""orthoconv: orthogonal and Lipschitz convolutions, built, verified and understood.

The package is organised by role, imports running one way:

- :mod:`orthoconv.math`: pure functions (orthogonal maps, block-convolution algebra, spectra, bounds,
  invariants);
- :mod:`orthoconv.nn`: the layers (:class:`BCOP`, Li et al., NeurIPS 2019, and its peers);
- :mod:`orthoconv.verify`: measured orthogonality, certified Lipschitz bounds, checkpoints, the report;
- :mod:`orthoconv.certify`: certified radii of Lipschitz classifiers;
- :mod:`orthoconv.networks`, :mod:`orthoconv.data`, :mod:`orthoconv.training`: Lipschitz classifiers
  by name, data sets read without pickle, and their training;
- :mod:`orthoconv.wasserstein`: Wasserstein-1 estimation with certified critics, against exact answers;
- :mod:`orthoconv.cli`: the ``orthoconv`` command.

The mathematics modules are also reachable at their historical names (``orthoconv.spectral``,
``orthoconv.blocks``, ``orthoconv.orthogonal``, ``orthoconv.invariants``, ``orthoconv.gram``,
``orthoconv.conv``), as attributes and as importable module names.
"""

import sys as _sys

from . import certify, data, math, networks, nn, training, verify, wasserstein
from .certify import certified_accuracy, certified_radii
from .math import blocks, conv, gram, invariants, orthogonal, spectral
from .math.blocks import bcop_kernel, block_kernel, compose_kernels, transfer_function
from .math.bounds import zero_padding_norm_bound
from .math.gram import gram_iteration_norm
from .math.invariants import (
    ComponentInvariants,
    component_invariants,
    embed_2n,
    sample_bcop_factors,
)
from .math.spectral import conv_singular_values, conv_spectral_norm
from .nn import (
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
    BCOPTranspose,
    CayleyConv,
    GroupSort,
    InvertibleDownsampling,
    MaxMin,
    OrthogonalLinear,
    Sandwich,
    StridedBCOP,
)
from .nn.soc import soc_deviation
from .nn.svcm import svcm_project
from .verify import check_orthogonal, gradient_norm_ratio, lipschitz_bound

for _module in (blocks, conv, gram, invariants, orthogonal, spectral):
    _sys.modules.setdefault(f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}", _module)
del _module

__version__ = "0.1.0"

__all__ = [
    "AOL",
    "BCOP",
    "BCOPTranspose",
    "BRO",
    "CPL",
    "CayleyConv",
    "ComponentInvariants",
    "GroupSort",
    "InvertibleDownsampling",
    "LOT",
    "MaxMin",
    "OSSN",
    "OrthogonalLinear",
    "RKL2NE",
    "RKO",
    "SLL",
    "SOC",
    "SVCM",
    "Sandwich",
    "StridedBCOP",
    "bcop_kernel",
    "block_kernel",
    "blocks",
    "certified_accuracy",
    "certified_radii",
    "certify",
    "check_orthogonal",
    "component_invariants",
    "compose_kernels",
    "conv",
    "conv_singular_values",
    "conv_spectral_norm",
    "data",
    "embed_2n",
    "gradient_norm_ratio",
    "gram",
    "gram_iteration_norm",
    "invariants",
    "lipschitz_bound",
    "math",
    "networks",
    "nn",
    "orthogonal",
    "sample_bcop_factors",
    "soc_deviation",
    "spectral",
    "svcm_project",
    "training",
    "transfer_function",
    "verify",
    "wasserstein",
    "zero_padding_norm_bound",
]
