"""The soundness check: a certified critic can never exceed the exact W1 of the samples it is scored on."""

from __future__ import annotations

import math

SOUNDNESS_RTOL = 1e-9
"""Relative allowance for float64 rounding in the critic's value and in the assignment's cost."""


def is_sound(estimate: float, exact: float, rtol: float = SOUNDNESS_RTOL) -> bool:
    """``estimate <= exact (1 + rtol)``: whether a claimed lower bound respects the exact ``W1``.

    By Kantorovich-Rubinstein duality ``mean f(x_p) - mean f(x_q) <= L W1(P_n, Q_n)`` for every
    ``L``-Lipschitz ``f``; a value above the exact ``W1`` therefore proves that the ``L`` it was divided
    by is not a Lipschitz bound of the critic (e.g. a critic assumed 1-Lipschitz that is not). ``rtol``
    absorbs float64 rounding only. Raises ``ValueError`` for a non-finite or negative ``exact``.
    """
    if not (math.isfinite(exact) and exact >= 0):
        raise ValueError(f"exact must be a finite non-negative W1, got {exact!r}")
    if math.isnan(estimate):
        raise ValueError("estimate is nan")
    return estimate <= exact * (1 + rtol)
