"""Fixed (parameter-free) pieces of Lipschitz networks, each with its exact Lipschitz constant.

Every module here has ``lipschitz_bound()`` (L2 to L2); :func:`orthoconv.verify.check_model` bounds
them by the same facts:

- :class:`Normalize` ``y = (x - mean) / std`` per channel: a translation and a diagonal scaling,
  exactly ``1 / min(std)``. Dividing by a standard deviation below one enlarges the network's
  constant (and shrinks every certified radius) by that factor: it is counted, never hidden.
- :class:`ZeroChannelPad` (append zero channels: an isometry, 1), :class:`FirstChannels` (keep the
  first channels: an orthogonal projection, 1), both from Prach et al. (CVPR 2024).
- :class:`GlobalMaxPool` (the maximum of each channel over the image): 1, since for every channel
  ``|max a - max b| <= max |a - b| <= ||a - b||``, and squaring and summing over channels gives
  ``||P(x) - P(x')|| <= ||x - x'||``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..math.checks import positive_int


def _channel_values(values, name: str) -> Tensor:
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name} must be a number or a non-empty sequence of numbers, got {values!r}")
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite, got {list(values)}")
    return tensor


class Normalize(nn.Module):
    """``y[:, c] = (x[:, c] - mean[c]) / std[c]`` on ``(N, C, H, W)`` images; Lipschitz ``1 / min(std)``.

    Args:
        mean, std: one number or one per channel (``std > 0``); a single value applies to every channel.
    """

    def __init__(self, mean, std=1.0) -> None:
        super().__init__()
        mean, std = _channel_values(mean, "mean"), _channel_values(std, "std")
        if bool((std <= 0).any()):
            raise ValueError(f"std must be positive, got {std.tolist()}")
        if mean.numel() != std.numel() and 1 not in (mean.numel(), std.numel()):
            raise ValueError(f"mean ({mean.numel()} values) and std ({std.numel()} values) disagree on the channels")
        channels = max(mean.numel(), std.numel())
        self.register_buffer("mean", mean.expand(channels).to(torch.float32).clone()[:, None, None])
        self.register_buffer("std", std.expand(channels).to(torch.float32).clone()[:, None, None])

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"Normalize: expected (N, {self.mean.shape[0]}, H, W) images, got {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def lipschitz_bound(self) -> float:
        """``1 / min(std)``: the norm of the diagonal scaling (exact)."""
        return float(1.0 / self.std.to(torch.float64).min())

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class ZeroChannelPad(nn.Module):
    """``(N, C, ...) -> (N, channels, ...)``: the input followed by ``channels - C`` zero channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = positive_int(channels, "channels")

    def forward(self, x: Tensor) -> Tensor:
        extra = self.channels - x.shape[1]
        if extra < 0:
            raise ValueError(f"ZeroChannelPad: input has {x.shape[1]} channels, more than {self.channels}")
        return F.pad(x, (0, 0) * (x.dim() - 2) + (0, extra))

    def lipschitz_bound(self) -> float:
        return 1.0

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class FirstChannels(nn.Module):
    """``(N, C, ...) -> (N, channels, ...)``: the first ``channels`` channels (or features)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = positive_int(channels, "channels")

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] < self.channels:
            raise ValueError(f"FirstChannels: input has {x.shape[1]} channels, fewer than {self.channels}")
        return x[:, : self.channels]

    def lipschitz_bound(self) -> float:
        return 1.0

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class GlobalMaxPool(nn.Module):
    """``(N, C, H, W) -> (N, C, 1, 1)``: the maximum of each channel over the image (Lipschitz 1)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(dim=(-2, -1), keepdim=True)

    def lipschitz_bound(self) -> float:
        return 1.0
