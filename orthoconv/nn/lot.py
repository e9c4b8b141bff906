"""LOT, the layer-wise orthogonal convolution (Xu, Li, Li, "LOT: Layer-wise Orthogonal Training on
Improving l2 Certified Robustness", NeurIPS 2022), built exactly.

From an unconstrained kernel ``V`` (``c x c x k x k``, ``c = max(c_in, c_out)``) and its transfer matrices
``Vhat(w)`` at the ``H x (W // 2 + 1)`` frequencies of the input's own size, the layer's transfer matrix is
the unitary polar factor

    Q(w) = (Vhat(w) Vhat(w)^H)^(-1/2) Vhat(w) = U W^H,      Vhat(w) = U S W^H (SVD),

and ``y = irfft2(Q(w)[:c_out, :c_in] rfft2(x))``: orthogonal with circular padding on every image size
(odd and even; the FFT size follows the input), an isometry for ``c_in < c_out`` and a co-isometry for
``c_in > c_out``. Differences from the published code: there ``Q`` is 10 Newton-Schulz steps on a
regularized ``Vhat Vhat^H`` of a zero-padded FFT, so its singular values are near 1, not 1; here ``Q`` comes
from one SVD per frequency (batched) and is unitary to rounding for ANY parameter values. Where ``Vhat(w)``
is singular ``U W^H`` is one of its polar factors (still unitary) and the gradient is the damped formula of
:func:`orthoconv.math.polar.polar_factor` (finite at ``V = 0``, rank-deficient and huge ``V``).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..math.polar import polar_factor
from .fourier import FourierConv2d


class LOT(FourierConv2d):
    """Layer-wise orthogonal convolution (Xu et al. 2022): per frequency the polar factor of ``Vhat(w)``.

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d``; ``kernel_size`` is the support of the
            parameter ``V`` (square, any k >= 1; taps beyond the image wrap around). The operator on an
            ``H x W`` image is a circular convolution with ``H x W`` taps (:meth:`kernel`).
        stride, padding: only ``1`` and ``"same"``.
        bias: add a learnable bias.
        padding_mode: only ``"circular"`` (the construction is per frequency of the circular convolution).
        device, dtype: of the parameters. The transfer matrices are built with autocast off (complex64 for
            float32 and half parameters, complex128 for float64); the output has the input's dtype.
    """

    _name = "LOT"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding="same", bias: bool = True,
                 padding_mode: str = "circular", *, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        c = max(in_channels, out_channels)
        self._init_weight(c, c, bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        super().reset_parameters()

    def _parameter_kernel(self) -> Tensor:
        return self.weight

    def _matrix_map(self, A: Tensor) -> Tensor:
        return polar_factor(A)
