"""Clean and certified accuracy of a Lipschitz classifier on a data split.

The certificate (Li et al. 2019; Tsuzuku et al. 2018): with ``L`` a certified bound on the network's
L2 Lipschitz constant (measured from the trained weights, :func:`network_lipschitz`), an example is
certified at radius ``eps`` iff ``margin = f_y - max_{j != y} f_j > sqrt(2) eps L``; its certified
radius is ``max(margin, 0) / (sqrt(2) L)``. Ties (margin 0) and misclassified examples get radius 0
and are never certified.

The logits are computed in ``dtype`` (default float64: the trained float32 weights are exactly
representable, and the rounding of the margins, ~1e-16 relative, is far below any reported radius).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .bound import network_lipschitz
from .radii import certified_accuracy, certified_radii


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 500, device=None, dtype=torch.float32) -> Tensor:
    """Logits ``(N, classes)`` on the CPU of ``uint8`` images ``(N, C, H, W)`` (scaled to ``[0, 1]``)
    or floating images already in ``[0, 1]``, in batches of ``batch_size``, in eval mode."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = next(model.parameters()).device if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    try:
        outputs = []
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device=device, dtype=dtype)
            if not images.is_floating_point():
                x = x / 255
            outputs.append(model(x).to("cpu", torch.float64))
        return torch.cat(outputs)
    finally:
        model.train(was_training)


def as_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``model`` itself when it already computes in ``dtype``, else an eval-mode copy converted to it."""
    if all(p.dtype == dtype for p in model.parameters()):
        return model
    return copy.deepcopy(model).to(dtype).eval()


def evaluate(model: nn.Module, images: Tensor, labels: Tensor, eps: Sequence[float], *, lipschitz: float | None = None,
             batch_size: int = 500, device=None, dtype=torch.float64) -> dict:
    """Clean accuracy, certified accuracy at each ``eps``, the measured ``L`` and the per-example radii.

    Returns ``{"clean", "certified": {eps: acc}, "lipschitz", "radii" (N,) float64 tensor,
    "logits" (N, classes) float64}``. ``lipschitz`` defaults to the certified bound of ``model``;
    passing a smaller value than the truth makes the certificates unsound (the soundness check in
    :mod:`orthoconv.certify.soundness` exists to catch that).
    """
    if labels.numel() == 0:
        raise ValueError("evaluate needs at least one example")
    net = as_dtype(model, dtype)
    size = tuple(images.shape[-2:])
    L = network_lipschitz(net, size) if lipschitz is None else float(lipschitz)
    logits = predict(net, images, batch_size, device, dtype)
    labels = labels.cpu()
    return {
        "clean": certified_accuracy(logits, labels, L, 0.0),
        "certified": {float(e): certified_accuracy(logits, labels, L, e) for e in eps},
        "lipschitz": L,
        "radii": certified_radii(logits, labels, L),
        "logits": logits,
    }

