"""The certified Lipschitz bound of a critic: the one place the Wasserstein estimator asks for it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..verify.model import check_model


def critic_lipschitz(critic: nn.Module, sample_shape: Sequence[int]) -> float:
    """A certified upper bound ``L`` on the Euclidean Lipschitz constant of ``critic`` on samples of
    shape ``sample_shape`` (``(C, H, W)`` images or ``(d,)`` vectors), from the current weights.

    The upper end of :func:`orthoconv.verify.check_model` on one sample of that shape: exact or certified
    per-layer norms of the operators the critic really applies, composed along its ``torch.fx`` graph.
    Raises ``TypeError`` for an operation it cannot bound.
    """
    shape = tuple(int(s) for s in sample_shape)
    param = next(iter(critic.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    device = param.device if param is not None else None
    return float(check_model(critic, torch.zeros(1, *shape, dtype=dtype, device=device), lower_steps=0).lipschitz_upper)
