"""Exact unitary factors of batched (complex) matrices through the SVD, with finite gradients everywhere.

- :func:`polar_factor`: the unitary polar factor ``Q = (A A^H)^(-1/2) A = U W^H`` of a square ``A = U S W^H``
  (LOT, Xu, Li, Li, NeurIPS 2022, per frequency);
- :func:`range_projector`: the orthogonal projector ``P = A A^+ = A (A^H A)^(-1) A^H`` onto the column space
  of a tall ``A`` (BRO, Lai et al., ICML 2025: the block reflector ``I - 2 P``).

Both are computed from ``torch.linalg.svd`` (orthonormal factors to working precision), so the result is
unitary (a projector) to rounding for ANY input, not after a fixed number of iterations. Both are
invariant under positive scaling, and each matrix is first divided by a power of two that brings its
largest entry into ``[1/2, 1)`` (exact; any magnitude works). Where ``A`` is rank deficient the maps are
discontinuous; the value is then defined as below and the gradient is kept finite (torch's own SVD
backward divides by ``s_i^2 - s_j^2`` and gives nan at repeated singular values, ``A = 0`` included).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .products import stack  # products on the stacked batch: one bmm each (orthoconv/math/products.py)


def _real_dtype(A: Tensor) -> torch.dtype:
    return A.real.dtype if A.is_complex() else A.dtype


def _power_of_two_scale(A: Tensor) -> Tensor:
    """``2^e`` per matrix (``(..., 1, 1)``, real, no gradient) with ``max |A| / 2^e`` in ``[1/2, 1)``; 1 for zero."""
    real = _real_dtype(A)
    _, exponent = torch.frexp(A.detach().abs().amax(dim=(-2, -1), keepdim=True))
    info = torch.finfo(real)
    low, high = math.ceil(math.log2(info.tiny)) + 1, math.floor(math.log2(info.max)) - 1
    return torch.exp2(exponent.to(real).clamp(low, high))


def _rounding(A: Tensor) -> float:
    """``4 n eps``: the rounding level of a matrix of unit size (``n`` its larger side)."""
    return 4 * max(A.shape[-2:]) * torch.finfo(_real_dtype(A)).eps


def _polish(Q: Tensor) -> Tensor:
    """One Newton-Schulz step ``Q (3 I - Q^H Q) / 2``: it keeps orthonormal columns and takes a deviation
    ``d`` of ``Q^H Q`` from ``I`` to about ``3 d^2 / 4``, so ``Q`` is orthonormal to the rounding of the product
    (the SVD's factors are orthonormal to about ``n eps``: measured 5e-6 in complex64 at n = 64)."""
    eye = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device).expand(Q.shape[0], -1, -1)
    return torch.bmm(Q, torch.baddbmm(eye, Q.mH, Q, beta=1.5, alpha=-0.5))


class _Polar(torch.autograd.Function):
    """``(Q, U, S, Vh, scale)`` with ``A / scale = U diag(S) Vh`` and ``Q = U Vh`` (the last four only saved)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor):
        A3 = stack(A)
        scale = _power_of_two_scale(A3)
        U, S, Vh = torch.linalg.svd(A3 / scale, full_matrices=False)
        return _polish(torch.bmm(U, Vh)).view(A.shape), U, S, Vh, scale

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, U, S, Vh, scale = output
        ctx.mark_non_differentiable(U, S, Vh, scale)
        ctx.save_for_backward(U, S, Vh, scale)
        ctx.delta = _rounding(inputs[0]) ** 2
        ctx.shape = inputs[0].shape

    @staticmethod
    def backward(ctx, grad: Tensor, *_):
        U, S, Vh, scale = ctx.saved_tensors
        M = torch.bmm(torch.bmm(U.mH, stack(grad).to(U.dtype)), Vh.mH)
        d = S.unsqueeze(-1) + S.unsqueeze(-2)
        N = (M - M.mH) * (d / (d * d + ctx.delta)).to(M.dtype)
        return (torch.bmm(torch.bmm(U, N), Vh) / scale).view(ctx.shape)


def polar_factor(A: Tensor) -> Tensor:
    """The unitary polar factor ``U W^H`` of each square matrix ``A = U S W^H`` (``(..., n, n)``, real or
    complex; same dtype out).

    Unique (``(A A^H)^(-1/2) A``) where ``A`` is invertible; where it is singular, ``U W^H`` for the SVD
    torch returns: still unitary to rounding, one of the polar factors. Gradient: with ``M = U^H G W``
    (``G = dL/dQ``), ``dL/dA = U [(M - M^H) o F] W^H``, ``F_ij = 1 / (s_i + s_j)`` (the polar factor's
    derivative has no ``1 / (s_i - s_j)`` terms), damped to ``F_ij = d / (d^2 + delta)``, ``d = s_i + s_j``,
    ``sqrt(delta) = 4 n eps`` on the scaled matrix: exact to rounding wherever ``d >> sqrt(delta)``, finite
    (at most ``1 / (2 sqrt(delta))``) where two singular values vanish, zero at ``A = 0``.
    """
    if not isinstance(A, Tensor) or A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"A must be a batch of square matrices (..., n, n), got {getattr(A, 'shape', A)!r}")
    if A.shape[-1] == 0:
        return A.clone()
    return _Polar.apply(A)[0]


class _RangeProjector(torch.autograd.Function):
    """``(P, U, S, Vh, scale)`` with ``A / scale = U diag(S) Vh`` and ``P = U_k U_k^H`` over the kept columns."""

    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor):
        A3 = stack(A)
        scale = _power_of_two_scale(A3)
        U, S, Vh = torch.linalg.svd(A3 / scale, full_matrices=False)
        kept = _polish(U) * (S > _rounding(A)).unsqueeze(-2).to(U.dtype)
        return torch.bmm(kept, kept.mH).view(*A.shape[:-1], A.shape[-2]), U, S, Vh, scale

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        P, U, S, Vh, scale = output
        ctx.mark_non_differentiable(U, S, Vh, scale)
        ctx.save_for_backward(P, U, S, Vh, scale)
        ctx.tol = _rounding(inputs[0])
        ctx.shape = inputs[0].shape

    @staticmethod
    def backward(ctx, grad: Tensor, *_):
        P, U, S, Vh, scale = ctx.saved_tensors
        P, grad = stack(P), stack(grad).to(P.dtype)
        inverse = torch.where(S > ctx.tol, 1 / S.clamp_min(ctx.tol), torch.zeros_like(S))
        pinv_h = torch.bmm(U * inverse.unsqueeze(-2).to(U.dtype), Vh)  # (A^+)^H of the scaled matrix
        outside = grad + grad.mH
        outside = torch.baddbmm(outside, P, outside, alpha=-1)
        return (torch.bmm(outside, pinv_h) / scale).view(ctx.shape)


def range_projector(A: Tensor) -> Tensor:
    """The orthogonal projector onto the column space of each tall ``A`` (``(..., n, r)``, ``n >= r``, real
    or complex): ``P = A A^+``, ``(..., n, n)``, Hermitian, idempotent.

    ``A (A^H A)^(-1) A^H`` where ``A`` has full column rank, without forming ``A^H A`` (no jitter): ``U_k U_k^H``
    over the left singular vectors whose singular value exceeds ``4 n eps`` times the (scaled) matrix's unit
    size, i.e. the projector onto the numerical range; ``A = 0`` gives ``P = 0``. Gradient: ``dP = (I - P) dA
    A^+ + (A^+)^H dA^H (I - P)``, so ``dL/dA = (I - P)(G + G^H)(A^+)^H`` with the same truncated ``A^+``:
    exact where the rank is locally constant, finite everywhere.
    """
    if not isinstance(A, Tensor) or A.dim() < 2 or A.shape[-2] < A.shape[-1]:
        raise ValueError(f"A must be a batch of tall matrices (..., n, r) with n >= r, got {getattr(A, 'shape', A)!r}")
    if A.shape[-1] == 0:
        return A @ A.mH  # the zero projector, differentiable
    return _RangeProjector.apply(A)[0]
