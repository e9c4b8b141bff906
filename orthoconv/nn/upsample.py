"""Orthogonal upsampling: a transposed convolution with stride ``s`` that is an exact isometry.

``BCOPTranspose(c_in, c_out, k, s)`` is an orthogonal stride-1 BCOP into ``c_out s^2`` channels with kernel
``ceil(k / s)``, followed by ``pixel_shuffle(s)`` (depth-to-space, the inverse of
:class:`orthoconv.nn.InvertibleDownsampling`: a permutation of the coordinates). The composition is the
sub-pixel form of a stride-``s`` transposed convolution (each output phase is a convolution of the input),
``(N, c_in, H, W) -> (N, c_out, s H, s W)``. With circular padding BCOP is orthogonal on every image size,
so the layer is an ISOMETRY (``||y|| = ||x||``, every singular value 1) whenever ``c_out s^2 >= c_in``. When
``c_out s^2 < c_in`` no linear map into the smaller output space can keep norms; the layer is then a
co-isometry (every singular value 1, but it discards a ``c_in - c_out s^2`` dimensional part of each
pixel's input), says so in :attr:`BCOPTranspose.kind`, and ``isometric=True`` makes that case raise. (The
transposed AOC of orthogonium is not orthogonal when ``c_out s^2 < c_in`` with ``k > s``, its PRs #1/#2;
this construction is an isometry or a co-isometry at every ``k``.)
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..math.checks import image_size, pair, positive_int
from ._args import check_dtype, check_image, square_kernel_size
from .base import Configurable
from .bcop import BCOP


class BCOPTranspose(Configurable):
    """An orthogonal transposed convolution with stride ``s``: ``pixel_shuffle(BCOP(c_in, c_out s^2,
    ceil(k / s))(x), s)``; output ``(N, c_out, s H, s W)``.

    Args:
        in_channels, out_channels, kernel_size, stride: as ``nn.ConvTranspose2d`` (square; default stride 2).
        padding: only ``"same"`` (the output is exactly ``s H x s W``).
        bias: a learnable bias per OUTPUT channel of the inner BCOP (``c_out s^2`` entries: one per output
            channel and phase).
        padding_mode, projector_ranks, method, device, dtype: passed to :class:`orthoconv.BCOP` (circular
            padding: orthogonal on every image size; ``"zeros"``: 1-Lipschitz only).
        isometric: raise ``ValueError`` unless ``c_out s^2 >= c_in`` (the layer then keeps every norm).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=2, padding="same",
                 bias: bool = True, padding_mode: str = "circular", *, projector_ranks=None, method: str = "qr",
                 isometric: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = square_kernel_size(kernel_size)
        sh, sw = pair(stride, "stride")
        if sh != sw:
            raise ValueError(f"BCOPTranspose supports square strides only (s or (s, s)), got stride={stride!r}")
        if padding != "same":
            raise ValueError(f"BCOPTranspose gives s H x s W: padding must be 'same', got padding={padding!r}")
        self.stride = sh
        inner = out_channels * self.stride**2
        if isometric and inner < in_channels:
            raise ValueError(f"BCOPTranspose cannot be an isometry: out_channels * stride^2 = {inner} < in_channels = "
                             f"{in_channels} (a map into fewer dimensions cannot keep norms); it would be a co-isometry")
        self.isometric = bool(isometric)
        check_dtype(dtype)
        self.padding_mode = padding_mode
        self.conv = BCOP(in_channels, inner, math.ceil(self.kernel_size / self.stride), bias=bias,
                         padding_mode=padding_mode, projector_ranks=projector_ranks, method=method, device=device,
                         dtype=dtype)
        self.upsample = nn.PixelShuffle(self.stride)

    @property
    def kind(self) -> str:
        """``"isometry"`` (``c_out s^2 >= c_in``: ``||y|| = ||x||``) or ``"co-isometry"`` (with circular padding)."""
        return "isometry" if self.out_channels * self.stride**2 >= self.in_channels else "co-isometry"

    def kernel(self) -> Tensor:
        """The BCOP kernel ``(c_out s^2, c_in, ceil(k / s), ceil(k / s))`` before the pixel shuffle."""
        return self.conv.kernel()

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, self.in_channels, "BCOPTranspose", self.conv.h_param.dtype)
        return self.upsample(self.conv(x))

    def lipschitz_bound(self, input_size=None) -> float:
        """The inner BCOP's certified bound (the shuffle is a permutation): every image size with ``None``; the
        exact norm on the INPUT size ``(H, W)`` with circular padding, 1 up to rounding. See
        :meth:`orthoconv.BCOP.lipschitz_bound`."""
        return self.conv.lipschitz_bound(None if input_size is None else image_size(input_size))

    def config(self) -> dict:
        inner = self.conv.config()
        return {"type": "BCOPTranspose", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding_mode": self.padding_mode,
                "projector_ranks": inner["projector_ranks"], "method": inner["method"], "isometric": self.isometric}

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"{self.kind}")
