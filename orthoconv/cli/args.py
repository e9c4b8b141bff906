"""argparse pieces shared by every command: a parser whose errors are one line, and checked types.

Every user error names the argument and exits 2 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``PROG: error: MESSAGE``, and exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fail(prog: str, message: str) -> int:
    """Print ``PROG: error: MESSAGE`` (first line only) on stderr; return the exit status 2."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else "failed"
    print(f"{prog}: error: {first}", file=sys.stderr)
    return 2


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


SEED_LIMIT = 2**32 - 1


def seed(text: str) -> int:
    """argparse type: a seed, an integer in [0, 2**32 - 1] (torch's and numpy's generators take it, and
    the seeds derived from it stay in range)."""
    value = _integer(text, 0, f"a seed, an integer in [0, {SEED_LIMIT}]")
    if value > SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a seed, an integer in [0, {SEED_LIMIT}], got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer")


def positive_float(text: str) -> float:
    """argparse type: a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def dtype(name: str):
    """argparse type: ``float32`` or ``float64`` as a torch dtype."""
    import torch

    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if name not in dtypes:
        raise argparse.ArgumentTypeError(f"expected one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def device(text: str) -> str:
    """argparse type: a torch device that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu or cuda, got {text!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or mps, got {text!r}")
    return text


def output_file(text: str) -> Path:
    """argparse type: a file path whose folder exists (nothing is created for a mistyped folder)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {str(path.parent)!r} does not exist")
    return path


def output_folder(text: str) -> Path:
    """argparse type: a folder to write into (created later; an existing file there is refused)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; expected a folder")
    return path


def input_file(text: str) -> Path:
    """argparse type: an existing file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file (e.g. {text}/model.pt)")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path
