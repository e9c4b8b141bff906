"""The orthogonality certificate: ``max |sigma - 1|`` of a circular convolution without any decomposition.

The autocorrelation kernel ``A`` of ``conv(W)^T conv(W)`` has the per-frequency Gram matrices
``K(w)^H K(w)`` as its transfer function; the largest Frobenius distance of those from the identity,
over the frequencies, bounds every squared singular value (``|sigma^2 - 1| <= delta``). Exact (up to
rounding) when the deviation is concentrated in one direction at the worst frequency, as for
``sigma`` in ``{1, 0.9}``: ``delta = 0.19``, bound ``1 - sqrt(0.81) = 0.1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import check_input_size, check_kernel
from .transfer import _dft_matrix


@dataclass(frozen=True)
class OrthogonalityCertificate:
    """``gram_deviation = max_w ||G(w) - I||_F`` with ``G = K^H K`` (``K K^H`` when c_in > c_out).

    Since ``||G - I||_2 <= ||G - I||_F = delta``, every squared singular value lies in
    ``[1 - delta, 1 + delta]``, hence ``max |sigma - 1| <= sigma_bound = 1 - sqrt(1 - delta)``
    (or ``max(1, sqrt(1 + delta) - 1)`` when ``delta >= 1``).
    """

    gram_deviation: float
    sigma_bound: float


def sigma_deviation_bound(delta: float) -> float:
    """The bound on ``max |sigma - 1|`` implied by ``||K^H K - I||_2 <= delta``."""
    if delta >= 1:
        return max(1.0, math.sqrt(1 + delta) - 1)
    return 1 - math.sqrt(1 - delta)


def autocorrelation(kernel: Tensor) -> Tensor:
    """The kernel ``A`` of ``conv(W)^T conv(W)`` (``c_in <= c_out``) or of ``conv(W) conv(W)^T``
    (otherwise, up to complex conjugation), shape ``(c, c, 2 kh - 1, 2 kw - 1)``, ``c = min(c_in, c_out)``,
    tap ``(kh - 1, kw - 1)`` the origin: ``A[s] = sum_{p' - p = s} W[p]^T W[p']``, so its transfer
    function is ``K^H K`` at every frequency. All tap products come from one matrix product of the
    reshaped kernel, ``M^T M`` with ``M`` of shape ``(c_out, kh kw c_in)``.
    """
    if kernel.shape[1] > kernel.shape[0]:
        kernel = kernel.transpose(0, 1)
    c_out, c, kh, kw = kernel.shape
    M = kernel.permute(0, 2, 3, 1).reshape(c_out, kh * kw * c)
    products = (M.T @ M).view(kh, kw, c, kh, kw, c).permute(0, 1, 3, 4, 2, 5).reshape(-1, c, c)
    p = torch.arange(kh, device=kernel.device).view(kh, 1, 1, 1)
    q = torch.arange(kw, device=kernel.device).view(1, kw, 1, 1)
    p2 = torch.arange(kh, device=kernel.device).view(1, 1, kh, 1)
    q2 = torch.arange(kw, device=kernel.device).view(1, 1, 1, kw)
    target = ((p2 - p + kh - 1) * (2 * kw - 1) + (q2 - q + kw - 1)).reshape(-1)
    taps = products.new_zeros((2 * kh - 1) * (2 * kw - 1), c, c).index_add_(0, target, products)
    return taps.view(2 * kh - 1, 2 * kw - 1, c, c).permute(2, 3, 0, 1)


def orthogonality_certificate(kernel: Tensor, input_size) -> OrthogonalityCertificate:
    """Certify ``max |sigma - 1|`` under circular padding without any decomposition.

    With ``D = A - delta I`` (the autocorrelation minus the identity at its origin tap),
    ``G(w) - I = sum_s D[s] w^s``, so ``||G(w) - I||_F^2 = sum_{s,t} <D[s], D[t]>_F w^(s - t)``: one
    ``S x S`` Gram matrix of the ``S = (2 kh - 1)(2 kw - 1)`` taps, then a quadratic form per frequency of
    the half spectrum; no ``c x c`` matrix per frequency is formed. Computed in floating point, so
    exact up to rounding (about ``sqrt(S eps) sum_s ||D[s]||_F``).
    """
    kernel = check_kernel(kernel)
    H, W = check_input_size(input_size)
    D = autocorrelation(kernel)
    c, _, sh, sw = D.shape
    D[:, :, sh // 2, sw // 2] -= torch.eye(c, dtype=D.dtype, device=D.device)
    taps = D.permute(2, 3, 0, 1).reshape(sh * sw, c * c)
    gram = taps @ taps.T
    E_h = _dft_matrix(H, H, sh, sh // 2, D.dtype, D.device)
    E_w = _dft_matrix(W // 2 + 1, W, sw, sw // 2, D.dtype, D.device)
    E = (E_h[:, None, :, None] * E_w[None, :, None, :]).reshape(-1, sh * sw)
    squares = ((E @ gram.to(E.dtype)) * E.conj()).sum(-1).real
    delta = float(squares.clamp(min=0).max().sqrt())
    return OrthogonalityCertificate(delta, sigma_deviation_bound(delta))
