"""Explicit kernel caching: ``with orthoconv.nn.cached(): ...`` builds each layer's kernel once.

No layer caches on its own. A kernel is a function of the parameters' current values, and
optimizer steps, ``Tensor.data`` writes, ``copy_``, ``load_state_dict``, reassignment,
``torch.nn.utils.vector_to_parameters`` and ``.to()`` all change those values, some without a
trace any cache key could see (``Tensor.data`` does not share the version counter). So, as with
``torch.nn.utils.parametrize.cached()``, reuse happens only where the user asks for it: inside
``cached()`` each layer builds its kernel (and the other tensors it derives from its parameters,
e.g. CayleyConv's transfer matrices or SOC's skew kernel) on first use and reuses it until the
outermost ``cached()`` exits: parameter changes made INSIDE the block are not seen (except by
SVCM, whose kernel is its parameter itself). Use it for
evaluation loops and for several forwards with the same weights; the kernels are built with the
grad mode of their first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn

_depth = 0
_store: dict[tuple[nn.Module, str], Tensor] = {}


@contextmanager
def cached() -> Iterator[None]:
    """Within the block, every orthoconv layer builds its kernel once and reuses it (nestable)."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _store.clear()


def cached_build(module: nn.Module, name: str, build: Callable[[], Tensor]) -> Tensor:
    """``build()``, or inside :func:`cached` the value built for ``(module, name)`` in this block."""
    if _depth == 0:
        return build()
    key = (module, name)
    if key not in _store:
        _store[key] = build()
    return _store[key]
