"""RK-L2NE: the L2-nonexpansive scaling of Qian & Wegman (ICLR 2019) on the reshaped kernel.

With ``M = M(V)`` the ``(c_out, c_in k^2)`` reshaping of the kernel (as in :mod:`orthoconv.rko`):

    W = V / (k sqrt(min(||M M^T||_inf, ||M^T M||_inf))),

``||.||_inf`` the INDUCED infinity norm (largest absolute row sum). Why it certifies ``||conv(W)|| <= 1``:

1. ``||M||_2^2 = rho(M M^T) <= ||M M^T||_inf`` (every induced norm bounds the spectral radius), and
   the same for ``M^T M``, so ``||M||_2 <= sqrt(min(...))``;
2. the patch argument (:func:`orthoconv.math.bounds.reshaped_kernel_bound`): ``||conv(V)|| <= k ||M(V)||_2``
   for every image size, circular or zero padding.

Checked against the dense operator in the tests: the formula as written certifies. It stops
certifying if ``||.||_inf`` is read as the largest ABSOLUTE ENTRY (``max |a_ij|``, what
``torch.norm(x, float('inf'))`` returns for a matrix): that is not an operator norm and underestimates
``||M||_2`` (e.g. an all-ones ``c x c`` Gram has max entry 1 but norm ``c``). It also needs the full
factor ``k``: the patch bound is tight for kernels with equal taps (operator norm at frequency 0 is
``||sum_p V_p|| = k^2 ||V_0||`` while ``||M|| = k ||V_0||``), so ``sqrt(k)`` or no factor fails.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..math.bounds import reshaped_kernel_bound
from ..math.checks import check_kernel, image_size
from ..math.orthogonal import binary_scale
from ._precision import promote
from .base import KernelConv2d


def l2ne_scale(V: Tensor) -> Tensor:
    """``sqrt(kh kw) sqrt(min(||M M^T||_inf, ||M^T M||_inf))``, a certified bound on ``||conv(V)||_2``
    for every image size (module docstring); differentiable, a 0-dim tensor. Computed on ``V / 2^e``
    (:func:`orthoconv.math.orthogonal.binary_scale`, exact) and scaled back, so that neither tiny nor
    huge kernels underflow or overflow in the Gram products."""
    check_kernel(V)
    return _l2ne_scale(V)


def _l2ne_scale(V: Tensor) -> Tensor:
    kh, kw = V.shape[-2:]
    scale = binary_scale(V.reshape(1, -1)).reshape(())
    M = V.reshape(V.shape[0], -1) / scale
    left = torch.linalg.matrix_norm(M @ M.transpose(0, 1), ord=math.inf)
    right = torch.linalg.matrix_norm(M.transpose(0, 1) @ M, ord=math.inf)
    return math.sqrt(kh * kw) * torch.minimum(left, right).sqrt() * scale


def rkl2ne_kernel(V: Tensor) -> Tensor:
    """``V / l2ne_scale(V)``, and the zero kernel for ``V = 0`` (where any scaling of ``V`` is 1-Lipschitz;
    the gradient returned there is that of ``W = V``, finite, while nearby it grows like ``1 / ||V||``)."""
    check_kernel(V)
    return _rkl2ne_kernel(V)


def _rkl2ne_kernel(V: Tensor) -> Tensor:
    """:func:`rkl2ne_kernel` without the argument check (no host synchronization: compiles whole)."""
    zero = (V == 0).all()
    scale = _l2ne_scale(torch.where(zero, torch.ones_like(V), V))
    return V / torch.where(zero, torch.ones_like(scale), scale)


class RKL2NE(KernelConv2d):
    """A 1-Lipschitz stride-1 convolution by the L2NE scaling (Qian & Wegman 2019) of its kernel.

    Args:
        in_channels, out_channels, kernel_size, bias: as ``nn.Conv2d`` (square kernels).
        stride, padding: only ``1`` and ``"same"``.
        padding_mode: ``"circular"`` (default) or ``"zeros"``; the bound holds for both and every size.
        device, dtype: of the parameters (half precisions build the kernel in float32).
    """

    _name = "RKL2NE"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding="same",
        bias: bool = True,
        padding_mode: str = "circular",
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        self._init_weight(out_channels, in_channels, bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        super().reset_parameters()

    def _kernel(self) -> Tensor:
        return _rkl2ne_kernel(promote(self.weight))

    def lipschitz_bound(self, input_size=None) -> float:
        """``k ||M(W)||_2`` of the scaled kernel (float64): certified for every image size and both
        paddings (so the same for every ``input_size``), and ``<= 1`` by construction (it is at most the
        L2NE quantity, which is 1). The layer is not orthogonal: the bound is not its norm."""
        if input_size is not None:
            image_size(input_size)
        return reshaped_kernel_bound(self.kernel().detach())
