"""Empirical robustness under L2 attacks from foolbox 3.3.4 (Rauber et al. 2017, 2020): an UPPER
bound on the true robust accuracy, beside the certified LOWER bound.

- :func:`pgd_attack`: ``L2PGD`` (Madry et al. 2018) with a random start, at each ``eps``.
- :func:`min_norm_attack`: ``L2FMNAttack`` (Pintor et al. 2021), the smallest perturbation it finds.

Whatever foolbox reports, every adversarial example is checked again here with the model itself:
it counts as breaking ``x`` only if its margin ``f_y(x') - max_{j != y} f_j(x')`` is ``<= 0`` (the
prediction is no longer uniquely ``y``), and its distance is the measured ``||x' - x||``. Inputs
live in ``[0, 1]`` (the attacks clip to these bounds). Install with ``pip install "orthoconv[attack]"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .radii import margins as logit_margins


def _foolbox():
    try:
        import foolbox
    except ImportError:
        raise ImportError("the attacks need foolbox 3.3.4: pip install 'orthoconv[attack]'") from None
    return foolbox


@torch.no_grad()
def _check(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(margin(x'), ||x' - x||, f(x'))`` of each adversarial candidate, recomputed with ``model``."""
    logits = model(x_adv)
    distance = torch.linalg.vector_norm((x_adv - x).flatten(1), dim=1)
    return logit_margins(logits, y), distance, logits


def _batches(images: Tensor, labels: Tensor, batch_size: int, device, dtype):
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device=device, dtype=dtype)
        if not images.is_floating_point():
            x = x / 255
        yield start, x, labels[start:start + batch_size].to(device)


def _model_device_dtype(model: nn.Module):
    p = next(model.parameters())
    return p.device, p.dtype


def pgd_attack(model: nn.Module, images: Tensor, labels: Tensor, eps: Sequence[float], *, steps: int = 100,
               rel_stepsize: float = 0.025, seed: int = 0, batch_size: int = 250) -> dict:
    """foolbox ``L2PGD(steps, rel_stepsize, random_start=True)`` at every ``eps`` (``rel_stepsize``
    is the step as a fraction of ``eps``).

    Returns ``{"eps": [...], "broken": (len(eps), N) bool, "distance": (len(eps), N) float64,
    "margin": (len(eps), N) float64, "lipschitz_ratio": (len(eps), N) float64}``: for each eps and
    example whether the attack found ``x'`` with ``||x' - x|| <= eps`` (up to rounding) and margin
    ``<= 0``, the distance and the margin of its ``x'``, and ``||f(x') - f(x)|| / ||x' - x||`` (a lower
    bound on the Lipschitz constant; 0 where ``x' = x``). Seeded (``seed``) without touching the
    caller's random state.
    """
    fb = _foolbox()
    eps = [float(e) for e in eps]
    if not eps or any(not (e > 0 and math.isfinite(e)) for e in eps):
        raise ValueError(f"eps must be positive finite numbers, got {eps}")
    device, dtype = _model_device_dtype(model)
    was_training = model.training
    model.eval()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    attack = fb.attacks.L2PGD(steps=steps, rel_stepsize=rel_stepsize, random_start=True)
    shape = (len(eps), labels.shape[0])
    out = {name: torch.zeros(shape, dtype=torch.float64) for name in ("distance", "margin", "lipschitz_ratio")}
    broken = torch.zeros(shape, dtype=torch.bool)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for start, x, y in _batches(images, labels, batch_size, device, dtype):
                with torch.no_grad():
                    clean_logits = model(x)
                _, clipped, _ = attack(fmodel, x, y, epsilons=eps)
                for i, x_adv in enumerate(clipped):
                    margin, distance, logits = _check(model, x, x_adv, y)
                    stop = start + y.shape[0]
                    change = torch.linalg.vector_norm((logits - clean_logits).flatten(1), dim=1)
                    ratio = torch.where(distance > 0, change / distance.clamp_min(torch.finfo(dtype).tiny), 0)
                    out["distance"][i, start:stop] = distance.cpu().double()
                    out["margin"][i, start:stop] = margin.cpu().double()
                    out["lipschitz_ratio"][i, start:stop] = ratio.cpu().double()
                    broken[i, start:stop] = (margin <= 0).cpu() & (distance <= eps[i] * (1 + 1e-6)).cpu()
    finally:
        model.train(was_training)
    return {"eps": eps, "broken": broken, **out}


def min_norm_attack(model: nn.Module, images: Tensor, labels: Tensor, *, steps: int = 100, seed: int = 0,
                    batch_size: int = 250) -> dict:
    """foolbox ``L2FMNAttack(steps)``: per example the smallest adversarial perturbation it finds.

    Returns ``{"distance": (N,) float64, "margin": (N,) float64}``: ``||x' - x||`` and the margin at
    ``x'`` recomputed with the model (``distance`` is ``inf`` where the attack found nothing with
    margin ``<= 0``; 0 for examples the model already gets wrong).
    """
    fb = _foolbox()
    device, dtype = _model_device_dtype(model)
    was_training = model.training
    model.eval()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    attack = fb.attacks.L2FMNAttack(steps=steps)
    distance = torch.full((labels.shape[0],), math.inf, dtype=torch.float64)
    margins = torch.zeros(labels.shape[0], dtype=torch.float64)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for start, x, y in _batches(images, labels, batch_size, device, dtype):
                _, clipped, _ = attack(fmodel, x, y, epsilons=None)
                margin, dist, _ = _check(model, x, clipped, y)
                stop = start + y.shape[0]
                margins[start:stop] = margin.cpu().double()
                distance[start:stop] = torch.where(margin <= 0, dist, math.inf).cpu().double()
    finally:
        model.train(was_training)
    return {"distance": distance, "margin": margins}
