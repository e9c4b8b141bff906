"""Certified robustness of Lipschitz classifiers: margins, certified radii and accuracies.

``lipschitz_bound`` and ``zero_padding_norm_bound`` are re-exported here, where earlier versions kept them.
"""

from ..math.bounds import zero_padding_norm_bound
from ..verify.lipschitz import lipschitz_bound
from .radii import certified_accuracy, certified_radii

__all__ = ["certified_accuracy", "certified_radii", "lipschitz_bound", "zero_padding_norm_bound"]
