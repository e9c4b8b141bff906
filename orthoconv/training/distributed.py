"""Data-parallel training across processes started by ``torchrun --nproc_per_node N``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in every process; :func:`setup` reads
them and joins the process group (``gloo`` on CPU, ``nccl`` on CUDA, where each process takes the
GPU ``LOCAL_RANK``). Without them it is one process and nothing is initialized. Every process draws
the same global batch and keeps the slice ``batch[rank::world_size]``; the trainer scales each local
loss sum by ``world_size / global_batch`` so that DDP's gradient average equals the gradient of the
mean loss over the global batch, as one process would compute it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size`` and the device it computes on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_sum(self, values: list[float]) -> list[float]:
        """The sums over processes of ``values`` (float64), the values themselves in one process."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def setup(device: str = "cpu") -> Context:
    """Join the ``torchrun`` process group if there is one; the device is ``device`` (``cuda`` becomes
    ``cuda:LOCAL_RANK`` in a group)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    dev = torch.device(device)
    if world > 1:
        if dev.type == "cuda":
            dev = torch.device("cuda", _env_int("LOCAL_RANK", 0))
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, dev)


def teardown(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
