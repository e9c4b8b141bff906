"""Gradient-norm-preserving activations.

GroupSort (Anil, Lucas, Grosse, ICML 2019) sorts the channels within consecutive groups; on every
input it acts as a permutation, so its Jacobian is orthogonal almost everywhere and it preserves
the gradient norm. MaxMin is GroupSort with groups of two.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _PairSort(torch.autograd.Function):
    """``pairs.sort(dim, descending=True)`` over a dimension of size 2, whose permutation is its own inverse: the
    backward is one ``gather`` by the same indices (autograd's sort backward: zeros and a scatter). Not under
    ``torch.func`` transforms: torch 2.13 generates no vmap rule for a Function with an integer output."""

    @staticmethod
    def forward(pairs: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        return pairs.sort(dim=dim, descending=True)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # no zero gradient built for the indices
        ctx.save_for_backward(output[1])
        ctx.save_for_forward(output[1])
        ctx.dim = inputs[1]

    @staticmethod
    def jvp(ctx, tangent: Tensor, _dim=None) -> tuple[Tensor, None]:
        (indices,) = ctx.saved_tensors
        return tangent.gather(ctx.dim, indices), None

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_indices=None) -> tuple[Tensor, None]:
        (indices,) = ctx.saved_tensors
        return None if grad is None else grad.gather(ctx.dim, indices), None


def _transformed(x: Tensor) -> bool:
    """Under torch.compile (which fuses the sort's backward itself) or a torch.func transform: torch's own sort."""
    return torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(x)


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
        if self.group_size == 2 and not _transformed(x):
            return _PairSort.apply(groups, dim + 1)[0].flatten(dim, dim + 1)
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
