"""A certified Lipschitz bound of an ``nn.Sequential``: the product of exact or certified per-layer norms."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from ..math.checks import image_size
from ..math.spectral import circular_spectral_norm, conv_spectral_norm
from ..nn.activations import GroupSort
from ..nn.bcop import BCOP
from ..nn.cayley import CayleyConv
from ..nn.downsample import InvertibleDownsampling, StridedBCOP
from ..nn.linear import OrthogonalLinear


def _one_lipschitz_types() -> tuple[type, ...]:
    return (GroupSort, nn.ReLU, nn.Identity, nn.Flatten, InvertibleDownsampling)


def _expand(model: nn.Module):
    for layer in model:
        if isinstance(layer, nn.Sequential):
            yield from _expand(layer)
        else:
            yield layer


def _require_image(size, layer: nn.Module, index: int) -> tuple[int, int]:
    if size is None:
        raise ValueError(
            f"lipschitz_bound: layer {index} ({type(layer).__name__}) needs an image, but it comes after a Flatten"
        )
    return size


def _kernel_norm(kernel: Tensor, size: tuple[int, int], padding_mode: str) -> float:
    """The exact norm (circular, FFT) or the certified upper end of ``conv_spectral_norm`` (zeros)."""
    k64 = kernel.detach().to(torch.float64)
    if padding_mode == "circular":
        return circular_spectral_norm(k64, size)
    return conv_spectral_norm(k64, size, "zeros").upper


def _conv2d_bound(conv: nn.Conv2d, size: tuple[int, int], index: int) -> tuple[float, tuple[int, int]]:
    """``nn.Conv2d``: a stride only drops output rows (norm <= the stride-1 operator). Zero padding of
    any amount: a compression of the plane convolution, bounded by the circular norm on
    ``(H + kh - 1, W + kw - 1)`` (no wrap-around reaches the window; docs/references.md), or the exact
    dense norm for a small same-size layer. Circular padding: rows of the circular operator on
    ``H x W`` when the padded image is no larger than the image plus ``k - 1``."""
    name = f"lipschitz_bound: layer {index} (nn.Conv2d)"
    if conv.groups != 1 or conv.dilation != (1, 1):
        raise ValueError(
            f"{name}: only groups=1 and dilation=1 are supported, got groups={conv.groups}, dilation={conv.dilation}"
        )
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    H, W = size
    if conv.padding == "same":
        pads = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    elif conv.padding == "valid":
        pads = (0, 0, 0, 0)
    else:
        pads = (conv.padding[0], conv.padding[0], conv.padding[1], conv.padding[1])
    out = ((H + pads[0] + pads[1] - kh) // sh + 1, (W + pads[2] + pads[3] - kw) // sw + 1)
    if min(out) < 1:
        raise ValueError(f"{name}: a {kh}x{kw} kernel with padding {conv.padding} gives an empty output on {size}")
    weight = conv.weight.detach().to(torch.float64)
    if conv.padding_mode == "zeros":
        same_stride1 = (sh, sw) == (1, 1) and pads == (
            (kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
        if same_stride1:
            return conv_spectral_norm(weight, size, "zeros").upper, out
        return circular_spectral_norm(weight, (H + kh - 1, W + kw - 1)), out
    if conv.padding_mode == "circular":
        if pads[0] + pads[1] > kh - 1 or pads[2] + pads[3] > kw - 1:
            raise ValueError(
                f"{name}: circular padding {conv.padding} larger than kernel_size - 1 repeats pixels; unsupported"
            )
        return circular_spectral_norm(weight, size), out
    raise ValueError(f"{name}: padding_mode {conv.padding_mode!r} is not supported (use 'zeros' or 'circular')")


def _layer_bound(layer: nn.Module, size, index: int) -> tuple[float, tuple[int, int] | None]:
    if isinstance(layer, _one_lipschitz_types()):
        if isinstance(layer, nn.Flatten):
            return 1.0, None
        if isinstance(layer, InvertibleDownsampling):
            H, W = _require_image(size, layer, index)
            f = layer.factor
            if H % f or W % f:
                raise ValueError(
                    f"lipschitz_bound: layer {index} (InvertibleDownsampling({f})) cannot split a {H}x{W} image"
                )
            return 1.0, (H // f, W // f)
        return 1.0, size
    if isinstance(layer, nn.LeakyReLU) and abs(layer.negative_slope) <= 1:
        return 1.0, size
    bound_fn = getattr(layer, "lipschitz_bound", None)
    if callable(bound_fn):
        if "input_size" in inspect.signature(bound_fn).parameters:
            return float(bound_fn(input_size=_require_image(size, layer, index))), size
        if hasattr(layer, "kernel_size"):  # a convolution: it needs an image even if its bound does not
            _require_image(size, layer, index)
        return float(bound_fn()), size
    if isinstance(layer, StridedBCOP):
        H, W = _require_image(size, layer, index)
        s = layer.stride
        if H % s or W % s:
            raise ValueError(f"lipschitz_bound: layer {index} (StridedBCOP, stride {s}) cannot split a {H}x{W} image")
        inner = (H // s, W // s)
        return _kernel_norm(layer.kernel(), inner, layer.padding_mode), inner
    if isinstance(layer, CayleyConv):
        size = _require_image(size, layer, index)
        if tuple(size) != layer.input_size:
            raise ValueError(
                f"lipschitz_bound: layer {index} (CayleyConv) is built for {layer.input_size}, the image is {size}"
            )
        return _kernel_norm(layer.kernel(), size, "circular"), size
    if isinstance(layer, BCOP):
        return _kernel_norm(layer.kernel(), _require_image(size, layer, index), layer.padding_mode), size
    if isinstance(layer, nn.Conv2d):
        return _conv2d_bound(layer, _require_image(size, layer, index), index)
    if isinstance(layer, OrthogonalLinear):
        matrix = layer.matrix().detach().to(torch.float64)
        return float(torch.linalg.matrix_norm(matrix, ord=2)), None if size is None else (size[0], layer.out_features)
    if isinstance(layer, nn.Linear):
        weight = layer.weight.detach().to(torch.float64)
        return float(torch.linalg.matrix_norm(weight, ord=2)), None if size is None else (size[0], layer.out_features)
    raise TypeError(
        f"lipschitz_bound: no certified bound for layer {index} ({type(layer).__name__}); supported: layers with "
        "lipschitz_bound(), BCOP, StridedBCOP, CayleyConv, nn.Conv2d, nn.Linear, OrthogonalLinear, GroupSort/MaxMin, "
        "ReLU, LeakyReLU(|slope| <= 1), Identity, Flatten, InvertibleDownsampling, nested nn.Sequential"
    )


def lipschitz_bound(model: nn.Sequential, input_size) -> float:
    """A certified upper bound on the L2 Lipschitz constant of ``model`` on ``input_size = (H, W)`` images.

    The product over layers of each layer's certified bound (biases do not count): the layer's own
    ``lipschitz_bound()`` when it has one (called with the image size when it takes one); the exact
    FFT norm of the kernel for the orthogonal orthoconv layers (BCOP, StridedBCOP on the
    downsampled image, CayleyConv); ``nn.Conv2d`` by :func:`_conv2d_bound`; the exact spectral norm for
    ``nn.Linear`` and ``OrthogonalLinear``; 1 for GroupSort/MaxMin, ReLU, LeakyReLU with
    ``|slope| <= 1``, Identity and the permutations Flatten and InvertibleDownsampling. The image size
    is carried through the layers. Any other layer raises ``TypeError``.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    size = image_size(input_size)
    total = 1.0
    for index, layer in enumerate(_expand(model)):
        bound, size = _layer_bound(layer, size, index)
        total *= bound
    return total
