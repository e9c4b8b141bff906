"""TEMPORARY ADAPTER for ``orthoconv.spectral.module_spectrum`` (SPECTRUM_CONTRACT.md, issue 11 point 1).

The spectral engineer delivers ``ConvSpectrum`` and ``module_spectrum`` in ``orthoconv/math/spectral*``.
Until that branch is merged, this module implements the same signature and the same guarantees over
today's functions, with fewer exact cases:

- a small operator (both dimensions at most ``exact_limit``): EXACT, the SVD of the dense matrix built
  from the module's own linear map in float64 (every stride, groups, dilation, padding mode and amount,
  transposed, 1-D/2-D/3-D);
- a 2-D stride-1 circular convolution whose output has the input's size: EXACT, the FFT spectrum
  (Sedghi et al. 2019) of the kernel with groups made block diagonal and dilation spread out;
- a 1x1 convolution without padding, any stride and groups: EXACT, the SVD of the weight;
- a zero-padded 2-D convolution, any stride, padding amount, groups, dilation, or its transpose: a
  certified ENCLOSURE, the circular norm on ``(H + kh - 1, W + kw - 1)`` above (the operator is a
  compression of that circular convolution), power iteration below, ``sigma_min`` 0;
- anything else raises ``ValueError`` saying that it needs the spectral branch.

At the merge this file is deleted and ``orthoconv/verify/spectra.py`` imports from the spectral module.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..math.conv import conv2d_same
from ..math.spectral import circular_spectral_norm
from ..math.spectral import conv_singular_values as _fft_singular_values

EXACT_LIMIT = 1024
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class ConvSpectrum:
    """As in SPECTRUM_CONTRACT.md: exact values, or certified bounds that say which side."""

    sigma_min: float
    sigma_max: float
    sigma_max_lower: float
    exact: bool
    method: str
    assumptions: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def _strided_bcop():
    from ..nn.downsample import StridedBCOP

    return StridedBCOP


def _linear_map(module: nn.Module):
    """The module's linear part as a float64 function of a batch (bias removed)."""
    if isinstance(module, _CONV):
        w = module.weight.detach().to(torch.float64)
        return lambda x: module._conv_forward(x, w, None)
    if isinstance(module, _TRANSPOSED):
        w = module.weight.detach().to(torch.float64)
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[w.dim() - 3]
        return lambda x: fn(x, w, None, module.stride, module.padding, module.output_padding, module.groups,
                            module.dilation)
    if isinstance(module, _strided_bcop()):
        k = module.kernel().detach().to(torch.float64)
        s = module.stride
        return lambda x: conv2d_same(F.pixel_unshuffle(x, s), k, module.padding_mode)
    copy64 = copy.deepcopy(module).to(torch.float64).eval()

    def affine_minus_offset(x: Tensor) -> Tensor:
        with torch.no_grad():
            return copy64(x) - copy64(torch.zeros_like(x[:1]))

    return affine_minus_offset


def _expanded_kernel(weight: Tensor, groups: int, dilation: tuple[int, ...]) -> Tensor:
    """The dense ``(c_out, c_in, ...)`` kernel of a grouped, dilated convolution."""
    c_out, c_in_g = weight.shape[:2]
    taps = weight.shape[2:]
    size = tuple(d * (k - 1) + 1 for d, k in zip(dilation, taps))
    out = weight.new_zeros(c_out, c_in_g * groups, *size)
    per = c_out // groups
    spread = tuple(slice(None, None, d) for d in dilation)
    for g in range(groups):
        out[(slice(g * per, (g + 1) * per), slice(g * c_in_g, (g + 1) * c_in_g), *spread)] = weight[g * per:(g + 1) * per]
    return out


def _power_lower(apply, shape: tuple[int, ...], steps: int = 10) -> float:
    x = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x.requires_grad_(True)
    value = 0.0
    with torch.enable_grad():
        for _ in range(steps):
            x = (x / torch.linalg.vector_norm(x)).detach().requires_grad_(True)
            y = apply(x)
            value = max(value, float(torch.linalg.vector_norm(y.detach())))
            (x,) = torch.autograd.grad(y, x, y)
    return value


def module_spectrum(module: nn.Module, input_size, exact_limit: int | None = None) -> ConvSpectrum:
    """``ConvSpectrum`` of ``module``'s linear map on inputs of spatial size ``input_size`` (contract)."""
    limit = EXACT_LIMIT if exact_limit is None else int(exact_limit)
    size = tuple(int(s) for s in input_size)
    channels = module.in_channels
    apply = _linear_map(module)
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else None
    with torch.no_grad():
        out_shape = tuple(apply(torch.zeros(1, channels, *size, dtype=torch.float64, device=device)).shape[1:])
    in_shape = (channels, *size)
    n_in, n_out = math.prod(in_shape), math.prod(out_shape)
    mode = getattr(module, "padding_mode", "zeros")
    if max(n_in, n_out) <= limit:
        with torch.no_grad():
            eye = torch.eye(n_in, dtype=torch.float64, device=device).view(n_in, *in_shape)
            dense = apply(eye).reshape(n_in, n_out).T
        sigma = torch.linalg.svdvals(dense)
        return ConvSpectrum(float(sigma.min()), float(sigma.max()), float(sigma.max()), True, "dense",
                            (f"{mode} padding as built",), in_shape, out_shape)
    if isinstance(module, _strided_bcop()) and module.padding_mode == "circular" and len(size) == 2:
        s = module.stride
        kernel = module.kernel().detach().to(torch.float64)
        sigma = _fft_singular_values(kernel, (size[0] // s, size[1] // s))
        return ConvSpectrum(float(sigma.min()), float(sigma.max()), float(sigma.max()), True, "fft",
                            ("circular padding", f"space-to-depth by {s}"), in_shape, out_shape)
    pointwise = _pointwise(module, in_shape, out_shape)
    if pointwise is not None:
        return pointwise
    kernel, stride, dilation, groups, transposed = _circular_view(module)
    if kernel is None or len(size) != 2:
        raise ValueError(f"{type(module).__name__} on {size}: above exact_limit={limit}; this configuration needs "
                         "the spectral branch's module_spectrum (temporary adapter)")
    if mode == "circular" and stride == (1, 1) and not transposed and out_shape[1:] == size:
        sigma = _fft_singular_values(kernel, size)
        return ConvSpectrum(float(sigma.min()), float(sigma.max()), float(sigma.max()), True, "fft",
                            ("circular padding",), in_shape, out_shape)
    if mode == "zeros":
        conv_size = out_shape[1:] if transposed else size
        upper = circular_spectral_norm(kernel, (conv_size[0] + kernel.shape[-2] - 1, conv_size[1] + kernel.shape[-1] - 1))
        lower = min(_power_lower(apply, in_shape), upper)
        return ConvSpectrum(0.0, upper, lower, False, "circular-embedding+power-iteration",
                            ("zeros padding as built", "sigma_min not bounded below"), in_shape, out_shape)
    raise ValueError(f"{type(module).__name__} ({mode}, stride {stride}) on {size}: above exact_limit={limit}; "
                     "needs the spectral branch's module_spectrum (temporary adapter)")


def _pointwise(module: nn.Module, in_shape, out_shape) -> ConvSpectrum | None:
    """A 1x1 convolution without padding, any stride: ``W`` at each kept pixel, so the singular values
    are those of ``W`` (block diagonal over groups), each ``N_out`` times, and 0 for the rest of
    ``min(n_in, n_out)``: exact."""
    if not isinstance(module, _CONV) or any(k != 1 for k in module.kernel_size) or any(module.padding):
        return None
    w = module.weight.detach().to(torch.float64).flatten(1)
    g = module.groups
    sigma = torch.cat([torch.linalg.svdvals(block) for block in w.view(g, -1, w.shape[1])])
    pixels = math.prod(out_shape[1:])
    count = len(sigma) * pixels
    low = float(sigma.min()) if count >= min(math.prod(in_shape), math.prod(out_shape)) else 0.0
    return ConvSpectrum(low, float(sigma.max()), float(sigma.max()), True, "pointwise-svd",
                        ("1x1 kernel, no padding",), tuple(in_shape), tuple(out_shape))


def _circular_view(module: nn.Module):
    """(dense 2-D kernel in float64, stride, dilation, groups, transposed) or Nones."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        # a transposed weight (c_in, c_out / groups, kh, kw) is the weight of its adjoint convolution
        kernel = _expanded_kernel(module.weight.detach().to(torch.float64), module.groups, module.dilation)
        return kernel, tuple(module.stride), module.dilation, module.groups, isinstance(module, nn.ConvTranspose2d)
    if callable(getattr(module, "kernel", None)) and not isinstance(module, _strided_bcop()):
        try:
            k = module.kernel().detach().to(torch.float64)
        except ValueError:
            return None, None, None, None, None
        return k, (1, 1), (1, 1), 1, False
    return None, None, None, None, None


def conv_singular_values(kernel: Tensor, input_size, stride=1, groups: int = 1, dilation=1) -> Tensor:
    """Every singular value of the circular convolution (contract signature): 2-D and 1-D kernels by the FFT
    (a 1-D kernel as a ``1 x k`` kernel on a ``1 x L`` image), other cases need the spectral branch."""
    if stride not in (1, (1,) * (kernel.dim() - 2)) or groups != 1 or dilation not in (1, (1,) * (kernel.dim() - 2)):
        raise ValueError("conv_singular_values with stride, groups or dilation needs the spectral branch "
                         "(temporary adapter)")
    size = tuple(int(s) for s in input_size)
    if kernel.dim() == 3 and len(size) == 1:
        return _fft_singular_values(kernel[:, :, None, :], (1, size[0])).flatten(0, 1)
    if kernel.dim() == 4 and len(size) == 2:
        return _fft_singular_values(kernel, size)
    raise ValueError(f"conv_singular_values of a {kernel.dim()}-D kernel on {size} needs the spectral branch "
                     "(temporary adapter)")
