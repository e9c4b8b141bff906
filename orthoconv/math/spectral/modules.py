"""Spectra of convolution MODULES, read entirely from the module: the public entry for verification.

``torch.nn.Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` (stride, dilation, groups, padding amount
including ``"same"``/``"valid"``, padding mode, ``output_padding``), orthoconv's layers through their
``kernel()`` and ``padding_mode`` (stride 1, "same"), and ``StridedBCOP`` through its parts (an
invertible downsampling, a permutation, then a stride-1 layer on the downsampled image: the same
singular values), ``BCOPTranspose`` likewise (a stride-1 layer, then a pixel shuffle). Layers whose operator
depends on the image size (``kernel_depends_on_size``: LOT, BRO) give ``kernel(input_size)``. Layers without a single kernel (``SOC`` with zero padding) are measured from their
own forward on small sizes. ``input_size`` is always the spatial size of the module's INPUT.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .apply import power_iteration_lower_bound
from .circular import conv_singular_values
from .dense import DENSE_LIMIT, operator_matrix
from .geometry import ConvOperator, conv_operator, spatial_size
from .norm import _check_rtol, upper_bound


@dataclass(frozen=True)
class ConvSpectrum:
    """The extreme singular values of a module's linear map on one input size.

    ``exact``: ``sigma_min`` and ``sigma_max`` are the extreme singular values (float64 rounding).
    Otherwise ``sigma_max`` is a certified UPPER bound on the operator norm, ``sigma_max_lower`` a
    certified lower bound on it (a witness ``||A x||``), and ``sigma_min`` a certified lower bound on
    the smallest singular value (0.0: none is known). ``method`` and ``assumptions`` say how and under
    what; shapes exclude the batch dimension.
    """

    sigma_min: float
    sigma_max: float
    sigma_max_lower: float
    exact: bool
    method: str
    assumptions: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def as_dict(self) -> dict:
        data = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}


def _is_orthoconv_layer(module) -> bool:
    """A linear orthoconv layer (the nonlinear ones, CPL, SLL, Sandwich, hold a kernel but are no convolution)."""
    return (callable(getattr(module, "kernel", None)) and isinstance(getattr(module, "padding_mode", None), str)
            and not getattr(module, "nonlinear", False))


def module_operator(module: nn.Module, input_size) -> tuple[ConvOperator, tuple[int, ...]]:
    """``(operator, input_shape)`` of a convolution module on inputs of spatial size ``input_size``.

    ``input_shape`` is the module's ``(C_in, *input_size)``; it differs from ``operator.input_shape``
    only for ``StridedBCOP`` (whose operator acts on the downsampled image). Raises ``TypeError`` for a
    module that is not a convolution and ``ValueError`` where the module itself could not run.
    """
    if isinstance(module, nn.modules.conv._ConvNd):
        weight = module.weight.detach()
        dims = weight.dim() - 2
        size = spatial_size(input_size, dims)
        if module.transposed:
            op = conv_operator(weight, size, module.stride, module.padding, module.dilation, module.groups,
                               module.padding_mode, transposed=True, output_padding=module.output_padding)
            return op, op.input_shape
        if module.padding_mode == "circular":
            pads = module._reversed_padding_repeated_twice
            if any(max(pads[2 * i], pads[2 * i + 1]) > n for i, n in enumerate(reversed(size))):
                raise ValueError(f"{type(module).__name__} with circular padding {module.padding} cannot run on "
                                 f"{size}: torch refuses a padding that wraps around more than once")
        op = conv_operator(weight, size, module.stride, module.padding, module.dilation, module.groups,
                           module.padding_mode)
        return op, op.input_shape
    inner = getattr(module, "conv", None)
    factor = getattr(getattr(module, "downsample", None), "factor", None)
    if isinstance(factor, int) and isinstance(inner, nn.Module):
        size = spatial_size(input_size, 2)
        if any(n % factor for n in size):
            raise ValueError(f"{type(module).__name__}: image {size} is not divisible by the stride {factor}")
        op, _ = module_operator(inner, tuple(n // factor for n in size))
        return op, (op.input_shape[0] // factor**2, *size)
    if isinstance(getattr(module, "upsample", None), nn.PixelShuffle) and isinstance(inner, nn.Module):
        op, _ = module_operator(inner, spatial_size(input_size, 2))
        return op, op.input_shape
    if _is_orthoconv_layer(module):
        size = spatial_size(input_size, 2)
        own = getattr(module, "input_size", None)
        if own is not None and tuple(own) != size:
            raise ValueError(f"{type(module).__name__} is defined on {tuple(own)} images only, got {size}")
        kernel = module.kernel(size) if getattr(module, "kernel_depends_on_size", False) else module.kernel()
        op = conv_operator(kernel.detach(), size, padding="same", padding_mode=module.padding_mode)
        return op, op.input_shape
    raise TypeError(f"module_spectrum reads convolution modules (torch.nn.ConvNd, ConvTransposeNd, orthoconv layers "
                    f"with kernel()), got {type(module).__name__}")


def _forward_matrix(module: nn.Module, input_shape: tuple[int, ...]) -> Tensor:
    """The matrix of ``x -> module(x) - module(0)`` (float64 copy of the module), from its forward on
    the basis vectors: exact for an affine module."""
    double = copy.deepcopy(module).to(torch.float64).eval()
    state = {name: t.clone() for name, t in double.state_dict().items() if isinstance(t, Tensor)}
    p = next(iter(module.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    size = math.prod(input_shape)
    basis = torch.eye(size, dtype=torch.float64, device=device).reshape(size, *input_shape)
    with torch.no_grad():
        out = double(torch.cat([basis, basis.new_zeros(1, *input_shape)]))
    after = {name: t for name, t in double.state_dict().items() if isinstance(t, Tensor)}
    moved = {n for n in state.keys() & after.keys() if not torch.equal(state[n], after[n])}
    changed = sorted(set(state) ^ set(after) | moved)
    if changed:
        raise ValueError(f"{type(module).__name__}: its forward changes its own state ({', '.join(changed)}), so "
                         "the map it computes is not fixed yet: run it once on inputs of this size first")
    return (out[:-1] - out[-1:]).reshape(size, -1).T


def _describe(op: ConvOperator) -> list[str]:
    notes = []
    if op.padding_mode == "zeros":
        notes.append(f"zero padding {[b for b, _ in op.padding]} before, {[a for _, a in op.padding]} after")
    else:
        notes.append(f"{op.padding_mode} padding")
    if op.circular_exact:
        where = "x".join(map(str, op.input_size))
        if any(s > 1 for s in op.stride):
            notes.append(f"stride {'x'.join(map(str, op.stride))} divides {where}")
        else:
            notes.append(f"on {where}")
    elif any(s > 1 for s in op.stride):
        notes.append(f"stride {'x'.join(map(str, op.stride))}")
    if op.groups > 1:
        notes.append(f"groups {op.groups}: block diagonal")
    if any(d > 1 for d in op.dilation):
        notes.append(f"dilation {'x'.join(map(str, op.dilation))}")
    if op.adjoint:
        notes.append("transposed: the adjoint of a strided convolution")
    return notes


def pointwise_singular_values(op: ConvOperator) -> Tensor | None:
    """Every singular value of a convolution with a ``1 x ... x 1`` kernel and no padding, or ``None``.

    Output pixel ``i`` reads input pixel ``s i`` alone, distinct for distinct ``i``, so the map is the
    block-diagonal ``W`` (one block per group) on each of the ``L`` kept pixels and zero on the others:
    its singular values are ``W``'s, each ``L`` times, then zeros up to ``min(rows, columns)``. The
    same holds for the adjoint (a transposed convolution). Exact, one small SVD whatever the image.
    """
    if any(k != 1 for k in op.kernel.shape[2:]) or any(b or a for b, a in op.padding):
        return None
    w = op.kernel.detach().to(torch.float64).flatten(1)
    blocks = w.view(op.groups, -1, w.shape[1])
    sigma = torch.linalg.svdvals(blocks).reshape(-1).repeat(math.prod(op.output_size))
    (c_in, *n), (c_out, *m) = op.forward_shapes
    total = min(c_in * math.prod(n), c_out * math.prod(m))
    return torch.cat([sigma, sigma.new_zeros(total - sigma.numel())]).sort(descending=True).values


def _output_shape(module: nn.Module, op: ConvOperator) -> tuple[int, ...]:
    """The module's output shape: the operator's, or after the pixel shuffle of an upsampling layer."""
    shuffle = getattr(module, "upsample", None)
    if not isinstance(shuffle, nn.PixelShuffle):
        return tuple(op.output_shape)
    f = shuffle.upscale_factor
    c, *size = op.output_shape
    return (c // f**2, *(n * f for n in size))


def _spectrum(module: nn.Module, input_size, exact_limit: int | None, rtol, n_iter: int, enclose: bool = True):
    """``(singular values or None, ConvSpectrum)`` for :func:`module_spectrum` and :func:`module_singular_values`
    (``enclose=False``: ``ValueError`` instead of an enclosure)."""
    limit = DENSE_LIMIT if exact_limit is None else exact_limit
    try:
        op, shape = module_operator(module, input_size)
    except ValueError:
        if not _is_orthoconv_layer(module):
            raise
        shape = (module.in_channels, *spatial_size(input_size, 2))
        out = (module.out_channels, *shape[1:])
        if max(math.prod(shape), math.prod(out)) > limit:
            raise ValueError(f"{type(module).__name__} has no single kernel here and its dense operator "
                             f"({math.prod(out)} x {math.prod(shape)}) exceeds exact_limit = {limit}") from None
        sigma = torch.linalg.svdvals(_forward_matrix(module, shape))
        notes = (f"{module.padding_mode} padding", "from the module's own forward")
        return sigma, ConvSpectrum(float(sigma.min()), float(sigma.max()), float(sigma.max()), True,
                                   "dense (module forward)", notes, shape, out)
    notes = tuple(_describe(op))
    out_shape = _output_shape(module, op)
    if out_shape != op.output_shape:
        notes = (*notes, f"then pixel_shuffle({module.upsample.upscale_factor}): a permutation")
    pointwise = pointwise_singular_values(op)
    if pointwise is not None:
        sigma, method = pointwise, "pointwise-svd"
    elif op.circular_exact:
        sigma = conv_singular_values(op.kernel, op.input_size, op.stride, op.groups, op.dilation).reshape(-1)
        method = "fft" if all(s == 1 for s in op.stride) else "polyphase-fft"
    elif max(math.prod(op.input_shape), math.prod(out_shape)) <= limit:
        sigma = torch.linalg.svdvals(operator_matrix(op))
        method = "dense"
    elif not enclose:
        raise ValueError(f"no exact spectrum for {type(module).__name__} on {tuple(input_size)} "
                         f"({'; '.join(notes)}): the dense operator exceeds exact_limit = {limit} and no FFT method "
                         "applies; module_spectrum gives a certified enclosure")
    else:
        upper, how = upper_bound(op, _check_rtol(rtol))
        lower = min(power_iteration_lower_bound(op, n_iter), upper)
        notes = (*notes, how, f"lower: power iteration, {n_iter} steps", "sigma_min: no lower bound (0.0)")
        return None, ConvSpectrum(0.0, upper, lower, False, "enclosure", notes, shape, out_shape)
    return sigma, ConvSpectrum(float(sigma.min()), float(sigma.max()), float(sigma.max()), True, method, notes,
                               shape, out_shape)


def module_spectrum(module: nn.Module, input_size, exact_limit: int | None = None, *, rtol: float | None = None,
                    n_iter: int = 50) -> ConvSpectrum:
    """The extreme singular values of a convolution module's linear map (bias excluded) on ``input_size``.

    Exact where a method is: circular padding with whole polyphase outputs (FFT, Sedghi et al. 2019,
    stride by polyphase), or any configuration whose dense operator has at most ``exact_limit`` rows
    and columns (``DENSE_LIMIT`` by default), decomposed whole. Otherwise a certified enclosure of the
    norm (:func:`.norm.upper_bound`, power iteration below; ``rtol`` lets the circular norm inside be
    certified within it instead of computed exactly) and no lower bound on ``sigma_min``.
    ``ValueError`` where the module could not run on that size; ``TypeError`` for other modules.
    """
    return _spectrum(module, input_size, exact_limit, rtol, n_iter)[1]


def module_singular_values(module: nn.Module, input_size, exact_limit: int | None = None) -> Tensor:
    """Every singular value of the module's linear map on ``input_size``, descending, float64
    (``min(rows, columns)`` of them); ``ValueError`` where no exact method applies (use :func:`module_spectrum`)."""
    sigma, _ = _spectrum(module, input_size, exact_limit, None, 0, enclose=False)
    return sigma.sort(descending=True).values
