"""SLL: SDP-based Lipschitz Layers (Araujo, Havens, Delattre, Allauzen, Hu, "A Unified Algebraic Perspective on
Lipschitz Neural Networks", ICLR 2023).

    z = x - 2 W T^(-1) relu(W^T x + b),   T = diag(t),   t_i = sum_j |(W^T W)_ij| q_j / q_i,   q = exp(q~),

with ``W^T = conv(K)``, ``K`` ``(inner_channels, c, k, k)`` (a same-size convolution, the layer's padding) and
``W`` its exact adjoint (:func:`orthoconv.math.conv.conv2d_same_adjoint`). ``W^T W`` is a convolution on the
``inner_channels`` whose ``(2k - 1)^2`` taps are the self-correlation of ``K`` (:func:`gram_taps` of ``K^T``); the
sum runs over the channels ``j`` and all taps. Shapes ``(N, c, H, W) -> (N, c, H, W)``; ``b``, ``q~``:
``(inner_channels,)``.

What is exact: ``T - W^T W`` is positive semidefinite for every image size, circular or zero padding (diagonal
dominance after the similarity ``diag(q)``, :mod:`orthoconv.nn.residual`), hence the layer is 1-Lipschitz
(Theorem 3 of the paper: the Jacobian ``I - 2 S^T D S``, ``S = T^(-1/2) W^T``, ``||S|| <= 1``). Not orthogonal.

Numerically: ``1 / t_i = exp(-logsumexp_j (log a_ij + q~_j - q~_i))`` (``a_ij`` the summed absolute taps), so
``q~`` of any magnitude neither overflows nor underflows in the ratios; where row ``i`` of ``K`` is zero
(``t_i = 0``) the term is 0 (column ``i`` of ``W`` is zero anyway), with finite gradients. ``K`` is divided by its
power-of-two scale first (exact), so ``1e-30`` and ``1e30`` kernels are safe.

Differences from the published code: it uses ``q = |q~|`` (a zero ``q_i`` divides by zero) and forms ``1 / t`` as
``t ** -1`` before masking the zero rows (an infinite intermediate, whose gradient is not finite there); here
``q = exp(q~)`` as in the paper, the ratios in the log domain, and the zero row never divides.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..math.checks import image_size
from ..math.conv import conv2d_same, conv2d_same_adjoint
from ._precision import check_finite, promote
from .residual import ResidualConv2d, gram_taps, normalized, residual_bound


def sll_inverse_t(K: Tensor, log_q: Tensor) -> Tensor:
    """``1 / t_i`` (0 where ``t_i = 0``) for the kernel ``K`` ``(inner, c, kh, kw)`` and ``q~``, ``(inner,)``,
    differentiable (module docstring)."""
    a = gram_taps(K.transpose(0, 1)).abs().sum(dim=(-2, -1))
    positive = a > 0
    log_a = torch.where(positive, torch.log(torch.where(positive, a, 1)), -torch.inf)
    row = torch.diagonal(positive)  # a_ii = ||K_i||^2 > 0 unless row i of K is zero, and then a_ij = 0 for all j
    z = torch.where(row[:, None], log_a + log_q[None, :] - log_q[:, None], 0)
    return torch.where(row, torch.exp(-torch.logsumexp(z, dim=1)), 0)


class SLL(ResidualConv2d):
    """SDP-based Lipschitz layer ``x - 2 W T^(-1) relu(W^T x + b)``: 1-Lipschitz for every size and padding.

    Args:
        in_channels, out_channels: the width ``c`` (must be equal: a residual map).
        kernel_size: of ``K`` (square, any ``k >= 1``).
        stride, padding: only ``1`` and ``"same"``.
        bias: the hidden bias ``b`` ``(inner_channels,)``.
        padding_mode: ``"circular"`` (default) or ``"zeros"``, of ``W^T`` and ``W`` alike.
        inner_channels: the width of ``W^T x`` (default ``c``).
        device, dtype: of the parameters (half precisions compute ``T`` in float32).

    Parameters: ``weight`` (``K``), ``log_q`` (``q~``, initialized to 0), ``bias``. ``kernel()`` is ``K`` (the
    layer is not a convolution).
    """

    _name = "SLL"

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
        inner_channels: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, inner_channels, dtype)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(self.inner_channels, self.in_channels, k, k, device=device, dtype=dtype))
        self.log_q = nn.Parameter(torch.empty(self.inner_channels, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(self.inner_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.log_q)
        super().reset_parameters()

    def _kernel(self) -> Tensor:
        return promote(self.weight).clone()  # a built value, like the other layers' kernels (cached() keeps it)

    def _scaled(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(K / s, s, 1 / t)`` in working precision (``s`` the power-of-two scale, ``t`` of ``K / s``)."""
        K, scale = normalized(promote(self.weight))
        return K, scale, sll_inverse_t(K, promote(self.log_q))

    def _adjoint_kernel(self) -> Tensor:
        """``2 T^(-1) K``, rows scaled, in the parameters' dtype: ``W`` applied to it is ``2 W T^(-1)``."""

        def build() -> Tensor:
            K, scale, inverse_t = self._scaled()
            adjoint = K * (2 * inverse_t / scale)[:, None, None, None]
            adjoint = check_finite(adjoint, "SLL: T^(-1) W is not finite (non-finite parameters)")
            return adjoint.to(self._dtype)

        return self._build("adjoint", build)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        hidden = torch.relu(conv2d_same(x, self.kernel(), self.padding_mode, self.bias))
        return x - conv2d_same_adjoint(hidden, self._adjoint_kernel(), self.padding_mode)

    def lipschitz_bound(self, input_size=None) -> float:
        """``max(1, 2 ||S||^2 - 1)``, ``S = T^(-1/2) W^T`` with the layer's own ``T``, in float64: exact norm
        (circular) or certified upper (zeros) on ``input_size``; for ``None`` the Schur test with weights
        ``q_i sqrt(t_i)``, valid for every size and padding. 1 up to rounding."""
        with torch.no_grad():
            K, _, inverse_t = self._scaled()
            K, inverse_t = K.to(torch.float64), inverse_t.to(torch.float64)
            effective = K * inverse_t.sqrt()[:, None, None, None]
            positive = inverse_t > 0
            log_q = self.log_q.detach().to(torch.float64) - 0.5 * torch.log(torch.where(positive, inverse_t, 1))
        if input_size is None:  # weights on the hidden channels: the Schur test of S^T (same abs tap sums, flipped)
            return residual_bound(effective.transpose(0, 1), None, self.padding_mode, log_q)
        return residual_bound(effective, image_size(input_size), self.padding_mode)
