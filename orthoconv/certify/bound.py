"""The one place where the applications get a network's certified Lipschitz constant.

Training (the hinge margin, the validation certificate), ``orthoconv certify`` and the robustness
experiment all call :func:`network_lipschitz`; it multiplies exact or certified per-layer norms along
an ``nn.Sequential`` (:func:`orthoconv.verify.lipschitz_bound`). A bound along any model's graph can
replace it here without touching its callers.
"""

from __future__ import annotations

from torch import nn

from ..verify.lipschitz import lipschitz_bound


def network_lipschitz(model: nn.Module, input_size) -> float:
    """A certified upper bound on the L2 Lipschitz constant of ``model`` on ``input_size`` images.

    Reads the network in eval mode (a spectrally normalized ``nn.Conv2d`` would otherwise run a
    power-iteration step when its weight is read) and restores the previous mode.
    """
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    try:
        return float(lipschitz_bound(model, input_size))
    finally:
        model.train(was_training)
