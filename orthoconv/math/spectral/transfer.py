"""Transfer matrices of circular convolutions: the DFT block-diagonalization, with stride by polyphase.

Stride 1 (Sedghi, Gupta, Long, ICLR 2019). With circular padding on a torus ``Z_N`` the convolution
``y[i] = sum_t W[t] x[i + d t - b]`` is block-diagonalized by the unitary DFT: at each frequency ``u``
it multiplies by the ``c_out x c_in`` transfer matrix ``K(u) = sum_t W[t] exp(-2 pi i u (d t - b) / N)``,
so its singular values are those of the ``K(u)`` together. Taps beyond the image fold: the exponent is
reduced modulo ``N`` in integers, which is the folding. Dilation only spreads the taps (``d t``).

Stride ``s`` dividing ``N`` (the polyphase decomposition, the same argument one level down). Write an
input position as ``j = s a + r``, ``0 <= r < s``: the input splits into ``s`` polyphase components
``x_r[a] = x[s a + r]`` on ``Z_{N/s}``, a permutation of coordinates. Tap ``t`` at offset
``e = d t - b`` reads component ``r = e mod s`` shifted by ``floor(e / s)``, so the strided convolution
is a stride-1 convolution on ``Z_{N/s}`` with ``c_in s`` input channels; its transfer matrix at
``u`` in ``Z_{N/s}`` is ``c_out x (c_in s)`` with column block ``r`` equal to
``sum_{t : e_t = r mod s} W[t] exp(-2 pi i u floor(e_t / s) / (N / s))``. Multiplying column block
``r`` by the unit phase ``exp(-2 pi i u r / N)`` (a unitary change that keeps the singular values)
turns every entry into ``W[t] exp(-2 pi i u e_t / N)``: the full-resolution DFT of the taps of that
residue, which is what is computed. In D dimensions everything factors per dimension (``S = prod s``
residues). The offset ``b`` changes only those phases, so the spectrum does not depend on the padding
amount; ``K(N/s - u)`` is ``conj K(u)`` up to the same column phases for a real kernel, so half of
the last dimension's frequencies hold every distinct value. ``groups`` make the operator block
diagonal: each group has its own transfer matrices (``c_out / g x (c_in / g) S``).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from ..checks import check_input_size, check_kernel
from ..constants import constant

DEFAULT_CHUNK_BYTES = 2**26


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
    matrices of the kernel's own size, so no tensor of image size per channel pair is formed. A float32/float64
    kernel that fits in the image, taken at origin 0, is instead one ``rfft2`` of the zero-padded taps (the same
    sum; an output of the same size; 1 operation forward and few backward, where the products dispatch tens)."""
    real = kernel.dtype
    kh, kw = kernel.shape[-2:]
    if origin == (0, 0) and kh <= H and kw <= W and real in (torch.float32, torch.float64) and kernel.numel():
        return torch.fft.rfft2(kernel, s=(H, W)).permute(2, 3, 0, 1)
    E_h = constant(_dft_matrix, H, H, kernel.shape[-2], origin[0], real, device=kernel.device)
    E_w = constant(_dft_matrix, W // 2 + 1, W, kernel.shape[-1], origin[1], real, device=kernel.device)
    partial = kernel.to(E_w.dtype) @ E_w.T
    return torch.einsum("up,oipv->uvoi", E_h, partial)


def apply_transfer(T: Tensor, xhat: Tensor) -> Tensor:
    """``yhat[n, o, u, v] = sum_i T[u, v, o, i] xhat[n, i, u, v]``: ``(F1, F2, c_out, c_in)`` transfer matrices
    applied to an ``(N, c_in, F1, F2)`` spectrum, as one ``bmm`` over the frequencies (``einsum`` dispatches
    twice the operations for the same product)."""
    F1, F2, c_out, c_in = T.shape
    x = xhat.permute(2, 3, 1, 0).reshape(F1 * F2, c_in, xhat.shape[0])
    y = torch.bmm(T.reshape(F1 * F2, c_out, c_in), x)
    return y.view(F1, F2, c_out, -1).permute(3, 2, 0, 1)


def frequency_response(kernel: Tensor, input_size) -> Tensor:
    """The stride-1 transfer matrices of a 2-D kernel on the half spectrum: ``(H, W // 2 + 1, c_out, c_in)``.

    Entry ``[u, v]`` is ``K(exp(-2 pi i u / H), exp(-2 pi i v / W))`` (the ``rfft2`` sign, taps beyond
    the image folded); the other half of the spectrum is its complex conjugate. Computed in the
    kernel's precision (float32 at least) and differentiable: the layers built in the Fourier domain
    use it. For strides, groups, dilation, 1-D and 3-D see :func:`polyphase_transfer`.
    """
    kernel = check_kernel(kernel)
    H, W = check_input_size(input_size)
    return _half_spectrum(kernel, H, W)


def frequency_grid(input_size: tuple[int, ...], stride: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(M, F)``: the output torus ``M = N / s`` and the frequencies computed per dimension ``F``
    (all of ``M`` but half of the last dimension, ``M_D // 2 + 1``)."""
    M = tuple(n // s for n, s in zip(input_size, stride))
    return M, (*M[:-1], M[-1] // 2 + 1)


def check_polyphase(input_size: tuple[int, ...], stride: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless every stride divides its image side (the polyphase method is exact then)."""
    bad = [(n, s) for n, s in zip(input_size, stride) if n % s]
    if bad:
        raise ValueError(
            f"stride {stride} does not divide the image size {input_size}: the strided circular convolution's "
            "outputs are then not a whole polyphase grid and its spectrum has no block-diagonal form; "
            "module_spectrum gives the dense spectrum on small sizes and a certified enclosure otherwise"
        )


def phase_table(size: int, stride: int, dilation: int, taps: int, rows: Tensor, dtype: torch.dtype) -> Tensor:
    """``E[f, r, t] = exp(-2 pi i rows[f] d t / N)`` where ``d t = r (mod s)``, else 0: ``(F, s, taps)``.

    The angle is formed from the integer ``rows[f] d t mod N``, so a frequency's phase is exact to
    one rounding whatever the tap's offset (large dilations and kernels wider than the image fold).
    """
    offsets = dilation * torch.arange(taps, device=rows.device)
    turns = torch.remainder(rows[:, None] * offsets[None, :], size).to(dtype)
    phase = torch.polar(torch.ones_like(turns), (-2 * math.pi / size) * turns)
    residue = torch.remainder(offsets, stride)[None, :] == torch.arange(stride, device=rows.device)[:, None]
    return phase[:, None, :] * residue[None, :, :].to(phase.dtype)


def polyphase_transfer(kernel: Tensor, input_size: tuple[int, ...], stride: tuple[int, ...],
                       dilation: tuple[int, ...], groups: int, rows: tuple[Tensor, ...] | None = None,
                       dtype: torch.dtype = torch.float64) -> Tensor:
    """Transfer matrices of the strided, dilated, grouped circular convolution (module docstring).

    ``kernel``: ``(c_out, c_in / g, *k)``; ``rows[d]``: the frequencies of dimension ``d`` (integers
    in ``[0, N_d / s_d)``; default: :func:`frequency_grid`'s ``F``). Returns a complex tensor
    ``(len(rows[0]), ..., len(rows[D-1]), g, c_out / g, (c_in / g) S)`` computed in ``dtype``
    (accumulated in complex of that precision): tap by tap it is ``D`` small products with the
    phase tables, no tensor of image size per channel pair besides the result.
    """
    dims = kernel.dim() - 2
    if rows is None:
        _, F = frequency_grid(input_size, stride)
        rows = tuple(torch.arange(f, device=kernel.device) for f in F)
    X = kernel.to(dtype).to(torch.promote_types(dtype, torch.complex64))
    for d in range(dims):
        E = phase_table(input_size[d], stride[d], dilation[d], kernel.shape[2 + d], rows[d], dtype)
        X = torch.tensordot(X, E, dims=([2], [2]))  # the next tap axis out, (F_d, s_d) appended
    order = [2 + 2 * d for d in range(dims)] + [0, 1] + [3 + 2 * d for d in range(dims)]
    X = X.permute(order)
    S = math.prod(stride)
    c_out, c_in_g = kernel.shape[:2]
    return X.reshape(*(len(r) for r in rows), groups, c_out // groups, c_in_g * S)


def _chunk_plan(F: tuple[int, ...], per_frequency_bytes: int, max_bytes: int) -> tuple[int, int]:
    """``(level, step)``: dimensions before ``level`` go one index at a time, ``step`` indices of
    dimension ``level`` per block, the later dimensions whole."""
    level = 0
    while level < len(F) - 1 and math.prod(F[level:]) * per_frequency_bytes > max_bytes:
        level += 1
    inner = math.prod(F[level + 1:]) * per_frequency_bytes
    return level, max(1, max_bytes // max(inner, 1))


def chunk_rows(F: tuple[int, ...], per_frequency_bytes: int, max_bytes: int, device=None):
    """Split the frequency grid ``F`` into blocks of at most ``max_bytes`` (at least one frequency row
    of the innermost dimension): yields ``rows`` tuples of index tensors, leading dimensions single
    indices, one dimension a contiguous range, trailing dimensions whole."""
    level, step = _chunk_plan(F, per_frequency_bytes, max_bytes)
    whole = tuple(torch.arange(f, device=device) for f in F[level + 1:])
    for prefix in itertools.product(*(range(f) for f in F[:level])):
        for start in range(0, F[level], step):
            stop = min(F[level], start + step)
            yield (*(torch.tensor([p], device=device) for p in prefix), torch.arange(start, stop, device=device), *whole)


def count_chunks(F: tuple[int, ...], per_frequency_bytes: int, max_bytes: int) -> int:
    """The number of blocks :func:`chunk_rows` yields."""
    level, step = _chunk_plan(F, per_frequency_bytes, max_bytes)
    return math.prod(F[:level]) * math.ceil(F[level] / step)


def mirror(rows: tuple[Tensor, ...], M: tuple[int, ...]) -> tuple[Tensor, ...]:
    """The frequencies ``-u mod M`` of ``rows``, whose transfer matrices are the conjugates (up to
    column phases) of those at ``u`` for a real kernel."""
    return tuple(torch.remainder(-r, m) for r, m in zip(rows, M))
