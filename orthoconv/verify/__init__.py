"""Verification: measured orthogonality of layers and kernels, certified Lipschitz bounds of whole models
(``check_model``), checkpoint reading and the report of ``orthoconv report``."""

from .lipschitz import lipschitz_bound
from .model import LayerReport, ModelReport, check_model
from .orthogonality import (
    OrthogonalityReport,
    check_orthogonal,
    default_tolerance,
    gradient_norm_ratio,
    isometry_kind,
)

__all__ = [
    "LayerReport",
    "ModelReport",
    "OrthogonalityReport",
    "check_model",
    "check_orthogonal",
    "default_tolerance",
    "gradient_norm_ratio",
    "isometry_kind",
    "lipschitz_bound",
]
