"""What a convolution computes, as data: the linear map of a (transposed) convolution on one input size.

A convolution with stride ``s``, dilation ``d``, paddings ``(b, a)`` (before, after) and a
``(c_out, c_in / groups, k_1, ..., k_D)`` kernel maps ``x`` of spatial size ``N`` to ``y`` of size
``L = floor((N + b + a - d (k - 1) - 1) / s) + 1`` (per dimension, ``torch.nn.ConvNd``'s formula):

    y[o, i] = sum_{c in group(o), t} W[o, c, t] x[c, pad(s i + d t - b)]

where ``pad`` maps a position of the padded signal to the input position it reads: itself inside
``[0, N)``; outside, nothing (``"zeros"``), ``j mod N`` (``"circular"``), the mirror image without
repeating the edge (``"reflect"``) or the nearest edge (``"replicate"``). A transposed convolution
(``torch.nn.ConvTransposeNd``) is the ADJOINT of such a zero-padded convolution, whose input size
``(N_in - 1) s - 2 p + d (k - 1) + output_padding + 1`` is the transposed convolution's output size
and whose ``L`` is its input size ``N_in``; its weight ``(c_in, c_out / groups, *k)`` is the adjoint's
kernel as it stands. The bias is not part of the linear map and is never read.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

PADDING_MODES = ("circular", "zeros", "reflect", "replicate")
LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_conv_kernel(kernel, dims: int | None = None, name: str = "kernel") -> Tensor:
    """Validate a convolution kernel ``(c_out, c_in, k_1, ..., k_D)``, ``D`` in 1..3 (or ``dims``).

    Returns the kernel, promoted to float32 when it is float16 or bfloat16 (LAPACK and the FFT have
    no half-precision kernels; the values are exactly representable in float32). Raises
    ``TypeError`` for a non-tensor or a non-real-floating dtype and ``ValueError`` for a wrong number
    of dimensions, an empty shape or non-finite entries, each naming ``name``.
    """
    if not isinstance(kernel, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(kernel).__name__}")
    expected = (3, 4, 5) if dims is None else (dims + 2,)
    if kernel.dim() not in expected:
        shape = "(c_out, c_in, " + ", ".join(f"k{i + 1}" for i in range(expected[0] - 2)) + ")"
        wanted = "3-D, 4-D or 5-D (c_out, c_in, *kernel_size)" if dims is None else f"{expected[0]}-D {shape}"
        raise ValueError(f"{name} must be {wanted}, got shape {tuple(kernel.shape)}")
    if not kernel.is_floating_point():
        raise TypeError(f"{name} must be a real floating point tensor, got dtype {kernel.dtype}")
    if kernel.numel() == 0:
        raise ValueError(f"{name} has an empty shape {tuple(kernel.shape)}")
    if not bool(torch.isfinite(kernel).all()):
        raise ValueError(f"{name} has non-finite entries (nan or inf)")
    return kernel.float() if kernel.dtype in LOW_PRECISION else kernel


def spatial_size(input_size, dims: int, name: str = "input_size") -> tuple[int, ...]:
    """``input_size`` as a tuple of ``dims`` positive ints (a bare int only when ``dims == 1``)."""
    if dims == 1 and isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size,)
    wanted = {1: "(L,)", 2: "a pair (H, W)", 3: "(D, H, W)"}[dims]
    if not isinstance(input_size, Sequence) or isinstance(input_size, str):
        raise TypeError(f"{name} must be {wanted} of positive integers for a {dims}-D convolution, got {input_size!r}")
    if len(input_size) != dims:
        raise ValueError(f"{name} {tuple(input_size)} has {len(input_size)} sides but the convolution is {dims}-D "
                         f"(kernel of {dims + 2} dimensions): pass {wanted}")
    try:
        size = tuple(operator.index(v) for v in input_size if not isinstance(v, bool))
    except TypeError:
        size = ()
    if len(size) != dims:
        raise TypeError(f"{name} must hold {dims} integers, got {input_size!r}")
    if min(size) < 1:
        raise ValueError(f"{name} must be positive, got {input_size!r}")
    return size


def per_dim(value, dims: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or a sequence of ``dims`` ints, each at least ``minimum``, as a tuple."""
    values = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value,) * dims
    if len(values) != dims or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
        low = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be an int or {dims} ints, each {low}, got {value!r}")
    return values


def padding_pairs(padding, dims: int, kernel_size, dilation) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per dimension from an int, a sequence of ints or of pairs, ``"valid"`` or
    ``"same"`` (``torch.nn.ConvNd``: total ``d (k - 1)``, ``total // 2`` before, the rest after)."""
    if padding == "valid":
        return ((0, 0),) * dims
    if padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel_size, dilation))
    if isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) == dims and all(
        isinstance(p, Sequence) and not isinstance(p, str) for p in padding
    ):
        pairs = tuple(per_dim(tuple(p), 2, "padding", minimum=0) for p in padding)
        return pairs
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    return tuple((p, p) for p in per_dim(padding, dims, "padding", minimum=0))


def check_mode(padding_mode) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    return padding_mode


@dataclass(frozen=True)
class ConvOperator:
    """The linear map of a convolution on one input size (module docstring), bias excluded.

    ``kernel`` is the forward convolution's ``(c_out, c_in / groups, *k)``; ``input_size`` (``N``)
    and ``output_size`` (``L``) are its spatial sizes. ``adjoint``: the map is the adjoint of that
    convolution (a transposed convolution), acting on ``(c_out, *L)`` and producing ``(c_in, *N)``.
    """

    kernel: Tensor
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str
    groups: int
    adjoint: bool = False

    @property
    def dims(self) -> int:
        return len(self.input_size)

    @property
    def c_out(self) -> int:
        return self.kernel.shape[0]

    @property
    def c_in(self) -> int:
        return self.kernel.shape[1] * self.groups

    @property
    def forward_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``((c_in, *N), (c_out, *L))``: the convolution's domain and codomain."""
        return (self.c_in, *self.input_size), (self.c_out, *self.output_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape the map acts on (the module's input, batch dimension excluded)."""
        return self.forward_shapes[1 if self.adjoint else 0]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.forward_shapes[0 if self.adjoint else 1]

    @property
    def circular_exact(self) -> bool:
        """Circular padding whose outputs are every ``s``-th position of the torus exactly once:
        ``s`` divides ``N`` and ``L = N / s`` in every dimension (the polyphase method is then exact)."""
        return self.padding_mode == "circular" and all(
            n % s == 0 and l * s == n for n, l, s in zip(self.input_size, self.output_size, self.stride)
        )

    def source_index(self, dim: int) -> tuple[Tensor, Tensor]:
        """``(src, valid)``, both ``(L_d, k_d)``: output position ``i`` reads input position ``src[i, t]``
        through tap ``t`` when ``valid[i, t]`` (the padding map of the module docstring)."""
        n, l, s, d, (before, _) = (self.input_size[dim], self.output_size[dim], self.stride[dim],
                                   self.dilation[dim], self.padding[dim])
        k = self.kernel.shape[2 + dim]
        j = s * torch.arange(l)[:, None] + d * torch.arange(k)[None, :] - before
        return padded_source(j, n, self.padding_mode)


def padded_source(j: Tensor, n: int, padding_mode: str) -> tuple[Tensor, Tensor]:
    """``(src, valid)``: the input position in ``[0, n)`` that padded position ``j`` (``0`` = the first
    input position) reads, and whether it reads one (``False`` only outside the input under zeros)."""
    valid = torch.ones_like(j, dtype=torch.bool)
    if padding_mode == "zeros":
        return j.clamp(0, n - 1), (j >= 0) & (j < n)
    if padding_mode == "circular":
        return j % n, valid
    if padding_mode == "replicate":
        return j.clamp(0, n - 1), valid
    if n == 1:  # reflect on one pixel: only the pixel itself (a padding is refused by conv_operator)
        return torch.zeros_like(j), valid
    period = 2 * (n - 1)  # reflect: the edge is not repeated
    m = j % period
    return torch.where(m < n, m, period - m), valid


def conv_operator(kernel, input_size, stride=1, padding=0, dilation=1, groups: int = 1, padding_mode: str = "zeros",
                  transposed: bool = False, output_padding=0) -> ConvOperator:
    """The :class:`ConvOperator` of ``torch.nn.ConvNd`` (or ``ConvTransposeNd`` with ``transposed``) with
    these arguments on an input of spatial size ``input_size``; ``kernel`` is the module's weight.

    Raises ``ValueError`` for arguments the module would refuse or that leave no output (naming the
    argument): channels not divisible by ``groups``, a dilated kernel larger than the padded input,
    reflect padding not smaller than the input, a transposed convolution with a padding mode other
    than zeros or an ``output_padding`` not below ``stride`` or ``dilation``.
    """
    kernel = check_conv_kernel(kernel)
    dims = kernel.dim() - 2
    size = spatial_size(input_size, dims)
    k = tuple(kernel.shape[2:])
    stride = per_dim(stride, dims, "stride")
    dilation = per_dim(dilation, dims, "dilation")
    check_mode(padding_mode)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if kernel.shape[0] % groups:
        role = "in_channels (the weight's first dimension)" if transposed else "out_channels"
        raise ValueError(f"{role} = {kernel.shape[0]} is not divisible by groups = {groups}")
    if padding == "same" and any(s != 1 for s in stride):
        raise ValueError("padding='same' needs stride 1 (as in torch.nn.ConvNd)")
    pads = padding_pairs(padding, dims, k, dilation)
    extent = tuple(d * (kk - 1) + 1 for d, kk in zip(dilation, k))
    if not transposed:
        padded = tuple(n + b + a for n, (b, a) in zip(size, pads))
        if any(p < e for p, e in zip(padded, extent)):
            raise ValueError(f"the dilated kernel (extent {extent}) is larger than the padded input {padded}")
        if padding_mode == "reflect" and any(max(b, a) >= n for n, (b, a) in zip(size, pads)):
            raise ValueError(f"reflect padding {pads} must be smaller than the input size {size} in every dimension")
        out = tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride))
        return ConvOperator(kernel, size, out, stride, dilation, pads, padding_mode, groups)
    if padding_mode != "zeros":
        raise ValueError(f"a transposed convolution supports padding_mode 'zeros' only, got {padding_mode!r}")
    if isinstance(padding, str) or any(b != a for b, a in pads):
        raise ValueError(f"a transposed convolution takes a symmetric int or tuple padding, got {padding!r}")
    output_padding = per_dim(output_padding, dims, "output_padding", minimum=0)
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"output_padding {output_padding} must be smaller than stride or dilation in every dimension")
    full = tuple((n - 1) * s - 2 * b + e - 1 + op + 1
                 for n, s, (b, _), e, op in zip(size, stride, pads, extent, output_padding))
    if min(full) < 1:
        raise ValueError(f"the transposed convolution's output size {full} is not positive")
    return ConvOperator(kernel, full, size, stride, dilation, pads, "zeros", groups, adjoint=True)
