"""The certified Lipschitz bound of a critic: the one place the Wasserstein estimator asks for it."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..verify.lipschitz import lipschitz_bound


def critic_lipschitz(critic: nn.Module, sample_shape: Sequence[int]) -> float:
    """A certified upper bound ``L`` on the Euclidean Lipschitz constant of ``critic`` on samples of
    shape ``sample_shape`` (``(C, H, W)`` images or ``(d,)`` vectors), from the current weights.

    Today: :func:`orthoconv.verify.lipschitz_bound` of the ``nn.Sequential`` (the product of exact FFT
    norms for the orthogonal convolutions, certified norms for the others, exact matrix norms for linear
    layers, 1 for GroupSort and permutations); a vector sample is given to it as a ``1 x d`` image,
    which only matters to layers that need an image. Raises ``TypeError`` for a critic or layer it
    cannot bound.
    """
    shape = tuple(int(s) for s in sample_shape)
    size = shape[-2:] if len(shape) >= 2 else (1, shape[0])
    return float(lipschitz_bound(critic, size))
