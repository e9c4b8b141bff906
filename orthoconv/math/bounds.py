"""Certified operator-norm bounds of convolution kernels, valid for every image size or for a given one.

- :func:`reshaped_kernel_bound`: ``||conv(W)||_2 <= sqrt(kh kw) ||M(W)||_2``, any size and padding.
- :func:`tap_norm_bound`: ``||conv(W)||_2 <= sum_{p,q} ||W[:, :, p, q]||_2``, any size and padding.
- :func:`zero_padding_norm_bound`: Gram iteration on the kernel itself (Delattre, Barthelemy,
  Allauzen 2024 style) for zero padding, with an optional crop to the image that keeps it valid.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .checks import check_kernel, image_size

DEFAULT_MAX_ELEMENTS = 2**26


def reshaped_kernel_bound(kernel: Tensor) -> float:
    """``sqrt(kh kw) ||M(W)||_2`` with ``M(W)`` the ``(c_out, c_in kh kw)`` reshaping (float64 SVD).

    A certified bound on the stride-1 convolution for every image size, circular or zero padding:
    output pixel ``i`` is ``M(W) x_i`` with ``x_i`` the patch read at ``i``, and each input pixel lies
    in at most ``kh kw`` patches (the "patch" argument used by RKO, Cisse et al. 2017, and L2NE,
    Qian & Wegman 2019). Tight for kernels whose taps are all equal.
    """
    check_kernel(kernel)
    kh, kw = kernel.shape[-2:]
    M = kernel.detach().to(torch.float64).reshape(kernel.shape[0], -1)
    return math.sqrt(kh * kw) * float(torch.linalg.matrix_norm(M, ord=2))


def tap_norm_bound(kernel: Tensor) -> float:
    """``sum_{p,q} ||W[:, :, p, q]||_2`` (float64): the triangle inequality over the taps, each a
    matrix times a shift (norm <= 1 with circular or zero padding); valid for every image size."""
    check_kernel(kernel)
    taps = kernel.detach().to(torch.float64).permute(2, 3, 0, 1).contiguous()
    return float(torch.linalg.matrix_norm(taps, ord=2).sum())


def _compose_fft(A: Tensor, B: Tensor) -> Tensor:
    """The kernel of ``conv(A) o conv(B)`` (full size ``kA + kB - 1``): transfer functions multiply,
    ``A(z) B(z)``, evaluated on an FFT grid large enough that the linear convolution does not wrap."""
    sh, sw = A.shape[-2] + B.shape[-2] - 1, A.shape[-1] + B.shape[-1] - 1
    FA = torch.fft.rfft2(A, s=(sh, sw)).permute(2, 3, 0, 1).contiguous()
    FB = FA if B is A else torch.fft.rfft2(B, s=(sh, sw)).permute(2, 3, 0, 1).contiguous()
    return torch.fft.irfft2((FA @ FB).permute(2, 3, 0, 1), s=(sh, sw))


def _crop_centered(K: Tensor, size: tuple[int, int] | None) -> Tensor:
    """Keep the taps at offsets ``|d_h| <= H - 1``, ``|d_w| <= W - 1`` of an odd, centered kernel."""
    if size is None:
        return K
    H, W = size
    sh, sw = K.shape[-2:]
    mh, mw = min(sh, 2 * H - 1), min(sw, 2 * W - 1)
    top, left = (sh - mh) // 2, (sw - mw) // 2
    return K[..., top : top + mh, left : left + mw]


def zero_padding_norm_bound(
    kernel: Tensor, input_size=None, n_iter: int = 6, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> float:
    """A certified upper bound on the norm of the zero-padded convolution, by Gram iteration on the kernel.

    Let ``T`` be the convolution on the infinite plane (a block Toeplitz operator); a zero-padded
    convolution on an ``H x W`` image is ``A = P_out T P_in`` with ``P`` the restrictions to the
    input / output windows, whatever the padding amount and the stride (a stride only drops output
    rows). The kernels ``K_1 = adj(K) * K`` (``adj(K) = flip(K)^T``, ``*`` = kernel composition, full
    size ``2k - 1``) and ``K_{t+1} = K_t * K_t`` are the kernels of ``T^T T`` and its powers
    ``(T^T T)^(2^t)`` (Delattre et al. 2024). For any kernel,

        ||T_K|| = sup_{|z| = 1} ||K(z)||_2 <= sum_d ||K[d]||_2 <= sum_d ||K[d]||_F,

    so ``||A|| <= ||T|| <= (sum_d ||K_t[d]||_F)^(2^-t)`` for every image size (``input_size=None``).
    The kernel grows as ``2^t (k - 1) + 1``; every step is done on an FFT grid and rescaled to unit
    Frobenius norm with the log of the scale carried, and ``max_elements`` (the largest complex array,
    ``grid * c^2``) guards the memory: exceeding it raises ``ValueError`` (pass ``input_size`` or
    lower ``n_iter``).

    The crop (``input_size = (H, W)``). Only taps at offsets ``|d_h| <= H - 1``, ``|d_w| <= W - 1``
    act on an ``H x W`` window, so ``P S P = P crop(S) P``. And for a symmetric Toeplitz ``S``,
    ``P S^2 P - P S P S P = (Q S P)^T (Q S P) >= 0`` with ``Q = I - P`` (the same with ``S = T``:
    ``A^T A = P T^T P_out T P <= P T^T T P``), so by induction

        ||A||^(2^t) <= ||P S_t P||,   S_1 = crop(T^T T),   S_{t+1} = crop(S_t^2),

    each ``S_t`` symmetric, and ``||P S_t P|| <= ||S_t|| <= sum_d ||S_t[d]||_F``. Cropping to
    ``(2H - 1) x (2W - 1)`` taps after every step therefore keeps the bound valid for inputs of size
    ``H x W`` (and smaller ones, whose operators are compressions), for any output window and stride.
    The largest array is then the ``(4H - 3) x (2W - 1)`` half grid of ``c x c`` complex matrices,
    about ``16 H W c^2`` reals, below the dense operator's ``c^2 H^2 W^2`` once ``H W >= 16``. The
    crop also tightens the bound in practice (measured: the cropped bound falls below the torus norm
    ``sup_z ||K(z)||_2``, which no size-independent bound can). Cropping to fewer taps would not be
    valid: a tap at offset ``H - 1`` still couples the first and last rows of the window.

    Returned: the smallest of the bounds over ``t = 0..n_iter`` (``t = 0``: :func:`tap_norm_bound`).
    The Gram side is ``c_in`` with a crop (the argument is about the input window: the output side
    ``T T^T`` cropped to ``H x W`` would miss outputs beyond the image, e.g. with padding ``k - 1``)
    and ``min(c_in, c_out)`` without one. Computed in the kernel's precision (use float64).
    """
    check_kernel(kernel)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    size = None if input_size is None else image_size(input_size)
    best = tap_norm_bound(kernel)
    if best == 0 or n_iter == 0:
        return best
    K = kernel.detach()
    adjoint = K.transpose(0, 1).flip(-2, -1)
    # The crop argument restricts the INPUT window, so with a crop the first product is T^T T (c_in x c_in taps)
    # whatever the shape; without one, T T^T has the same norm and the smaller side is cheaper.
    input_side = size is not None or K.shape[1] <= K.shape[0]
    first = (adjoint, K) if input_side else (K, adjoint)
    log_scale = 0.0
    current = None
    for t in range(1, n_iter + 1):
        left, right = first if t == 1 else (current, current)
        grid_h, grid_w = left.shape[-2] + right.shape[-2] - 1, left.shape[-1] + right.shape[-1] - 1
        elements = grid_h * (grid_w // 2 + 1) * left.shape[0] * max(left.shape[1], right.shape[1])
        if elements > max_elements:
            raise ValueError(
                f"zero_padding_norm_bound: step {t} needs a {grid_h}x{grid_w} grid of {left.shape[0]}x{left.shape[1]} "
                f"matrices ({elements} complex numbers > max_elements = {max_elements}); pass input_size to crop the "
                "kernel to the image, lower n_iter, or raise max_elements"
            )
        current = _crop_centered(_compose_fft(left, right), size)
        log_scale = (log_scale if t == 1 else 2 * log_scale)
        norm = float(torch.linalg.vector_norm(current))
        current = current / norm
        log_scale += math.log(norm)
        taps = torch.linalg.vector_norm(current, dim=(0, 1)).sum()
        best = min(best, math.exp((log_scale + math.log(float(taps))) / 2**t))
    return best
