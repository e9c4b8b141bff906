"""Operator norms of convolutions: exact where a method is exact, a certified enclosure otherwise.

- Circular padding whose outputs form a whole polyphase grid (:attr:`.geometry.ConvOperator.circular_exact`):
  exact (every frequency's largest singular value, :mod:`.circular`), or with ``rtol`` the certified
  enclosure of :mod:`.certified` (no SVD per frequency).
- Small sizes, any padding: exact from the dense matrix (:mod:`.dense`), ``DENSE_NORM_LIMIT`` rows or
  columns at most by default (a norm never pays for the SVD of a larger matrix).
- Otherwise an enclosure ``lower <= ||A|| <= upper``: ``lower`` the witness of a converged Lanczos run on
  ``A^T A`` (:mod:`.lanczos`), ``upper`` by an exact containment (:func:`upper_bound`); ``rtol_met`` says
  whether ``upper <= (1 + rtol) lower`` was reached.
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
from .dense import operator_matrix
from .geometry import (
    ConvOperator,
    check_conv_kernel,
    check_mode,
    conv_operator,
    padded_source,
    per_dim,
)
from .lanczos import lanczos, witness
from .lehmann import compression_norm
from .transfer import DEFAULT_CHUNK_BYTES

DENSE_NORM_LIMIT = 1024  # a norm alone: dense only up to here (an SVD of 4096 x 4096 took 13.7 s on 2 cores)
DEFAULT_RTOL = 1e-3  # the enclosure's aim where no rtol is given and no exact method is cheap
MAX_LANCZOS = 200


@dataclass(frozen=True)
class SpectralNorm:
    """An enclosure ``lower <= ||conv(W)||_2 <= upper`` of the operator norm; ``exact`` when equal.

    ``rtol``: the relative tolerance the enclosure aimed at (None: exactness was asked); ``rtol_met``:
    exact, or ``upper <= (1 + rtol) lower``. Both ends are certified either way.
    """

    lower: float
    upper: float
    method: str
    rtol: float | None = None

    @property
    def exact(self) -> bool:
        return self.lower == self.upper

    @property
    def rtol_met(self) -> bool:
        return self.exact or (self.rtol is not None and self.upper <= (1 + self.rtol) * self.lower)

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
    return SpectralNorm(result.lower, result.upper, result.method, rtol)


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


def enclosure(op: ConvOperator, rtol: float, n_iter: int | None = None) -> SpectralNorm:
    """``lower <= ||A||_2 <= upper`` for any :class:`.geometry.ConvOperator`: ``lower`` the certified witness
    of the top Ritz vector of block Lanczos on ``A^T A`` (:func:`.lanczos.lanczos`, run until its Ritz value
    settles to ``rtol / 100``, at most ``n_iter`` vectors, ``MAX_LANCZOS`` by default). ``upper``: for zero
    padding (``"valid"``, transposed) :func:`.lehmann.compression_norm` (the circular embedding, then
    Lehmann's bound at the image's size); for reflect and replicate :func:`upper_bound` (the embedding times
    the padding's norm). ``rtol_met`` tells whether ``upper <= (1 + rtol) lower``: it fails where the
    embedding's gap exceeds ``rtol`` and Lehmann's eigenvalue count (:mod:`.majorant`) does not match the
    Lanczos space (large Gaussian kernels, where more circular eigenvalues lie near the top than the
    deflation keeps), and for reflect/replicate padding on small images."""
    steps = MAX_LANCZOS if n_iter is None else n_iter
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    if op.padding_mode == "zeros" and steps > 0:
        lower, upper, how = compression_norm(op, rtol, steps)
        return SpectralNorm(lower, upper, how, rtol)
    upper, how = upper_bound(op, rtol / 4)
    if steps == 0 or upper == 0.0:
        return SpectralNorm(0.0, upper, f"enclosure: {how}; lower: none (0 steps)", rtol)
    krylov = lanczos(op, rtol, steps)
    lower = min(witness(op, krylov.y), upper)
    return SpectralNorm(lower, upper, f"enclosure: {how}; lower: Lanczos witness, {len(krylov.Q)} steps", rtol)


def operator_norm(op: ConvOperator, rtol: float | None = None, n_iter: int | None = None,
                  exact_limit: int | None = None, max_bytes: int = DEFAULT_CHUNK_BYTES) -> SpectralNorm:
    """``||A||_2`` of a :class:`.geometry.ConvOperator`: exact (polyphase FFT, or dense when the larger side
    has at most ``exact_limit`` entries, ``DENSE_NORM_LIMIT`` by default) or a certified :func:`enclosure`
    aimed at ``rtol`` (``DEFAULT_RTOL`` when None); ``rtol_met`` says whether it was reached."""
    rtol = _check_rtol(rtol)
    limit = DENSE_NORM_LIMIT if exact_limit is None else exact_limit
    if op.circular_exact:
        return circular_norm(op.kernel, op.input_size, op.stride, op.groups, op.dilation, rtol, max_bytes)
    if max(math.prod(op.input_shape), math.prod(op.output_shape)) <= limit:
        value = float(torch.linalg.matrix_norm(operator_matrix(op), ord=2))
        return SpectralNorm(value, value, "dense", rtol)
    return enclosure(op, DEFAULT_RTOL if rtol is None else rtol, n_iter)


def conv_spectral_norm(kernel: Tensor, input_size, padding: str = "circular", stride=1, groups: int = 1, dilation=1,
                       rtol: float | None = None, *, n_iter: int | None = None, exact_limit: int | None = None,
                       transposed: bool = False, max_bytes: int = DEFAULT_CHUNK_BYTES) -> SpectralNorm:
    """The operator norm of a convolution with the "same" padding amount, exact or certified.

    ``kernel``: ``(c_out, c_in / groups, *k)``, 1-D to 3-D; ``padding``: the MODE (``"circular"``,
    ``"zeros"``, ``"reflect"``, ``"replicate"``), the amount being ``d (k - 1)`` split
    ``total // 2`` before, the rest after (``torch``'s "same"; with a stride the output has
    ``ceil(N / s)`` positions), or ``"valid"`` (no padding). ``transposed`` with ``"zeros"`` or ``"valid"``:
    ``kernel`` is a ``ConvTransposeNd`` weight on an input of size ``input_size``, padding ``d (k - 1) // 2``
    (or 0) on both sides. For a module's own padding amount use :func:`module_spectrum`.

    - ``"circular"``: exact, the largest transfer-matrix singular value (Sedghi et al. 2019; stride by
      polyphase, which must divide ``input_size``); with ``rtol``, a certified enclosure with
      ``upper <= (1 + rtol) lower`` at a fraction of the cost (:mod:`.certified`; an ``rtol`` below its
      rounding margins, about 1e-10 relative, gives the margins' width instead: the ends stay certified). ``transposed``: the
      adjoint of the stride-``s`` convolution on ``s * input_size`` (same norm).
    - other modes (``"zeros"``, ``"reflect"``, ``"replicate"``): exact from the dense operator when
      ``max(rows, columns) <= exact_limit`` (``DENSE_NORM_LIMIT`` by default); otherwise the certified
      :func:`enclosure` aimed at ``rtol`` (``DEFAULT_RTOL`` when None): Lanczos below (at most ``n_iter``
      vectors), the circular embedding and Lehmann's bound above. ``rtol_met`` is False where neither
      reaches ``rtol`` (see :func:`enclosure`): the ends are still certified, never silently loose.
    Computed in float64. ``method`` names what was done.
    """
    kernel = check_conv_kernel(kernel)
    mode = "zeros" if padding == "valid" else check_mode(padding)
    if padding == "circular":
        kernel, size, stride, dilation, groups = circular_arguments(kernel, input_size, stride, groups, dilation,
                                                                    transposed)
        return circular_norm(kernel, size, stride, groups, dilation, _check_rtol(rtol), max_bytes)
    dims = kernel.dim() - 2
    dilation = per_dim(dilation, dims, "dilation")
    total = tuple(0 if padding == "valid" else d * (k - 1) for k, d in zip(kernel.shape[2:], dilation))
    if transposed:
        if mode != "zeros":
            raise ValueError(f"a transposed convolution pads with zeros only, got padding={padding!r}")
        op = conv_operator(kernel, input_size, stride, tuple(t // 2 for t in total), dilation, groups, "zeros",
                           transposed=True)
    else:
        pads = tuple((t // 2, t - t // 2) for t in total)
        op = conv_operator(kernel, input_size, stride, pads, dilation, groups, mode)
    return operator_norm(op, rtol, n_iter, exact_limit, max_bytes)


def power_iteration_norm(kernel: Tensor, input_size, padding: str = "zeros", n_iter: int = 50, seed: int = 0) -> float:
    """A certified lower bound on ``||conv(W)||_2`` of the stride-1 "same" 2-D convolution: ``||A x||`` for
    the unit ``x`` reached by ``n_iter`` steps of power iteration on ``A^T A`` from a seeded Gaussian
    (:func:`.apply.power_iteration_lower_bound`, rounding accounted for)."""
    kernel = check_kernel(kernel)
    size = check_input_size(input_size)
    op = conv_operator(kernel, size, padding="same", padding_mode=check_mode(padding))
    return power_iteration_lower_bound(op, n_iter, seed)

