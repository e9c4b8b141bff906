"""Certified bounds: kernel-level operator-norm bounds, network Lipschitz bounds, certified radii.

- :func:`reshaped_kernel_bound`: ``||conv(W)||_2 <= sqrt(kh kw) ||M(W)||_2``, any size and padding.
- :func:`tap_norm_bound`: ``||conv(W)||_2 <= sum_{p,q} ||W[:, :, p, q]||_2``, any size and padding.
- :func:`zero_padding_norm_bound`: Gram iteration on the kernel itself (Delattre, Barthelemy,
  Allauzen 2024 style) for zero padding, with an optional crop to the image that keeps it valid.
- :func:`lipschitz_bound`: the product of certified per-layer bounds of an ``nn.Sequential``.
- :func:`certified_radii`, :func:`certified_accuracy`: an L-Lipschitz classifier (in L2) keeps its
  prediction within radius ``margin / (sqrt(2) L)`` (Li et al. 2019, Tsuzuku et al. 2018): the margin
  ``f_y - f_j`` changes by at most ``sqrt(2) ||f(x) - f(x')|| <= sqrt(2) L ||x - x'||``.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor, nn

from ._layer_args import image_size
from .spectral import check_kernel, circular_spectral_norm, conv_spectral_norm

DEFAULT_MAX_ELEMENTS = 2**26


def reshaped_kernel_bound(kernel: Tensor) -> float:
    """``sqrt(kh kw) ||M(W)||_2`` with ``M(W)`` the ``(c_out, c_in kh kw)`` reshaping (float64 SVD).

    A certified bound on the stride-1 convolution for every image size, circular or zero padding:
    output pixel ``i`` is ``M(W) x_i`` with ``x_i`` the patch read at ``i``, and each input pixel lies
    in at most ``kh kw`` patches (the "patch" argument used by RKO, Cisse et al. 2017, and L2NE,
    Qian & Wegman 2019). Tight for kernels whose taps are all equal.
    """
    check_kernel(kernel)
    kh, kw = kernel.shape[-2:]
    M = kernel.detach().to(torch.float64).reshape(kernel.shape[0], -1)
    return math.sqrt(kh * kw) * float(torch.linalg.matrix_norm(M, ord=2))


def tap_norm_bound(kernel: Tensor) -> float:
    """``sum_{p,q} ||W[:, :, p, q]||_2`` (float64): the triangle inequality over the taps, each a
    matrix times a shift (norm <= 1 with circular or zero padding); valid for every image size."""
    check_kernel(kernel)
    taps = kernel.detach().to(torch.float64).permute(2, 3, 0, 1).contiguous()
    return float(torch.linalg.matrix_norm(taps, ord=2).sum())


def _compose_fft(A: Tensor, B: Tensor) -> Tensor:
    """The kernel of ``conv(A) o conv(B)`` (full size ``kA + kB - 1``): transfer functions multiply,
    ``A(z) B(z)``, evaluated on an FFT grid large enough that the linear convolution does not wrap."""
    sh, sw = A.shape[-2] + B.shape[-2] - 1, A.shape[-1] + B.shape[-1] - 1
    FA = torch.fft.rfft2(A, s=(sh, sw)).permute(2, 3, 0, 1).contiguous()
    FB = FA if B is A else torch.fft.rfft2(B, s=(sh, sw)).permute(2, 3, 0, 1).contiguous()
    return torch.fft.irfft2((FA @ FB).permute(2, 3, 0, 1), s=(sh, sw))


def _crop_centered(K: Tensor, size: tuple[int, int] | None) -> Tensor:
    """Keep the taps at offsets ``|d_h| <= H - 1``, ``|d_w| <= W - 1`` of an odd, centered kernel."""
    if size is None:
        return K
    H, W = size
    sh, sw = K.shape[-2:]
    mh, mw = min(sh, 2 * H - 1), min(sw, 2 * W - 1)
    top, left = (sh - mh) // 2, (sw - mw) // 2
    return K[..., top : top + mh, left : left + mw]


def zero_padding_norm_bound(
    kernel: Tensor, input_size=None, n_iter: int = 6, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> float:
    """A certified upper bound on the norm of the zero-padded convolution, by Gram iteration on the kernel.

    Let ``T`` be the convolution on the infinite plane (a block Toeplitz operator); a zero-padded
    convolution on an ``H x W`` image is ``A = P_out T P_in`` with ``P`` the restrictions to the
    input / output windows, whatever the padding amount and the stride (a stride only drops output
    rows). The kernels ``K_1 = adj(K) * K`` (``adj(K) = flip(K)^T``, ``*`` = kernel composition, full
    size ``2k - 1``) and ``K_{t+1} = K_t * K_t`` are the kernels of ``T^T T`` and its powers
    ``(T^T T)^(2^t)`` (Delattre et al. 2024). For any kernel,

        ||T_K|| = sup_{|z| = 1} ||K(z)||_2 <= sum_d ||K[d]||_2 <= sum_d ||K[d]||_F,

    so ``||A|| <= ||T|| <= (sum_d ||K_t[d]||_F)^(2^-t)`` for every image size (``input_size=None``).
    The kernel grows as ``2^t (k - 1) + 1``; every step is done on an FFT grid and rescaled to unit
    Frobenius norm with the log of the scale carried, and ``max_elements`` (the largest complex array,
    ``grid * c^2``) guards the memory: exceeding it raises ``ValueError`` (pass ``input_size`` or
    lower ``n_iter``).

    The crop (``input_size = (H, W)``). Only taps at offsets ``|d_h| <= H - 1``, ``|d_w| <= W - 1``
    act on an ``H x W`` window, so ``P S P = P crop(S) P``. And for a symmetric Toeplitz ``S``,
    ``P S^2 P - P S P S P = (Q S P)^T (Q S P) >= 0`` with ``Q = I - P`` (the same with ``S = T``:
    ``A^T A = P T^T P_out T P <= P T^T T P``), so by induction

        ||A||^(2^t) <= ||P S_t P||,   S_1 = crop(T^T T),   S_{t+1} = crop(S_t^2),

    each ``S_t`` symmetric, and ``||P S_t P|| <= ||S_t|| <= sum_d ||S_t[d]||_F``. Cropping to
    ``(2H - 1) x (2W - 1)`` taps after every step therefore keeps the bound valid for inputs of size
    ``H x W`` (and smaller ones, whose operators are compressions), for any output window and stride.
    The largest array is then the ``(4H - 3) x (2W - 1)`` half grid of ``c x c`` complex matrices,
    about ``16 H W c^2`` reals, below the dense operator's ``c^2 H^2 W^2`` once ``H W >= 16``. The
    crop also tightens the bound in practice (measured: the cropped bound falls below the torus norm
    ``sup_z ||K(z)||_2``, which no size-independent bound can). Cropping to fewer taps would not be
    valid: a tap at offset ``H - 1`` still couples the first and last rows of the window.

    Returned: the smallest of the bounds over ``t = 0..n_iter`` (``t = 0``: :func:`tap_norm_bound`).
    The Gram side is ``c_in`` with a crop (the argument is about the input window: the output side
    ``T T^T`` cropped to ``H x W`` would miss outputs beyond the image, e.g. with padding ``k - 1``)
    and ``min(c_in, c_out)`` without one. Computed in the kernel's precision (use float64).
    """
    check_kernel(kernel)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    size = None if input_size is None else image_size(input_size)
    best = tap_norm_bound(kernel)
    if best == 0 or n_iter == 0:
        return best
    K = kernel.detach()
    adjoint = K.transpose(0, 1).flip(-2, -1)
    # The crop argument restricts the INPUT window, so with a crop the first product is T^T T (c_in x c_in taps)
    # whatever the shape; without one, T T^T has the same norm and the smaller side is cheaper.
    input_side = size is not None or K.shape[1] <= K.shape[0]
    first = (adjoint, K) if input_side else (K, adjoint)
    log_scale = 0.0
    current = None
    for t in range(1, n_iter + 1):
        left, right = first if t == 1 else (current, current)
        grid_h, grid_w = left.shape[-2] + right.shape[-2] - 1, left.shape[-1] + right.shape[-1] - 1
        elements = grid_h * (grid_w // 2 + 1) * left.shape[0] * max(left.shape[1], right.shape[1])
        if elements > max_elements:
            raise ValueError(
                f"zero_padding_norm_bound: step {t} needs a {grid_h}x{grid_w} grid of {left.shape[0]}x{left.shape[1]} "
                f"matrices ({elements} complex numbers > max_elements = {max_elements}); pass input_size to crop the "
                "kernel to the image, lower n_iter, or raise max_elements"
            )
        current = _crop_centered(_compose_fft(left, right), size)
        log_scale = (log_scale if t == 1 else 2 * log_scale)
        norm = float(torch.linalg.vector_norm(current))
        current = current / norm
        log_scale += math.log(norm)
        taps = torch.linalg.vector_norm(current, dim=(0, 1)).sum()
        best = min(best, math.exp((log_scale + math.log(float(taps))) / 2**t))
    return best


def _one_lipschitz_types() -> tuple[type, ...]:
    from .activations import GroupSort
    from .downsample import InvertibleDownsampling

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
    ``(H + kh - 1, W + kw - 1)`` (no wrap-around reaches the window; REFERENCES.md), or the exact
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
    from .bcop import BCOP
    from .cayley import CayleyConv
    from .downsample import InvertibleDownsampling, StridedBCOP
    from .linear import OrthogonalLinear

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


def _margins(logits: Tensor, labels: Tensor) -> Tensor:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[1] < 2:
        shape = getattr(logits, "shape", logits)
        raise ValueError(f"logits must be a (N, classes) tensor with at least 2 classes, got {shape}")
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        shape = getattr(labels, "shape", labels)
        raise ValueError(f"labels must be a 1-D tensor of length N = {logits.shape[0]}, got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        low, high = int(labels.min()), int(labels.max())
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got range [{low}, {high}]")
    logits = logits.detach()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], -math.inf).max(dim=1).values
    return true - others


def _check_lipschitz(lipschitz) -> float:
    try:
        value = float(lipschitz)
    except (TypeError, ValueError):
        raise TypeError(f"lipschitz must be a number, got {type(lipschitz).__name__}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"lipschitz must be positive and finite, got {lipschitz!r}")
    return value


def certified_radii(logits: Tensor, labels: Tensor, lipschitz) -> Tensor:
    """Per-example certified L2 radius ``max(margin, 0) / (sqrt(2) L)``.

    ``margin = f_y(x) - max_{j != y} f_j(x)``; an ``L``-Lipschitz network keeps the prediction ``y`` for
    every ``x'`` with ``||x' - x|| < radius`` (the prediction is certified at ``eps`` iff
    ``margin > sqrt(2) eps L``, Li et al. 2019). Misclassified examples get radius 0.
    """
    L = _check_lipschitz(lipschitz)
    return _margins(logits, labels).clamp_min(0) / (math.sqrt(2) * L)


def certified_accuracy(logits: Tensor, labels: Tensor, lipschitz, eps: float) -> float:
    """The fraction of examples with ``margin > sqrt(2) eps L``: correctly classified and certified at
    L2 radius ``eps`` (``eps = 0`` gives the clean accuracy)."""
    L = _check_lipschitz(lipschitz)
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"eps must be a number, got {type(eps).__name__}") from None
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be non-negative and finite, got {eps!r}")
    margins = _margins(logits, labels)
    if margins.numel() == 0:
        raise ValueError("certified_accuracy needs at least one example")
    return float((margins > math.sqrt(2) * eps * L).to(torch.float64).mean())
