"""Whether ``torch.autocast`` exists for a device type, answerable while ``torch.compile`` traces."""

from __future__ import annotations

import torch

# The device types with an autocast implementation in torch >= 2.2; consulted only while dynamo traces,
# where torch.amp.is_autocast_available (a C query) breaks the graph (measured: torch 2.11 on CUDA).
AUTOCAST_DEVICE_TYPES = frozenset({"cpu", "cuda", "xpu", "mps", "hpu", "mtia", "maia", "xla", "ipu"})


def autocast_available(device_type: str) -> bool:
    """``torch.amp.is_autocast_available(device_type)``; from :data:`AUTOCAST_DEVICE_TYPES` under compile."""
    if torch.compiler.is_compiling():
        return device_type in AUTOCAST_DEVICE_TYPES
    return torch.amp.is_autocast_available(device_type)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (False where it does not exist)."""
    return autocast_available(device_type) and torch.is_autocast_enabled(device_type)
