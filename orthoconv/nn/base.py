"""The skeleton shared by the stride-1 "same" convolution layers (BCOP, RKO, OSSN, SVCM, RK-L2NE,
Cayley, SOC): argument checks, the bias, ``forward`` and ``extra_repr``.

A layer subclasses :class:`KernelConv2d`, sets ``_name`` (used in error messages) and, if it supports
fewer padding modes, ``_padding_modes``; its ``__init__`` calls ``super().__init__`` first, then
checks its own arguments, creates its parameters and ends with :meth:`KernelConv2d._init_bias` (or
:meth:`KernelConv2d._init_weight` for a single ``weight`` kernel). It
defines ``kernel()``; the default ``forward`` is ``conv2d_same(x, kernel(), padding_mode, bias)`` (bias fused).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..math.checks import positive_int
from ..math.conv import conv2d_same
from ._args import (
    check_dtype,
    check_image,
    check_mode,
    check_stride_padding,
    square_kernel_size,
)


class KernelConv2d(nn.Module):
    """Base of the ``nn.Conv2d``-like stride-1 same-size layers (not used on its own).

    Validates and stores ``in_channels``, ``out_channels``, ``kernel_size`` (square, stored as ``k``)
    and ``padding_mode``; accepts only ``stride=1`` and ``padding="same"``; checks ``dtype``.
    """

    _name = "KernelConv2d"
    _padding_modes: tuple[str, ...] = ("circular", "zeros")

    def __init__(self, in_channels, out_channels, kernel_size, padding_mode, stride, padding, dtype) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = square_kernel_size(kernel_size)
        check_stride_padding(stride, padding, self.kernel_size, self._name)
        self.padding_mode = check_mode(padding_mode, self._padding_modes, self._name)
        check_dtype(dtype)

    def _init_bias(self, bias: bool, device=None, dtype=None) -> None:
        """Create the ``(out_channels,)`` bias (or ``None``) and call :meth:`reset_parameters`.

        Called at the end of the subclass's ``__init__``, after its own parameters, so that the bias
        stays last in ``parameters()`` (optimizer states saved with these layers keep their order).
        """
        self.bias = nn.Parameter(torch.empty(self.out_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def _init_weight(self, rows: int, cols: int, bias: bool, device=None, dtype=None) -> None:
        """For layers with one parameter kernel: create ``weight`` ``(rows, cols, k, k)``, then the bias
        (:meth:`_init_bias`, which resets the parameters)."""
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(rows, cols, k, k, device=device, dtype=dtype))
        self._init_bias(bias, device, dtype)

    def reset_parameters(self) -> None:
        """Zero bias; subclasses initialize their own parameters, then call this."""
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def kernel(self) -> Tensor:
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        """Raise unless ``x`` is a floating ``(N, in_channels, H, W)`` batch the layer accepts."""
        check_image(x, self.in_channels, self._name)

    def _add_bias(self, y: Tensor) -> Tensor:
        return y if self.bias is None else y + self.bias[:, None, None]

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return conv2d_same(x, self.kernel(), self.padding_mode, self.bias)

    def _repr_fields(self) -> list[str]:
        """The layer-specific ``extra_repr`` fields, between ``kernel_size`` and ``bias``."""
        return [f"padding_mode={self.padding_mode!r}"]

    def extra_repr(self) -> str:
        fields = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}", *self._repr_fields()]
        return ", ".join([*fields, f"bias={self.bias is not None}"])
