"""Read convolution kernels out of saved files for ``orthoconv verify``.

A ``.pt``/``.pth`` file holds a ``state_dict`` or a checkpoint dict with one (under any key whose
value is a dict of tensors, e.g. ``"state_dict"`` or ``"model"``); it is loaded with
``torch.load(weights_only=True)``, so no code in the file runs. Every 4-D floating point tensor is a
kernel, except the parameters of a BCOP layer, whose kernel is rebuilt from them and the layer
config the BCOP ``state_dict`` carries. A ``.npy`` file holds one 4-D kernel.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..nn.bcop import BCOP

EXTRA = "_extra_state"


class CheckpointError(ValueError):
    """The file cannot be read as a kernel or a state dict of kernels."""


def _find_state_dict(obj) -> dict:
    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) or k.endswith(EXTRA) for k, v in obj.items()):
        return obj
    if isinstance(obj, dict):
        for value in obj.values():
            if isinstance(value, dict):
                try:
                    return _find_state_dict(value)
                except CheckpointError:
                    continue
    raise CheckpointError("the file holds no state_dict (a dict of tensors), nor a checkpoint dict with one")


def _bcop_kernels(state: dict) -> tuple[dict[str, Tensor], set[str]]:
    kernels, used = {}, set()
    for key, config in state.items():
        if not key.endswith(EXTRA) or not isinstance(config, dict) or config.get("type") != "BCOP":
            continue
        prefix = key[: -len(EXTRA)]
        h, pq = state[prefix + "h_param"], state[prefix + "pq_param"]
        args = {k: v for k, v in config.items() if k != "type"}
        layer = BCOP(**args, bias=False, device=h.device, dtype=h.dtype)
        layer.load_state_dict({"h_param": h, "pq_param": pq, EXTRA: config})
        with torch.no_grad():
            kernels[prefix + "kernel()"] = layer.kernel()
        used |= {prefix + "h_param", prefix + "pq_param"}
    return kernels, used


def load_kernels(path) -> dict[str, Tensor]:
    """Name -> 4-D kernel for every convolution kernel stored in ``path`` (.pt, .pth or .npy)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise CheckpointError(f"{path} is not a plain .npy array: {err}") from None
        if array.ndim != 4 or not np.issubdtype(array.dtype, np.floating):
            raise CheckpointError(f"{path} must hold a 4-D float kernel (c_out, c_in, kh, kw), got {array.dtype} {array.shape}")
        return {path.stem: torch.from_numpy(array)}
    if path.suffix not in (".pt", ".pth"):
        raise CheckpointError(f"{path}: expected a .pt, .pth or .npy file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a state_dict or checkpoint torch.load can read safely: {first}") from None
    if isinstance(obj, Tensor):
        obj = {path.stem: obj}
    state = _find_state_dict(obj)
    kernels, used = _bcop_kernels(state)
    for name, value in state.items():
        if name not in used and isinstance(value, Tensor) and value.dim() == 4 and value.is_floating_point():
            kernels[name] = value
    if not kernels:
        raise CheckpointError(f"{path} holds no 4-D convolution kernel")
    return kernels
