"""Matrix products on batches by one ``bmm``.

``A @ B`` on batched operands dispatches an ``expand`` of each, views around a ``bmm`` and a view of the result
(6 aten operations, 3 more in its backward), where one ``bmm`` on the batch stacked into a single dimension is 1:
on a GPU each operation is a kernel launch or more.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stack(A: Tensor) -> Tensor:
    """``A`` ``(..., n, m)`` as ``(b, n, m)`` (a view where the layout allows)."""
    return A.reshape(-1, *A.shape[-2:])


def matmul(A: Tensor, B: Tensor) -> Tensor:
    """``A @ B`` for ``A`` ``(..., n, k)`` and ``B`` ``(..., k, m)`` with the same batch shape (2-D: ``mm``)."""
    if A.dim() == 2 and B.dim() == 2:
        return torch.mm(A, B)
    if A.shape[:-2] != B.shape[:-2]:
        raise ValueError(f"matmul: the batch shapes differ, {tuple(A.shape)} and {tuple(B.shape)}")
    out = torch.bmm(stack(A), stack(B))
    return out if A.dim() == 3 else out.view(*A.shape[:-1], B.shape[-1])
