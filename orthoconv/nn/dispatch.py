"""Counting what a computation asks of the device: aten operations and host synchronizations.

Every aten operation that reaches a device is at least one kernel launch on a GPU; a host
synchronization (``bool(tensor)``, ``.item()``, ``float(tensor)``, ``torch.nonzero``, ``tensor.tolist()``)
makes the host wait until the device's queue has drained. :func:`count_dispatch` counts both below
autograd with a ``TorchDispatchMode``, so it measures the same thing on the CPU as on CUDA (the
operations are decided by Python and by autograd, not by the device): ``ops`` counts every aten call,
views included; ``syncs`` counts the calls whose result the host must read (:data:`SYNC_OPS`).

    with count_dispatch() as count:
        loss = model(x).square().mean()
        loss.backward()
    count.ops, count.syncs, count.names  # names: Counter of aten op names
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

SYNC_OPS = frozenset(
    {
        aten._local_scalar_dense.default,  # .item(), bool(), float(), int()
        aten.item.default,
        aten.is_nonzero.default,
        aten.equal.default,
        aten.nonzero.default,
        aten.nonzero_static.default,
        aten.masked_select.default,
        aten.unique_dim.default,
        aten._unique2.default,
        aten.unique_consecutive.default,
        aten.repeat_interleave.Tensor,
        aten.allclose.default,
        aten._linalg_check_errors.default,  # reads the info of a LAPACK/cuSOLVER call (solve, eigh, svd, cholesky, inv)
    }
)


@dataclass
class DispatchCount:
    """Counts of one :func:`count_dispatch` block."""

    names: Counter = field(default_factory=Counter)
    sync_names: Counter = field(default_factory=Counter)

    @property
    def ops(self) -> int:
        """aten operations dispatched (views included)."""
        return sum(self.names.values())

    @property
    def syncs(self) -> int:
        """Host synchronizations: the operations of :data:`SYNC_OPS`."""
        return sum(self.sync_names.values())


class _Counter(TorchDispatchMode):
    def __init__(self, count: DispatchCount) -> None:
        super().__init__()
        self.count = count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket.__name__)
        self.count.names[name] += 1
        if func in SYNC_OPS:
            self.count.sync_names[name] += 1
        return func(*args, **(kwargs or {}))


class count_dispatch:
    """Context manager counting aten operations and host synchronizations (:class:`DispatchCount`)."""

    def __init__(self) -> None:
        self.count = DispatchCount()
        self._mode = _Counter(self.count)

    def __enter__(self) -> DispatchCount:
        self._mode.__enter__()
        return self.count

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)
