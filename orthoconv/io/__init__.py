"""Recording results: tables for people, JSON for machines, progress bars, atomic files, run metadata."""

from .progress import progress
from .records import (
    atomic_write,
    device_name,
    load_average,
    run_metadata,
    save_checkpoint,
    write_json,
)
from .table import format_table

__all__ = [
    "atomic_write",
    "device_name",
    "format_table",
    "load_average",
    "progress",
    "run_metadata",
    "save_checkpoint",
    "write_json",
]
