"""orthoconv: orthogonal and Lipschitz convolutions, built, verified and understood.

Build: :class:`BCOP` (Li et al., NeurIPS 2019). Verify: :mod:`orthoconv.spectral` (exact FFT
spectra, Sedghi et al. 2019) and :mod:`orthoconv.verify`. The algebra behind BCOP lives in
:mod:`orthoconv.blocks` and :mod:`orthoconv.orthogonal`.
"""

from . import blocks, orthogonal, spectral, verify
from .activations import GroupSort, MaxMin
from .bcop import BCOP
from .blocks import bcop_kernel, block_kernel, compose_kernels, transfer_function
from . import invariants
from .invariants import ComponentInvariants, component_invariants, embed_2n, sample_bcop_factors
from .spectral import conv_singular_values, conv_spectral_norm
from .verify import check_orthogonal, gradient_norm_ratio
from . import certify, gram
from .cayley import CayleyConv
from .certify import certified_accuracy, certified_radii, lipschitz_bound, zero_padding_norm_bound
from .downsample import InvertibleDownsampling, StridedBCOP
from .gram import gram_iteration_norm
from .linear import OrthogonalLinear
from .ossn import OSSN
from .rkl2ne import RKL2NE
from .rko import RKO
from .soc import SOC, soc_deviation
from .svcm import SVCM, svcm_project

__version__ = "0.1.0"

__all__ = [
    "BCOP",
    "ComponentInvariants",
    "GroupSort",
    "MaxMin",
    "bcop_kernel",
    "block_kernel",
    "blocks",
    "check_orthogonal",
    "component_invariants",
    "compose_kernels",
    "conv_singular_values",
    "conv_spectral_norm",
    "embed_2n",
    "gradient_norm_ratio",
    "invariants",
    "orthogonal",
    "sample_bcop_factors",
    "spectral",
    "transfer_function",
    "verify",
    "CayleyConv",
    "InvertibleDownsampling",
    "OSSN",
    "OrthogonalLinear",
    "RKL2NE",
    "RKO",
    "SOC",
    "SVCM",
    "StridedBCOP",
    "certified_accuracy",
    "certified_radii",
    "certify",
    "gram",
    "gram_iteration_norm",
    "lipschitz_bound",
    "soc_deviation",
    "svcm_project",
    "zero_padding_norm_bound",
]
