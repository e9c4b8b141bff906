"""An empirical LOWER bound on a network's Lipschitz constant, to stand beside the certified upper one.

For any input ``x`` where ``f`` is differentiable and any unit ``v``, ``||J(x) v|| <= Lip(f)``; for any
``x`` and ``delta != 0``, ``||f(x + delta) - f(x)|| / ||delta|| <= Lip(f)``. Each number found is thus a
true lower bound (up to the rounding of the model's own arithmetic). Two searches:

1. power iteration on ``J^T J`` at the example input: one forward pass, then per step ``J v`` (a
   backward pass through the backward graph, "double vjp") and ``J^T w`` (one backward pass);
2. gradient ascent (Adam) of the secant ratio over the input ``x`` and the direction of ``delta``,
   started at the top singular vector, which reaches Jacobians of other linear regions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .graph import tensor_leaves


def _flat_output(model: nn.Module, x: Tensor) -> Tensor:
    y = model(x)
    leaves = [y] if isinstance(y, Tensor) else list(tensor_leaves(y))
    return torch.cat([t.reshape(-1) for t in leaves])


def jacobian_power_iteration(model: nn.Module, x: Tensor, steps: int, seed: int = 0) -> tuple[float, Tensor]:
    """``(max_k ||J v_k||, v)`` over ``steps`` power-iteration steps on ``J(x)^T J(x)``; ``v`` the last unit vector."""
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    v = v / torch.linalg.vector_norm(v)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = _flat_output(model, x)
        u = torch.zeros_like(y, requires_grad=True)
        (vjp,) = torch.autograd.grad(y, x, u, create_graph=True)
        best = 0.0
        for _ in range(steps):
            (Jv,) = torch.autograd.grad(vjp, u, v, retain_graph=True)
            best = max(best, float(torch.linalg.vector_norm(Jv)))
            (JtJv,) = torch.autograd.grad(y, x, Jv, retain_graph=True)
            norm = torch.linalg.vector_norm(JtJv)
            if not norm > 0:
                break
            v = (JtJv / norm).detach()
    return best, v


def secant_ascent(model: nn.Module, x: Tensor, direction: Tensor, steps: int, radius: float) -> float:
    """The largest ``||f(x + r d / ||d||) - f(x)|| / r`` met while Adam ascends it over ``x`` and ``d``."""
    point = x.detach().clone().requires_grad_(True)
    d = direction.detach().clone().requires_grad_(True)
    per_entry = 0.05 / x.numel() ** 0.5
    optimizer = torch.optim.Adam([{"params": [point], "lr": per_entry * radius}, {"params": [d], "lr": per_entry}])
    best = 0.0
    with torch.enable_grad():
        for _ in range(steps):
            delta = radius * d / torch.linalg.vector_norm(d)
            ratio = torch.linalg.vector_norm(_flat_output(model, point + delta) - _flat_output(model, point)) / radius
            best = max(best, float(ratio.detach()))
            optimizer.zero_grad()
            (-ratio).backward(inputs=[point, d])
            optimizer.step()
    return best


def lipschitz_lower_bound(model: nn.Module, x: Tensor, steps: int = 10, seed: int = 0) -> float:
    """The largest of the power-iteration and secant-ascent values (module docstring), ``steps`` of each;
    the secant radius is a tenth of ``||x||``, so the rounding of ``f(x + delta) - f(x)`` stays near the
    model's machine epsilon relative to the ratio."""
    best, v = jacobian_power_iteration(model, x, steps, seed)
    scale = float(torch.linalg.vector_norm(x.detach().to(torch.float64))) or 1.0
    return max(best, secant_ascent(model, x, v, steps, 0.1 * scale))
