"""Precision of the kernel computations: full precision under autocast, float32 for half parameters.

A layer's kernel is an exact construction (QR, projector products, FFTs, solves) whose guarantee
lives in the rounding of its dtype: built in bfloat16 under ``torch.autocast`` a BCOP kernel deviates
from orthogonality by 1.2e-2. So every kernel is built with autocast disabled, in the parameters'
precision, and float16/bfloat16 parameters are promoted to float32 for the construction; the kernel
is then rounded to the parameters' dtype. Only the convolution itself runs in low precision (under
autocast, or for a half-precision layer).

Kernel checks without host synchronization. Every layer guards what it builds with :func:`check_finite`
(no nan or inf) or :func:`check_true` (a 0-d boolean condition, e.g. CayleyConv's unitarity). Reading a
device tensor's value on the host (``bool(condition)``) would make the host wait for the GPU's queue to
drain at every layer, so inside a layer's forward (and therefore its backward) a check never reads:

1. **Poison**: the checked tensor comes back as ``tensor / condition`` (``x / True = x``; ``x / False`` is nan
   or inf), so a kernel that fails a check is non-finite everywhere and so is every output built from it
   (its gradients too): nothing silently wrong leaves the layer, whatever reads it later.
2. **Record**: the condition is AND-ed into a 0-d boolean flag on the device, one per message (an in-place
   device operation, capturable in a CUDA graph). :func:`raise_failed_checks` reads every flag in one
   transfer and raises ``ValueError(message)`` (the layer's name and what failed) for the first failed
   one; orthoconv's training loop calls it where it reads the loss anyway, and so can any loop.
3. **Outside a forward** (``layer.kernel()``, ``lipschitz_bound()``, ``to_conv2d()``,
   ``check_orthogonal(layer)`` called by the user, where the host is about to read the values anyway)
   and in **strict mode** (``with orthoconv.nn.strict_checks(): ...``, the analogue of
   ``torch.autograd.detect_anomaly``), a check reads its condition at once and raises the named error at
   the layer that failed (one synchronization per check).
4. **Under torch.compile / torch.export**: the poison only (a data-dependent branch, or a global flag,
   would break the graph), plus ``torch._assert_async`` on the CPU, where its message survives; the
   output of a compiled layer that fails a check is non-finite. Inside ``torch.func`` transforms (``vmap``,
   ``jvp``, ``grad``), which can neither read nor record a value: the poison only. On ``meta`` tensors
   nothing is checked.

A layer is "in a forward" while its ``__call__`` runs (:func:`in_forward`, entered by
:class:`orthoconv.nn.base.Configurable`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from ..math import _autocast

HALF_DTYPES = (torch.float16, torch.bfloat16)


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16, else ``dtype`` itself."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def promote(tensor: Tensor) -> Tensor:
    """``tensor`` in its working dtype (differentiable)."""
    return tensor.to(working_dtype(tensor.dtype))


def full_precision(device: torch.device):
    """A context in which autocast is off on ``device`` (a no-op where autocast does not exist)."""
    if _autocast.autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def autocast_enabled(device: torch.device) -> bool:
    return _autocast.autocast_enabled(device.type)


_strict = False
_forward_depth = 0
_passed: dict[tuple[str, torch.device], Tensor] = {}  # per message: every deferred check passed


@contextlib.contextmanager
def strict_checks(enabled: bool = True) -> Iterator[None]:
    """Within the block, every kernel check reads its condition at once and raises the named ``ValueError``
    where it fails (one host synchronization per check: for debugging, like ``torch.autograd.detect_anomaly``)."""
    global _strict
    previous, _strict = _strict, bool(enabled)
    try:
        yield
    finally:
        _strict = previous


@contextlib.contextmanager
def in_forward() -> Iterator[None]:
    """Marks a layer's forward: checks inside it are deferred (poison and record, no synchronization)."""
    global _forward_depth
    _forward_depth += 1
    try:
        yield
    finally:
        _forward_depth -= 1


def raise_failed_checks() -> None:
    """Raise ``ValueError`` naming the first kernel check that failed inside a forward since the last call
    (the layer and what failed; the count of other failures), and forget the failures.

    One host synchronization per device that has flags: call it where the host reads values anyway (a
    loss, a metric). A no-op when no check was ever recorded.
    """
    if not _passed:
        return
    keys = list(_passed)
    failed = []
    for device in {device for _, device in keys}:
        mine = [key for key in keys if key[1] == device]
        passed = torch.stack([_passed[key] for key in mine]).tolist()
        failed += [key[0] for key, ok in zip(mine, passed) if not ok]
        for key in mine:
            _passed[key].fill_(True)
    if failed:
        others = f" (and {len(failed) - 1} other failed check(s))" if len(failed) > 1 else ""
        raise ValueError(failed[0] + others)


def _record(condition: Tensor, message: str) -> None:
    key = (message, condition.device)
    flag = _passed.get(key)
    if flag is None:
        _passed[key] = condition.clone()
    else:
        flag.logical_and_(condition)


def check_true(condition: Tensor, message: str, tensor: Tensor | None = None) -> Tensor | None:
    """``tensor`` if the 0-d boolean ``condition`` holds; where it does not, ``tensor`` poisoned (nan or inf in
    every entry) and ``ValueError(message)`` raised at once (outside a forward, in :func:`strict_checks`) or by
    the next :func:`raise_failed_checks` (inside a forward: no host synchronization). See the module docstring.

    ``message`` names the layer and what failed. Returns ``tensor`` (``None`` if none is given); use the
    returned tensor, the poisoned one.
    """
    if condition.device.type == "meta":
        return tensor
    if torch.compiler.is_compiling():
        if condition.device.type == "cpu":
            torch._assert_async(condition, message)
    elif torch._C._functorch.is_functorch_wrapped_tensor(condition):
        pass  # inside torch.func's transforms (vmap, jvp, grad) a value can neither be read nor recorded: poison only
    elif _strict or _forward_depth == 0:
        if not bool(condition):
            raise ValueError(message)
        return tensor
    else:
        _record(condition, message)
    return None if tensor is None else tensor / condition  # x / True = x; x / False = nan or inf, everywhere


def check_finite(tensor: Tensor, message: str) -> Tensor:
    """``tensor``, checked to have no nan or inf entry by :func:`check_true` (poisoned everywhere and
    ``ValueError(message)`` where it has one). Use the returned tensor."""
    return check_true((tensor * 0).sum() == 0, message, tensor)  # 0 * x is nan exactly where x is nan or inf
