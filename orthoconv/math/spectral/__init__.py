"""Exact spectra, norms and orthogonality certificates of convolution operators (``orthoconv.spectral``).

One concept per module:

- :mod:`.geometry`: what a convolution computes (stride, dilation, padding amount and mode, groups,
  transposed), as a :class:`ConvOperator` on one input size;
- :mod:`.transfer`: the DFT block-diagonalization of circular convolutions (Sedghi, Gupta, Long 2019),
  strides by the polyphase decomposition;
- :mod:`.circular`: every singular value and the exact norm, frequency block by frequency block;
- :mod:`.dense`: the dense matrix by index arithmetic, the exact reference on small sizes;
- :mod:`.apply`: applying an operator and its adjoint, power-iteration lower bounds;
- :mod:`.gram_taps`, :mod:`.certified`: a certified norm to a relative tolerance without an SVD per frequency;
- :mod:`.norm`: norms of every configuration, exact or a certified enclosure;
- :mod:`.certificate`: the orthogonality certificate;
- :mod:`.modules`: spectra read from ``torch.nn`` and orthoconv modules.
"""

from .apply import apply, apply_transpose, power_iteration_lower_bound
from .certificate import (
    OrthogonalityCertificate,
    autocorrelation,
    orthogonality_certificate,
    sigma_deviation_bound,
)
from .certified import CertifiedNorm, certified_circular_norm
from .circular import batched_svdvals, circular_spectral_norm, conv_singular_values
from .dense import DENSE_LIMIT, dense_operator, operator_matrix
from .geometry import PADDING_MODES, ConvOperator, check_conv_kernel, conv_operator
from .modules import (
    ConvSpectrum,
    module_operator,
    module_singular_values,
    module_spectrum,
)
from .norm import (
    SpectralNorm,
    conv_spectral_norm,
    operator_norm,
    power_iteration_norm,
    upper_bound,
)
from .transfer import frequency_response, polyphase_transfer

__all__ = [
    "DENSE_LIMIT",
    "PADDING_MODES",
    "CertifiedNorm",
    "ConvOperator",
    "ConvSpectrum",
    "OrthogonalityCertificate",
    "SpectralNorm",
    "apply",
    "apply_transpose",
    "autocorrelation",
    "batched_svdvals",
    "certified_circular_norm",
    "check_conv_kernel",
    "circular_spectral_norm",
    "conv_operator",
    "conv_singular_values",
    "conv_spectral_norm",
    "dense_operator",
    "frequency_response",
    "module_operator",
    "module_singular_values",
    "module_spectrum",
    "operator_matrix",
    "operator_norm",
    "orthogonality_certificate",
    "polyphase_transfer",
    "power_iteration_lower_bound",
    "power_iteration_norm",
    "sigma_deviation_bound",
    "upper_bound",
]
