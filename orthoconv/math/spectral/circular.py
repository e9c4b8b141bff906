"""Every singular value of a circular convolution, and its exact norm, frequency block by frequency block.

The transfer matrices (:mod:`.transfer`) are formed and decomposed a block of frequencies at a time,
so memory stays at ``max_bytes`` (64 MiB of transfer matrices by default) whatever the image size;
the spectrum is accumulated in float64 whatever the kernel's precision (float16/bfloat16/float32
kernels are promoted: their values are exact in float64). On the CPU each block's SVDs are spread
over ``torch.get_num_threads()`` threads (LAPACK decomposes a batch one matrix after another); other
devices decompose a block in one batched call.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from ...io.progress import progress
from .geometry import check_conv_kernel, per_dim, spatial_size
from .transfer import (
    DEFAULT_CHUNK_BYTES,
    check_polyphase,
    chunk_rows,
    count_chunks,
    frequency_grid,
    mirror,
    polyphase_transfer,
)

PROGRESS_FLOPS = 2e10  # show a progress bar (on a terminal) above about this many SVD flops


def batched_svdvals(matrices: Tensor, pool: ThreadPoolExecutor | None = None) -> Tensor:
    """``torch.linalg.svdvals`` of a batch ``(B, m, n)``, the batch split across CPU threads.

    On the CPU, LAPACK decomposes the matrices of a batch one after another; the batch is cut into
    ``torch.get_num_threads()`` chunks decomposed concurrently (torch releases the GIL), on ``pool`` when
    given, with torch's intra-op threads set to 1 meanwhile (restored after): LAPACK's own threads on top
    of these oversubscribe the cores (measured on 2 cores under load: 32 SVDs of 256 x 256 complex took
    1.09 s so and 0.71 s without; one call with 2 intra-op threads took 50 s). Each chunk keeps the
    caller's grad mode. Other devices decompose the batch in one call.
    """
    threads = torch.get_num_threads()
    if matrices.device.type != "cpu" or threads < 2 or matrices.shape[0] < 2 * threads:
        return torch.linalg.svdvals(matrices)
    grad = torch.is_grad_enabled()

    def decompose(chunk: Tensor) -> Tensor:
        with torch.set_grad_enabled(grad):
            return torch.linalg.svdvals(chunk)

    torch.set_num_threads(1)
    try:
        if pool is not None:
            return torch.cat(list(pool.map(decompose, matrices.chunk(threads))))
        with ThreadPoolExecutor(threads) as own:
            return torch.cat(list(own.map(decompose, matrices.chunk(threads))))
    finally:
        torch.set_num_threads(threads)


def circular_arguments(kernel, input_size, stride=1, groups=1, dilation=1, transposed=False):
    """Checked ``(kernel, N, stride, dilation, groups)`` of the forward circular convolution on the torus ``N``.

    ``transposed``: ``kernel`` is a transposed convolution's weight ``(c_in, c_out / g, *k)`` and
    ``input_size`` its input; the map is the adjoint of the stride-``s`` convolution on ``s * input_size``.
    Raises ``ValueError`` when a stride does not divide the torus (:func:`.transfer.check_polyphase`).
    """
    kernel = check_conv_kernel(kernel)
    dims = kernel.dim() - 2
    size = spatial_size(input_size, dims)
    stride = per_dim(stride, dims, "stride")
    dilation = per_dim(dilation, dims, "dilation")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if kernel.shape[0] % groups:
        raise ValueError(f"the kernel's first dimension ({kernel.shape[0]}) is not divisible by groups = {groups}")
    if not isinstance(transposed, bool):
        raise TypeError(f"transposed must be a bool, got {transposed!r}")
    if transposed:
        size = tuple(n * s for n, s in zip(size, stride))
    check_polyphase(size, stride)
    return kernel, size, stride, dilation, groups


def _blocks(kernel: Tensor, size, stride, dilation, groups, max_bytes: int, label: str):
    """Yield ``(rows, K)`` over the half spectrum in blocks of ``max_bytes``, ``K`` flattened to
    ``(frequencies, g, m, n)``; a progress bar (terminal only) when the SVD work is large."""
    c_out_g, n = kernel.shape[0] // groups, kernel.shape[1] * math.prod(stride)
    _, F = frequency_grid(size, stride)
    per_frequency = 16 * groups * c_out_g * n
    total = count_chunks(F, per_frequency, max_bytes)
    work = math.prod(F) * groups * c_out_g * n * min(c_out_g, n) * 8
    chunks = chunk_rows(F, per_frequency, max_bytes, kernel.device)
    for rows in progress(chunks, total=total, label=label, enabled=None if work > PROGRESS_FLOPS else False):
        K = polyphase_transfer(kernel, size, stride, dilation, groups, rows)
        yield rows, K.reshape(-1, *K.shape[-3:])


def conv_singular_values(kernel: Tensor, input_size, stride=1, groups: int = 1, dilation=1, transposed: bool = False,
                         max_bytes: int = DEFAULT_CHUNK_BYTES) -> Tensor:
    """Every singular value of the circular convolution (1-D, 2-D or 3-D by ``kernel.dim() - 2``).

    ``kernel``: ``(c_out, c_in / groups, *k)`` as ``torch.nn.ConvNd`` holds it; ``input_size``: the
    input's spatial size ``N``. Stride ``s`` (must divide ``N``: ``ValueError`` otherwise), dilation
    and groups as in ``torch.nn.ConvNd``; the padding amount does not change the spectrum (a circular
    shift is unitary). ``transposed=True``: ``kernel`` is a transposed convolution's weight and the
    map the adjoint of the stride-``s`` convolution on ``s * input_size`` (same singular values).

    Returns float64 ``(*M, groups * r)`` with ``M = N / s`` the output torus and
    ``r = min(c_out / g, (c_in / g) prod(s))``: entry ``[u]`` holds the singular values at frequency
    ``u`` of every group, descending; together they are the ``min(rows, columns)`` singular values of
    the operator (Sedghi, Gupta, Long 2019, stride by polyphase: :mod:`.transfer`). Exact up to
    float64 rounding (backward-stable SVD of each transfer matrix: errors ~ ``c eps sigma_max``).
    Computed in blocks of ``max_bytes`` of transfer matrices, half of the spectrum decomposed (the
    other half is conjugate), no autograd.
    """
    kernel, size, stride, dilation, groups = circular_arguments(kernel, input_size, stride, groups, dilation,
                                                                transposed)
    M, _ = frequency_grid(size, stride)
    c_out_g, n = kernel.shape[0] // groups, kernel.shape[1] * math.prod(stride)
    r = min(c_out_g, n)
    out = torch.empty(*M, groups * r, dtype=torch.float64, device=kernel.device)
    threads = torch.get_num_threads()
    with torch.no_grad(), ThreadPoolExecutor(max(threads, 1)) as pool:
        for rows, K in _blocks(kernel.detach(), size, stride, dilation, groups, max_bytes, "singular values"):
            sigma = batched_svdvals(K.reshape(-1, *K.shape[-2:]), pool).reshape(*(len(x) for x in rows), groups * r)
            if groups > 1:
                sigma = sigma.sort(dim=-1, descending=True).values
            out[torch.meshgrid(*rows, indexing="ij")] = sigma
            out[torch.meshgrid(*mirror(rows, M), indexing="ij")] = sigma
    return out


def circular_spectral_norm(kernel: Tensor, input_size, stride=1, groups: int = 1, dilation=1,
                           transposed: bool = False, max_bytes: int = DEFAULT_CHUNK_BYTES) -> float:
    """``||conv(W)||_2`` under circular padding, exactly: the largest singular value over the half
    spectrum (same arguments as :func:`conv_singular_values`), the maximum streamed block by block."""
    kernel, size, stride, dilation, groups = circular_arguments(kernel, input_size, stride, groups, dilation,
                                                                transposed)
    best = 0.0
    with torch.no_grad(), ThreadPoolExecutor(max(torch.get_num_threads(), 1)) as pool:
        for _, K in _blocks(kernel.detach(), size, stride, dilation, groups, max_bytes, "spectral norm"):
            sigma = batched_svdvals(K.reshape(-1, *K.shape[-2:]), pool)
            best = max(best, float(sigma.max()))
    return best
