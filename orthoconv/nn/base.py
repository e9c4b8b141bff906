"""The skeleton shared by the layers: the saved configuration, and the stride-1 "same" convolutions
(BCOP, RKO, OSSN, SVCM, RK-L2NE, Cayley, SOC): argument checks, kernel building, ``forward``.

Every conv layer has the ``nn.Conv2d``-like signature ``(in_channels, out_channels, kernel_size,
stride=1, padding="same", bias=True, padding_mode=..., *, <layer options>, device=None, dtype=None)``
and the methods ``kernel()``, ``lipschitz_bound(input_size=None)`` and ``config()``.

A layer subclasses :class:`KernelConv2d`, sets ``_name`` (used in error messages) and, if it supports
fewer padding modes, ``_padding_modes``; its ``__init__`` calls ``super().__init__`` first, then
checks its own arguments, creates its parameters and ends with :meth:`KernelConv2d._init_bias` (or
:meth:`KernelConv2d._init_weight` for a single ``weight`` kernel). It defines ``_kernel()``, the
kernel in working precision; :meth:`KernelConv2d.kernel` builds it with autocast off, rounds it to
the parameters' dtype and reuses it inside :func:`orthoconv.nn.cached`. The default ``forward`` is
``conv2d_same(x, kernel(), padding_mode, bias)`` (bias fused).
"""

from __future__ import annotations

from collections.abc import Callable

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
from ._precision import check_finite, full_precision, in_forward
from .cache import cached_build

EXTRA_STATE = "_extra_state"


class Configurable(nn.Module):
    """A layer that saves its :meth:`config` in its ``state_dict`` (``get_extra_state``).

    ``config()`` is a JSON-able dict ``{"type": class name, **constructor keyword arguments that fix
    the kernel's structure}`` (not ``bias``, ``device`` or ``dtype``: those are read off the saved
    tensors), so that :func:`orthoconv.nn.from_config` rebuilds the layer. Loading a ``state_dict``
    saved with another configuration raises ``ValueError``; options in ``_runtime_options`` (how the
    layer is maintained, not what it computes) may differ. A ``state_dict`` without the entry (saved
    before layers carried it) loads as if it matched.
    """

    _runtime_options: tuple[str, ...] = ()

    def __call__(self, *args, **kwargs):
        """``nn.Module.__call__`` marked as a forward: kernel checks inside it defer (:mod:`._precision`)."""
        if torch.compiler.is_compiling():
            return super().__call__(*args, **kwargs)
        with in_forward():
            return super().__call__(*args, **kwargs)

    def config(self) -> dict:
        raise NotImplementedError

    def get_extra_state(self) -> dict:
        return self.config()

    def set_extra_state(self, state: dict) -> None:
        mine = self.config()
        free = set(self._runtime_options)
        if not isinstance(state, dict) or {k: v for k, v in state.items() if k not in free} != {
            k: v for k, v in mine.items() if k not in free
        }:
            raise ValueError(
                f"state_dict was saved from a {mine['type']} with config {state}, this layer has {mine}"
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + EXTRA_STATE, self.config())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class KernelConv2d(Configurable):
    """Base of the ``nn.Conv2d``-like stride-1 same-size layers (not used on its own).

    Validates and stores ``in_channels``, ``out_channels``, ``kernel_size`` (square, stored as ``k``)
    and ``padding_mode``; accepts only ``stride=1`` and ``padding="same"``; checks ``dtype``.
    """

    _name = "KernelConv2d"
    _padding_modes: tuple[str, ...] = ("circular", "zeros")

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype) -> None:
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

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _build(self, name: str, build: Callable[[], Tensor]) -> Tensor:
        """``build()`` with autocast off (reused inside :func:`orthoconv.nn.cached` under ``name``)."""

        def compute() -> Tensor:
            with full_precision(self._device):
                return build()

        return cached_build(self, name, compute)

    def _kernel(self) -> Tensor:
        """The kernel in working precision (float32 for half parameters), differentiable."""
        raise NotImplementedError

    def kernel(self) -> Tensor:
        """The current kernel ``(out_channels, in_channels, kh, kw)`` in the parameters' dtype,
        differentiable; built in full precision even under autocast (float32 for half parameters)."""
        def build() -> Tensor:
            kernel = self._kernel()
            kernel = check_finite(kernel, f"{self._name}: the kernel has nan or inf entries (non-finite parameters, "
                                  "or parameters too large for its construction): it is undefined")
            return kernel.to(self._dtype)

        return self._build("kernel", build)

    def _check_input(self, x: Tensor) -> None:
        """Raise unless ``x`` is a floating ``(N, in_channels, H, W)`` batch the layer accepts."""
        check_image(x, self.in_channels, self._name, self._dtype)

    def _add_bias(self, y: Tensor) -> Tensor:
        return y if self.bias is None else y + self.bias[:, None, None]

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return conv2d_same(x, self.kernel(), self.padding_mode, self.bias)

    def _base_config(self) -> dict:
        return {
            "type": type(self).__name__,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "padding_mode": self.padding_mode,
        }

    def config(self) -> dict:
        """The constructor arguments that fix the kernel's structure (saved in ``state_dict``)."""
        return self._base_config()

    def _repr_fields(self) -> list[str]:
        """The layer-specific ``extra_repr`` fields, between ``kernel_size`` and ``bias``."""
        return [f"padding_mode={self.padding_mode!r}"]

    def extra_repr(self) -> str:
        fields = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}", *self._repr_fields()]
        return ", ".join([*fields, f"bias={self.bias is not None}"])
