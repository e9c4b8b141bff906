"""The spectra verification consumes: ``module_spectrum`` and ``conv_singular_values`` of SPECTRUM_CONTRACT.md.

This is the one place verification imports them from. Until the spectral branch is merged they come
from the temporary adapter :mod:`orthoconv.verify._spectrum_adapter`; at the merge this file imports
them from :mod:`orthoconv.math.spectral` instead and the adapter is deleted.
"""

from ._spectrum_adapter import ConvSpectrum, conv_singular_values, module_spectrum

__all__ = ["ConvSpectrum", "conv_singular_values", "module_spectrum"]
