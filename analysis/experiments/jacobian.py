"""Backward gradient norms through a network, and the singular values of its Jacobian at a point.

A network ``f = f_S o ... o f_1`` (its sublayers: convolutions and activations) maps ``x`` to ``y``;
backpropagating a cotangent ``g`` from the output gives ``g_s = J_s^T ... J_S^T g`` at the input of
sublayer ``s``. The network is gradient norm preserving (GNP) when ``||J^T g|| = ||g||`` for every
``g``, i.e. every singular value of ``J = J_S ... J_1`` is 1 (Li et al., "Preventing Gradient
Attenuation in Lipschitz Constrained Convolutional Networks", NeurIPS 2019, arXiv 1911.00937, Sec. 2
on gradient norm preservation). Orthogonal convolutions composed with GroupSort/MaxMin are GNP;
ReLU zeroes the gradient wherever its input is negative.

Products through deep non-GNP networks fall below the range of float32 (``||g_0|| / ||g||`` reaches
1e-40 at depth 64). Every product here is therefore taken one sublayer at a time with the vector
renormalized after each sublayer and its log-norm accumulated in float64: each sublayer's own
product is computed in the network's dtype, and only the bookkeeping of the scale is float64.

Every helper assumes the network acts on each example of a batch independently (no batch
statistics), which is what lets a batch of copies of one point carry many cotangents at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def unit_cotangents(shape: Sequence[int], generator: torch.Generator, dtype: torch.dtype, device) -> Tensor:
    """Seeded cotangents of ``shape = (probes, ...)``, each uniform on the unit sphere (normalized Gaussians)."""
    g = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
    return g / _norms(g).to(dtype).view(-1, *[1] * (g.dim() - 1))


def _norms(v: Tensor) -> Tensor:
    """Per-example Euclidean norms in float64, shape ``(N,)``."""
    return torch.linalg.vector_norm(v.flatten(1).to(torch.float64), dim=1)


def _normalized(v: Tensor) -> tuple[Tensor, Tensor]:
    """``(v / ||v||, log ||v||)`` per example; an all-zero example stays zero with log-norm ``-inf``."""
    norms = _norms(v)
    scale = torch.where(norms > 0, norms, torch.ones_like(norms)).to(v.dtype)
    return v / scale.view(-1, *[1] * (v.dim() - 1)), norms.log()


@dataclass
class Sublayer:
    """One sublayer's graph at a point: ``output = module(input)`` with ``input`` a leaf of its own."""

    input: Tensor
    output: Tensor

    def vjp(self, w: Tensor) -> Tensor:
        """``J_s^T w`` (one backward pass through this sublayer only)."""
        (out,) = torch.autograd.grad(self.output, self.input, w, retain_graph=True)
        return out


def sublayers(modules: Sequence[nn.Module], x: Tensor) -> list[Sublayer]:
    """One forward pass through ``modules`` that keeps every sublayer's graph separate (detached inputs)."""
    graphs = []
    h = x
    for module in modules:
        leaf = h.detach().requires_grad_(True)
        h = module(leaf)
        graphs.append(Sublayer(leaf, h))
    return graphs


def rescaled_backward(graphs: Sequence[Sublayer], cotangents: Tensor) -> tuple[Tensor, Tensor]:
    """Backpropagate ``cotangents`` (one per example) through every sublayer, renormalizing after each.

    Returns ``log ||g_s||`` for the inputs ``s = 0 .. S - 1`` and the output ``S`` (float64, shape
    ``(S + 1, N)``; ``-inf`` where the gradient is exactly zero) and the unit direction of ``g_0``.
    ``g_s = J_s^T g_{s+1}`` is linear in ``g_{s+1}``, so ``log ||g_s|| = log ||g_{s+1}|| + log ||J_s^T u||``
    with ``u`` the unit direction of ``g_{s+1}``.
    """
    direction, log_norm = _normalized(cotangents)
    logs = [log_norm]
    for graph in reversed(graphs):
        direction, step = _normalized(graph.vjp(direction))
        log_norm = log_norm + step
        logs.append(log_norm)
    return torch.stack(logs[::-1]), direction


def sublayer_gradient_ratios(
    modules: Sequence[nn.Module], x: Tensor, cotangents: Tensor
) -> tuple[Tensor, list[Tensor]]:
    """``||g_s|| / ||g||`` at the input of every sublayer ``s`` and at the output, for each cotangent.

    ``x`` is ``(probes, ...)`` (copies of one point, or several points) and ``cotangents`` has the
    output's shape. Returns the float64 ratios, shape ``(len(modules) + 1, probes)`` (row ``s``: the
    gradient with respect to the input of ``modules[s]``; the last row the cotangent itself, 1),
    and the inputs of every sublayer (detached), for statistics such as the fraction of positive
    pre-activations.
    """
    if cotangents.shape[0] != x.shape[0]:
        raise ValueError(f"cotangents must have one row per example of x ({x.shape[0]}), got {cotangents.shape[0]}")
    graphs = sublayers(modules, x)
    if cotangents.shape != graphs[-1].output.shape:
        raise ValueError(
            f"cotangents must have the output's shape {tuple(graphs[-1].output.shape)}, got {tuple(cotangents.shape)}"
        )
    logs, _ = rescaled_backward(graphs, cotangents)
    return (logs - logs[-1]).exp(), [graph.input.detach() for graph in graphs]


def dense_jacobian(modules: Sequence[nn.Module], x: Tensor, chunk: int = 256) -> Tensor:
    """The float64 ``(m, n)`` Jacobian ``J[i, j] = d f(x)_i / d x_j`` at one point ``x`` of shape ``(1, ...)``.

    Row ``i`` is the vector-Jacobian product ``J^T e_i``: a batch of ``b`` copies of ``x`` carries ``b``
    basis cotangents through one (rescaled) backward pass, the gradient of copy ``k`` being ``J^T e_{i_k}``.
    """
    if x.shape[0] != 1:
        raise ValueError(f"x must be a single point of shape (1, ...), got {tuple(x.shape)}")
    with torch.no_grad():
        out_shape = sublayers(modules, x)[-1].output.shape[1:]
    m = out_shape.numel()
    eye = torch.eye(m, dtype=x.dtype, device=x.device)
    rows = []
    for start in range(0, m, chunk):
        basis = eye[start : start + chunk]
        graphs = sublayers(modules, x.expand(basis.shape[0], *x.shape[1:]))
        logs, direction = rescaled_backward(graphs, basis.view(-1, *out_shape))
        rows.append(direction.flatten(1).to(torch.float64) * logs[0].exp()[:, None])
    return torch.cat(rows)


def dense_singular_values(jacobian: Tensor) -> Tensor:
    """Every singular value of a matrix, descending, from its float64 Gram matrix.

    ``sigma_i = sqrt(lambda_i(J^T J))`` (``J J^T`` when wider than tall) by a symmetric eigensolver:
    much faster than an SVD here, with absolute error about ``eps_64 ||J||^2 / sigma``, i.e. below
    1e-12 for every ``sigma >= 1e-4`` when ``||J|| <= 1``.
    """
    J = jacobian.detach().to(torch.float64)
    gram = J.T @ J if J.shape[0] >= J.shape[1] else J @ J.T
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().flip(0)


@dataclass
class LinearizedSublayer(Sublayer):
    """A sublayer with ``J_s v`` too: ``h(u) = J_s^T u`` is linear in ``u``, so ``J_s v`` is the gradient
    of ``<h(u), v>`` with respect to ``u`` (the double-backward trick)."""

    dummy: Tensor
    adjoint: Tensor

    def jvp(self, v: Tensor) -> Tensor:
        (out,) = torch.autograd.grad(self.adjoint, self.dummy, v, retain_graph=True)
        return out


def linearize(modules: Sequence[nn.Module], x: Tensor) -> list[LinearizedSublayer]:
    """Every sublayer's graph at ``x`` with both products ``J_s v`` and ``J_s^T w``."""
    linearized = []
    for graph in sublayers(modules, x):
        dummy = torch.zeros_like(graph.output, requires_grad=True)
        (adjoint,) = torch.autograd.grad(graph.output, graph.input, dummy, create_graph=True)
        linearized.append(LinearizedSublayer(graph.input, graph.output, dummy, adjoint))
    return linearized


def gram_matvec(linearized: Sequence[LinearizedSublayer]) -> Callable[[Tensor], Tensor]:
    """``v -> J^T J v`` in float64, for a flat float64 ``v``, through ``J = J_S ... J_1`` one sublayer at a
    time (renormalized after each, the scale carried as a float64 log)."""
    shape = linearized[0].input.shape

    def matvec(v: Tensor) -> Tensor:
        direction, log_norm = _normalized(v.view(shape).to(linearized[0].input.dtype))
        for graph in linearized:
            direction, step = _normalized(graph.jvp(direction))
            log_norm = log_norm + step
        for graph in reversed(linearized):
            direction, step = _normalized(graph.vjp(direction))
            log_norm = log_norm + step
        return direction.flatten().to(torch.float64) * log_norm.exp()

    return matvec


def lanczos_ritz_values(matvec: Callable[[Tensor], Tensor], start: Tensor, steps: int, tol: float) -> Tensor:
    """Ritz values (ascending) of a symmetric operator after at most ``steps`` Lanczos steps.

    ``A Q_j = Q_j T_j + beta_j q_{j+1} e_j^T`` with ``T_j`` tridiagonal (``alpha`` on the diagonal,
    ``beta`` beside it); full reorthogonalization against all earlier vectors, in float64. The
    extreme Ritz values approach the extreme eigenvalues from inside the spectrum
    (``theta_min >= lambda_min``, ``theta_max <= lambda_max``); a ``beta <= tol * max|alpha|`` means
    the Krylov space is invariant and the Ritz values are eigenvalues (Golub & Van Loan, Sec. 10.1).
    ``matvec`` maps a flat float64 vector to one of the same size.
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    q = start.to(torch.float64).flatten()
    q = q / torch.linalg.vector_norm(q)
    basis, alphas, betas = [q], [], []
    scale = 0.0
    for _ in range(steps):
        w = matvec(q)
        alphas.append(torch.dot(q, w))
        scale = max(scale, abs(float(alphas[-1])))
        Q = torch.stack(basis)
        for _ in range(2):
            w = w - Q.T @ (Q @ w)
        beta = torch.linalg.vector_norm(w)
        if beta <= tol * scale or len(basis) == q.numel():
            break
        betas.append(beta)
        q = w / beta
        basis.append(q)
    T = torch.diag(torch.stack(alphas))
    if len(alphas) > 1:
        off = torch.stack(betas[: len(alphas) - 1])
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigvalsh(T)


def jacobian_spectrum(
    modules: Sequence[nn.Module], x: Tensor, dense_limit: int, lanczos_steps: int, generator: torch.Generator
) -> dict:
    """The singular values of ``J = df/dx`` at one point ``x`` (shape ``(1, ...)``), exactly or estimated.

    ``"dense"`` when ``x.numel() <= dense_limit``: every singular value of the dense Jacobian
    (:func:`dense_jacobian`, :func:`dense_singular_values`). ``"lanczos"`` otherwise: the Ritz values
    of ``J^T J`` (:func:`gram_matvec`) after ``lanczos_steps`` steps from a seeded Gaussian start;
    their square roots estimate the extreme singular values from inside the spectrum:
    ``sigma_max >= sqrt(theta_max)`` and ``sigma_min <= sqrt(theta_min)``.
    """
    if x.numel() <= dense_limit:
        sigma = dense_singular_values(dense_jacobian(modules, x))
        return {"method": "dense", "sigma_min": float(sigma.min()), "sigma_max": float(sigma.max()),
                "singular_values": sigma.tolist()}
    start = torch.randn(x.numel(), generator=generator, dtype=torch.float64, device=x.device)
    tol = 100 * torch.finfo(x.dtype).eps
    ritz = lanczos_ritz_values(gram_matvec(linearize(modules, x)), start, lanczos_steps, tol).clamp_min(0).sqrt()
    return {"method": "lanczos", "lanczos_steps": lanczos_steps, "sigma_min": float(ritz.min()),
            "sigma_max": float(ritz.max()), "ritz_singular_values": ritz.tolist()}
