"""orthoconv's data folder: where ``orthoconv data get`` writes and ``load(name)`` looks without ``data_dir``.

``$ORTHOCONV_DATA`` when set; otherwise the per-user cache folder of the platform (the XDG base
directory rules on Linux: ``$XDG_CACHE_HOME/orthoconv``, else ``~/.cache/orthoconv``;
``~/Library/Caches/orthoconv`` on macOS; ``%LOCALAPPDATA%\\orthoconv\\Cache`` on Windows). Each data
set has its own subfolder, named like the data set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENVIRONMENT_VARIABLE = "ORTHOCONV_DATA"


def data_home() -> Path:
    """The data folder (module docstring); it is not created here."""
    chosen = os.environ.get(ENVIRONMENT_VARIABLE)
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return (Path(local) if local else Path.home() / "AppData" / "Local") / "orthoconv" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "orthoconv"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"  # relative: ignored (XDG)
    return base / "orthoconv"


def dataset_folder(name: str) -> Path:
    """``data_home() / name``: where the data set ``name`` is kept."""
    return data_home() / name
