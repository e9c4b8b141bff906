"""Measured orthogonality of convolution layers and kernels, and gradient-norm ratios.

An orthogonal convolution has every singular value equal to 1; with ``c_in < c_out`` it is an
isometry (``J^T J = I``) and with ``c_in > c_out`` a co-isometry (``J J^T = I``): in each case the
``min(c_in, c_out) * H * W`` singular values of the operator are 1. Gradient norm preservation,
``||J^T g|| = ||g||`` for all ``g``, holds exactly for orthogonal and co-isometric maps (Li et al.
2019, Sec. 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..math.spectral import conv_singular_values, module_spectrum

NON_FINITE = "non-finite"
UNDECIDED = "undecided"
NOT_ORTHOGONAL = "NOT orthogonal"
_FLOOR = {torch.float64: 1e-10}


def default_tolerance(dtype: torch.dtype, kernel: Tensor | None = None) -> float:
    """The tolerance on ``max |sigma - 1|`` for a kernel stored in ``dtype``.

    ``max(floor, u / (1 - u) * sqrt(T) * ||W||_F)``, ``u = eps / 2`` the unit roundoff of ``dtype``, ``T``
    the number of taps of ``kernel`` and ``||W||_F`` its Frobenius norm (the rounding term is left out
    when no kernel is given). The floor, 1e-10 for float64 and 1e-5 otherwise, covers building the
    kernel from parameters in float32/float64 arithmetic.

    Why: rounding an exactly orthogonal kernel ``W`` to ``dtype`` gives ``W + E`` with
    ``|E| <= u |W|`` entrywise; a convolution's norm is at most the sum of its taps' norms for every
    stride, padding, groups and dilation, so ``||conv(E)|| <= sum_t ||E_t||_F <= u sqrt(T) ||W||_F``
    (Cauchy-Schwarz), and by Weyl's inequality no singular value moves further. Measured, the rounding
    of a 4 x 4 x 3 x 3 orthogonal kernel moves them by 3.3e-4 in float16 (bound 2.9e-3) and 2.4e-3 in
    bfloat16 (bound 2.3e-2).
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    floor = _FLOOR.get(dtype, 1e-5)
    if kernel is None:
        return floor
    u = torch.finfo(dtype).eps / 2
    taps = math.prod(kernel.shape[2:]) if kernel.dim() > 2 else 1
    frobenius = float(torch.linalg.vector_norm(kernel.detach().to(torch.float64)))
    return max(floor, u / (1 - u) * math.sqrt(taps) * frobenius)


def isometry_kind(c_out: int, c_in: int) -> str:
    """``"orthogonal"`` (square), ``"isometry"`` (``c_in < c_out``: ``J^T J = I``) or ``"co-isometry"``."""
    if c_in == c_out:
        return "orthogonal"
    return "isometry" if c_in < c_out else "co-isometry"


def orthogonality_verdict(kind: str, sigma_min: float, sigma_max: float, tol: float, exact: bool = True,
                          sigma_max_lower: float | None = None) -> str:
    """``kind`` when every singular value is certified within ``tol`` of 1, else ``"NOT orthogonal"`` when
    one is certified outside, else ``"undecided"``; ``"non-finite"`` for nan/inf values.

    ``sigma_min``/``sigma_max`` are the exact extreme singular values when ``exact``; otherwise a lower
    end of the smallest and an upper end of the largest, and ``sigma_max_lower`` a lower end of the
    largest (the enclosure ``[sigma_max_lower, sigma_max]``).
    """
    low = sigma_max if sigma_max_lower is None or exact else sigma_max_lower
    if not all(math.isfinite(v) for v in (sigma_min, sigma_max, low)):
        return NON_FINITE
    if 1 - sigma_min <= tol and sigma_max - 1 <= tol:
        return kind
    if low - 1 > tol or 1 - low > tol or (exact and 1 - sigma_min > tol):
        return NOT_ORTHOGONAL
    return UNDECIDED


@dataclass(frozen=True)
class OrthogonalityReport:
    """The measured spectrum of one convolution and whether it is orthogonal within ``tol``.

    ``sigma_min``/``sigma_max`` are exact when ``exact``; otherwise a certified lower end of the
    smallest and upper end of the largest singular value, and ``max_deviation`` bounds
    ``max |sigma - 1|`` from above.
    """

    shape: tuple[int, ...]
    input_size: tuple[int, ...]
    padding: str
    kind: str
    sigma_min: float
    sigma_max: float
    max_deviation: float
    tol: float
    exact: bool = True
    verdict: str = ""
    method: str = "fft"

    @property
    def passed(self) -> bool:
        return self.verdict == self.kind

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _kernel_of(layer_or_kernel) -> Tensor | None:
    if isinstance(layer_or_kernel, Tensor):
        return layer_or_kernel
    weight = getattr(layer_or_kernel, "weight", None)
    if isinstance(layer_or_kernel, (nn.modules.conv._ConvNd,)) and isinstance(weight, Tensor):
        return weight
    if callable(getattr(layer_or_kernel, "kernel", None)):
        try:
            return layer_or_kernel.kernel()
        except ValueError:
            return None
    return None


def check_orthogonal(layer_or_kernel, input_size, tol: float | None = None) -> OrthogonalityReport:
    """Measure ``max |sigma - 1|`` over every singular value of the operator on ``input_size``.

    A kernel tensor ``(c_out, c_in, *taps)`` (1-D or 2-D): the circular, stride-1 convolution, exact by
    the FFT (Sedghi et al. 2019) in float64. A module (``nn.Conv1d/2d/3d``, ``nn.ConvTranspose*``, an
    orthoconv layer): :func:`orthoconv.spectral.module_spectrum`, with the module's own stride, groups,
    dilation, padding amount and mode; exact or a certified enclosure (``exact`` says which).
    ``tol`` defaults to :func:`default_tolerance` of the kernel's dtype and size. Non-finite kernels
    give the verdict ``"non-finite"``.
    """
    kernel = _kernel_of(layer_or_kernel)
    if isinstance(layer_or_kernel, Tensor) and (kernel.dim() not in (3, 4) or not kernel.is_floating_point()):
        raise ValueError(f"the kernel must be a 3-D or 4-D float tensor (c_out, c_in, *taps), got "
                         f"{kernel.dtype} {tuple(kernel.shape)}")
    if not isinstance(layer_or_kernel, (Tensor, nn.Module)):
        raise TypeError("layer_or_kernel must be a kernel tensor, a convolution module, or a module with a kernel() "
                        f"method, got {type(layer_or_kernel).__name__}")
    size = tuple(int(s) for s in input_size)
    if tol is None:
        tol = default_tolerance(kernel.dtype, kernel.detach()) if kernel is not None else default_tolerance(
            next(layer_or_kernel.parameters()).dtype)
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    shape = tuple(kernel.shape) if kernel is not None else ()
    if kernel is not None and not bool(torch.isfinite(kernel.detach()).all()):
        nan = float("nan")
        return OrthogonalityReport(shape, size, "", "", nan, nan, nan, tol, True, NON_FINITE, "")
    if isinstance(layer_or_kernel, Tensor):
        sigma = conv_singular_values(kernel.detach().to(torch.float64), size)
        kind = isometry_kind(kernel.shape[0], kernel.shape[1])
        lo, hi = float(sigma.min()), float(sigma.max())
        return OrthogonalityReport(shape, size, "circular", kind, lo, hi, max(1 - lo, hi - 1), tol, True,
                                   orthogonality_verdict(kind, lo, hi, tol))
    spectrum = module_spectrum(layer_or_kernel, size)
    n_in, n_out = math.prod(spectrum.input_shape), math.prod(spectrum.output_shape)
    kind = isometry_kind(n_out, n_in)
    lo, hi = spectrum.sigma_min, spectrum.sigma_max
    return OrthogonalityReport(
        shape, size, getattr(layer_or_kernel, "padding_mode", "zeros"), kind, lo, hi, max(1 - lo, hi - 1), tol,
        spectrum.exact, orthogonality_verdict(kind, lo, hi, tol, spectrum.exact, spectrum.sigma_max_lower), spectrum.method)


def gradient_norm_ratio(module: nn.Module, x: Tensor, cotangent: Tensor | None = None, seed: int = 0) -> Tensor:
    """Per-example ``||J^T g||_2 / ||g||_2`` for the module's Jacobian ``J`` at ``x`` (batch dim 0).

    ``g`` is ``cotangent`` or, when omitted, a seeded standard Gaussian of the output's shape.
    Equals 1 for every ``g`` exactly when the module is gradient norm preserving at ``x``.
    """
    if not isinstance(x, Tensor) or x.dim() < 1:
        raise ValueError("x must be a batched tensor (N, ...)")
    x = x.detach().requires_grad_(True)
    y = module(x)
    if cotangent is None:
        generator = torch.Generator(device=y.device).manual_seed(seed)
        cotangent = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    elif cotangent.shape != y.shape:
        raise ValueError(f"cotangent must have the output's shape {tuple(y.shape)}, got {tuple(cotangent.shape)}")
    (grad_x,) = torch.autograd.grad(y, x, cotangent)
    return torch.linalg.vector_norm(grad_x.flatten(1), dim=1) / torch.linalg.vector_norm(cotangent.flatten(1), dim=1)
