"""The mathematics of orthogonal convolutions: pure functions of tensors, no parameters.

- :mod:`.orthogonal`: maps from unconstrained matrices to orthogonal matrices and projectors.
- :mod:`.blocks`: the block-convolution algebra of BCOP (Li et al. 2019).
- :mod:`.conv`: stride-1 same-size convolutions with circular or zero padding, and adjoints.
- :mod:`.spectral`: exact spectra of convolution operators (Sedghi, Gupta, Long 2019).
- :mod:`.gram`, :mod:`.bounds`: certified bounds on operator norms.
- :mod:`.invariants`: the invariants that separate the components of orthogonal convolutions.
- :mod:`.checks`: argument checks shared by the library.
- :mod:`.products`, :mod:`.constants`: batched matrix products as one ``bmm``; constant tensors (DFT matrices,
  pad indices) built once per size and device (few operations per kernel build, docs/gpu.md).
"""

from . import blocks, bounds, checks, conv, gram, invariants, orthogonal, spectral

__all__ = ["blocks", "bounds", "checks", "conv", "gram", "invariants", "orthogonal", "spectral"]
