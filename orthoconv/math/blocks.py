"""Block-convolution algebra: block kernels, kernel composition, transfer functions, BCOP kernels.

Convention (DESIGN.md): a kernel ``W`` of shape ``(c_out, c_in, kh, kw)`` acts like
``torch.nn.functional.conv2d`` (cross-correlation) and has the transfer function
``K(z1, z2) = sum_{p,q} W[:, :, p, q] z1^p z2^q``. Composing operators multiplies transfer
functions, ``K_{A o B} = K_A K_B``, so the kernel of a composition is the matrix-valued polynomial
product of the kernels (Li et al. 2019, Sec. 3; Sedghi et al. 2019).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_kernel(W: Tensor, name: str) -> None:
    if not isinstance(W, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(W).__name__}")
    if W.dim() != 4:
        raise ValueError(f"{name} must be a 4-D kernel (c_out, c_in, kh, kw), got shape {tuple(W.shape)}")


def _check_square_stack(M: Tensor, name: str, c: int | None = None) -> None:
    if not isinstance(M, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(M).__name__}")
    if M.dim() < 2 or M.shape[-1] != M.shape[-2] or (c is not None and M.shape[-1] != c):
        want = f"({c}, {c})" if c is not None else "(c, c)"
        raise ValueError(f"{name} must end in a square {want} matrix, got shape {tuple(M.shape)}")


def _as_stack(Ms: Tensor | Sequence[Tensor], like: Tensor) -> Tensor:
    if isinstance(Ms, Tensor):
        return Ms
    Ms = list(Ms)
    return torch.stack(Ms) if Ms else like.new_zeros(0, *like.shape[-2:])


def block_kernel(P: Tensor, Q: Tensor) -> Tensor:
    """The 2x2 block kernel ``B(P, Q)`` of shape ``(c, c, 2, 2)``.

    ``B = [[PQ, P(I-Q)], [(I-P)Q, (I-P)(I-Q)]]`` (tap ``[p, q]``), whose transfer function is
    ``(P + (I - P) z1)(Q + (I - Q) z2)``: paraunitary when ``P`` and ``Q`` are symmetric projectors
    (Li et al. 2019, Sec. 3.2).
    """
    _check_square_stack(P, "P")
    _check_square_stack(Q, "Q", P.shape[-1])
    eye = torch.eye(P.shape[-1], dtype=P.dtype, device=P.device)
    PQ = P @ Q
    taps = torch.stack([PQ, P - PQ, Q - PQ, eye - P - Q + PQ], dim=-1)
    return taps.unflatten(-1, (2, 2))


def compose_kernels(W1: Tensor, W2: Tensor) -> Tensor:
    """The kernel of the operator ``conv(W1) o conv(W2)`` (``W2`` acts first).

    ``W[p, q] = sum_{p1 + p2 = p, q1 + q2 = q} W1[p1, q1] @ W2[p2, q2]``, of shape
    ``(c_out1, c_in2, kh1 + kh2 - 1, kw1 + kw2 - 1)``; its transfer function is ``K1(z) K2(z)``.
    Computed as one full convolution: the channels of ``W2``'s output act as convolution channels.
    """
    _check_kernel(W1, "W1")
    _check_kernel(W2, "W2")
    if W1.shape[1] != W2.shape[0]:
        raise ValueError(
            f"W1 takes {W1.shape[1]} input channels but W2 produces {W2.shape[0]}: cannot compose "
            f"shapes {tuple(W1.shape)} and {tuple(W2.shape)}"
        )
    kh, kw = W1.shape[-2:]
    x = W2.transpose(0, 1)
    out = F.conv2d(x, W1.flip(-2, -1), padding=(kh - 1, kw - 1))
    return out.transpose(0, 1)


def transfer_function(kernel: Tensor, z1, z2) -> Tensor:
    """Evaluate ``K(z1, z2) = sum_{p,q} W[:, :, p, q] z1^p z2^q``.

    ``z1`` and ``z2`` are complex (or real) numbers or tensors that broadcast together; the result
    has shape ``broadcast_shape + (c_out, c_in)`` and a complex dtype.
    """
    _check_kernel(kernel, "kernel")
    cdtype = torch.complex128 if kernel.dtype == torch.float64 else torch.complex64
    z1 = torch.as_tensor(z1, device=kernel.device).to(cdtype)
    z2 = torch.as_tensor(z2, device=kernel.device).to(cdtype)
    z1, z2 = torch.broadcast_tensors(z1, z2)
    kh, kw = kernel.shape[-2:]
    p = torch.arange(kh, device=kernel.device)
    q = torch.arange(kw, device=kernel.device)
    powers1 = z1.unsqueeze(-1) ** p
    powers2 = z2.unsqueeze(-1) ** q
    return torch.einsum("...p,...q,oipq->...oi", powers1, powers2, kernel.to(cdtype))


def _right_multiply_factor(X: Tensor, P: Tensor, axis: int) -> Tensor:
    """Taps-first kernel ``X`` (kh, kw, c_out, c) of ``K_X(z) (P + (I - P) z_axis)``, axis 0 for z1, 1 for z2.

    ``X(z) P + z X(z)(I - P)``: with ``Y = X P`` tap by tap, the new kernel is ``Y`` plus
    ``X - Y`` shifted by one tap along ``axis``; one batched matmul over all taps.
    """
    Y = X @ P
    zeros = X.new_zeros(1, X.shape[1], *X.shape[2:]) if axis == 0 else X.new_zeros(X.shape[0], 1, *X.shape[2:])
    return torch.cat([Y, zeros], dim=axis) + torch.cat([zeros, X - Y], dim=axis)


def bcop_kernel(H: Tensor, Ps: Tensor | Sequence[Tensor], Qs: Tensor | Sequence[Tensor]) -> Tensor:
    """The BCOP kernel ``K(z) = H B(P_1, Q_1)(z) ... B(P_{k-1}, Q_{k-1})(z)`` of shape ``(c, c, k, k)``.

    ``H`` is a ``(c, c)`` matrix (orthogonal for an orthogonal convolution) and ``Ps``, ``Qs`` hold
    ``k - 1`` matrices ``(c, c)`` each (symmetric projectors for an orthogonal convolution).
    ``k = 1`` (no projectors) gives the 1x1 kernel ``H``. Each block factorizes as
    ``(P + (I - P) z1)(Q + (I - Q) z2)``, so the product is built one linear factor at a time,
    each step one batched matmul over the taps accumulated so far (Li et al. 2019, Eq. 6).
    """
    _check_square_stack(H, "H")
    c = H.shape[-1]
    Ps = _as_stack(Ps, H)
    Qs = _as_stack(Qs, H)
    if Ps.shape[0] != Qs.shape[0]:
        raise ValueError(f"Ps and Qs must hold the same number of projectors, got {Ps.shape[0]} and {Qs.shape[0]}")
    if Ps.shape[0]:
        _check_square_stack(Ps, "Ps", c)
        _check_square_stack(Qs, "Qs", c)
    taps = H[None, None]
    for P, Q in zip(Ps, Qs):
        taps = _right_multiply_factor(taps, P, axis=0)
        taps = _right_multiply_factor(taps, Q, axis=1)
    return taps.permute(2, 3, 0, 1)
