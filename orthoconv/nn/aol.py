"""AOL: Almost-Orthogonal Lipschitz layers (Prach & Lampert, "Almost-Orthogonal Layers for Efficient
General-Purpose Lipschitz Networks", ECCV 2022).

A parameter kernel ``P`` ``(c_out, c_in, k, k)`` is rescaled per input channel:

    W = P D,   D_ii = (sum_{j, d} |M[i, j, d]|)^(-1/2),   M = the (2k - 1)^2 taps of conv(P)^T conv(P)

(:func:`orthoconv.nn.residual.gram_taps`: the full self-correlation of the kernel, abs, summed), and ``D_ii = 0``
where the sum is 0 (then column ``i`` of ``P`` is zero, and so is that of ``W`` whatever ``D_ii``).

What is exact: ``conv(W)`` is 1-Lipschitz for every image size, circular or zero padding, because
``D^(-2) - conv(P)^T conv(P)`` is diagonally dominant (:mod:`orthoconv.nn.residual`, the Schur test with
``q = D^(-1)``). It is NOT orthogonal: the bound is generally loose (the layer is "almost" orthogonal where the
columns of ``conv(P)`` are nearly orthogonal, and exactly so when they are). :meth:`AOL.lipschitz_bound` reports
the exact norm (circular) or a certified upper bound (zeros) on a given size.

Differences from the published code: it adds ``epsilon = 1e-6`` to each sum before the inverse square root (a
slightly smaller, still 1-Lipschitz kernel, scale-dependent: column ``i`` shrinks by ``sqrt(r_i / (r_i + 1e-6))``); here the formula is exact, with 0 where the sum is 0 and finite
gradients there. The kernel is divided by its power-of-two scale first (exact, and
``D`` makes ``W`` scale-invariant), so ``P`` of magnitude ``1e-30`` or ``1e30`` neither underflows nor overflows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..math.checks import image_size
from ._precision import promote
from .base import KernelConv2d
from .norms import kernel_bound
from .residual import gram_taps, normalized, schur_bound


def aol_row_sums(P: Tensor) -> Tensor:
    """``r_i = sum_{j, d} |M[i, j, d]|`` of the (power-of-two normalized) kernel, ``(c_in,)``, differentiable."""
    return gram_taps(P).abs().sum(dim=(0, 2, 3)) if P.numel() else P.new_zeros(P.shape[1])


def aol_kernel(P: Tensor) -> Tensor:
    """``W = P D`` (module docstring): the AOL kernel of a parameter ``(c_out, c_in, kh, kw)``, differentiable."""
    if not isinstance(P, Tensor) or P.dim() != 4:
        raise ValueError(f"P must be a 4-D kernel (c_out, c_in, kh, kw), got {getattr(P, 'shape', P)!r}")
    P, _ = normalized(P)
    r = gram_taps(P).abs().sum(dim=(1, 2, 3))
    positive = r > 0
    d = torch.where(positive, torch.rsqrt(torch.where(positive, r, 1)), 0)
    return P * d[None, :, None, None]


class AOL(KernelConv2d):
    """Almost-orthogonal Lipschitz convolution: 1-Lipschitz for every image size and padding, not orthogonal.

    Args:
        in_channels, out_channels, kernel_size, bias: as ``nn.Conv2d`` (square kernels, any ``k >= 1``).
        stride, padding: only ``1`` and ``"same"``.
        padding_mode: ``"circular"`` (default) or ``"zeros"``; the layer is 1-Lipschitz under both.
        device, dtype: of the parameters (half precisions build the kernel in float32, then round it).

    Shapes: ``(N, c_in, H, W) -> (N, c_out, H, W)``; ``kernel()`` is ``(c_out, c_in, k, k)``.
    """

    _name = "AOL"

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
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv2d's default
        super().reset_parameters()

    def _kernel(self) -> Tensor:
        return aol_kernel(promote(self.weight))

    def lipschitz_bound(self, input_size=None) -> float:
        """The norm of ``conv(kernel())`` in float64: exact (FFT) with circular padding and certified upper
        (``conv_spectral_norm``) with zeros on ``input_size``; for ``None`` the Schur test with the layer's
        weights ``q = D^(-1)``, valid for every size and padding (1 up to rounding)."""
        kernel = self.kernel().detach()
        if input_size is not None:
            return kernel_bound(kernel, image_size(input_size), self.padding_mode)
        P, _ = normalized(self.weight.detach().to(torch.float64))
        r = aol_row_sums(P)
        log_q = torch.where(r > 0, 0.5 * torch.log(torch.where(r > 0, r, 1)), 0)
        return schur_bound(kernel, log_q)
