"""Checks of the two sample sets that every Wasserstein function takes."""

from __future__ import annotations

import torch
from torch import Tensor


def check_samples(x_p: Tensor, x_q: Tensor, minimum: int = 1, equal_size: bool = False) -> None:
    """Raise unless ``x_p`` ``(N_p, *shape)`` and ``x_q`` ``(N_q, *shape)`` are finite real tensors with
    the same sample ``shape`` and at least ``minimum`` samples each (``N_p == N_q`` if ``equal_size``).

    ``TypeError`` for a non-tensor or a non-floating dtype; ``ValueError`` otherwise, naming the argument.
    """
    for name, x in (("x_p", x_p), ("x_q", x_q)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a real floating point tensor, got dtype {x.dtype}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have shape (N, *sample_shape) with at least one sample dimension, "
                             f"got {tuple(x.shape)}")
        if x.shape[0] < minimum:
            raise ValueError(f"{name} has {x.shape[0]} samples; at least {minimum} are needed")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} has non-finite entries (nan or inf)")
    if x_p.shape[1:] != x_q.shape[1:]:
        raise ValueError(f"x_p and x_q must have the same sample shape, got {tuple(x_p.shape[1:])} and "
                         f"{tuple(x_q.shape[1:])}")
    if equal_size and x_p.shape[0] != x_q.shape[0]:
        raise ValueError(f"x_p and x_q must have the same number of samples, got {x_p.shape[0]} and {x_q.shape[0]}")
