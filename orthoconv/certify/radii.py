"""Certified radii of Lipschitz classifiers.

An L-Lipschitz classifier (in L2) keeps its prediction within radius ``margin / (sqrt(2) L)`` (Li et
al. 2019, Tsuzuku et al. 2018): the margin ``f_y - f_j`` changes by at most
``sqrt(2) ||f(x) - f(x')|| <= sqrt(2) L ||x - x'||``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _margins(logits: Tensor, labels: Tensor) -> Tensor:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[1] < 2:
        shape = getattr(logits, "shape", logits)
        raise ValueError(f"logits must be a (N, classes) tensor with at least 2 classes, got {shape}")
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        shape = getattr(labels, "shape", labels)
        raise ValueError(f"labels must be a 1-D tensor of length N = {logits.shape[0]}, got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        low, high = int(labels.min()), int(labels.max())
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got range [{low}, {high}]")
    logits = logits.detach().to(torch.float64)  # exact for every lower precision: no margin rounded upwards
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        rows = (~finite).any(dim=1).nonzero().squeeze(1)
        raise ValueError(
            f"logits must be finite: {int((~finite).sum())} entries are inf or nan (rows {rows[:5].tolist()}"
            f"{', ...' if rows.numel() > 5 else ''}); no radius can be certified from them"
        )
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], -math.inf).max(dim=1).values
    return true - others


def margins(logits: Tensor, labels: Tensor) -> Tensor:
    """``f_y - max_{j != y} f_j`` per example ``(N,)``: positive iff the prediction is uniquely ``y``."""
    return _margins(logits, labels)


def _check_lipschitz(lipschitz) -> float:
    try:
        value = float(lipschitz)
    except (TypeError, ValueError):
        raise TypeError(f"lipschitz must be a number, got {type(lipschitz).__name__}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"lipschitz must be positive and finite, got {lipschitz!r}")
    return value


def certified_radii(logits: Tensor, labels: Tensor, lipschitz) -> Tensor:
    """Per-example certified L2 radius ``max(margin, 0) / (sqrt(2) L)``.

    ``margin = f_y(x) - max_{j != y} f_j(x)``, computed in float64 (returned in float64: a float16 margin
    rounded to nearest could be larger than the true one); an ``L``-Lipschitz network keeps the prediction ``y`` for
    every ``x'`` with ``||x' - x|| < radius`` (the prediction is certified at ``eps`` iff
    ``margin > sqrt(2) eps L``, Li et al. 2019). Misclassified examples and ties get radius 0.
    Raises ``ValueError`` for non-finite logits (an ``inf`` logit would give an infinite radius, ``nan``
    a ``nan`` one: neither is a certificate) and ``TypeError`` / ``ValueError`` for malformed labels.
    """
    L = _check_lipschitz(lipschitz)
    return _margins(logits, labels).clamp_min(0) / (math.sqrt(2) * L)


def certified_accuracy(logits: Tensor, labels: Tensor, lipschitz, eps: float) -> float:
    """The fraction of examples with ``margin > sqrt(2) eps L``: correctly classified and certified at
    L2 radius ``eps`` (``eps = 0`` gives the clean accuracy; ties count as wrong). The same errors as
    :func:`certified_radii`."""
    L = _check_lipschitz(lipschitz)
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"eps must be a number, got {type(eps).__name__}") from None
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be non-negative and finite, got {eps!r}")
    margins = _margins(logits, labels)
    if margins.numel() == 0:
        raise ValueError("certified_accuracy needs at least one example")
    return float((margins > math.sqrt(2) * eps * L).to(torch.float64).mean())
