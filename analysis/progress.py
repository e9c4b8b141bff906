"""A dependency-free progress bar for long experiment loops (written to stderr)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None = None, label: str = "", enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while drawing ``label [#####.....] i/total  elapsed`` on stderr.

    Silent when ``enabled`` is false or stderr is not a terminal and no total is known.
    """
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    total = len(items) if total is None else total
    start = time.perf_counter()
    width = 30

    def draw(done: int) -> None:
        filled = width * done // max(total, 1)
        elapsed = time.perf_counter() - start
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {elapsed:6.1f}s")
        sys.stderr.flush()

    if enabled:
        draw(0)
    for done, item in enumerate(items, 1):
        yield item
        if enabled:
            draw(done)
    if enabled:
        sys.stderr.write("\n")
        sys.stderr.flush()
