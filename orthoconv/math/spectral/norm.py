"""Operator norms of convolutions: exact where a method is exact, a certified enclosure otherwise.

- Circular padding whose outputs form a whole polyphase grid (:attr:`.geometry.ConvOperator.circular_exact`):
  exact (every frequency's largest singular value, :mod:`.circular`), or with ``rtol`` the certified
  enclosure of :mod:`.certified` (no SVD per frequency).
- Small sizes, any padding: exact from the dense matrix (:mod:`.dense`).
- Otherwise an enclosure ``lower <= ||A|| <= upper``: ``lower`` by power iteration on the operator
  itself (:mod:`.apply`), ``upper`` by an exact containment (:func:`upper_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import check_input_size, check_kernel
from .apply import power_iteration_lower_bound
from .certified import certified_circular_norm
from .circular import circular_arguments, circular_spectral_norm
from .dense import DENSE_LIMIT, operator_matrix
from .geometry import (
    ConvOperator,
    check_conv_kernel,
    check_mode,
    conv_operator,
    padded_source,
    per_dim,
)
from .transfer import DEFAULT_CHUNK_BYTES


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


def _check_rtol(rtol) -> float | None:
    if rtol is not None and (isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < math.inf):
        raise ValueError(f"rtol must be a positive finite number or None, got {rtol!r}")
    return None if rtol is None else float(rtol)


def circular_norm(kernel: Tensor, size, stride, groups: int, dilation, rtol: float | None,
                  max_bytes: int = DEFAULT_CHUNK_BYTES) -> SpectralNorm:
    """The norm of the circular convolution on the torus ``size`` (stride dividing it): exact
    (``rtol=None``) or the certified enclosure within ``rtol``."""
    if rtol is None:
        value = circular_spectral_norm(kernel, size, stride, groups, dilation, max_bytes=max_bytes)
        name = "fft" if all(s == 1 for s in per_dim(stride, kernel.dim() - 2, "stride")) else "polyphase-fft"
        return SpectralNorm(value, value, name)
    kernel, size, stride, dilation, groups = circular_arguments(kernel, size, stride, groups, dilation)
    result = certified_circular_norm(kernel, size, stride, dilation, groups, rtol, max_bytes)
    return SpectralNorm(result.lower, result.upper, result.method)


def _multiplicity(positions: Tensor, n: int) -> int:
    return int(torch.bincount(positions.reshape(-1), minlength=n).max())


def upper_bound(op: ConvOperator, rtol: float | None = None) -> tuple[float, str]:
    """A certified ``upper >= ||A||_2`` for a convolution without an exact method, and how it was obtained.

    - zeros: the operator is ``R C E`` with ``E`` the zero extension to a torus ``M`` (a multiple of
      the stride with ``M >= N + b`` and beyond the last position read), ``C`` the strided circular
      convolution there and ``R`` the first ``L`` outputs: no out-of-image read wraps into the image,
      so ``||A|| <= ||C||`` (a compression).
    - reflect / replicate: ``A = V P`` with ``P`` the padding (one 1 per row, so ``||P||`` is the root
      of the most copies of one pixel) and ``V`` the unpadded convolution, bounded as above.
    - circular with a stride not dividing ``N`` (or other output sizes): ``A = R C_1`` with ``C_1`` the
      stride-1 circular convolution and ``R`` selecting the positions ``s i - b mod N``, ``i < L``:
      ``||R||`` is the root of the most times one position is selected.
    The circular norms are exact, or certified within ``rtol`` (the upper end is taken).
    """
    k = op.kernel.shape[2:]
    if op.padding_mode == "circular":
        factor = 1.0
        for n, l, s, (b, _) in zip(op.input_size, op.output_size, op.stride, op.padding):
            factor *= math.sqrt(_multiplicity(torch.remainder(s * torch.arange(l) - b, n), n))
        norm = circular_norm(op.kernel, op.input_size, 1, op.groups, op.dilation, rtol)
        where = "x".join(map(str, op.input_size))
        return factor * norm.upper, (f"upper: {factor:.4g} x the norm of the stride-1 circular convolution on {where} "
                                     f"(the outputs are positions of it, some repeated) [{norm.method}]")
    factor = 1.0
    reads = op.input_size
    if op.padding_mode != "zeros":
        for n, (b, a) in zip(op.input_size, op.padding):
            src, _ = padded_source(torch.arange(-b, n + a), n, op.padding_mode)
            factor *= math.sqrt(_multiplicity(src, n))
        reads = tuple(n + b + a for n, (b, a) in zip(op.input_size, op.padding))
    lead = (0,) * op.dims if op.padding_mode != "zeros" else tuple(b for b, _ in op.padding)
    torus = []
    for n, l, s, d, kk, b in zip(reads, op.output_size, op.stride, op.dilation, k, lead):
        last = s * (l - 1) + d * (kk - 1) - b
        need = max(n + b, last + 1, s * l)
        torus.append(s * math.ceil(need / s))
    norm = circular_norm(op.kernel, tuple(torus), op.stride, op.groups, op.dilation, rtol)
    where = "x".join(map(str, torus))
    pad = f"{factor:.4g} (the {op.padding_mode} padding's norm) x " if factor != 1 else ""
    return factor * norm.upper, (f"upper: {pad}the norm of the circular convolution on {where}, of which the "
                                 f"zero-padded operator is a compression [{norm.method}]")


def operator_norm(op: ConvOperator, rtol: float | None = None, n_iter: int = 50, exact_limit: int | None = None,
                  max_bytes: int = DEFAULT_CHUNK_BYTES) -> SpectralNorm:
    """``||A||_2`` of a :class:`.geometry.ConvOperator`: exact (polyphase FFT or dense) or an enclosure."""
    rtol = _check_rtol(rtol)
    limit = DENSE_LIMIT if exact_limit is None else exact_limit
    if op.circular_exact:
        return circular_norm(op.kernel, op.input_size, op.stride, op.groups, op.dilation, rtol, max_bytes)
    if max(math.prod(op.input_shape), math.prod(op.output_shape)) <= limit:
        value = float(torch.linalg.matrix_norm(operator_matrix(op), ord=2))
        return SpectralNorm(value, value, "dense")
    upper, how = upper_bound(op, rtol)
    lower = power_iteration_lower_bound(op, n_iter)
    return SpectralNorm(min(lower, upper), upper, f"enclosure: {how}; lower: power iteration, {n_iter} steps")


def conv_spectral_norm(kernel: Tensor, input_size, padding: str = "circular", stride=1, groups: int = 1, dilation=1,
                       rtol: float | None = None, *, n_iter: int = 50, exact_limit: int | None = None,
                       transposed: bool = False, max_bytes: int = DEFAULT_CHUNK_BYTES) -> SpectralNorm:
    """The operator norm of a convolution with the "same" padding amount, exact or certified.

    ``kernel``: ``(c_out, c_in / groups, *k)``, 1-D to 3-D; ``padding``: the MODE (``"circular"``,
    ``"zeros"``, ``"reflect"``, ``"replicate"``), the amount being ``d (k - 1)`` split
    ``total // 2`` before, the rest after (``torch``'s "same"; with a stride the output has
    ``ceil(N / s)`` positions). For a module's own padding amount use :func:`module_spectrum`.

    - ``"circular"``: exact, the largest transfer-matrix singular value (Sedghi et al. 2019; stride by
      polyphase, which must divide ``input_size``); with ``rtol``, a certified enclosure with
      ``upper <= (1 + rtol) lower`` at a fraction of the cost (:mod:`.certified`; an ``rtol`` below its
      rounding margins, about 1e-10 relative, gives the margins' width instead: the ends stay certified). ``transposed``: the
      adjoint of the stride-``s`` convolution on ``s * input_size`` (same norm).
    - other modes: exact from the dense operator when ``max(rows, columns) <= exact_limit``
      (``DENSE_LIMIT`` by default); otherwise an enclosure (:func:`upper_bound` above,
      ``n_iter`` steps of power iteration below; ``rtol`` is passed to the circular norm inside).
    Computed in float64. ``method`` names what was done.
    """
    kernel = check_conv_kernel(kernel)
    check_mode(padding)
    if padding == "circular":
        kernel, size, stride, dilation, groups = circular_arguments(kernel, input_size, stride, groups, dilation,
                                                                    transposed)
        return circular_norm(kernel, size, stride, groups, dilation, _check_rtol(rtol), max_bytes)
    if transposed:
        raise ValueError(f"transposed=True is for circular padding; for a zero-padded transposed convolution "
                         f"use module_spectrum(nn.ConvTranspose{kernel.dim() - 2}d(...), input_size)")
    dims = kernel.dim() - 2
    dilation = per_dim(dilation, dims, "dilation")
    pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel.shape[2:], dilation))
    op = conv_operator(kernel, input_size, stride, pads, dilation, groups, padding)
    return operator_norm(op, rtol, n_iter, exact_limit, max_bytes)


def power_iteration_norm(kernel: Tensor, input_size, padding: str = "zeros", n_iter: int = 50, seed: int = 0) -> float:
    """A certified lower bound on ``||conv(W)||_2`` of the stride-1 "same" 2-D convolution: ``||A x||`` for
    the unit ``x`` reached by ``n_iter`` steps of power iteration on ``A^T A`` from a seeded Gaussian
    (:func:`.apply.power_iteration_lower_bound`, rounding accounted for)."""
    kernel = check_kernel(kernel)
    size = check_input_size(input_size)
    op = conv_operator(kernel, size, padding="same", padding_mode=check_mode(padding))
    return power_iteration_lower_bound(op, n_iter, seed)

