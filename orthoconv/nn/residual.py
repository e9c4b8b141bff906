"""What the 1-Lipschitz layers since 2021 share: the Gram taps of a kernel, the Schur test, and the base of the
residual layers (CPL, SLL, Sandwich).

Gram taps. For a kernel ``K`` ``(c_out, c_in, k, k)`` the operator ``conv(K)^T conv(K)`` on the plane is the
convolution with the ``(c_in, c_in, 2k - 1, 2k - 1)`` self-correlation ``M[i, j, d] = sum_{o, p} K[o, i, p + d]
K[o, j, p]`` (:func:`gram_taps`). With zero padding on an ``H x W`` image the Gram operator is a compression
``P T^T P_out T P <= P T^T T P`` of it, with circular padding its taps fold modulo the image size; either way,
for positive weights ``q``, row ``i`` of the Gram matrix has ``sum_j |G_ij| q_j / q_i <= sum_{j, d} |M[i, j, d]|
q_j / q_i`` (the triangle inequality for the folded taps). The Schur test then gives, for every image size and
both paddings,

    ||conv(K)||_2^2 <= max_i sum_{j, d} |M[i, j, d]| q_j / q_i          (:func:`schur_bound`),

and ``diag(t) - conv(K)^T conv(K)`` is positive semidefinite for ``t_i`` the right-hand side of row ``i``
(diagonal dominance after the similarity ``diag(q)``): the fact AOL (Prach & Lampert 2022) and SLL (Araujo et al.
2023) are built on.

Residual layers. ``z = x - 2 A^T S sigma(A x + b)``-like maps with ``in_channels == out_channels``: their
``lipschitz_bound(input_size)`` comes from their own numbers (float64), :func:`residual_bound`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..math.checks import check_kernel, image_size, positive_int
from ..math.orthogonal import binary_scale
from .base import KernelConv2d
from .norms import kernel_bound


def normalized(kernel: Tensor) -> tuple[Tensor, Tensor]:
    """``(kernel / s, s)`` with ``s`` the kernel's power-of-two scale (:func:`binary_scale`, no gradient): an exact
    division that keeps products of the kernel with itself finite at any magnitude."""
    s = binary_scale(kernel.reshape(1, -1)).reshape(())
    return kernel / s, s


def gram_taps(kernel: Tensor) -> Tensor:
    """The ``(c_in, c_in, 2kh - 1, 2kw - 1)`` taps of ``conv(K)^T conv(K)`` (module docstring), differentiable."""
    kh, kw = kernel.shape[-2:]
    Kt = kernel.transpose(0, 1)
    return F.conv2d(Kt, Kt, padding=(kh - 1, kw - 1))


def safe_reciprocal(t: Tensor) -> Tensor:
    """``1 / t`` where ``t > 0``, ``0`` where ``t == 0``, with finite gradients at both."""
    positive = t > 0
    return torch.where(positive, 1 / torch.where(positive, t, 1), 0)


def schur_bound(kernel: Tensor, log_q: Tensor | None = None) -> float:
    """``sqrt(max_i sum_{j, d} |M[i, j, d]| q_j / q_i)``, ``q = exp(log_q)`` (default 1), in float64: a certified
    bound on ``||conv(kernel)||_2`` for every image size, circular or zero padding (module docstring)."""
    check_kernel(kernel)
    K = kernel.detach().to(torch.float64)
    G = gram_taps(K).abs().sum(dim=(-2, -1))
    if log_q is not None:
        lq = log_q.detach().to(torch.float64)
        G = G * torch.exp(lq[None, :] - lq[:, None])
    return math.sqrt(float(G.sum(dim=1).max())) if G.numel() else 0.0


def residual_bound(effective: Tensor, input_size, padding_mode: str, log_q: Tensor | None = None) -> float:
    """``max(1, 2 s^2 - 1)`` with ``s`` the certified norm of ``conv(effective)`` on ``input_size`` (float64).

    A layer ``z = x - 2 A^T D A x``-like, whose Jacobian is ``J = I - 2 S^T D S`` with ``D = diag(sigma')`` in
    ``[0, 1]`` and ``S = conv(effective)``: ``2 S^T D S`` is symmetric with eigenvalues in ``[0, 2 ||S||^2]``, so
    ``||J||_2 <= max(1, 2 ||S||^2 - 1)`` (Meunier et al. 2022, Araujo et al. 2023). ``input_size=None``: the
    Schur test with weights ``exp(log_q)``, valid for every size.
    """
    if input_size is None:
        s = schur_bound(effective, log_q)
    else:
        s = kernel_bound(effective, image_size(input_size), padding_mode)
    return max(1.0, 2 * s * s - 1)


class ResidualConv2d(KernelConv2d):
    """Base of the 1-Lipschitz residual layers ``(N, c, H, W) -> (N, c, H, W)`` (not used on its own).

    ``in_channels == out_channels`` (a residual map keeps the width); ``inner_channels`` (default: the width)
    is the width of the hidden convolution. The bias lives in the hidden space, ``(inner_channels,)``.
    :func:`orthoconv.verify.operators.module_bound` bounds these layers by their ``lipschitz_bound``.
    """

    nonlinear = True

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, padding_mode, inner_channels,
                 dtype) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        if self.in_channels != self.out_channels:
            raise ValueError(f"{self._name} is a residual map x -> x - ...: in_channels must equal out_channels, got "
                             f"{in_channels} and {out_channels}")
        self.inner_channels = self.in_channels if inner_channels is None else positive_int(inner_channels,
                                                                                          "inner_channels")

    def _init_inner(self, bias: bool, device=None, dtype=None) -> None:
        """``weight`` ``(inner_channels, c, k, k)`` (``x -> conv(x, weight)`` maps into the hidden space), then the
        hidden bias ``(inner_channels,)``, then :meth:`reset_parameters`."""
        k = self.kernel_size
        self.weight = torch.nn.Parameter(torch.empty(self.inner_channels, self.in_channels, k, k, device=device,
                                                     dtype=dtype))
        self.bias = torch.nn.Parameter(torch.empty(self.inner_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv2d's default
        super().reset_parameters()

    def config(self) -> dict:
        return {**self._base_config(), "inner_channels": self.inner_channels}

    def _repr_fields(self) -> list[str]:
        return [f"padding_mode={self.padding_mode!r}", f"inner_channels={self.inner_channels}"]
