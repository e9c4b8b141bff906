"""A zero-padded convolution applied matrix-free, and Lanczos on ``A^T A``: the top Ritz pairs and a witness.

``A`` is the forward convolution of a :class:`.geometry.ConvOperator` (a transposed convolution is the
adjoint of one and has its norm). With zero padding (``"valid"`` is zero padding of width 0) ``A x`` pads
with zeros and runs ``torch``'s convolution and ``A^T y`` runs the transposed convolution and keeps the
input window; other modes go through :mod:`.apply`. Lanczos with full reorthogonalization (Golub & Van Loan,
*Matrix Computations*, 10.1) on ``M = A^T A`` gives an orthonormal Krylov basis ``Q``, the products ``M Q``
and the Ritz values; its top Ritz value tends to ``lambda_max(M) = ||A||^2`` from below. The certified lower bound is the
witness ``||A y||`` of the unit Ritz vector ``y``, with the rounding allowance of :func:`.apply.rounding_bound`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .apply import EPS64, convolve, convolve_adjoint, rounding_bound
from .geometry import ConvOperator

START_NOISE = 1e-3  # relative weight of the seeded Gaussian mixed into a given start block

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _torch_pads(pairs) -> list[int]:
    return [p for before, after in reversed(pairs) for p in (before, after)]


def forward(op: ConvOperator, x: Tensor) -> Tensor:
    """``A x`` for a batch ``(B, c_in, *N)`` (zero padding, bias excluded): ``(B, c_out, *L)``; the convolution's
    extra outputs beyond ``L`` (the forward map of a transposed convolution with ``output_padding``) are cut."""
    x = F.pad(x, _torch_pads(op.padding))
    y = CONV[op.dims](x, op.kernel.to(x.dtype), stride=op.stride, dilation=op.dilation, groups=op.groups)
    return y[(..., *(slice(0, n) for n in op.output_size))]  # a transposed convolution's output_padding adds rows


def adjoint(op: ConvOperator, y: Tensor) -> Tensor:
    """``A^T y`` for a batch ``(B, c_out, *L)``: the transposed convolution, cropped to the input window."""
    z = CONV_T[op.dims](y, op.kernel.to(y.dtype), stride=op.stride, dilation=op.dilation, groups=op.groups)
    padded = [n + b + a for n, (b, a) in zip(op.input_size, op.padding)]
    z = F.pad(z, [p for n, m in zip(reversed(padded), reversed(z.shape[2:])) for p in (0, n - m)])
    return z[(..., *(slice(b, b + n) for n, (b, _) in zip(op.input_size, op.padding)))]


def gram_apply(op: ConvOperator, x: Tensor) -> Tensor:
    """``M x = A^T A x`` for flat vectors ``x`` ``(B, dim)`` of the forward convolution (any padding mode:
    zeros by :func:`forward` / :func:`adjoint`, the others by :mod:`.apply`'s gather and its gradient)."""
    shaped = x.reshape(x.shape[0], *op.forward_shapes[0])
    if op.padding_mode == "zeros":
        return adjoint(op, forward(op, shaped)).reshape(x.shape[0], -1)
    return convolve_adjoint(op, convolve(op, shaped)).reshape(x.shape[0], -1)


@dataclass
class Krylov:
    """An orthonormal basis ``Q`` ``(k, dim)`` of a Krylov space of ``M``, the products ``MQ = M Q``
    (as computed), the top Ritz value ``theta`` and its unit Ritz vector ``y``; ``T`` ``(k, k)`` the projected
    matrix and ``last`` the size of the last block (0 once the space is invariant), kept to extend the run."""

    Q: Tensor
    MQ: Tensor
    theta: float
    y: Tensor
    T: Tensor
    last: int


def _project_out(w: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
    """``w - (w Q^T) Q`` and the coefficients ``w Q^T``."""
    coefficients = w @ Q.T
    return w - coefficients @ Q, coefficients


def _next_block(Q: Tensor, MQ: Tensor, b: int) -> Tensor | None:
    """The next orthonormal block from the last ``b`` products: the last two blocks projected out first (the
    three-term recurrence), then the whole basis, a second time only where the first pass removed more than
    half the norm (Kahan's "twice is enough", Giraud, Langou, Rozloznik 2005), and once more after the QR only
    where it had to separate nearly dependent columns; None where ``M Q`` stays in the span (invariant
    subspace)."""
    w = MQ[-b:]
    scale = float(torch.linalg.matrix_norm(w))
    local = Q[-3 * b :]
    w, _ = _project_out(w, local)
    before = float(torch.linalg.matrix_norm(w))
    w, _ = _project_out(w, Q)
    if float(torch.linalg.matrix_norm(w)) < 0.5 * before:
        w, _ = _project_out(w, Q)
    basis, R = torch.linalg.qr(w.T)
    diagonal = R.diagonal().abs()
    keep = diagonal > 1e-10 * scale
    if not bool(keep.any()):
        return None
    q = basis.T[keep]
    if float(diagonal[keep].min()) < 1e-3 * float(torch.linalg.vector_norm(w, dim=1).max()):
        q, _ = _project_out(q, Q)
    return q / torch.linalg.vector_norm(q, dim=1, keepdim=True)


def lanczos(op: ConvOperator, rtol: float, max_steps: int, seed: int = 0, block: int = 2,
            resume: Krylov | None = None, enough: float = math.inf, start: Tensor | None = None) -> Krylov:
    """Block Lanczos on ``M = A^T A`` (``op`` taken as the forward convolution) from ``block`` seeded Gaussian
    vectors (drawn on the CPU; a block resolves the nearly double top eigenvalues that symmetric kernels give;
    ``start``: rows added to them, the Gaussian scaled to ``START_NOISE`` of each row's norm),
    or extending the run ``resume``, until the top Ritz value moves by less than ``rtol / 100`` (relative) over
    the last 8 vectors, or ``max_steps`` vectors, or once it reaches ``enough`` (an estimate that already
    meets the caller's aim); an invariant subspace ends it early. ``T`` keeps the diagonal
    blocks and the couplings of consecutive blocks (the rest vanishes in exact arithmetic; ``T`` only steers
    the run: the certificates use ``Q`` and ``MQ`` themselves). Memory: two ``max_steps x dim`` float64 arrays."""
    op = replace(op, adjoint=False)
    dim = math.prod(op.forward_shapes[0])
    max_steps = max(1, min(max_steps, dim))
    device = op.kernel.device
    Q = torch.empty(max_steps, dim, dtype=torch.float64, device=device)
    MQ = torch.empty_like(Q)
    T = torch.zeros(max_steps, max_steps, dtype=torch.float64, device=device)
    if resume is None:
        noise = torch.randn(min(block, max_steps), dim, generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64).to(device)
        if start is not None:
            noise = noise / torch.linalg.vector_norm(noise, dim=1, keepdim=True) * START_NOISE
            noise[: len(start)] += start[: len(noise)] / torch.linalg.vector_norm(start[: len(noise)], dim=1,
                                                                                  keepdim=True)
        q, k, prev = torch.linalg.qr(noise.T).Q.T, 0, 0
    else:
        k, prev = len(resume.Q), resume.last
        if k >= max_steps or prev == 0:
            return resume
        Q[:k], MQ[:k], T[:k, :k] = resume.Q, resume.MQ, resume.T
        q = _next_block(Q[:k], MQ[:k], prev)
    history: list[tuple[int, float]] = []
    last = 0
    with torch.no_grad():
        while q is not None:
            b = min(len(q), max_steps - k)
            Q[k : k + b], MQ[k : k + b] = q[:b], gram_apply(op, q[:b])
            lo = k - prev
            T[k : k + b, lo : k + b] = Q[k : k + b] @ MQ[lo : k + b].T
            T[lo : k + b, k : k + b] = T[k : k + b, lo : k + b].T.clone()
            k, prev, last = k + b, b, b
            theta = float(torch.linalg.eigvalsh(0.5 * (T[:k, :k] + T[:k, :k].T))[-1])
            before = [value for steps, value in history if steps <= k - 8]
            history.append((k, theta))
            if k >= max_steps or theta >= enough or (before and theta - before[-1] <= rtol / 100 * theta):
                break
            q = _next_block(Q[:k], MQ[:k], b)
            if q is None:
                last = 0
    Q, MQ, T = Q[:k], MQ[:k], T[:k, :k].clone()
    values, vectors = torch.linalg.eigh(0.5 * (T + T.T))
    y = vectors[:, -1] @ Q
    return Krylov(Q, MQ, float(values[-1]), y / torch.linalg.vector_norm(y), T, last)


def witness(op: ConvOperator, y: Tensor) -> float:
    """A certified lower bound on ``||A||``: ``||A y|| / ||y||`` in float64 less the rounding allowance."""
    op = replace(op, adjoint=False)
    shaped = y.reshape(1, *op.forward_shapes[0])
    with torch.no_grad():
        image = forward(op, shaped) if op.padding_mode == "zeros" else convolve(op, shaped)
        value = float(torch.linalg.vector_norm(image) / torch.linalg.vector_norm(y))
    size = y.numel()
    return max(0.0, (value * (1 - 4 * EPS64) - rounding_bound(op)) / (1 + (size + 4) * EPS64))
