"""Reading weight files safely: torch (zip or legacy, ``weights_only=True``), safetensors, numpy.

Every failure is a :class:`CheckpointError` whose message is one line naming the file and the reason
(empty, truncated, text, a pickled whole ``nn.Module``, an unknown suffix). No code stored in a file runs.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

TORCH_SUFFIXES = (".pth.tar", ".pt", ".pth", ".bin", ".ckpt")
SUFFIXES = (*TORCH_SUFFIXES, ".safetensors", ".npy", ".npz")
_MODULE_MARKERS = {"_modules", "_parameters", "_buffers", "_forward_hooks"}


class CheckpointError(ValueError):
    """The file cannot be read as weights; the message is one line."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), path.suffix.lower())


def _pickles(path: Path) -> list[bytes]:
    """The pickle streams of a torch file (``data.pkl`` of a zip, or the legacy file's consecutive pickles)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(n) for n in archive.namelist() if n.endswith("data.pkl")]
    return [path.read_bytes()]


def _pickled_module(path: Path) -> bool:
    """Whether the pickle holds an ``nn.Module``: a ``torch.nn.modules`` class, or a module's own state
    (``_modules``, ``_parameters``, ...), read from the opcodes without unpickling anything."""
    try:
        for data in _pickles(path):
            stream = io.BytesIO(data)
            while stream.tell() < len(data):
                for op, arg, _ in pickletools.genops(stream):
                    if isinstance(arg, str) and (arg in _MODULE_MARKERS or arg.startswith("torch.nn.modules")):
                        return True
    except Exception:  # a broken stream is reported by torch.load's own message
        return False
    return False


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _looks_like_text(path: Path) -> bool:
    head = path.read_bytes()[:4096]
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_torch(path: Path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if _pickled_module(path):
            raise CheckpointError(f"{path} holds a pickled nn.Module, which cannot be loaded safely "
                                  "(weights_only=True): save model.state_dict() instead") from None
        if zipfile.is_zipfile(path) or path.read_bytes()[:2] == b"PK":
            reason = "a truncated or damaged torch zip archive"
        elif _looks_like_text(path):
            reason = "a text file, not saved weights"
        elif isinstance(err, pickle.UnpicklingError) and "load key" in str(err):
            reason = "not a torch file (another format)"
        else:
            reason = f"not a state_dict or checkpoint torch.load can read safely ({_first_line(err)})"
        raise CheckpointError(f"{path}: {reason}") from None


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({_first_line(err)})") from None


def _read_numpy(path: Path, suffix: str):
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CheckpointError(f"{path}: not a plain {suffix} file ({_first_line(err)})") from None
    if suffix == ".npy":
        return {path.name[: -len(suffix)]: _tensor(loaded, path)}
    with loaded:
        try:
            return {name: _tensor(loaded[name], path) for name in loaded.files}
        except (ValueError, OSError, EOFError) as err:
            raise CheckpointError(f"{path}: a damaged .npz archive ({_first_line(err)})") from None


def _tensor(array: np.ndarray, path: Path):
    if array.dtype.kind not in "fiub":
        raise CheckpointError(f"{path}: arrays of dtype {array.dtype} are not weights")
    return torch.from_numpy(np.ascontiguousarray(array))


def read_weights(path) -> object:
    """The content of ``path``: a tensor, a dict of tensors, or a checkpoint (nested dicts and lists)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty")
    suffix = _suffix(path)
    if suffix in TORCH_SUFFIXES:
        return _read_torch(path)
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix in (".npy", ".npz"):
        return _read_numpy(path, suffix)
    raise CheckpointError(f"{path}: expected one of {', '.join(SUFFIXES)}")
