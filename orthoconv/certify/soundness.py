"""Does the certificate hold against attacks, and how tight is the certified Lipschitz constant?

- :func:`soundness_violations`: an example certified at radius ``r`` (margin ``> sqrt(2) r L``) keeps
  its prediction for every ``x'`` with ``||x' - x|| < r``. An attack that finds such an ``x'`` with
  margin ``<= 0`` refutes the certificate: the count must be 0. A certified bound smaller than the
  true Lipschitz constant, a normalization left out of ``L``, or a tie counted as certified, each
  shows up here.
- :func:`empirical_lipschitz`: the largest ``||f(x) - f(x')|| / ||x - x'||`` found, a LOWER bound on
  the Lipschitz constant to set beside the certified UPPER bound. It runs power iteration on
  ``J(x)^T J(x)`` (forward- and reverse-mode products with the network's Jacobian at each example),
  then measures the finite-difference ratio along the top singular direction: a ratio of two actual
  outputs, so a valid lower bound (up to rounding) even where the network is not differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jvp


def soundness_violations(radii: Tensor, distance: Tensor, adversarial_margin: Tensor) -> Tensor:
    """``(N,)`` bool: examples certified at radius ``radii > 0`` for which an adversarial ``x'`` at
    ``distance < radii`` has margin ``<= 0``. ``distance`` and ``adversarial_margin`` may carry leading
    dimensions (several attacks / eps); any of them counts."""
    radii = radii.to(torch.float64)
    distance = distance.to(torch.float64)
    broken = (adversarial_margin <= 0) & (distance < radii)
    while broken.dim() > 1:
        broken = broken.any(0)
    return broken & (radii > 0)


def _unit(v: Tensor) -> Tensor:
    norms = torch.linalg.vector_norm(v.flatten(1), dim=1).clamp_min(torch.finfo(v.dtype).tiny)
    return v / norms.view(-1, *([1] * (v.dim() - 1)))


def empirical_lipschitz(model: nn.Module, images: Tensor, *, iterations: int = 20, step: float = 1e-4,
                        batch_size: int = 250, seed: int = 0) -> float:
    """The largest finite-difference ratio ``||f(x + t v) - f(x)|| / ||t v||`` over the ``images``
    (``uint8`` or floats in ``[0, 1]``), ``v`` the top right singular vector of the Jacobian at ``x``
    after ``iterations`` power steps from a seeded random start, ``t = step``. Computed in the
    model's dtype and device, eval mode."""
    p = next(model.parameters())
    device, dtype = p.device, p.dtype
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    best = 0.0
    try:
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device=device, dtype=dtype)
            if not images.is_floating_point():
                x = x / 255
            v = _unit(torch.randn(x.shape, generator=generator, dtype=torch.float64).to(device, dtype))
            for _ in range(iterations):
                x_in = x.detach().requires_grad_(True)
                _, u = jvp(model, (x,), (v,))
                (g,) = torch.autograd.grad(model(x_in), x_in, grad_outputs=u)
                v = _unit(g.detach())
            with torch.no_grad():
                change = torch.linalg.vector_norm((model(x + step * v) - model(x)).flatten(1), dim=1)
                moved = torch.linalg.vector_norm((step * v).flatten(1), dim=1)
                best = max(best, float((change / moved).max()))
    finally:
        model.train(was_training)
    return best
