"""Data sets for the applications, read from files without pickle: ``load(name, data_dir=None, ...)``."""

from .cifar10 import read_cifar10, read_cifar10_file
from .datasets import DATASETS, Dataset, Split, load
from .idx import read_idx
from .mnist5k import MissingDataError, mnist5k_path, read_mnist5k
from .splits import stratified_split

__all__ = [
    "DATASETS",
    "Dataset",
    "MissingDataError",
    "Split",
    "load",
    "mnist5k_path",
    "read_cifar10",
    "read_cifar10_file",
    "read_idx",
    "read_mnist5k",
    "stratified_split",
]
