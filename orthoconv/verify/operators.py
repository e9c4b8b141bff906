"""Certified Lipschitz facts of one module, on the input shape it really receives.

:func:`module_bound` returns, for a module the model calls, an :class:`OperatorBound`: its Lipschitz
constant (exact, or a certified upper bound) and, for linear maps, the extreme singular values. Biases
and constant shifts do not count (``f(x) - f(y)`` removes them).

- Convolutions (``nn.ConvNd``, ``nn.ConvTransposeNd``, orthoconv layers through ``kernel()`` with their
  own padding mode and configuration): :func:`orthoconv.spectral.module_spectrum`.
- The nonlinear 1-Lipschitz layers (CPL, SLL, Sandwich: ``nonlinear = True``): their own certified
  ``lipschitz_bound(input_size)`` on the image they receive (computed in float64 from their parameters).
- ``nn.Linear`` / ``OrthogonalLinear``: the SVD of the matrix (applied per token, ``I (x) W`` has the same
  singular values). ``BatchNormNd`` in eval: the diagonal ``|gamma| / sqrt(running_var + eps)``.
- Pooling: :mod:`orthoconv.verify.pooling`. Padding: a copy map, singular values ``sqrt(copies)``.
- Elementwise activations: ``sup |f'|`` (ReLU family and Tanh 1, Sigmoid 1/4, LeakyReLU / PReLU / ELU
  ``max(1, |slope|)``, GELU ``Phi(sqrt 2) + sqrt 2 phi(sqrt 2) = 1.1289``, SiLU 1.1 (sup 1.09984 at
  x = 2.3994), Hardswish 3/2, Hardsigmoid 1/6, CELU 1 for ``alpha > 0``, Softplus 1 for ``beta > 0``
  where torch's switch to the identity above ``threshold / beta`` jumps by at most 1e-6, the jump
  ``log1p(exp(-threshold)) / beta`` stated in the method); GroupSort/MaxMin 1 (sorting is 1-Lipschitz,
  Anil et al. 2019). Other parameter values (a negative CELU ``alpha``: unbounded slope; a low Softplus
  threshold: a discontinuity) raise ``TypeError``.
- Identity, Flatten, Unflatten, Dropout (eval) and permutations (pixel (un)shuffle, channel shuffle,
  InvertibleDownsampling): orthogonal, 1.

Anything else raises ``TypeError`` naming the module: nothing is skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..math.spectral import module_spectrum
from ..math.spectral.norm import DENSE_NORM_LIMIT
from ..nn import (
    BCOPTranspose,
    FirstChannels,
    GlobalMaxPool,
    GroupSort,
    InvertibleDownsampling,
    KernelConv2d,
    Normalize,
    OrthogonalLinear,
    StridedBCOP,
    ZeroChannelPad,
)
from .orthogonality import default_tolerance
from .pooling import avg_pool_singular_range, max_pool_lipschitz

GELU_LIPSCHITZ = 0.5 * (1 + math.erf(1.0)) + math.sqrt(2) * math.exp(-1.0) / math.sqrt(2 * math.pi)
_ONE_LIPSCHITZ = (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Hardtanh, nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.LogSigmoid)
SOFTPLUS_MAX_JUMP = 1e-6
_IDENTITY = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
             nn.AlphaDropout, nn.FeatureAlphaDropout)
_PERMUTATION = (nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle, InvertibleDownsampling)
_BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_SELF_NORMALIZING = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
                     nn.LocalResponseNorm, nn.RMSNorm)
_AVG_POOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
             nn.AdaptiveAvgPool3d)
_MAX_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
             nn.AdaptiveMaxPool3d)
_PAD = (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
        nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d,
        nn.ReplicationPad3d, nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d)
CONV_TYPES = (nn.modules.conv._ConvNd, KernelConv2d, StridedBCOP, BCOPTranspose)


@dataclass(frozen=True)
class OperatorBound:
    """What is certified about one module call.

    ``lipschitz`` is an upper bound on its Lipschitz constant (exact when ``exact``). Linear maps also
    give ``sigma_min`` (exact, or a certified lower end of the smallest singular value), ``sigma_max``
    (``== lipschitz``) and ``sigma_max_lower``; ``tol`` is the default orthogonality tolerance of the
    map's stored precision (:func:`default_tolerance`).
    """

    lipschitz: float
    linear: bool
    exact: bool
    method: str
    sigma_min: float | None = None
    sigma_max: float | None = None
    sigma_max_lower: float | None = None
    kind: str = ""
    tol: float | None = None
    assumptions: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)


def _linear(low: float, high: float, exact: bool, method: str, kind: str, tol: float | None = None,
            high_lower: float | None = None, **extra) -> OperatorBound:
    return OperatorBound(high, True, exact, method, low, high, high if high_lower is None else high_lower, kind,
                         tol, **extra)


def _kind(n_in: int, n_out: int) -> str:
    from .orthogonality import isometry_kind

    return isometry_kind(n_out, n_in)


def _conv_config(module: nn.Module) -> dict:
    if isinstance(module, nn.modules.conv._ConvNd):
        config = {"stride": module.stride, "groups": module.groups, "dilation": module.dilation,
                  "padding": module.padding, "padding_mode": module.padding_mode}
        if module.transposed:
            config["output_padding"] = module.output_padding
        return config
    config = {"stride": getattr(module, "stride", 1), "padding": "same", "padding_mode": module.padding_mode}
    return config


def _conv_kernel(module: nn.Module) -> torch.Tensor | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.weight
    try:
        if getattr(module, "kernel_depends_on_size", False):
            return None
        return module.kernel()
    except ValueError:
        return None


def conv_bound(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> OperatorBound:
    """A convolution through ``module_spectrum``; the spectrum's output shape must be the one observed.

    Dense decompositions only up to ``DENSE_NORM_LIMIT`` rows or columns; larger non-circular layers get
    the certified enclosure within ``1e-3`` (its ``assumptions`` say whether that was met)."""
    with torch.no_grad():
        kernel = _conv_kernel(module)
    spectrum = module_spectrum(module, in_shape[1:], exact_limit=DENSE_NORM_LIMIT)
    if tuple(spectrum.output_shape) != tuple(out_shape) or tuple(spectrum.input_shape) != tuple(in_shape):
        raise ValueError(f"{type(module).__name__}: module_spectrum describes {spectrum.input_shape} -> "
                         f"{spectrum.output_shape}, the model maps {in_shape} -> {out_shape}")
    dtype = kernel.dtype if kernel is not None else next(module.parameters()).dtype
    tol = default_tolerance(dtype, kernel.detach()) if kernel is not None else default_tolerance(dtype)
    return _linear(spectrum.sigma_min, spectrum.sigma_max, spectrum.exact, spectrum.method,
                   _kind(math.prod(in_shape), math.prod(out_shape)), tol, spectrum.sigma_max_lower,
                   assumptions=tuple(spectrum.assumptions), config=_conv_config(module))


def _matrix_bound(matrix: torch.Tensor, method: str) -> OperatorBound:
    sigma = torch.linalg.svdvals(matrix.detach().to(torch.float64))
    return _linear(float(sigma.min()), float(sigma.max()), True, method, _kind(matrix.shape[1], matrix.shape[0]),
                   default_tolerance(matrix.dtype, matrix.detach()))


def _batch_norm_bound(module: nn.Module) -> OperatorBound:
    if module.running_var is None:
        raise TypeError(f"{type(module).__name__} without running statistics normalizes by the batch's own "
                        "statistics even in eval mode: no fixed map to bound")
    scale = (module.running_var.detach().to(torch.float64) + module.eps).rsqrt()
    if module.weight is not None:
        scale = scale * module.weight.detach().to(torch.float64).abs()
    return _linear(float(scale.min()), float(scale.max()), True, "diagonal", "orthogonal",
                   default_tolerance(module.running_var.dtype), config={"eps": module.eps})


def _pad_bound(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> OperatorBound:
    modes = {"Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}
    mode = next((m for prefix, m in modes.items() if type(module).__name__.startswith(prefix)), "constant")
    return pad_bound(list(module.padding), mode, in_shape, out_shape, type(module).__name__)


def pad_bound(pads: list[int], mode: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
              name: str = "pad") -> OperatorBound:
    """A padding (``F.pad`` amounts ``pads``, last axis first; ``mode`` constant, reflect, replicate or
    circular) copies each input entry ``c >= 0`` times (separably per axis): ``P^T P = diag(c)``, so the
    singular values are ``sqrt(c)`` over the copied entries, and 0 for the rest of ``min(n_in, n_out)``.
    Negative amounts crop."""
    n_axes = len(pads) // 2  # torch pads the last ``n_axes`` dimensions, also of an unbatched input
    if n_axes > len(in_shape):
        raise TypeError(f"{name} pads {n_axes} dimensions of a sample with {len(in_shape)}: "
                        "it would pad across the batch")
    most = least = kept = 1
    for axis, n in enumerate(reversed(in_shape[len(in_shape) - n_axes:])):
        index = torch.arange(n, dtype=torch.float64).view(1, 1, n)
        pair = pads[2 * axis: 2 * axis + 2]
        padded = F.pad(index, pair, value=-1.0) if mode == "constant" else F.pad(index, pair, mode=mode)
        counts = torch.bincount(padded[padded >= 0].long(), minlength=n)
        positive = counts[counts > 0]
        most, least, kept = most * int(counts.max()), least * int(positive.min()), kept * len(positive)
    n_in, n_out = math.prod(in_shape), math.prod(out_shape)
    low = math.sqrt(least) if kept * math.prod(in_shape[:len(in_shape) - n_axes]) >= min(n_in, n_out) else 0.0
    return _linear(low, math.sqrt(most), True, "copy counts", _kind(n_in, n_out), 1e-12,
                   config={"padding": tuple(pads), "mode": mode})


def activation_lipschitz(module: nn.Module) -> tuple[float, bool] | None:
    """``(sup |f'|, exact)`` of a known elementwise activation or GroupSort, else ``None``."""
    if isinstance(module, (GroupSort, *_ONE_LIPSCHITZ)):
        return 1.0, True
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(module.negative_slope)), True
    if isinstance(module, nn.PReLU):
        return max(1.0, float(module.weight.detach().abs().max())), True
    if isinstance(module, nn.ELU):
        return max(1.0, abs(module.alpha)), True
    if isinstance(module, nn.Softplus):
        softplus_method(module)
        return 1.0, True
    if isinstance(module, nn.CELU):
        if not module.alpha > 0:
            raise TypeError(f"CELU(alpha={module.alpha}): for alpha <= 0 its slope exp(x / alpha) is unbounded")
        return 1.0, True
    if isinstance(module, nn.SELU):
        return 1.0507009873554805 * 1.6732632423543772, True
    if isinstance(module, nn.Sigmoid):
        return 0.25, True
    if isinstance(module, nn.Hardsigmoid):
        return 1 / 6, True
    if isinstance(module, nn.Hardswish):
        return 1.5, True
    if isinstance(module, nn.GELU) and module.approximate == "none":
        return GELU_LIPSCHITZ * (1 + 1e-12), True
    if isinstance(module, nn.SiLU):
        return 1.1, False
    return None


def softplus_method(module: nn.Softplus) -> str:
    """The method text of Softplus's bound 1: ``log1p(exp(beta x)) / beta`` has slope ``sigmoid(beta x) < 1``;
    torch returns ``x`` itself above ``threshold / beta``, a jump of ``log1p(exp(-threshold)) / beta`` there
    (2.1e-9 at the defaults), accepted up to :data:`SOFTPLUS_MAX_JUMP` and stated; ``TypeError`` beyond."""
    beta, threshold = float(module.beta), float(module.threshold)
    if not beta > 0:
        raise TypeError(f"Softplus(beta={beta}): only beta > 0 is bounded")
    jump = math.log1p(math.exp(-threshold)) / beta if threshold > -700 else math.inf
    if jump > SOFTPLUS_MAX_JUMP:
        raise TypeError(f"Softplus(beta={beta}, threshold={threshold}) jumps by {jump:.3g} where torch switches to "
                        f"the identity (x = {threshold / beta:g}): discontinuous, no Lipschitz bound")
    return f"sup |f'|; not counted: a jump of {jump:.1e} at x = {threshold / beta:g} (torch's switch to the identity)"


def module_bound(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> OperatorBound:
    """The :class:`OperatorBound` of ``module`` on one sample of shape ``in_shape`` (no batch dimension),
    whose output has ``out_shape``. Raises ``TypeError`` for a module it cannot bound."""
    name = type(module).__name__
    if getattr(module, "nonlinear", False) and type(module).__module__.startswith("orthoconv.nn."):
        return _own_bound(module, in_shape)
    if isinstance(module, CONV_TYPES):
        return conv_bound(module, in_shape, out_shape)
    if isinstance(module, OrthogonalLinear):
        with torch.no_grad():
            return _matrix_bound(module.matrix(), "svd")
    if isinstance(module, nn.Linear):
        return _matrix_bound(module.weight, "svd")
    if isinstance(module, _BATCH_NORM):
        return _batch_norm_bound(module)
    if isinstance(module, _IDENTITY + _PERMUTATION):
        return _linear(1.0, 1.0, True, "permutation" if isinstance(module, _PERMUTATION) else "identity",
                       "orthogonal", 1e-12)
    if isinstance(module, _PAD):
        return _pad_bound(module, in_shape, out_shape)
    if isinstance(module, (Normalize, ZeroChannelPad, FirstChannels)):
        return _fixed_bound(module, in_shape, out_shape)
    if isinstance(module, GlobalMaxPool):
        return OperatorBound(1.0, False, True, "max over pixels")
    if isinstance(module, _AVG_POOL):
        low, high, spatial = avg_pool_singular_range(module, in_shape[1:])
        _check_spatial(name, spatial, out_shape)
        return _linear(low, high, True, "separable SVD", _kind(math.prod(in_shape), math.prod(out_shape)), 1e-12)
    if isinstance(module, _MAX_POOL):
        lipschitz, spatial = max_pool_lipschitz(module, in_shape[1:])
        _check_spatial(name, spatial, out_shape)
        return OperatorBound(lipschitz, False, lipschitz == 1.0, "window overlap")
    if isinstance(module, nn.Softplus):
        return OperatorBound(1.0, False, True, softplus_method(module))
    activation = activation_lipschitz(module)
    if activation is not None:
        return OperatorBound(activation[0], False, activation[1], "sup |f'|")
    if isinstance(module, _SELF_NORMALIZING):
        raise TypeError(f"{name} divides by the input's own statistics: it has no global Lipschitz bound")
    raise TypeError(f"no certified Lipschitz bound for a {name} module; supported: convolutions (nn.ConvNd, "
                    "nn.ConvTransposeNd, orthoconv layers), nn.Linear, OrthogonalLinear, BatchNorm (eval), pooling, "
                    "padding, known activations, GroupSort/MaxMin, Identity/Flatten/Dropout and permutations")


def _own_bound(module: nn.Module, in_shape: tuple[int, ...]) -> OperatorBound:
    """A nonlinear orthoconv layer: its ``lipschitz_bound`` on the spatial size it receives (certified, float64)."""
    size = tuple(in_shape[1:])
    with torch.no_grad():
        bound = module.lipschitz_bound(size)
    return OperatorBound(bound, False, False, f"{type(module).__name__}.lipschitz_bound on {size[0]}x{size[1]}",
                         assumptions=(f"{module.padding_mode} padding",), config=module.config())


def _fixed_bound(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> OperatorBound:
    """``Normalize``: the diagonal ``1 / std`` (the mean is a shift); ``ZeroChannelPad``: an isometry;
    ``FirstChannels``: a coordinate projection. All exact."""
    kind = _kind(math.prod(in_shape), math.prod(out_shape))
    if isinstance(module, Normalize):
        scale = 1.0 / module.std.detach().to(torch.float64).flatten()
        return _linear(float(scale.min()), float(scale.max()), True, "diagonal", kind,
                       default_tolerance(module.std.dtype))
    return _linear(1.0, 1.0, True, "coordinate map", kind, 1e-12)


def _check_spatial(name: str, spatial: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    if tuple(spatial) != tuple(out_shape[1:]):
        raise ValueError(f"{name}: the pooling matrices give a {spatial} output, the model produced {out_shape[1:]}")
