"""Progress bars for long runs: ``tqdm`` on a terminal, silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm.auto import tqdm


def progress(items: Iterable | None = None, total: int | None = None, label: str = "", enabled: bool | None = None):
    """``tqdm(items, total, desc=label)`` writing to stderr.

    ``enabled=None`` (default) shows the bar only when stderr is a terminal, so logs and pipes get no
    carriage returns; ``False`` always hides it. Usable as an iterator or, with ``items=None`` and a
    ``total``, as a manual bar (``bar.update(n)``, ``bar.set_postfix(...)``).
    """
    show = sys.stderr.isatty() if enabled is None else bool(enabled)
    return tqdm(items, total=total, desc=label or None, disable=not show, file=sys.stderr, dynamic_ncols=True)
