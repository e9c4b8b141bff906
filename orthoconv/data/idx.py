"""IDX files (LeCun's format of MNIST and Fashion-MNIST), plain or gzipped, read without pickle.

An IDX file is a big-endian header, then the array: two zero bytes, a type byte (``0x08`` for
unsigned bytes, the only type these data sets use), the number of dimensions ``d``, ``d`` 32-bit
sizes, then the values in row-major order. The images of MNIST are ``(count, rows, cols)``
(magic number 2051), the labels ``(count,)`` (magic 2049). Whether a file is gzipped is read from
its first two bytes (``1f 8b``), not from its name.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .mnist5k import MissingDataError

UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"

# name -> (train images, train labels, test images, test labels); each may end in .gz
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(2)
    opener = gzip.open if head == GZIP_MAGIC else open
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path}: not a complete gzip file ({err})") from None


def read_idx(path) -> Tensor:
    """The ``uint8`` array stored in the IDX file ``path`` (gzipped or not), with the header's shape.

    Raises ``ValueError`` naming the file when the header is not an unsigned-byte IDX header or the
    data are shorter or longer than the header says.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (the first two bytes must be zero)")
    if raw[2] != UBYTE:
        raise ValueError(f"{path}: IDX type byte 0x{raw[2]:02x} is not supported (only 0x08, unsigned bytes)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ValueError(f"{path}: IDX header with {ndim} dimensions is truncated")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: the header promises {expected} values of shape {shape}, the file holds {len(raw) - header}"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(array.copy())


def find_file(folders, name: str) -> Path | None:
    """The first of ``folder/name`` or ``folder/name.gz`` that exists, or ``None``."""
    for folder in folders:
        for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx_pair(folders, images_name: str, labels_name: str, what: str) -> tuple[Tensor, Tensor]:
    """``(images (N, 1, rows, cols) uint8, labels (N,) int64)`` from the first of ``folders`` that holds them."""
    folders = list(folders)
    paths = [find_file(folders, images_name), find_file(folders, labels_name)]
    if None in paths:
        where = ", ".join(str(f) for f in folders)
        raise MissingDataError(
            f"{what}: expected {images_name}[.gz] and {labels_name}[.gz] in {where}"
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.dim() != 3 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{what}: images {tuple(images.shape)} ({paths[0].name}) and labels {tuple(labels.shape)} "
            f"({paths[1].name}) do not match: expected (N, rows, cols) and (N,)"
        )
    return images[:, None], labels.to(torch.int64)
