"""The one place where the applications get a network's certified Lipschitz constant.

Training (the hinge margin, the validation certificate), ``orthoconv certify`` and the robustness
experiment all call :func:`network_lipschitz`: the certified upper end of
:func:`orthoconv.verify.check_model`, exact or certified per-layer norms composed along the network's
graph (:func:`orthoconv.verify.lipschitz_bound`).
"""

from __future__ import annotations

from torch import nn

from ..math.checks import image_size
from ..verify.lipschitz import lipschitz_bound


def network_lipschitz(model: nn.Module, input_size, in_channels: int | None = None) -> float:
    """A certified upper bound on the L2 Lipschitz constant of ``model`` on ``input_size = (H, W)`` images.

    The input channels are ``in_channels``, else those the network recorded when it was built
    (``model.spec["in_channels"]``, :func:`orthoconv.networks.build`), else read from the model by
    :func:`orthoconv.verify.lipschitz_bound`. A ``DistributedDataParallel`` wrapper is looked through.
    """
    model = getattr(model, "module", model)
    channels = in_channels if in_channels is not None else getattr(model, "spec", {}).get("in_channels")
    size = image_size(input_size)
    return float(lipschitz_bound(model, size if channels is None else (channels, *size)))
