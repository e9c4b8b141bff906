"""OrthogonalLinear: a fully connected layer whose matrix is orthogonal, an isometry or a co-isometry.

The weight is ``orth(V)`` from an unconstrained parameter ``V`` of shape ``(out, in)`` through
:func:`orthoconv.orthogonal.orthogonal` (exact Householder QR by default; ``"expm"``; or ``"bjorck"``,
the Björck iteration of the BCOP paper's linear layers, iterated to convergence and raising if it
cannot converge). With ``out >= in`` the columns are orthonormal (``W^T W = I``: an isometry, every
singular value 1, norms preserved); with ``out < in`` the rows are (``W W^T = I``: a co-isometry,
gradient norm preserving, Li et al. 2019).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..math.checks import positive_int
from ..math.orthogonal import orthogonal
from ._args import check_dtype, check_dtypes, check_method
from ._precision import check_finite, full_precision, promote
from .base import Configurable
from .cache import cached_build


def orthogonal_matrix(V: Tensor, method: str = "qr") -> Tensor:
    """Orthonormal columns of ``V`` (``(out, in)``, tall or square) or orthonormal rows (wide)."""
    if V.shape[-2] >= V.shape[-1]:
        return orthogonal(V, method)
    return orthogonal(V.transpose(-2, -1), method).transpose(-2, -1)


class OrthogonalLinear(Configurable):
    """``y = W x + b`` with ``W = orth(V)`` (module docstring): exactly norm-1, GNP.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        method: ``"qr"`` (default), ``"expm"`` or ``"bjorck"``.
        device, dtype: of the parameters (half precisions build ``W`` in float32, then round it).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, method: str = "qr",
                 device=None, dtype=None) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.method = check_method(method)
        check_dtype(dtype)
        factory = {"device": device, "dtype": dtype}
        self.param = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.param)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _frame(self) -> Tensor:
        """``orth`` of ``V`` (tall) or of ``V^T`` (wide): orthonormal columns, ``(max, min)`` of the features."""
        tall = self.out_features >= self.in_features
        with full_precision(self.param.device):
            V = promote(self.param)
            frame = orthogonal(V if tall else V.mT, self.method)
        frame = check_finite(frame, "OrthogonalLinear: the weight has nan or inf entries (non-finite parameters): "
                             "undefined")
        return frame.to(self.param.dtype)

    def matrix(self) -> Tensor:
        """The current weight ``(out_features, in_features)``, differentiable (built once inside
        :func:`orthoconv.nn.cached`)."""
        return cached_build(self, "matrix", self._matrix)

    def _matrix(self) -> Tensor:
        frame = cached_build(self, "frame", self._frame)
        return frame if self.out_features >= self.in_features else frame.mT

    def kernel(self) -> Tensor:
        """The weight matrix ``(out_features, in_features)`` (2-D: a linear layer has no convolution kernel)."""
        return self.matrix()

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"OrthogonalLinear: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"OrthogonalLinear: x must end in in_features = {self.in_features}, got shape {tuple(x.shape)}"
            )
        check_dtypes(x, self.param.dtype, "OrthogonalLinear")
        if x.dim() == 2 and self.bias is not None and self.out_features < self.in_features:
            return torch.addmm(self.bias, x, cached_build(self, "frame", self._frame))  # x W^T, W^T the frame
        return nn.functional.linear(x, self.matrix(), self.bias)

    def config(self) -> dict:
        return {"type": "OrthogonalLinear", "in_features": self.in_features, "out_features": self.out_features,
                "method": self.method}

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, method={self.method!r}, "
            f"bias={self.bias is not None}"
        )
