"""Machine-checked symbolic proofs (sympy) of the structure behind BCOP.

Each theorem is a module with its statement in the module docstring and a ``prove(full=False)``
function returning a :class:`proofs.result.ProofResult`; ``full=True`` extends the checked sizes.
``python -m proofs`` runs them all. References: Li, Haque, Anil, Lucas, Grosse, Jacobsen,
"Preventing Gradient Attenuation in Lipschitz Constrained Convolutional Networks", NeurIPS 2019,
arXiv 1911.00937; Kautsky & Turcajova 1994 for the 1-D paraunitary factorization.
"""

from __future__ import annotations

from . import (
    block_paraunitary,
    channel_doubling,
    circular_orthogonality,
    determinant_degree,
    disconnectedness,
    grassmannian,
    incompleteness_2d,
    two_tap_completeness,
    unfactorable_2d,
    zero_padding,
)
from .result import ProofResult

THEOREMS = [
    block_paraunitary,
    circular_orthogonality,
    determinant_degree,
    disconnectedness,
    two_tap_completeness,
    incompleteness_2d,
    unfactorable_2d,
    channel_doubling,
    grassmannian,
    zero_padding,
]


def run_all(full: bool = False) -> list[ProofResult]:
    """Prove every theorem in order; `full` extends the sizes checked."""
    return [theorem.prove(full=full) for theorem in THEOREMS]


__all__ = ["THEOREMS", "ProofResult", "run_all"]
