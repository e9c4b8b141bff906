"""Discrete invariants of orthogonal convolutions: which connected component a kernel lies in.

For a paraunitary transfer function (``K(z)^T K(1/z) = I``, DESIGN.md) the determinant is a
monomial, ``det K(z1, z2) = s z1^a z2^b`` with ``s = +-1``. For a BCOP kernel
``K = H prod_i (P_i + (I - P_i) z1)(Q_i + (I - Q_i) z2)`` each linear factor has determinant
``z^(n - rank P)``, so ``s = det H``, ``a = sum_i (n - rank P_i)``, ``b = sum_i (n - rank Q_i)``
(Li et al., NeurIPS 2019, arXiv 1911.00937, Sec. 4). The triple is continuous along any path of
orthogonal convolutions and takes discrete values, so kernels with different ``(s, a, b)`` lie in
different connected components; BCOP realizes every triple with ``0 <= a, b <= (k - 1) n``.

This module measures the triple from a kernel (two independent ways, cross-checked), samples BCOP
factors in any class, and builds the 2n-channel, rank-n embedding of Li et al. Theorem 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .blocks import transfer_function
from .orthogonal import projector, qr_orthogonal
from .spectral import orthogonality_certificate


@dataclass(frozen=True)
class ComponentInvariants:
    """``det K(z1, z2) = sign * z1^a * z2^b``: the connected-component label of an orthogonal kernel."""

    sign: int
    a: int
    b: int


def default_tolerance(dtype: torch.dtype) -> float:
    """``sqrt(eps)`` of the kernel's dtype: about 1.5e-8 in float64, 3.5e-4 in float32."""
    return math.sqrt(torch.finfo(dtype).eps)


def count_invariant_classes(n: int, k: int, dims: int = 2) -> int:
    """Number of triples ``(s, a, b)`` (pairs ``(s, a)`` in 1-D) realized by size-k kernels over n channels.

    ``2 ((k - 1) n + 1)^dims``: ``s = +-1`` and each degree in ``0..(k - 1) n``. In 1-D this is the
    number of connected components, ``2 (k - 1) n + 2`` (Li et al. 2019, Sec. 4); in 2-D it is a
    lower bound on the number of components.
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    return 2 * ((k - 1) * n + 1) ** dims


def _check_square_kernel(kernel: Tensor) -> None:
    if not isinstance(kernel, Tensor):
        raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.dim() != 4 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be a square (c, c, kh, kw) kernel, got shape {tuple(kernel.shape)}")
    if not kernel.is_floating_point():
        raise TypeError(f"kernel must be a real floating point tensor, got dtype {kernel.dtype}")


def kernel_degrees(kernel: Tensor) -> tuple[Tensor, Tensor]:
    """The tap-weighted energies ``a = sum_pq p ||W_pq||_F^2`` and ``b = sum_pq q ||W_pq||_F^2``.

    For a paraunitary ``K`` they are the winding numbers of ``det K``: with ``z1 = e^{i theta}``,
    ``d/d theta log det K = tr(K^H dK/d theta)``, whose torus average is ``i sum p ||W_pq||^2`` (Parseval).
    For any other kernel they are just continuous functions of the taps (differentiable, same dtype).
    """
    _check_square_kernel(kernel)
    energy = kernel.square().sum(dim=(0, 1))
    p = torch.arange(kernel.shape[2], dtype=kernel.dtype, device=kernel.device)
    q = torch.arange(kernel.shape[3], dtype=kernel.dtype, device=kernel.device)
    return (energy * p[:, None]).sum(), (energy * q[None, :]).sum()


def determinant_coefficients(kernel: Tensor) -> Tensor:
    """The coefficients ``d[alpha, beta]`` of the polynomial ``det K(z1, z2) = sum d[alpha, beta] z1^alpha z2^beta``.

    ``det K`` has degree at most ``m1 = c (kh - 1)`` in ``z1`` and ``m2 = c (kw - 1)`` in ``z2``, so its
    values at the ``(m1 + 1) x (m2 + 1)`` roots of unity determine it: ``d = fft2(values) / ((m1 + 1)(m2 + 1))``.
    For a paraunitary kernel exactly one coefficient is nonzero, ``d[a, b] = s``, and ``(a, b)`` are the
    winding numbers of ``theta -> det K(e^{i theta}, w)`` and ``theta -> det K(w, e^{i theta})``.
    Computed in complex128.
    """
    _check_square_kernel(kernel)
    c, _, kh, kw = kernel.shape
    m1, m2 = c * (kh - 1) + 1, c * (kw - 1) + 1
    roots1 = torch.exp(2j * math.pi * torch.arange(m1, dtype=torch.float64, device=kernel.device) / m1)
    roots2 = torch.exp(2j * math.pi * torch.arange(m2, dtype=torch.float64, device=kernel.device) / m2)
    values = torch.linalg.det(transfer_function(kernel.double(), roots1[:, None], roots2[None, :]))
    return torch.fft.fft2(values) / (m1 * m2)


def _nearest_integer(value: float, tol: float, name: str) -> int:
    rounded = round(value)
    if abs(value - rounded) > tol:
        raise ValueError(f"{name} = {value:.6g} is not within {tol:.1e} of an integer: the kernel is not paraunitary")
    return int(rounded)


def component_invariants(kernel: Tensor, tol: float | None = None) -> ComponentInvariants:
    """The triple ``(s, a, b)`` with ``det K(z1, z2) = s z1^a z2^b`` of an orthogonal square kernel.

    1. Orthogonality: ``max_w ||K(w)^H K(w) - I||_F <= tol`` on the ``(2 kh - 1) x (2 kw - 1)`` roots of
       unity. ``K^H K`` is a trigonometric polynomial with that many coefficients, so these samples
       determine it: the check certifies paraunitarity, not just orthogonality on one image size.
    2. ``s = sign det K(1, 1)`` (``K(1, 1)`` the sum of the taps), ``a, b`` from :func:`kernel_degrees`.
    3. Cross-check against :func:`determinant_coefficients`: the one nonzero coefficient of ``det K``
       must sit at ``(a, b)`` with value ``s`` (the winding numbers of ``det K`` on the torus).

    ``tol`` defaults to :func:`default_tolerance` of the kernel's dtype; the integer checks allow
    ``tol * c * (kh + kw)``, the size of the sums involved. Raises ``ValueError`` when the kernel is
    not orthogonal within ``tol`` (the invariants are meaningless then) or the two computations disagree.
    """
    _check_square_kernel(kernel)
    if not bool(torch.isfinite(kernel).all()):
        raise ValueError("kernel has non-finite entries (nan or inf)")
    tol = default_tolerance(kernel.dtype) if tol is None else float(tol)
    c, _, kh, kw = kernel.shape
    deviation = orthogonality_certificate(kernel.double(), (2 * kh - 1, 2 * kw - 1)).gram_deviation
    if deviation > tol:
        raise ValueError(
            f"kernel is not orthogonal: max_w ||K^H K - I||_F = {deviation:.3e} > tol = {tol:.1e}; "
            "component invariants are defined only for orthogonal (paraunitary) kernels"
        )
    slack = tol * c * (kh + kw)
    sign = _nearest_integer(float(torch.linalg.det(kernel.double().sum(dim=(2, 3)))), slack, "det K(1, 1)")
    if sign not in (1, -1):
        raise ValueError(f"det K(1, 1) rounds to {sign}, not +-1: the kernel is not orthogonal within tol = {tol:.1e}")
    a, b = (_nearest_integer(float(d), slack, name) for d, name in zip(kernel_degrees(kernel.double()), "ab"))
    coefficients = determinant_coefficients(kernel)
    peak = int(coefficients.abs().argmax())
    winding = divmod(peak, coefficients.shape[1])
    residual = coefficients.clone()
    residual[winding] -= sign
    if winding != (a, b) or float(residual.abs().max()) > slack:
        raise ValueError(
            f"det K is not the monomial {sign} z1^{a} z2^{b}: its largest coefficient sits at {winding}, "
            f"max deviation {float(residual.abs().max()):.3e}; the kernel is not paraunitary within tol"
        )
    return ComponentInvariants(sign, a, b)


def bcop_invariants(n: int, p_ranks: Sequence[int], q_ranks: Sequence[int], sign: int) -> ComponentInvariants:
    """The triple predicted from BCOP factors: ``(det H, sum_i (n - rank P_i), sum_i (n - rank Q_i))``."""
    return ComponentInvariants(int(sign), sum(n - r for r in p_ranks), sum(n - r for r in q_ranks))


def _check_ranks(n: int, ranks: Sequence[int], name: str) -> tuple[int, ...]:
    ranks = tuple(int(r) for r in ranks)
    if any(r < 0 or r > n for r in ranks):
        raise ValueError(f"{name} must lie in [0, {n}], got {ranks}")
    return ranks


def sample_bcop_factors(
    n: int,
    k: int,
    p_ranks: Sequence[int],
    q_ranks: Sequence[int],
    sign: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor, Tensor]:
    """Random BCOP factors ``(H, Ps, Qs)`` in the class ``(sign, p_ranks, q_ranks)``.

    ``H`` is Haar on the coset ``det H = sign`` (QR of a Gaussian with ``diag R > 0``, first row negated
    when its determinant has the wrong sign); ``P_i = U U^T`` with ``U`` orthonormal columns of an
    ``n x rank`` Gaussian, uniform on the Grassmannian. ``Ps`` and ``Qs`` have shape ``(k - 1, n, n)``.
    """
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    p_ranks, q_ranks = _check_ranks(n, p_ranks, "p_ranks"), _check_ranks(n, q_ranks, "q_ranks")
    if len(p_ranks) != k - 1 or len(q_ranks) != k - 1:
        raise ValueError(f"kernel size {k} needs {k - 1} P ranks and Q ranks, got {p_ranks} and {q_ranks}")
    H = qr_orthogonal(torch.randn(n, n, generator=generator, dtype=dtype))
    if int(torch.sign(torch.linalg.det(H))) != sign:
        H = torch.cat([-H[:1], H[1:]])
    return H, _random_projectors(n, p_ranks, generator, dtype), _random_projectors(n, q_ranks, generator, dtype)


def _random_projectors(n: int, ranks: tuple[int, ...], generator, dtype) -> Tensor:
    """Uniform random projectors of the given ranks, stacked into ``(len(ranks), n, n)``."""
    Ps = [projector(torch.randn(n, r, generator=generator, dtype=dtype)) for r in ranks]
    return torch.stack(Ps) if Ps else torch.zeros(0, n, n, dtype=dtype)


@dataclass(frozen=True)
class Embedding2n:
    """The 2n-channel, rank-n BCOP of Li et al. Theorem 2 and the parameters that load it into a layer.

    ``H, Ps, Qs`` are the ``2n``-channel factors; ``h_param`` (2n, 2n) and ``pq_param`` (2, k - 1, 2n, n)
    (width 0 when k = 1, like the layer's) are fixed points of the QR maps of ``BCOP(2n, 2n, k)`` (default
    half ranks): ``qr_orthogonal(H) = H`` and ``qr_orthogonal(U) = U`` for orthonormal ``U`` whose ``U U^T`` is the projector.
    """

    H: Tensor
    Ps: Tensor
    Qs: Tensor
    h_param: Tensor
    pq_param: Tensor


def _range_and_complement(P: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """Orthonormal bases of ``range P`` and ``range (I - P)`` for a symmetric projector ``P``."""
    if float((P - P.T).abs().max()) > tol or float((P @ P - P).abs().max()) > tol:
        raise ValueError("Ps and Qs must be symmetric projectors (P = P^T = P^2)")
    eigenvalues, vectors = torch.linalg.eigh(P)
    inside = eigenvalues > 0.5
    return vectors[:, inside], vectors[:, ~inside]


def embed_2n(H: Tensor, Ps: Tensor, Qs: Tensor, tol: float | None = None) -> Embedding2n:
    """Li et al. 2019 Theorem 2: a 2n-channel BCOP with rank-n projectors containing an n-channel BCOP.

    ``P' = P (+) (I - P)``, ``Q' = Q (+) (I - Q)``, ``H' = H (+) H`` (so ``det H' = (det H)^2 = +1``). Each
    factor of the 2n kernel is block diagonal, ``(P + (I - P) z) (+) ((I - P) + P z)``, so
    ``K'(z) = H K_1(z) (+) H K_2(z)`` with ``H K_1 = K`` the n-channel BCOP: the top-left ``n x n`` block
    of the 2n kernel equals ``K`` and the off-diagonal blocks vanish. Every ``P'`` has rank n.
    """
    n = H.shape[-1]
    tol = default_tolerance(H.dtype) if tol is None else tol
    if H.shape != (n, n) or float((H.T @ H - torch.eye(n, dtype=H.dtype, device=H.device)).abs().max()) > tol:
        raise ValueError(f"H must be an orthogonal (n, n) matrix, got shape {tuple(H.shape)}")
    if Ps.dim() != 3 or Ps.shape != Qs.shape or Ps.shape[1:] != (n, n):
        raise ValueError(f"Ps and Qs must both have shape (k - 1, {n}, {n}), got {tuple(Ps.shape)} and {tuple(Qs.shape)}")
    zeros = H.new_zeros(n, n)
    H2 = torch.cat([torch.cat([H, zeros], 1), torch.cat([zeros, H], 1)], 0)
    frames = []
    for P in torch.cat([Ps, Qs]):
        inside, outside = _range_and_complement(P, tol)
        frames.append(torch.block_diag(inside, outside))
    U = torch.stack(frames) if frames else H.new_zeros(0, 2 * n, 0)
    projectors = U @ U.transpose(-2, -1)
    k1 = Ps.shape[0]
    pq_param = U.reshape(2, k1, 2 * n, U.shape[-1])
    return Embedding2n(H2, projectors[:k1], projectors[k1:], H2.clone(), pq_param)
