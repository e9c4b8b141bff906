"""Losses for Lipschitz classifiers that aim at certified margins.

Both take logits ``(N, classes)`` and integer labels ``(N,)`` and return the SUM over the batch (the
trainer divides by the global batch size, so that data-parallel replicas average to the same
gradient as one process; :mod:`orthoconv.training.loop`).

- :func:`margin_hinge_loss` (Li et al. 2019; Anil, Lucas, Grosse 2019): the multi-class hinge
  ``sum_{j != y} max(0, m - (f_y - f_j)) / classes`` with margin ``m = sqrt(2) eps L``, the margin
  that certifies radius ``eps`` for an ``L``-Lipschitz network (``torch.nn.functional.multi_margin_loss``).
- :func:`offset_cross_entropy` (Prach & Lampert, ECCV 2022, and later SLL / Sandwich / orthogonium):
  ``t * CE((f - u e_y) / t, y)``: the true logit lowered by the offset ``u`` (``sqrt(2) eps L`` by
  default) and all logits divided by the temperature ``t``, then scaled back by ``t`` so that the
  gradient has the scale of the logits.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("hinge", "ce")


def certifying_margin(eps: float, lipschitz: float) -> float:
    """``sqrt(2) eps L``: the logit margin that certifies an L2 radius ``eps`` (Li et al. 2019)."""
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be non-negative and finite, got {eps!r}")
    if not (lipschitz > 0 and math.isfinite(lipschitz)):
        raise ValueError(f"lipschitz must be positive and finite, got {lipschitz!r}")
    return math.sqrt(2) * eps * lipschitz


def margin_hinge_loss(logits: Tensor, labels: Tensor, margin: float) -> Tensor:
    """``sum_n sum_{j != y_n} max(0, margin - f_{y_n} + f_j) / classes`` (a scalar)."""
    return F.multi_margin_loss(logits, labels, p=1, margin=float(margin), reduction="sum")


def offset_cross_entropy(logits: Tensor, labels: Tensor, offset: float, temperature: float) -> Tensor:
    """``sum_n t * CE((f_n - u e_{y_n}) / t, y_n)`` (a scalar); ``temperature`` ``t > 0``."""
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
    shifted = logits - float(offset) * F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return temperature * F.cross_entropy(shifted / temperature, labels, reduction="sum")


def summed_loss(name: str, logits: Tensor, labels: Tensor, margin: float, temperature: float) -> Tensor:
    """The loss ``name`` (``"hinge"`` or ``"ce"``) summed over the batch, with margin / offset ``margin``."""
    if name == "hinge":
        return margin_hinge_loss(logits, labels, margin)
    if name == "ce":
        return offset_cross_entropy(logits, labels, margin, temperature)
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
