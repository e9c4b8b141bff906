"""Maps from unconstrained matrices to orthogonal matrices, Stiefel frames and projectors.

Every map is differentiable, batched over leading dimensions and keeps the dtype and device
of its input (float16 and bfloat16 inputs are mapped in float32 and rounded back). The default,
``method="qr"``, is exact: Householder QR produces a factor whose columns are orthonormal to
working precision whatever the conditioning or the magnitude of the input, and its gradient is
finite at every input, rank-deficient and zero included (:func:`qr_orthogonal`). ``method="expm"``
is exact at every magnitude with finite gradients too (:func:`expm_orthogonal`).
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


def binary_scale(A: Tensor) -> Tensor:
    """``2^e`` per matrix of ``A`` (shape ``(..., 1, 1)``, no gradient) with ``max |A| / 2^e`` in ``[1/2, 1)``.

    Dividing by a power of two is exact, so the scale-invariant maps below work on matrices of unit
    size whatever the magnitude of ``A`` (``1e-30`` or ``1e30`` in float32 neither underflows nor
    overflows in a norm or a product). A zero matrix gets ``1``; ``e`` is clamped so that ``2^e`` and
    ``2^-e`` are normal numbers of the dtype.
    """
    if A.numel() == 0:
        return A.new_ones(*A.shape[:-2], 1, 1)
    if torch.is_grad_enabled() and A.requires_grad:
        A = A.detach()
    _, exponent = torch.frexp(torch.linalg.vector_norm(A, math.inf, dim=(-2, -1), keepdim=True))
    info = torch.finfo(A.dtype)
    low, high = math.ceil(math.log2(info.tiny)) + 1, math.floor(math.log2(info.max)) - 1
    return torch.exp2(exponent.to(A.dtype).clamp(low, high))


def _right_solve(X: Tensor, R: Tensor) -> Tensor:
    """``X R^-T`` for ``(..., n, r)``, ``(..., r, r)`` (``R`` upper triangular, ``diag R >= 0``, of unit size by
    :func:`binary_scale`), finite for every ``R``: one triangular solve with ``R + eps I``, after zeroing the
    columns of ``X`` whose pivot ``R_jj`` is at most ``4 r eps`` (numerically zero: rank deficiency).

    Where every pivot exceeds ``4 r eps`` the shift changes the result by a relative ``eps ||R^-1||``, the
    order of the solve's own rounding error (``cond(R) eps``): as accurate as the plain solve. Where one
    does not, that column's gradient is 0 (the direction is undefined there) and, the triangular solve
    running from the last column, it does not enter the others; the gain is at most ``1 / (4 r eps)``.
    """
    r = R.shape[-1]
    eps = torch.finfo(R.dtype).eps
    X = X * (torch.diagonal(R, dim1=-2, dim2=-1) > 4 * r * eps).unsqueeze(-2)
    eye = torch.eye(r, dtype=R.dtype, device=R.device)
    return torch.linalg.solve_triangular(torch.add(R, eye, alpha=eps).mT, X, upper=False, left=False)


class _QRFrame(torch.autograd.Function):
    """``(Q, R, scale)`` of ``A / scale = Q R`` with ``diag R >= 0``, ``Q``'s columns outside ``mask`` zeroed; the
    backward of :func:`qr_orthogonal` (``R`` and ``scale`` are outputs only to be saved: the forward/setup_context
    split that torch.func's transforms (vmap, jacrev) need)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        scale = binary_scale(A)
        Q, R = torch.linalg.qr(A / scale, mode="reduced")
        keep = A.new_ones(()) if mask is None else mask.squeeze(-2)
        sign = torch.copysign(keep, torch.diagonal(R, dim1=-2, dim2=-1))
        return Q * sign.unsqueeze(-2), R * sign.unsqueeze(-1), scale

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        Q, R, scale = output
        ctx.mark_non_differentiable(R, scale)
        ctx.set_materialize_grads(False)  # no zero gradients built for R and scale
        ctx.save_for_backward(Q, R, scale)

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_R=None, _grad_scale=None) -> tuple[Tensor, None]:
        Q, R, scale = ctx.saved_tensors  # masked columns: zero in Q, zero pivots (dropped by _right_solve)
        if grad is None:
            return None, None
        if R.shape[-1] == 0:
            return torch.zeros_like(Q), None
        shape = Q.shape
        if Q.dim() > 3:
            Q, R, grad = (t.reshape(-1, *t.shape[-2:]) for t in (Q, R, grad))
        product, fused = (torch.mm, torch.addmm) if Q.dim() == 2 else (torch.bmm, torch.baddbmm)
        QtG = product(Q.mT, grad)
        B = fused(grad, Q, QtG - (QtG - QtG.mT).tril(-1), alpha=-1)
        solved = _right_solve(B, R)
        return (solved if solved.shape == shape else solved.view(shape)) / scale, None


def qr_orthogonal(A: Tensor, mask: Tensor | None = None) -> Tensor:
    """Orthonormal columns by Householder QR with the sign fix ``Q <- Q diag(sign(diag R))``.

    The sign fix makes the map unique (and continuous) wherever ``A`` has full column rank, so
    ``qr_orthogonal(Q) == Q`` for any frame ``Q`` with positive ``diag(Q^T Q)``-pivots. Where ``A`` is
    rank deficient (a zero or repeated column, ``A = 0``) Householder QR still returns orthonormal
    columns (the map is discontinuous there, not undefined). The map is invariant under positive
    scaling, and ``A`` is divided by :func:`binary_scale` first.

    ``mask`` (optional, ``(..., 1, r)`` of 0 and 1, each row ones then zeros): frames of different widths
    in one batched call. Column ``j`` of the result is zeroed where ``mask`` is 0, and the kept leading
    columns are exactly ``qr_orthogonal`` of the kept columns of ``A`` alone (Householder's first ``r_i``
    reflectors see only the first ``r_i`` columns), values and gradients: the masked columns of ``A``
    (zero padding, say) get a zero gradient and do not enter it.

    Gradient (from ``dA = dQ R + Q dR`` with ``Q^T dQ`` skew and ``dR R^-1`` upper triangular)::

        dL/dA = [(I - Q Q^T) G + Q tril(Q^T G - G^T Q, -1)] R^-T,      G = dL/dQ,

    computed by one triangular solve with the normalized ``R`` shifted by ``eps I`` (:func:`_right_solve`: a
    relative change of the order of the solve's own rounding wherever the pivots exceed ``4 r eps``, so as
    accurate as torch's own QR backward there); a column whose pivot is numerically zero (rank deficiency)
    gets gradient 0, and the others stay finite, at most ``||B|| / (4 r eps)`` times ``2^-e``. At ``A = 0``
    it is zero.
    """
    _check_matrix(A, "A")
    return _QRFrame.apply(A, mask)[0]


class _SkewExp(torch.autograd.Function):
    """``(exp(S), U, theta)`` of a real skew-symmetric ``S`` through the eigendecomposition ``-i S = U
    diag(theta) U^H`` (``U``, ``theta`` are outputs only to be saved, as in :class:`_QRFrame`)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(S: Tensor, factor: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """``exp(factor S)``: ``factor = 2`` with ``S = P / 2 - P^T / 2`` keeps ``P - P^T`` from overflowing."""
        scale = binary_scale(S)
        complex_dtype = torch.complex128 if S.dtype == torch.float64 else torch.complex64
        eigenvalues, U = torch.linalg.eigh((S / scale).to(complex_dtype) * -1j)
        big = torch.finfo(eigenvalues.dtype).max  # past it the angles are rounding noise; inf would give nan
        theta = (eigenvalues * scale.squeeze(-1) * factor).clamp(-big, big)
        return ((U * torch.polar(torch.ones_like(theta), theta).unsqueeze(-2)) @ U.mH).real, U, theta

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, U, theta = output
        ctx.mark_non_differentiable(U, theta)
        ctx.save_for_backward(U, theta)
        ctx.factor = inputs[1] if len(inputs) > 1 else 1.0

    @staticmethod
    def backward(ctx, grad: Tensor, _grad_U=None, _grad_theta=None) -> tuple[Tensor, None]:
        U, theta = ctx.saved_tensors
        half = theta / 2  # halved first: the sum and difference of two angles near the dtype's max stay finite
        half_gap = half.unsqueeze(-1) - half.unsqueeze(-2)
        mean = half.unsqueeze(-1) + half.unsqueeze(-2)
        divided = torch.sinc(half_gap / math.pi)
        F = torch.complex(divided * torch.cos(mean), divided * torch.sin(mean))
        inner = U.mH @ grad.to(U.dtype) @ U
        return (U @ (F.conj() * inner) @ U.mH).real * ctx.factor, None


def expm_orthogonal(A: Tensor) -> Tensor:
    """Orthonormal columns from the first r columns of ``exp(S - S^T)``, S the n x n zero-padded ``A``.

    The exponential of a skew-symmetric matrix is orthogonal and has determinant +1, so this map
    reaches the rotations (SO(n)) when ``A`` is square. It is evaluated through the eigenvalues
    ``i theta_j`` and eigenvectors ``U`` of ``S - S^T`` (``exp = U diag(e^{i theta}) U^H``: unit-modulus
    factors at every scale, where ``torch.linalg.matrix_exp`` overflows to nan past ``||A|| ~ 1e8`` in
    float32), then made orthonormal to working precision by :func:`qr_orthogonal` (a change of the
    order of the rounding error wherever the exponential is accurate; at norms beyond ``1 / eps`` the
    rotation angles are rounding noise and only orthonormality is guaranteed).

    Gradient: the Daleckii-Krein formula ``dexp(S)[E] = U (F o (U^H E U)) U^H`` with the divided
    differences ``F_jk = (e^{i theta_j} - e^{i theta_k}) / (i (theta_j - theta_k)) =
    e^{i (theta_j + theta_k) / 2} sinc((theta_j - theta_k) / 2)`` (``e^{i theta_j}`` on coinciding
    eigenvalues), each of modulus ``<= 1``: exact and finite at every ``A``, including repeated
    eigenvalues and ``A = 0``.
    """
    n, r = A.shape[-2], A.shape[-1]
    half = torch.nn.functional.pad(A, (0, n - r)) / 2  # exact; P / 2 - P^T / 2 cannot overflow
    return qr_orthogonal(_SkewExp.apply(half - half.mT, 2.0)[0][..., :r])


def bjorck_orthogonal(A: Tensor, tol: float | None = None, max_iter: int = 100, beta: float = 0.5) -> Tensor:
    """Björck (Newton-Schulz) orthonormalization iterated until ``||X^T X - I||_F <= tol``.

    ``X_0 = A / ||A||_F`` (so every singular value starts in (0, 1]) and
    ``X_{t+1} = (1 + beta) X_t - beta X_t X_t^T X_t``, the first-order iteration of the 2019 BCOP
    code (Li et al. 2019, docs/references.md) with ``beta = 0.5``. Small singular values grow by a factor
    ``1 + beta`` per step and converge quadratically near 1, so ill-conditioned inputs need more
    steps; rank-deficient inputs never converge. Instead of returning a non-orthonormal matrix
    after a fixed count (the 2019 code ran 20 steps), this raises ``BjorckConvergenceError``: the map
    has no orthonormal value at a rank-deficient ``A`` (use ``"qr"`` or ``"expm"`` there). Wherever it
    returns, its gradient (through the iterations) is finite. ``A`` is first divided by
    :func:`binary_scale`, so any magnitude works. The iteration count depends on the data, so
    ``torch.compile`` cannot capture it in one graph (``"qr"`` and ``"expm"`` compile whole).
    """
    _check_matrix(A, "A")
    if A.numel() == 0:  # no columns (a rank-0 projector, a 1x1 BCOP's empty factors): vacuously orthonormal
        return A.clone()
    r = A.shape[-1]
    tol = default_tolerance(A.dtype, r) if tol is None else tol
    eye = torch.eye(r, dtype=A.dtype, device=A.device)
    A = A / binary_scale(A)
    norm = torch.linalg.matrix_norm(A, ord="fro", keepdim=True)
    if not bool(torch.isfinite(norm).all()):
        raise ValueError("bjorck_orthogonal: A has nan or inf entries")
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
    if A.dtype in (torch.float16, torch.bfloat16):
        return orthogonal(A.float(), method).to(A.dtype)
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
