"""Invertible downsampling (space-to-depth) and the strided orthogonal convolution built on it.

``InvertibleDownsampling(f)`` maps ``(N, C, H, W)`` to ``(N, C f^2, H / f, W / f)`` by moving each
``f x f`` block of pixels into channels (the layout of ``torch.nn.functional.pixel_unshuffle``, written as a
reshape so that an empty batch keeps its shape): a permutation of the coordinates, hence orthogonal,
with inverse depth-to-space (``pixel_shuffle``) (Jacobsen et al. 2018, i-RevNet).

``StridedBCOP``: a stride-``s`` orthogonal convolution as in Li et al. 2019 (Sec. 5; docs/references.md): invertible
downsampling by ``s`` followed by a stride-1 BCOP on ``c_in s^2`` channels with kernel
``ceil(k / s)``. A permutation composed with an orthogonal convolution is orthogonal (an isometry if
``c_in s^2 < c_out``, a co-isometry if ``c_in s^2 > c_out``, the usual strided case); its receptive
field on the original image is ``s ceil(k / s) >= k`` pixels.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..math.checks import image_size, pair, positive_int
from ._args import check_dtype, check_image, square_kernel_size
from .base import Configurable
from .bcop import BCOP


class InvertibleDownsampling(nn.Module):
    """Space-to-depth by ``factor``: ``y[n, c f^2 + i f + j, h, w] = x[n, c, f h + i, f w + j]``."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = positive_int(factor, "factor")

    def _check(self, x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = getattr(x, "shape", x)
            raise ValueError(f"InvertibleDownsampling.{name}: x must be a 4-D batch (N, C, H, W), got {shape}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, "forward")
        H, W = x.shape[-2:]
        if H < 1 or W < 1:
            raise ValueError(f"InvertibleDownsampling: the image must have positive height and width, got {H}x{W}")
        if H % self.factor or W % self.factor:
            raise ValueError(f"InvertibleDownsampling: image {H}x{W} is not divisible by factor {self.factor}")
        f = self.factor
        blocks = x.reshape(x.shape[0], x.shape[1], H // f, f, W // f, f).permute(0, 1, 3, 5, 2, 4)
        return blocks.reshape(x.shape[0], x.shape[1] * f * f, H // f, W // f)

    def inverse(self, y: Tensor) -> Tensor:
        """Depth-to-space, the exact inverse (and transpose) of :meth:`forward`."""
        self._check(y, "inverse")
        if y.shape[1] % (self.factor**2):
            raise ValueError(
                f"InvertibleDownsampling.inverse: {y.shape[1]} channels is not a multiple of "
                f"factor^2 = {self.factor**2}"
            )
        f = self.factor
        N, C, h, w = y.shape
        blocks = y.reshape(N, C // (f * f), f, f, h, w).permute(0, 1, 4, 2, 5, 3)
        return blocks.reshape(N, C // (f * f), h * f, w * f)

    def config(self) -> dict:
        return {"type": "InvertibleDownsampling", "factor": self.factor}

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class StridedBCOP(Configurable):
    """An orthogonal convolution with stride ``s``: ``BCOP(c_in s^2, c_out, ceil(k / s))`` after
    ``InvertibleDownsampling(s)``. Output ``(N, c_out, H / s, W / s)``; ``H`` and ``W`` must be
    divisible by ``s``.

    Args:
        in_channels, out_channels, kernel_size, stride: as ``nn.Conv2d`` (square kernel and stride;
            the default stride is 2).
        padding: only ``"same"`` (the output is ``H / s x W / s``).
        bias, padding_mode, projector_ranks, method, device, dtype: passed to :class:`orthoconv.BCOP`
            (circular padding makes it orthogonal on every image size divisible by the stride).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=2, padding="same",
                 bias: bool = True, padding_mode: str = "circular", *, projector_ranks=None, method: str = "qr",
                 device=None, dtype=None) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = square_kernel_size(kernel_size)
        sh, sw = pair(stride, "stride")
        if sh != sw:
            raise ValueError(f"StridedBCOP supports square strides only (s or (s, s)), got stride={stride!r}")
        if padding != "same":
            raise ValueError(f"StridedBCOP keeps H / s x W / s: padding must be 'same', got padding={padding!r}")
        self.stride = sh
        check_dtype(dtype)
        self.padding_mode = padding_mode
        self.downsample = InvertibleDownsampling(self.stride)
        self.conv = BCOP(in_channels * self.stride**2, out_channels, math.ceil(self.kernel_size / self.stride),
                         bias=bias, padding_mode=padding_mode, projector_ranks=projector_ranks, method=method,
                         device=device, dtype=dtype)

    def kernel(self) -> Tensor:
        """The BCOP kernel ``(c_out, c_in s^2, ceil(k / s), ceil(k / s))`` acting on the downsampled image."""
        return self.conv.kernel()

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, self.in_channels, "StridedBCOP", self.conv.h_param.dtype)
        return self.conv(self.downsample(x))

    def lipschitz_bound(self, input_size=None) -> float:
        """A certified bound on the operator norm (the downsampling is a permutation, so it is the inner
        BCOP's): for every image size with ``input_size=None``; on ``(H, W)`` (divisible by the stride) the
        exact norm of the inner convolution on ``(H / s, W / s)`` with circular padding, 1 up to rounding
        (the layer is orthogonal). See :meth:`orthoconv.BCOP.lipschitz_bound`."""
        if input_size is None:
            return self.conv.lipschitz_bound()
        H, W = image_size(input_size)
        if H % self.stride or W % self.stride:
            raise ValueError(f"StridedBCOP.lipschitz_bound: stride {self.stride} does not divide input_size {(H, W)}")
        return self.conv.lipschitz_bound((H // self.stride, W // self.stride))

    def config(self) -> dict:
        inner = self.conv.config()
        return {"type": "StridedBCOP", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding_mode": self.padding_mode,
                "projector_ranks": inner["projector_ranks"], "method": inner["method"]}

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
