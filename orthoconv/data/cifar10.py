"""CIFAR-10's binary version (Krizhevsky 2009), read without pickle.

Each file is a sequence of 3,073-byte records: one label byte (0..9), then the 32 x 32 image as
1,024 red, 1,024 green and 1,024 blue bytes, each plane row-major. The training set is
``data_batch_1.bin`` .. ``data_batch_5.bin`` (10,000 records each), the test set ``test_batch.bin``;
they are found in the data folder itself or in its ``cifar-10-batches-bin`` subfolder (the layout
of the official archive).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .mnist5k import MissingDataError

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
SUBFOLDER = "cifar-10-batches-bin"


def read_cifar10_file(path) -> tuple[Tensor, Tensor]:
    """``(images (N, 3, 32, 32) uint8, labels (N,) int64)`` from one binary batch file."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"{path}: label byte {int(labels.max())} is not a CIFAR-10 class (0..9)")
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def read_cifar10(data_dir, split: str) -> tuple[Tensor, Tensor]:
    """The ``"train"`` (50,000) or ``"test"`` (10,000) images of CIFAR-10 from ``data_dir``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = TRAIN_FILES if split == "train" else TEST_FILES
    folders = [Path(data_dir), Path(data_dir) / SUBFOLDER]
    for folder in folders:
        if all((folder / name).is_file() for name in names):
            parts = [read_cifar10_file(folder / name) for name in names]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    raise MissingDataError(
        f"cifar10 {split}: expected {', '.join(names)} in {folders[0]} or {folders[1]}"
    )
