"""Exact spectra, norms and orthogonality certificates of convolution operators.

With circular padding on an ``H x W`` image, the convolution with a ``(c_out, c_in, kh, kw)``
kernel is block-diagonalized by the 2-D DFT: its singular values are those of the ``c_out x c_in``
matrices ``K(w1, w2) = sum_{p,q} W[:, :, p, q] w1^p w2^q`` at the ``H * W`` pairs of roots of unity
(Sedghi, Gupta, Long, ICLR 2019). Taps beyond the image wrap around, so the kernel is first folded
modulo the image size. For a real kernel ``K(conj w) = conj K(w)``, so the half spectrum of
``rfft2`` already holds every distinct value.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_input_size, check_kernel
from .conv import check_padding_mode, conv2d_same, conv2d_same_adjoint, same_padding

DENSE_LIMIT = 4096


def _dft_matrix(frequencies: int, size: int, taps: int, origin: int, dtype: torch.dtype, device) -> Tensor:
    """``E[u, p] = exp(-2 pi i u (p - origin) / size)`` for ``u < frequencies``, ``p < taps``; the exponent
    is reduced modulo ``size`` in integers first, so taps beyond the image fold exactly."""
    u = torch.arange(frequencies, device=device)[:, None]
    p = torch.arange(taps, device=device)[None, :] - origin
    angle = (-2 * torch.pi / size) * torch.remainder(u * p, size).to(dtype)
    return torch.polar(torch.ones_like(angle), angle)


def _half_spectrum(kernel: Tensor, H: int, W: int, origin: tuple[int, int] = (0, 0)) -> Tensor:
    """``sum_{p,q} W[:, :, p, q] exp(-2 pi i (u (p - p0) / H + v (q - q0) / W))`` for ``u < H``,
    ``v <= W // 2``, laid out ``(H, W // 2 + 1, c_out, c_in)``: two small matrix products with DFT
    matrices of the kernel's own size, so no tensor of image size per channel pair is formed."""
    real = kernel.dtype
    E_h = _dft_matrix(H, H, kernel.shape[-2], origin[0], real, kernel.device)
    E_w = _dft_matrix(W // 2 + 1, W, kernel.shape[-1], origin[1], real, kernel.device)
    partial = kernel.to(E_w.dtype) @ E_w.T
    return torch.einsum("up,oipv->uvoi", E_h, partial)


def frequency_response(kernel: Tensor, input_size) -> Tensor:
    """The transfer matrices on the half spectrum: shape ``(H, W // 2 + 1, c_out, c_in)``, complex.

    Entry ``[u, v]`` is ``K(exp(-2 pi i u / H), exp(-2 pi i v / W))`` (the ``rfft2`` sign, taps beyond
    the image folded); the other half of the spectrum is its complex conjugate.
    """
    check_kernel(kernel)
    H, W = check_input_size(input_size)
    return _half_spectrum(kernel, H, W)


def _full_spectrum_index(H: int, W: int, device) -> tuple[Tensor, Tensor]:
    """Indices into the rfft half spectrum that give every frequency ``(u, v)`` of the full one."""
    u = torch.arange(H, device=device)[:, None].expand(H, W)
    v = torch.arange(W, device=device)[None, :].expand(H, W)
    mirrored = v > W // 2
    return torch.where(mirrored, (-u) % H, u), torch.where(mirrored, W - v, v)


def batched_svdvals(matrices: Tensor) -> Tensor:
    """``torch.linalg.svdvals`` of a batch ``(B, m, n)``, the batch split across CPU threads.

    On the CPU, LAPACK decomposes the matrices of a batch one after another on one core; small
    matrices gain nothing from intra-op threads, so the batch is cut into ``torch.get_num_threads()``
    chunks decomposed concurrently (torch releases the GIL). Each chunk keeps the caller's grad mode.
    Other devices decompose the batch in one call.
    """
    threads = torch.get_num_threads()
    if matrices.device.type != "cpu" or threads < 2 or matrices.shape[0] < 2 * threads:
        return torch.linalg.svdvals(matrices)
    grad = torch.is_grad_enabled()

    def decompose(chunk: Tensor) -> Tensor:
        with torch.set_grad_enabled(grad):
            return torch.linalg.svdvals(chunk)

    with ThreadPoolExecutor(threads) as pool:
        return torch.cat(list(pool.map(decompose, matrices.chunk(threads))))


def conv_singular_values(kernel: Tensor, input_size) -> Tensor:
    """Every singular value of the circular convolution operator on ``input_size = (H, W)``.

    Returns a real tensor of shape ``(H, W, min(c_out, c_in))``: entry ``[u, v]`` holds the
    singular values (descending) of the transfer matrix at frequency ``(u, v)``; together they are
    the ``min(c_out, c_in) * H * W`` singular values of the ``(c_out H W) x (c_in H W)`` operator.
    Only the ``H * (W // 2 + 1)`` frequencies of the half spectrum are decomposed (Sedghi et al.
    2019); computed in the kernel's precision (promote to float64 for accuracy).
    """
    H, W = check_input_size(input_size)
    half = batched_svdvals(frequency_response(kernel, (H, W)).flatten(0, 1)).unflatten(0, (H, W // 2 + 1))
    rows, cols = _full_spectrum_index(H, W, kernel.device)
    return half[rows, cols]


@dataclass(frozen=True)
class SpectralNorm:
    """An enclosure ``lower <= ||conv(W)||_2 <= upper`` of the operator norm; ``exact`` when equal."""

    lower: float
    upper: float
    method: str

    @property
    def exact(self) -> bool:
        return self.lower == self.upper

    @property
    def value(self) -> float:
        """The certified number: the upper bound (the exact norm when ``exact``)."""
        return self.upper

    def __float__(self) -> float:
        return self.upper


def circular_spectral_norm(kernel: Tensor, input_size) -> float:
    """``||conv(W)||_2`` under circular padding: the largest transfer-matrix singular value."""
    return float(torch.linalg.matrix_norm(frequency_response(kernel, input_size), ord=2).max())


def power_iteration_norm(
    kernel: Tensor, input_size, padding: str = "zeros", n_iter: int = 50, seed: int = 0
) -> float:
    """A lower bound on ``||conv(W)||_2``: ``||A x||`` for the unit ``x`` reached by ``n_iter`` steps of
    power iteration on ``A^T A`` (conv and its adjoint), started from a seeded Gaussian (drawn on the
    CPU, so a seed gives the same start on every device)."""
    check_kernel(kernel)
    H, W = check_input_size(input_size)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, kernel.shape[1], H, W, generator=generator, dtype=kernel.dtype).to(kernel.device)
    with torch.no_grad():
        for _ in range(n_iter):
            x = x / torch.linalg.vector_norm(x)
            x = conv2d_same_adjoint(conv2d_same(x, kernel, padding), kernel, padding)
        x = x / torch.linalg.vector_norm(x)
        return float(torch.linalg.vector_norm(conv2d_same(x, kernel, padding)))


def conv_spectral_norm(kernel: Tensor, input_size, padding: str = "circular", n_iter: int = 50) -> SpectralNorm:
    """The operator norm of the stride-1 same convolution on ``input_size``.

    - ``"circular"``: exact, the largest singular value over all frequencies (Sedghi et al. 2019).
    - ``"zeros"``: exact from the dense operator when ``c * H * W <= DENSE_LIMIT``; otherwise an
      enclosure: the zero-padded operator on ``n x n`` is a compression of the circular one on
      ``m x m`` for ``m >= n + k - 1`` (docs/references.md), so the circular norm there is an upper bound,
      and power iteration gives a lower bound.
    """
    check_kernel(kernel)
    H, W = check_input_size(input_size)
    check_padding_mode(padding)
    if padding == "circular":
        value = circular_spectral_norm(kernel, (H, W))
        return SpectralNorm(value, value, "fft")
    c = max(kernel.shape[0], kernel.shape[1])
    if c * H * W <= DENSE_LIMIT:
        value = float(torch.linalg.matrix_norm(dense_operator(kernel, (H, W), "zeros"), ord=2))
        return SpectralNorm(value, value, "dense")
    kh, kw = kernel.shape[-2:]
    upper = circular_spectral_norm(kernel, (H + kh - 1, W + kw - 1))
    lower = power_iteration_norm(kernel, (H, W), "zeros", n_iter)
    return SpectralNorm(min(lower, upper), upper, "circular-embedding+power-iteration")


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
    check_kernel(kernel)
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


def dense_operator(kernel: Tensor, input_size, padding: str = "circular") -> Tensor:
    """The ``(c_out H W) x (c_in H W)`` matrix of the same convolution (row-major ``(c, i, j)``).

    Built by index arithmetic from ``y[o, i, j] = sum_{c,p,q} W[o, c, p, q] x[c, i + p - ph, j + q - pw]``
    (``ph, pw`` the "before" paddings; indices wrap for ``"circular"``, fall off for ``"zeros"``),
    independently of the convolution code, as the reference for tests. Small sizes only:
    ``max(c_out, c_in) * H * W`` must not exceed ``DENSE_LIMIT``.
    """
    check_kernel(kernel)
    H, W = check_input_size(input_size)
    check_padding_mode(padding)
    c_out, c_in, kh, kw = kernel.shape
    if max(c_out, c_in) * H * W > DENSE_LIMIT:
        raise ValueError(
            f"dense_operator is for small sizes: max(c_out, c_in) * H * W = {max(c_out, c_in) * H * W} "
            f"exceeds DENSE_LIMIT = {DENSE_LIMIT}"
        )
    dev = kernel.device
    i = torch.arange(H, device=dev).view(H, 1, 1, 1)
    j = torch.arange(W, device=dev).view(1, W, 1, 1)
    p = torch.arange(kh, device=dev).view(1, 1, kh, 1)
    q = torch.arange(kw, device=dev).view(1, 1, 1, kw)
    src_i = i + p - same_padding(kh)[0]
    src_j = j + q - same_padding(kw)[0]
    if padding == "circular":
        valid = torch.ones(H, W, kh, kw, dtype=torch.bool, device=dev)
    else:
        valid = (src_i >= 0) & (src_i < H) & (src_j >= 0) & (src_j < W)
    src_i, src_j = torch.broadcast_tensors(src_i % H, src_j % W)
    dst = (i * W + j).expand(H, W, kh, kw)
    src = src_i * W + src_j
    operator = kernel.new_zeros(c_out, H * W, c_in, H * W)
    values = kernel.permute(2, 3, 0, 1)
    contributions = torch.where(valid[..., None, None], values.expand(H, W, kh, kw, c_out, c_in), 0)
    operator = operator.permute(1, 3, 0, 2)
    operator.index_put_((dst, src), contributions, accumulate=True)
    return operator.permute(2, 0, 3, 1).reshape(c_out * H * W, c_in * H * W)
