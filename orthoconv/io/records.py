"""What a run records about itself, and files written atomically.

Every experiment, benchmark and training run stores its arguments next to its results, with the
versions and the machine that produced them, so that a number can be traced back and rerun.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def device_name(device: torch.device | str | None = None) -> str:
    """A readable name of ``device``: the GPU's product name for CUDA, the CPU architecture otherwise."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where the system has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_metadata(arguments: Mapping | object | None = None, device=None) -> dict:
    """Arguments (an ``argparse.Namespace`` or a mapping), versions, device, threads, load and time."""
    from .. import __version__

    if arguments is not None and not isinstance(arguments, Mapping):
        arguments = {k: v for k, v in vars(arguments).items() if not callable(v)}
    return {
        "arguments": _jsonable(arguments or {}),
        "argv": sys.argv,
        "orthoconv": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def atomic_write(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A reader never sees a half-written file: the rename is atomic on POSIX and Windows. The folder
    must exist (no folder is created silently for a mistyped path).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of {path} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(data), indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_checkpoint(obj, path) -> Path:
    """``torch.save(obj, path)`` atomically; load it back with ``torch.load(path, weights_only=True)``."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
