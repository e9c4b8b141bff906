"""RKO: Reshaped Kernel Orthogonalization (Cisse et al. 2017 style; a baseline in Li et al. 2019).

The kernel ``V`` of shape ``(c_out, c_in, k, k)`` is reshaped into the matrix ``M(V)`` of shape
``(c_out, c_in k^2)`` (row ``o`` holds every weight of output channel ``o``), orthonormalized and
scaled:

    W = reshape(orth(M(V))) / k.

Why this is 1-Lipschitz (the "patch" bound): output pixel ``i`` is ``M(W) x_i`` with ``x_i`` the
``c_in k^2`` patch read at ``i``, and every input pixel lies in at most ``k^2`` patches (exactly
``k^2`` with circular padding), so ``||conv(W) x||^2 = sum_i ||M(W) x_i||^2 <= ||M(W)||_2^2 k^2 ||x||^2``:

    ||conv(W)||_2 <= k ||M(W)||_2 = ||M(orth)||_2 = 1,

for every image size, with circular or zero padding (:func:`orthoconv.math.bounds.reshaped_kernel_bound`).
The layer is NOT orthogonal and not gradient norm preserving: the bound is generally loose (Li et al.
2019 measure singular values well below 1, which is what BCOP fixes).

``orth`` is :func:`orthoconv.orthogonal.orthogonal`: when ``c_out <= c_in k^2`` (the usual case) the
ROWS of ``M`` are made orthonormal (QR of ``M^T``); when ``c_out > c_in k^2`` the matrix is tall and its
COLUMNS are made orthonormal instead. Either way ``||M(orth)||_2 = 1`` and the bound holds. In the
second case every patch keeps its norm and, with circular padding, each pixel lies in exactly ``k^2``
patches, so the layer is an exact isometry (``||conv(W) x|| = ||x||``; tested).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..math.bounds import reshaped_kernel_bound
from ..math.checks import image_size
from ..math.orthogonal import orthogonal
from ._args import check_method
from ._precision import promote
from .base import KernelConv2d


def reshaped_orthogonal(V: Tensor, method: str = "qr") -> Tensor:
    """``reshape(orth(M(V)))``: orthonormal rows of the ``(c_out, c_in kh kw)`` reshaping when it is
    wide or square, orthonormal columns when it is tall; shape of ``V``, differentiable."""
    if not isinstance(V, Tensor) or V.dim() != 4:
        raise ValueError(f"V must be a 4-D kernel (c_out, c_in, kh, kw), got {getattr(V, 'shape', V)!r}")
    M = V.reshape(V.shape[0], -1)
    if M.shape[0] <= M.shape[1]:
        Q = orthogonal(M.transpose(0, 1), method).transpose(0, 1)
    else:
        Q = orthogonal(M, method)
    return Q.reshape(V.shape)


def rko_kernel(V: Tensor, method: str = "qr") -> Tensor:
    """The RKO kernel ``reshape(orth(M(V))) / sqrt(kh kw)`` (``/ k`` for a square kernel)."""
    kh, kw = V.shape[-2:]
    return reshaped_orthogonal(V, method) / math.sqrt(kh * kw)


class RKO(KernelConv2d):
    """Reshaped Kernel Orthogonalization: a 1-Lipschitz (not orthogonal) stride-1 convolution.

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d`` (square kernels, any k >= 1).
        stride, padding: only ``1`` and ``"same"`` are supported (anything else raises).
        bias: add a learnable bias (it does not change the Lipschitz constant).
        padding_mode: ``"circular"`` or ``"zeros"``; the bound holds for both.
        method: orthonormalization, ``"qr"`` (exact, default), ``"expm"`` or ``"bjorck"`` (Björck
            iterated to tolerance; raises when it does not converge).
        device, dtype: of the parameters (half precisions build the kernel in float32).
    """

    _name = "RKO"

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
        method: str = "qr",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        self.method = check_method(method)
        self._init_weight(out_channels, in_channels, bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        super().reset_parameters()

    def _kernel(self) -> Tensor:
        return rko_kernel(promote(self.weight), self.method)

    def lipschitz_bound(self, input_size=None) -> float:
        """``k ||M(W)||_2`` of the current kernel (float64 SVD): certified for every image size and both
        paddings, so the same for every ``input_size``; equals 1 up to rounding (and up to Björck's
        tolerance with ``method="bjorck"``). The layer is not orthogonal: the bound is not its norm."""
        if input_size is not None:
            image_size(input_size)
        return reshaped_kernel_bound(self.kernel().detach())

    def config(self) -> dict:
        return {**self._base_config(), "method": self.method}

    def _repr_fields(self) -> list[str]:
        return [f"padding_mode={self.padding_mode!r}", f"method={self.method!r}"]
