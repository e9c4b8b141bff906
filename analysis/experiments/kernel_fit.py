"""Fitting BCOP parameters to kernels: the optimization primitive shared by the component, fit and
homotopy experiments.

A :class:`ClassKernel` is a BCOP pinned to one parameter class ``(sign, P ranks, Q ranks)`` for every
value of its parameters: it uses the ``expm`` maps of :class:`orthoconv.BCOP` (``H`` in SO(n), no
singular set to jump across) and negates output channel 0 when ``sign = -1``, which turns ``H`` into
``diag(-1, 1, ..., 1) H``. Everything is float64 and fitted by L-BFGS with a strong Wolfe line search
(Li et al., NeurIPS 2019, arXiv 1911.00937, for the parameterization).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from orthoconv import BCOP
from orthoconv.invariants import ComponentInvariants, bcop_invariants
from orthoconv.spectral import conv_spectral_norm


@dataclass(frozen=True)
class ParameterClass:
    """A connected set of BCOP parameters: ``det H = sign`` and fixed ranks of every projector."""

    sign: int
    p_ranks: tuple[int, ...]
    q_ranks: tuple[int, ...]

    def invariants(self, n: int) -> ComponentInvariants:
        return bcop_invariants(n, self.p_ranks, self.q_ranks, self.sign)

    @property
    def label(self) -> str:
        ranks = "".join(map(str, self.p_ranks)) + "|" + "".join(map(str, self.q_ranks))
        return f"{'+' if self.sign > 0 else '-'}{ranks}"


class ClassKernel(nn.Module):
    """The kernel map of one :class:`ParameterClass` over n channels, kernel size k, float64."""

    def __init__(self, n: int, k: int, cls: ParameterClass, generator: torch.Generator) -> None:
        super().__init__()
        self.bcop = BCOP(n, n, k, bias=False, projector_ranks=(cls.p_ranks, cls.q_ranks), method="expm", dtype=torch.float64)
        with torch.no_grad():
            self.bcop.h_param.normal_(generator=generator)
            self.bcop.pq_param.normal_(generator=generator)
        signs = torch.ones(n, 1, 1, 1, dtype=torch.float64)
        signs[0] = cls.sign
        self.register_buffer("signs", signs)

    def forward(self) -> Tensor:
        return self.bcop.kernel() * self.signs


@dataclass(frozen=True)
class FitTrace:
    """Frobenius errors ``||W - T||_F`` after each chunk of L-BFGS iterations (index 0: the start)."""

    iterations: tuple[int, ...]
    errors: tuple[float, ...]

    @property
    def final(self) -> float:
        return self.errors[-1]


def lbfgs_fit(
    params: Sequence[Tensor],
    residual: Callable[[], Tensor],
    max_iter: int = 400,
    tol: float = 1e-12,
    chunk: int = 25,
    recondition: Callable[[], bool] | None = None,
) -> FitTrace:
    """Minimize ``||residual()||_F^2`` over ``params`` by L-BFGS (strong Wolfe, history 50).

    Runs ``chunk`` iterations at a time, recording ``||residual||_F`` after each chunk, and stops when
    it falls below ``tol`` or after ``max_iter`` iterations. A chunk without progress clears the L-BFGS
    memory (a stale curvature history can stall the line search); a second one in a row stops the fit.
    ``recondition``, called after every chunk, may re-parameterize without changing the residual (see
    :meth:`orthoconv.BCOP.recondition_`); when it returns true the memory is cleared too (its curvature pairs are stale).
    """
    params = list(params)

    def fresh_optimizer() -> torch.optim.LBFGS:
        return torch.optim.LBFGS(
            params, lr=1, max_iter=chunk, tolerance_grad=0, tolerance_change=0, history_size=50, line_search_fn="strong_wolfe"
        )

    optimizer = fresh_optimizer()

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = residual().square().sum()
        loss.backward()
        return loss

    def error() -> float:
        with torch.no_grad():
            return float(torch.linalg.vector_norm(residual()))

    iterations, errors = [0], [error()]
    just_reset = False
    while errors[-1] > tol and iterations[-1] < max_iter:
        before = optimizer.state[params[0]].get("n_iter", 0)
        optimizer.step(closure)
        steps, current = optimizer.state[params[0]]["n_iter"] - before, error()
        stalled = steps == 0 or not current < errors[-1]
        iterations.append(iterations[-1] + steps)
        errors.append(current)
        if stalled and (just_reset or not math.isfinite(current)):
            break
        reconditioned = recondition is not None and recondition()
        if stalled or reconditioned:
            optimizer = fresh_optimizer()
        just_reset = stalled and not reconditioned
    return FitTrace(tuple(iterations), tuple(errors))


def fit_class_to_kernel(
    target: Tensor, cls: ParameterClass, seed: int, max_iter: int = 400, tol: float = 1e-12
) -> tuple[FitTrace, Tensor]:
    """Fit a fresh :class:`ClassKernel` of class ``cls`` (seeded start) to a fixed ``target`` kernel.

    Returns the trace and the fitted kernel (detached).
    """
    n, k = target.shape[0], target.shape[-1]
    model = ClassKernel(n, k, cls, torch.Generator().manual_seed(seed))
    trace = lbfgs_fit(list(model.parameters()), lambda: model() - target, max_iter, tol)
    return trace, model().detach()


def operator_gap(kernel_a: Tensor, kernel_b: Tensor, grid: int = 64) -> float:
    """``max_w ||K_a(w) - K_b(w)||_2`` over a ``grid x grid`` frequency grid: the distance of the two
    circular convolutions on ``grid x grid`` images, a lower bound on the sup over the torus."""
    return float(conv_spectral_norm(kernel_a - kernel_b, (grid, grid)))
