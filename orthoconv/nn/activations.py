"""Gradient-norm-preserving activations.

GroupSort (Anil, Lucas, Grosse, ICML 2019) sorts the channels within consecutive groups; on every
input it acts as a permutation, so its Jacobian is orthogonal almost everywhere and it preserves
the gradient norm. MaxMin is GroupSort with groups of two.
"""

from __future__ import annotations

from torch import Tensor, nn


class GroupSort(nn.Module):
    """Sort (descending) each group of ``group_size`` consecutive entries along ``dim`` (channels)."""

    def __init__(self, group_size: int = 2, dim: int = 1) -> None:
        super().__init__()
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
        self.group_size = group_size
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim % x.dim()
        size = x.shape[dim]
        if size % self.group_size:
            raise ValueError(f"GroupSort: dimension {self.dim} has size {size}, not a multiple of group_size={self.group_size}")
        groups = x.unflatten(dim, (size // self.group_size, self.group_size))
        return groups.sort(dim=dim + 1, descending=True).values.flatten(dim, dim + 1)

    def config(self) -> dict:
        return {"type": "GroupSort", "group_size": self.group_size, "dim": self.dim}

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, dim={self.dim}"


class MaxMin(GroupSort):
    """``(max(x_{2i}, x_{2i+1}), min(x_{2i}, x_{2i+1}))`` for each channel pair: GroupSort of size 2."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__(2, dim)

    def config(self) -> dict:
        return {"type": "MaxMin", "dim": self.dim}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
