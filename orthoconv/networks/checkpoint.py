"""Networks saved with how they were built, and rebuilt from the file alone.

A network checkpoint is a dict (``torch.save``, written atomically, read with ``weights_only=True``):
``{"format": FORMAT, "network": spec, "state_dict": ...}`` where ``spec`` holds the keyword
arguments of :func:`orthoconv.networks.build` (plain JSON types). Training checkpoints add their own
keys beside these, so :func:`load` reads both.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..io import save_checkpoint
from .architectures import LipschitzNetwork, build

FORMAT = "orthoconv.network/1"


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper, else ``model``."""
    return getattr(model, "module", model)


def network_record(model: nn.Module) -> dict:
    """``{"format", "network", "state_dict"}`` of a :class:`LipschitzNetwork` (tensors copied to the CPU)."""
    model = unwrap(model)
    if not isinstance(model, LipschitzNetwork):
        raise TypeError(f"model must be a LipschitzNetwork from orthoconv.networks.build, got {type(model).__name__}")
    state = {k: v.detach().cpu().clone() if torch.is_tensor(v) else v for k, v in model.state_dict().items()}
    return {"format": FORMAT, "network": dict(model.spec), "state_dict": state}


def save(model: nn.Module, path, **extra) -> Path:
    """Write ``network_record(model)`` and the keys of ``extra`` to ``path`` atomically."""
    return save_checkpoint({**network_record(model), **extra}, path)


def read_record(path, map_location="cpu") -> dict:
    """The checkpoint dict at ``path`` (``weights_only=True``); ``ValueError`` unless it holds a network."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle / zip errors have many types; say which file and why in one line
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path}: not an orthoconv network checkpoint (format {FORMAT!r} expected, found {found!r})")
    return record


def load(path, map_location="cpu") -> LipschitzNetwork:
    """The network saved at ``path``: rebuilt from its ``spec``, its state loaded strictly, in eval mode."""
    record = read_record(path, map_location)
    model = build(**record["network"])
    model.load_state_dict(record["state_dict"])
    return model.to(map_location).eval()
