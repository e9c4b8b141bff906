"""Wasserstein-1 estimation with certified 1-Lipschitz critics, measured against exact answers.

- :func:`estimate_w1` / :func:`estimate_w1_heldout`: train a critic on the Kantorovich-Rubinstein
  objective; the estimate is divided by the critic's certified Lipschitz bound (:func:`critic_lipschitz`).
- :func:`exact_w1`: the exact W1 between two equal-size uniform empirical measures (an assignment).
- :func:`conv_critic` (any library convolution by name) and :func:`mlp_critic`.
- :mod:`~orthoconv.wasserstein.problems`: sample sets with known W1; :func:`is_sound`.
"""

from .certificate import critic_lipschitz
from .critics import CRITIC_LAYERS, conv_critic, mlp_critic
from .estimator import W1Estimate, critic_value, estimate_w1, estimate_w1_heldout
from .exact import distance_matrix, exact_w1, optimal_assignment
from .problems import (
    Problem,
    blank_vs_square,
    gaussian_translation,
    mnist_halves,
    mnist_translation,
    square_side_w1,
    translation,
)
from .soundness import is_sound

__all__ = [
    "CRITIC_LAYERS",
    "Problem",
    "W1Estimate",
    "blank_vs_square",
    "conv_critic",
    "critic_lipschitz",
    "critic_value",
    "distance_matrix",
    "estimate_w1",
    "estimate_w1_heldout",
    "exact_w1",
    "gaussian_translation",
    "is_sound",
    "mlp_critic",
    "mnist_halves",
    "mnist_translation",
    "optimal_assignment",
    "square_side_w1",
    "translation",
]
