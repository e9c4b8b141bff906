"""Certified robustness of Lipschitz classifiers: margins, certified radii and accuracies, their
evaluation on data, attacks (foolbox, optional) and the soundness check that confronts the two.

``lipschitz_bound`` and ``zero_padding_norm_bound`` are re-exported here, where earlier versions kept them.
"""

from ..math.bounds import zero_padding_norm_bound
from ..verify.lipschitz import lipschitz_bound
from .bound import network_lipschitz
from .evaluation import evaluate, predict
from .radii import certified_accuracy, certified_radii, margins
from .soundness import empirical_lipschitz, soundness_violations

__all__ = [
    "certified_accuracy",
    "certified_radii",
    "empirical_lipschitz",
    "evaluate",
    "lipschitz_bound",
    "margins",
    "network_lipschitz",
    "predict",
    "soundness_violations",
    "zero_padding_norm_bound",
]
