"""Verification: measured orthogonality of layers and kernels, certified Lipschitz bounds of models,
checkpoint reading and the report of ``orthoconv report``."""

from .lipschitz import lipschitz_bound
from .orthogonality import (
    OrthogonalityReport,
    check_orthogonal,
    default_tolerance,
    gradient_norm_ratio,
    isometry_kind,
)

__all__ = [
    "OrthogonalityReport",
    "check_orthogonal",
    "default_tolerance",
    "gradient_norm_ratio",
    "isometry_kind",
    "lipschitz_bound",
]
