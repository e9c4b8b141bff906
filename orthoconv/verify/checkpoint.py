"""Finding the models in a checkpoint, and rebuilding orthoconv layers from their saved configuration.

A checkpoint is any nesting of dicts and lists (``{"generator": ..., "discriminator": ...,
"optimizer": ...}``, Lightning's ``{"state_dict": ...}``, a bare state dict, one tensor). Every
``state_dict`` in it is found, named by its path (``generator``, ``models/0``); optimizer states
(``state`` + ``param_groups``) and other entries are skipped and listed, never an error.

orthoconv layers save ``config()`` as their ``_extra_state`` (``{"type": ClassName, **kwargs}``, the
contract of ``orthoconv.nn.from_config``); such a layer is rebuilt, loaded, and checked through its
``kernel()`` with its own padding mode and configuration, not its raw parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..nn import from_config
from .formats import CheckpointError, read_weights

EXTRA = "_extra_state"
_HALF = (torch.float16, torch.bfloat16)


def _is_optimizer_state(obj) -> bool:
    return isinstance(obj, Mapping) and "param_groups" in obj and "state" in obj


def _is_state_dict(obj) -> bool:
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(k, str) for k in obj):
        return False
    tensors = [v for k, v in obj.items() if not k.endswith(EXTRA)]
    return all(isinstance(v, Tensor) for v in tensors) and any(v.is_floating_point() for v in tensors)


def find_state_dicts(obj, path: str = "") -> tuple[list[tuple[str, dict]], list[str]]:
    """``([(path, state_dict), ...], [skipped path: reason, ...])`` for every state dict nested in ``obj``."""
    if isinstance(obj, Tensor):
        return [(path, {path or "tensor": obj})], []
    if _is_optimizer_state(obj):
        return [], [f"{path or '(top)'}: optimizer state"]
    if _is_state_dict(obj):
        return [(path, dict(obj))], []
    found, skipped = [], []
    if isinstance(obj, Mapping):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:
        return [], [f"{path or '(top)'}: {type(obj).__name__}"] if path else []
    for key, value in items:
        sub_found, sub_skipped = find_state_dicts(value, f"{path}/{key}" if path else key)
        found += sub_found
        skipped += [s for s in sub_skipped if not s.endswith((": int", ": float", ": str", ": bool", ": NoneType"))]
    return found, skipped


def load_state_dicts(path) -> tuple[list[tuple[str, dict]], list[str]]:
    """Read ``path`` (:func:`orthoconv.verify.formats.read_weights`) and find its state dicts."""
    found, skipped = find_state_dicts(read_weights(path))
    if not found:
        raise CheckpointError(f"{path} holds no state_dict (a dict of tensors) and no weight tensor")
    return found, skipped


def _configs(state: dict) -> list[tuple[str, dict]]:
    """``(prefix, config)`` of the outermost orthoconv layers (an inner layer is part of its parent)."""
    prefixes = sorted((k[: -len(EXTRA)], v) for k, v in state.items()
                      if k.endswith(EXTRA) and isinstance(v, Mapping) and isinstance(v.get("type"), str))
    outer = []
    for prefix, config in prefixes:
        if not any(prefix.startswith(p) and prefix != p for p, _ in outer):
            outer.append((prefix, dict(config)))
    return outer


def rebuild_layer(prefix: str, config: dict, state: dict) -> tuple[nn.Module, list[str], torch.dtype]:
    """Build the layer of ``config``, load its entries of ``state``; ``(layer, notes, stored dtype)``.

    Half-precision parameters: the layer is built in that dtype; where it cannot build its kernel there,
    it is built in float32 from the same (rounded) parameters, and a note says so.
    """
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    tensors = [v for v in own.values() if isinstance(v, Tensor) and v.is_floating_point()]
    dtype = tensors[0].dtype if tensors else torch.float32
    kwargs = dict(config)
    kwargs.setdefault("bias", any(k == "bias" or k.endswith(".bias") for k in own))  # StridedBCOP: conv.bias
    layer = _loaded(kwargs, own, dtype)
    sized = getattr(layer, "kernel_depends_on_size", False)  # LOT, BRO: built in float32 for half parameters
    if dtype in _HALF and callable(getattr(layer, "kernel", None)) and not sized:
        try:
            with torch.no_grad():
                layer.kernel()
        except (RuntimeError, NotImplementedError):
            name = str(dtype).split(".")[-1]
            return _loaded(kwargs, own, torch.float32), [f"kernel built in float32 from the {name} parameters"], dtype
    return layer, [], dtype


def _loaded(kwargs: dict, own: dict, dtype: torch.dtype) -> nn.Module:
    layer = from_config(kwargs).to(dtype)
    layer.load_state_dict(own, strict=True)
    return layer.eval()


def orthoconv_layers(state: dict) -> tuple[list[tuple], set[str]]:
    """Every orthoconv layer saved in ``state``: ``(prefix, config, layer or the error, notes, stored dtype)``,
    and the keys they use."""
    layers, used = [], set()
    for prefix, config in _configs(state):
        used |= {k for k in state if k.startswith(prefix)}
        try:
            layer, notes, dtype = rebuild_layer(prefix, config, state)
        except (ValueError, TypeError, RuntimeError, KeyError) as err:
            layers.append((prefix, config, err, [], None))
            continue
        layers.append((prefix, config, layer, notes, dtype))
    return layers, used
