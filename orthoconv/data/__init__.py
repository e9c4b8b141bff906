"""Data sets for the applications, read from files without pickle."""

from .mnist5k import MissingDataError, mnist5k_path, read_mnist5k

__all__ = ["MissingDataError", "mnist5k_path", "read_mnist5k"]
