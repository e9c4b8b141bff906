"""Exact norms of average pooling and Lipschitz bounds of max pooling, in 1, 2 and 3 dimensions.

Average pooling (``nn.AvgPoolNd``, ``nn.AdaptiveAvgPoolNd``) is linear and acts on each channel alike
with a separable matrix: the divisor of a window is the product of its extents along each axis
(``count_include_pad``, ``ceil_mode`` and ``divisor_override`` included, as in PyTorch's kernels), so
the operator is ``I_C (x) A_1 (x) ... (x) A_d`` and its singular values are the products of those of the
small 1-D matrices ``A_i``: exact, whatever the image size.

Max pooling: each output is the max over its window, and ``|max a - max b| <= max |a - b|``, so
``||f(x) - f(y)||^2 <= sum_windows ||(x - y)|_window||^2 <= m ||x - y||^2`` with ``m`` the largest
number of windows that contain one pixel (the product of the per-axis counts): ``Lip <= sqrt(m)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _tuple(value, d: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * d


def pool_output_length(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape``: the last window must start inside the input or left padding."""
    span = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = span // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def avg_pool_matrix_1d(n: int, k: int, s: int, p: int, ceil_mode: bool, count_include_pad: bool,
                       summed: bool = False) -> torch.Tensor:
    """The ``(out, n)`` matrix of 1-D average pooling along one axis (``summed``: window sums, for a
    ``divisor_override``)."""
    out = pool_output_length(n, k, s, p, 1, ceil_mode)
    A = torch.zeros(out, n, dtype=torch.float64)
    for o in range(out):
        start = o * s - p
        end = min(start + k, n + p)
        size = end - start
        start, end = max(start, 0), min(end, n)
        if start < end:
            A[o, start:end] = 1.0 if summed else 1.0 / (size if count_include_pad else end - start)
    return A


def adaptive_avg_matrix_1d(n: int, out: int) -> torch.Tensor:
    """The ``(out, n)`` matrix of adaptive average pooling: window ``[floor(i n / out), ceil((i + 1) n / out))``."""
    A = torch.zeros(out, n, dtype=torch.float64)
    for i in range(out):
        start, end = (i * n) // out, -((-(i + 1) * n) // out)
        A[i, start:end] = 1.0 / (end - start)
    return A


def _kron_extremes(matrices: list[torch.Tensor]) -> tuple[float, float]:
    """``(sigma_min, sigma_max)`` of ``A_1 (x) ... (x) A_d`` over its ``min(rows, cols)`` singular values."""
    sigma = [torch.linalg.svdvals(A) for A in matrices]
    rows = math.prod(A.shape[0] for A in matrices)
    cols = math.prod(A.shape[1] for A in matrices)
    full_rank = math.prod(len(s) for s in sigma) == min(rows, cols)
    lowest = math.prod(float(s.min()) for s in sigma) if full_rank else 0.0
    return lowest, math.prod(float(s.max()) for s in sigma)


def avg_pool_singular_range(module: nn.Module, spatial: tuple[int, ...]) -> tuple[float, float, tuple[int, ...]]:
    """Exact ``(sigma_min, sigma_max, output spatial size)`` of an ``AvgPoolNd`` / ``AdaptiveAvgPoolNd``."""
    d = len(spatial)
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        sizes = _tuple(module.output_size, d)
        sizes = tuple(n if o is None else o for n, o in zip(spatial, sizes))
        matrices = [adaptive_avg_matrix_1d(n, o) for n, o in zip(spatial, sizes)]
        low, high = _kron_extremes(matrices)
        return low, high, sizes
    k, p = _tuple(module.kernel_size, d), _tuple(module.padding, d)
    s = _tuple(module.stride if module.stride not in (None, ()) else module.kernel_size, d)
    override = getattr(module, "divisor_override", None)
    include = getattr(module, "count_include_pad", True)
    matrices = [avg_pool_matrix_1d(n, *args, module.ceil_mode, include, summed=override is not None)
                for n, *args in zip(spatial, k, s, p)]
    low, high = _kron_extremes(matrices)
    scale = 1.0 / override if override is not None else 1.0
    return low * scale, high * scale, tuple(A.shape[0] for A in matrices)


def _window_counts_1d(n: int, starts: list[int], taps: list[list[int]]) -> int:
    counts = [0] * n
    for start, offsets in zip(starts, taps):
        for t in offsets:
            if 0 <= start + t < n:
                counts[start + t] += 1
    return max(counts) if counts else 0


def max_pool_lipschitz(module: nn.Module, spatial: tuple[int, ...]) -> tuple[float, tuple[int, ...]]:
    """``(sqrt(m), output spatial size)`` of a ``MaxPoolNd`` / ``AdaptiveMaxPoolNd`` (module docstring)."""
    d = len(spatial)
    most, sizes = 1, []
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
        outs = _tuple(module.output_size, d)
        for n, o in zip(spatial, outs):
            o = n if o is None else o
            starts = [(i * n) // o for i in range(o)]
            taps = [list(range(-((-(i + 1) * n) // o) - (i * n) // o)) for i in range(o)]
            most *= _window_counts_1d(n, starts, taps)
            sizes.append(o)
        return math.sqrt(most), tuple(sizes)
    k, p, dil = _tuple(module.kernel_size, d), _tuple(module.padding, d), _tuple(module.dilation, d)
    s = _tuple(module.stride if module.stride not in (None, ()) else module.kernel_size, d)
    for n, kk, ss, pp, dd in zip(spatial, k, s, p, dil):
        out = pool_output_length(n, kk, ss, pp, dd, module.ceil_mode)
        starts = [o * ss - pp for o in range(out)]
        most *= _window_counts_1d(n, starts, [[j * dd for j in range(kk)]] * out)
        sizes.append(out)
    return math.sqrt(most), tuple(sizes)
