"""Stratified, seeded splits of a labelled data set."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_fraction(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return value


def stratified_split(labels: Tensor, fractions, seed: int = 0) -> list[Tensor]:
    """Index sets ``[rest, part_1, ..., part_m]`` partitioning ``range(len(labels))``.

    Within each class of ``n_c`` examples (in a random order drawn from ``seed``), part ``i`` takes
    ``round(fractions[i] * n_c)`` of them and ``rest`` keeps what remains, so every part has the
    class proportions of the whole (up to rounding). ``rest`` (the training part) is sorted; the other
    parts come in a seeded random order, so that their first ``n`` entries are a random sample and not
    the first classes (data files are often ordered by class: ``--limit 50`` on a sorted MNIST-5k test
    split was 50 zeros). The split depends on ``labels``, ``fractions`` and ``seed`` only (a CPU
    generator), never on the global RNG.
    """
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be a 1-D integer tensor, got {getattr(labels, 'shape', labels)}")
    fractions = [_check_fraction(f, f"fractions[{i}]") for i, f in enumerate(fractions)]
    if sum(fractions) >= 1:
        raise ValueError(f"fractions must sum to less than 1 (the rest is the first part), got {fractions}")
    generator = torch.Generator().manual_seed(int(seed))
    labels = labels.cpu()
    parts: list[list[Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for cls in torch.unique(labels):
        members = torch.nonzero(labels == cls).squeeze(1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        start = 0
        for i, fraction in enumerate(fractions):
            count = math.floor(fraction * members.numel() + 0.5)
            parts[i + 1].append(members[start:start + count])
            start += count
        parts[0].append(members[start:])
    sets = [torch.sort(torch.cat(p)).values if p else torch.empty(0, dtype=torch.int64) for p in parts]
    return [sets[0], *(part[torch.randperm(part.numel(), generator=generator)] for part in sets[1:])]
