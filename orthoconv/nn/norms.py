"""Certified norms of a layer's kernel, for ``lipschitz_bound``: on one image size, or on all of them.

On an ``H x W`` image: the exact FFT norm with circular padding (Sedghi, Gupta, Long 2019), the
certified upper end of :func:`orthoconv.spectral.conv_spectral_norm` with zero padding.

For every image size at once: with ``D[s]`` the autocorrelation taps of the kernel minus the identity
at the origin (:func:`orthoconv.spectral.autocorrelation`), the transfer function satisfies
``K(z)^H K(z) = I + sum_s D[s] z^s`` on the torus ``|z1| = |z2| = 1``, so

    ||K(z)||_2^2 <= 1 + sum_s ||D[s]||_2      for every z on the torus.

The circular operator on any size is block-diagonalized at roots of unity (points of the torus), and a
zero-padded operator is a compression of the convolution on the plane, whose norm is
``sup_z ||K(z)||_2``; so ``sqrt(1 + sum_s ||D[s]||_2)`` bounds both paddings on every size. For an
orthogonal (paraunitary) kernel every ``D[s]`` vanishes up to rounding and the bound is 1 + O(eps).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..math.checks import check_kernel, image_size
from ..math.spectral import autocorrelation, circular_spectral_norm, conv_spectral_norm


def torus_norm_bound(kernel: Tensor) -> float:
    """``sqrt(1 + sum_s ||D[s]||_2)`` (module docstring), in float64: a certified bound on the norm of the
    stride-1 convolution with ``kernel`` on every image size, circular or zero padding."""
    check_kernel(kernel)
    D = autocorrelation(kernel.detach().to(torch.float64))
    c, _, sh, sw = D.shape
    D[:, :, sh // 2, sw // 2] -= torch.eye(c, dtype=D.dtype, device=D.device)
    excess = float(torch.linalg.matrix_norm(D.permute(2, 3, 0, 1), ord=2).sum())
    return math.sqrt(1 + excess)


def kernel_bound(kernel: Tensor, input_size=None, padding_mode: str = "circular") -> float:
    """The certified norm of ``conv(kernel)`` (float64): :func:`torus_norm_bound` for ``input_size=None``,
    else the exact circular norm or the certified zero-padding upper bound on ``input_size``."""
    k64 = kernel.detach().to(torch.float64)
    if input_size is None:
        return torus_norm_bound(k64)
    size = image_size(input_size)
    if padding_mode == "circular":
        return circular_spectral_norm(k64, size)
    return conv_spectral_norm(k64, size, "zeros").upper
