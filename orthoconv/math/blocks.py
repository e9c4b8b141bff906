"""Block-convolution algebra: block kernels, kernel composition, transfer functions, BCOP kernels.

Convention (DESIGN.md): a kernel ``W`` of shape ``(c_out, c_in, kh, kw)`` acts like
``torch.nn.functional.conv2d`` (cross-correlation) and has the transfer function
``K(z1, z2) = sum_{p,q} W[:, :, p, q] z1^p z2^q``. Composing operators multiplies transfer
functions, ``K_{A o B} = K_A K_B``, so the kernel of a composition is the matrix-valued polynomial
product of the kernels (Li et al. 2019, Sec. 3; Sedghi et al. 2019).
"""

from __future__ import annotations

import math
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


def block_taps(P: Tensor, Q: Tensor) -> Tensor:
    """The block kernels ``(..., c, c, 4)`` of stacks of ``P`` and ``Q`` (``(..., c, c)`` each), taps
    ``[0, 0], [0, 1], [1, 0], [1, 1]`` of :func:`block_kernel` flattened last, in one batched product ``P Q``."""
    PQ = torch.bmm(P, Q) if P.dim() == 3 else P @ Q
    Q_PQ = Q - PQ  # (I - P) Q
    eye = torch.eye(P.shape[-1], dtype=P.dtype, device=P.device)
    return torch.stack([PQ, P - PQ, Q_PQ, eye - P - Q_PQ], dim=-1)


def block_kernel(P: Tensor, Q: Tensor) -> Tensor:
    """The 2x2 block kernel ``B(P, Q)`` of shape ``(c, c, 2, 2)``.

    ``B = [[PQ, P(I-Q)], [(I-P)Q, (I-P)(I-Q)]]`` (tap ``[p, q]``), whose transfer function is
    ``(P + (I - P) z1)(Q + (I - Q) z2)``: paraunitary when ``P`` and ``Q`` are symmetric projectors
    (Li et al. 2019, Sec. 3.2).
    """
    _check_square_stack(P, "P")
    _check_square_stack(Q, "Q", P.shape[-1])
    return block_taps(P, Q).unflatten(-1, (2, 2))


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


def _polynomial_products(A: Tensor, B: Tensor) -> Tensor:
    """Kernels ``(m, c, c, (2a - 1)^2)`` (taps flattened last) of ``K_A(z) K_B(z)`` for ``m`` pairs of kernels
    ``(m, c, c, a^2)``: every product of a tap of ``A`` with a tap of ``B`` in one batched matmul, summed into
    tap ``(p1 + p2, q1 + q2)`` of the product by one ``fold`` (col2im: the polynomial product's sums, exact)."""
    m, c, taps = A.shape[0], A.shape[1], A.shape[-1]
    a = math.isqrt(taps)
    products = torch.bmm(A.transpose(-2, -1).reshape(m, c * taps, c), B.reshape(m, c, c * taps))
    columns = products.view(m, c, taps, c, taps).permute(0, 1, 3, 4, 2).reshape(m, c * c * taps, taps)
    return F.fold(columns, (2 * a - 1, 2 * a - 1), (a, a)).view(m, c, c, (2 * a - 1) ** 2)


def bcop_kernel(H: Tensor, Ps: Tensor | Sequence[Tensor], Qs: Tensor | Sequence[Tensor]) -> Tensor:
    """The BCOP kernel ``K(z) = H B(P_1, Q_1)(z) ... B(P_{k-1}, Q_{k-1})(z)`` of shape ``(c, c, k, k)``.

    ``H`` is a ``(c, c)`` matrix (orthogonal for an orthogonal convolution) and ``Ps``, ``Qs`` hold
    ``k - 1`` matrices ``(c, c)`` each (symmetric projectors for an orthogonal convolution).
    ``k = 1`` (no projectors) gives the 1x1 kernel ``H``. The ``k - 1`` block kernels are built in one
    batched product (:func:`block_taps`), then multiplied pairwise as matrix polynomials, every pair of a
    level in one batched product and one ``fold`` (:func:`_polynomial_products`; an odd count is completed by the
    identity, whose zero taps are dropped at the end), ``ceil(log2(k - 1))`` levels; finally ``H``
    multiplies every tap (Li et al. 2019, Eq. 6). Memory: the top level holds ``a^4 c^2`` tap products,
    ``a = 2^(levels - 1) + 1``.
    """
    _check_square_stack(H, "H")
    c = H.shape[-1]
    Ps = _as_stack(Ps, H)
    Qs = _as_stack(Qs, H)
    if Ps.shape[0] != Qs.shape[0]:
        raise ValueError(f"Ps and Qs must hold the same number of projectors, got {Ps.shape[0]} and {Qs.shape[0]}")
    if Ps.shape[0] == 0:
        return H[:, :, None, None]
    _check_square_stack(Ps, "Ps", c)
    _check_square_stack(Qs, "Qs", c)
    k = Ps.shape[0] + 1
    taps = block_taps(Ps, Qs)
    while taps.shape[0] > 1:
        if taps.shape[0] % 2:
            eye = torch.eye(c, dtype=H.dtype, device=H.device)[None, :, :, None]
            taps = torch.cat([taps, F.pad(eye, (0, taps.shape[-1] - 1))])
        taps = _polynomial_products(*taps.unflatten(0, (-1, 2)).unbind(1))
    a = math.isqrt(taps.shape[-1])
    kernel = (H @ taps.view(c, -1)).view(c, c, a, a)
    return kernel if a == k else kernel[..., :k, :k]  # the identities' zero taps beyond k dropped
