"""Measured orthogonality of convolution layers and kernels, and gradient-norm ratios.

An orthogonal convolution has every singular value equal to 1; with ``c_in < c_out`` it is an
isometry (``J^T J = I``) and with ``c_in > c_out`` a co-isometry (``J J^T = I``): in each case the
``min(c_in, c_out) * H * W`` singular values of the operator are 1. Gradient norm preservation,
``||J^T g|| = ||g||`` for all ``g``, holds exactly for orthogonal and co-isometric maps (Li et al.
2019, Sec. 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..math.spectral import DENSE_LIMIT, conv_singular_values, dense_operator


def default_tolerance(dtype: torch.dtype) -> float:
    """1e-10 for float64 kernels, 1e-5 for lower precisions (float32 rounding of k*k*c terms)."""
    return 1e-10 if dtype == torch.float64 else 1e-5


@dataclass(frozen=True)
class OrthogonalityReport:
    """The measured spectrum of one convolution and whether it is orthogonal within ``tol``."""

    shape: tuple[int, ...]
    input_size: tuple[int, int]
    padding: str
    kind: str
    sigma_min: float
    sigma_max: float
    max_deviation: float
    tol: float

    @property
    def passed(self) -> bool:
        return self.max_deviation <= self.tol

    @property
    def verdict(self) -> str:
        return self.kind if self.passed else "NOT orthogonal"

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "verdict": self.verdict}


def isometry_kind(c_out: int, c_in: int) -> str:
    if c_in == c_out:
        return "orthogonal"
    return "isometry" if c_in < c_out else "co-isometry"


def _kernel_and_padding(layer_or_kernel) -> tuple[Tensor, str]:
    if isinstance(layer_or_kernel, Tensor):
        return layer_or_kernel, "circular"
    if isinstance(layer_or_kernel, nn.Conv2d):
        conv = layer_or_kernel
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError("check_orthogonal supports nn.Conv2d with stride 1, dilation 1 and groups 1 only")
        same = conv.padding == "same" or all(
            k % 2 == 1 and p == (k - 1) // 2 for k, p in zip(conv.kernel_size, conv.padding)
        )
        if not same:
            raise ValueError(f"check_orthogonal needs a same-size nn.Conv2d (padding='same'), got padding={conv.padding}")
        return conv.weight, conv.padding_mode
    if isinstance(layer_or_kernel, nn.Module) and callable(getattr(layer_or_kernel, "kernel", None)):
        return layer_or_kernel.kernel(), getattr(layer_or_kernel, "padding_mode", "circular")
    raise TypeError(
        "layer_or_kernel must be a 4-D kernel tensor, an nn.Conv2d, or a module with a kernel() method, "
        f"got {type(layer_or_kernel).__name__}"
    )


def check_orthogonal(layer_or_kernel, input_size, tol: float | None = None) -> OrthogonalityReport:
    """Measure ``max |sigma - 1|`` over every singular value of the operator on ``input_size``.

    Circular padding: the exact FFT spectrum (Sedghi et al. 2019), computed in float64. Zero padding:
    the SVD of the dense operator (small sizes only; zero-padded layers are not orthogonal, and this
    says so with numbers). ``tol`` defaults to :func:`default_tolerance` of the kernel's dtype.
    """
    kernel, padding = _kernel_and_padding(layer_or_kernel)
    if not isinstance(kernel, Tensor) or kernel.dim() != 4:
        raise ValueError(f"the kernel must be 4-D (c_out, c_in, kh, kw), got {getattr(kernel, 'shape', kernel)}")
    tol = default_tolerance(kernel.dtype) if tol is None else float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    k64 = kernel.detach().to(torch.float64)
    size = tuple(int(s) for s in input_size)
    if padding == "circular":
        sigma = conv_singular_values(k64, size)
    else:
        if max(k64.shape[0], k64.shape[1]) * size[0] * size[1] > DENSE_LIMIT:
            raise ValueError(
                f"check_orthogonal with padding {padding!r} needs the dense operator; {tuple(k64.shape)} on {size} "
                f"is above DENSE_LIMIT = {DENSE_LIMIT}: use a smaller input_size"
            )
        sigma = torch.linalg.svdvals(dense_operator(k64, size, padding))
    return OrthogonalityReport(
        shape=tuple(kernel.shape),
        input_size=size,
        padding=padding,
        kind=isometry_kind(kernel.shape[0], kernel.shape[1]),
        sigma_min=float(sigma.min()),
        sigma_max=float(sigma.max()),
        max_deviation=float((sigma - 1).abs().max()),
        tol=tol,
    )


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
