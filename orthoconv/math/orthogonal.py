"""Maps from unconstrained matrices to orthogonal matrices, Stiefel frames and projectors.

Every map is differentiable, batched over leading dimensions and keeps the dtype and device
of its input. The default, ``method="qr"``, is exact: Householder QR produces a factor whose
columns are orthonormal to working precision whatever the conditioning of the input.
``method="bjorck"`` is the Newton-Schulz iteration used by the 2019 BCOP code (Björck & Bowie
1971, Anil et al. 2019), but iterated to a tolerance, and it raises instead of returning a
matrix that is not orthonormal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

METHODS = ("qr", "expm", "bjorck")


class BjorckConvergenceError(RuntimeError):
    """Björck orthonormalization did not reach its tolerance within ``max_iter`` steps."""


def _check_matrix(A: Tensor, name: str) -> None:
    if not isinstance(A, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(A).__name__}")
    if A.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (..., n, r), got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {A.dtype}")
    if A.shape[-2] < A.shape[-1]:
        raise ValueError(
            f"{name} must be tall (..., n, r) with n >= r to have orthonormal columns, got shape {tuple(A.shape)}"
        )


def default_tolerance(dtype: torch.dtype, n: int) -> float:
    """Tolerance on ``||X^T X - I||_F`` that a converged iteration reaches: ``sqrt(n) * 8 * eps``."""
    return 8.0 * math.sqrt(n) * torch.finfo(dtype).eps


def qr_orthogonal(A: Tensor) -> Tensor:
    """Orthonormal columns by Householder QR with the sign fix ``Q <- Q diag(sign(diag R))``.

    The sign fix makes the map unique (and continuous) wherever ``A`` has full column rank, so
    ``qr_orthogonal(Q) == Q`` for any frame ``Q`` with positive ``diag(Q^T Q)``-pivots.
    """
    Q, R = torch.linalg.qr(A, mode="reduced")
    d = torch.diagonal(R, dim1=-2, dim2=-1)
    sign = torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))
    return Q * sign.unsqueeze(-2)


def expm_orthogonal(A: Tensor) -> Tensor:
    """Orthonormal columns as the first r columns of ``exp(S - S^T)``, S the n x n zero-padded ``A``.

    The exponential of a skew-symmetric matrix is orthogonal and has determinant +1, so this map
    reaches exactly the rotations (SO(n)) when ``A`` is square. ``torch.linalg.matrix_exp`` leaves an
    orthogonality error ``delta`` of a few ``1e-14`` at small norms (its truncated Taylor series) that
    grows like ``eps * ||A||`` with scaling and squaring; one Newton-Schulz step
    ``Q (3 I - Q^T Q) / 2`` takes it to ``~1.5 delta^2`` plus rounding, so the columns are orthonormal
    to ``~1e-15`` for any ``||A||`` whose exponential is accurate to ``delta < 0.1``.
    """
    n, r = A.shape[-2], A.shape[-1]
    S = torch.nn.functional.pad(A, (0, n - r))
    Q = torch.linalg.matrix_exp(S - S.transpose(-2, -1))[..., :r]
    return 1.5 * Q - 0.5 * Q @ (Q.transpose(-2, -1) @ Q)


def bjorck_orthogonal(A: Tensor, tol: float | None = None, max_iter: int = 100, beta: float = 0.5) -> Tensor:
    """Björck (Newton-Schulz) orthonormalization iterated until ``||X^T X - I||_F <= tol``.

    ``X_0 = A / ||A||_F`` (so every singular value starts in (0, 1]) and
    ``X_{t+1} = (1 + beta) X_t - beta X_t X_t^T X_t``, the first-order iteration of the 2019 BCOP
    code (Li et al. 2019, docs/references.md) with ``beta = 0.5``. Small singular values grow by a factor
    ``1 + beta`` per step and converge quadratically near 1, so ill-conditioned inputs need more
    steps; rank-deficient inputs never converge. Instead of returning a non-orthonormal matrix
    after a fixed count (the 2019 code ran 20 steps), this raises ``BjorckConvergenceError``.
    """
    _check_matrix(A, "A")
    r = A.shape[-1]
    tol = default_tolerance(A.dtype, r) if tol is None else tol
    eye = torch.eye(r, dtype=A.dtype, device=A.device)
    norm = torch.linalg.matrix_norm(A, ord="fro", keepdim=True)
    if not bool((norm > 0).all()):
        raise BjorckConvergenceError("bjorck_orthogonal: A has a zero matrix, which has no orthonormal frame")
    X = A / norm
    for _ in range(max_iter):
        gram = X.transpose(-2, -1) @ X
        error = torch.linalg.matrix_norm(gram - eye, ord="fro").max()
        if error <= tol:
            return X
        X = (1 + beta) * X - beta * (X @ gram)
    raise BjorckConvergenceError(
        f"bjorck_orthogonal: ||X^T X - I||_F = {float(error.detach()):.3e} > tol = {tol:.1e} after {max_iter} iterations "
        "(the input is singular or too ill-conditioned); raise max_iter or use method='qr'"
    )


def orthogonal(A: Tensor, method: str = "qr") -> Tensor:
    """A matrix with orthonormal columns (a point of the Stiefel manifold) built from ``A``.

    ``A`` has shape ``(..., n, r)`` with ``n >= r``; the result has the same shape and satisfies
    ``Q^T Q = I_r``. With ``n == r`` it is an orthogonal matrix. ``method`` is ``"qr"`` (exact,
    default), ``"expm"`` (exact, determinant +1 when square) or ``"bjorck"`` (iterative, raises
    when it does not converge).
    """
    _check_matrix(A, "A")
    if method == "qr":
        return qr_orthogonal(A)
    if method == "expm":
        return expm_orthogonal(A)
    if method == "bjorck":
        return bjorck_orthogonal(A)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def projector(A: Tensor, method: str = "qr") -> Tensor:
    """The symmetric projector ``P = U U^T`` onto the column space of ``orthogonal(A)``.

    ``A`` has shape ``(..., n, r)``; ``P`` has shape ``(..., n, n)``, rank ``r``, ``P^2 = P = P^T``.
    ``r = 0`` gives the zero projector.
    """
    if A.shape[-1] == 0:
        _check_matrix(A, "A")
        n = A.shape[-2]
        return A.new_zeros(*A.shape[:-2], n, n)
    U = orthogonal(A, method)
    return U @ U.transpose(-2, -1)
