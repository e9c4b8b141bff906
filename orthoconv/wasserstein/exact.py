"""The exact Wasserstein-1 distance between two uniform empirical measures of the same size.

For ``P_n = (1/n) sum_i delta_{x_i}`` and ``Q_n = (1/n) sum_j delta_{y_j}`` the transport plans are the
``n x n`` doubly stochastic matrices divided by ``n``; the cost ``sum_ij pi_ij ||x_i - y_j||`` is linear,
so its minimum sits at a vertex of the Birkhoff polytope, a permutation (Birkhoff-von Neumann):

    W1(P_n, Q_n) = min over permutations s of (1/n) sum_i ||x_i - y_s(i)||_2,

an assignment problem solved exactly by :func:`scipy.optimize.linear_sum_assignment` (Crouse 2016) on
the float64 distance matrix. Kantorovich-Rubinstein duality makes it the supremum of
``mean f(x_i) - mean f(y_j)`` over 1-Lipschitz ``f``: no critic can exceed it on these samples.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .samples import check_samples


def distance_matrix(x_p: Tensor, x_q: Tensor) -> Tensor:
    """``D[i, j] = ||x_p[i] - x_q[j]||_2`` over the flattened samples, float64 on the CPU, ``(N_p, N_q)``.

    Computed from the differences (no ``|x|^2 + |y|^2 - 2 x.y`` expansion, which loses digits when
    two samples are close).
    """
    check_samples(x_p, x_q)
    a = x_p.detach().flatten(1).to("cpu", torch.float64)
    b = x_q.detach().flatten(1).to("cpu", torch.float64)
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def optimal_assignment(x_p: Tensor, x_q: Tensor) -> tuple[float, np.ndarray]:
    """``(W1, s)``: the exact ``W1`` (:func:`exact_w1`) and the optimal permutation ``s`` (``x_p[i]``
    travels to ``x_q[s[i]]``), an int array of length ``N``."""
    from scipy.optimize import (
        linear_sum_assignment,  # imported on use: it costs half a second
    )

    check_samples(x_p, x_q, equal_size=True)
    cost = distance_matrix(x_p, x_q).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean()), cols[np.argsort(rows)]


def exact_w1(x_p: Tensor, x_q: Tensor) -> float:
    """The exact ``W1`` in the Euclidean norm between the uniform empirical measures of ``x_p`` and ``x_q``.

    Args:
        x_p, x_q: ``(N, *shape)`` real tensors, any device and floating dtype; each sample is flattened
            and distances are taken in float64, so the result is in the units of the samples (for
            images in [0, 1], the L2 distance between images).

    Returns the minimum over permutations of the mean matched distance (module docstring), a float.
    Raises ``ValueError`` when the sample shapes differ, when the two sets have different sizes
    (the optimal plan is then not a permutation; this function does not cover it), when a set is
    empty or has non-finite entries; ``TypeError`` for non-tensors or integer dtypes.
    """
    return optimal_assignment(x_p, x_q)[0]
