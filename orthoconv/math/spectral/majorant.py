"""A low-rank majorant of ``A^T A`` for a zero-padded convolution, from the circular convolution it compresses.

A zero-padded (or ``"valid"``) convolution ``A`` on a window of size ``N`` is a compression ``A = R C E`` of
the circular convolution ``C`` on a torus ``m`` (per dimension a multiple of the stride, covering the
window ``[b, b + N)``, every position read and ``s L`` outputs): ``E`` places the input at ``[b, b + N)``,
``R`` keeps the first ``L`` outputs, and no read wraps around. So ``A^T A <= E^T C^T C E``.

Polyphase DFT on the output torus ``m / s``: ``X(w)[c, r] = sum_q x[c, s q + r] exp(-2 pi i w.q / (m/s))``.
Writing a tap's offset ``d t = s a_t + r_t``, ``(C x)^(w) = K(w) X(w)`` with
``K(w)[o, (c, r)] = sum_{t : r_t = r} W[o, c, t] exp(2 pi i w.a_t / (m/s))`` (per group), and
``||C x||^2 = sum_w X(w)^H G(w) X(w) / |m/s|``, ``G = K^H K``. With ``G(w) = U diag(lambda) U^H``, deflate
the eigenpairs above a threshold, let ``mu`` bound every other eigenvalue, and
``d_j = u_j(w) exp(2 pi i w.q / (m/s)) / sqrt|m/s|`` (unit torus vectors, ``<d_j, x> = u_j^H X(w) / sqrt|m/s|``):

    C^T C <= mu I + sum_j (lambda_j - mu) (d_j d_j^H + conj(d_j) conj(d_j)^H),

(one frequency of each conjugate pair is decomposed: ``G(-w) = conj G(w)`` for a real kernel; for real ``x``
the pair contributes ``2 (lambda_j - mu) ((Re d_j . x)^2 + (Im d_j . x)^2)``, a self-conjugate frequency
``2 w = 0`` once: ``(lambda_j - mu) (...)``; ``n_j`` = 2 or 1). Hence

    A^T A <= N = mu I + F^T F,   F = rows sqrt(n_j (lambda_j - mu)) E^T Re d_j, sqrt(n_j (lambda_j - mu)) E^T Im d_j,

and ``A^T A`` has at most as many eigenvalues above ``rho > mu`` as ``F F^T`` (small) has above ``rho - mu``.

Rounding: ``G`` is within ``(2 gamma_c + 4 (gamma_T + 8 eps)) (sum_t ||W_t||_F)^2`` of ``K^H K`` (``gamma_n =
2 n eps / (1 - 2 n eps)``, complex); ``eigh`` is exact for a matrix within ``8 n eps ||G||_F`` with
eigenvectors within ``16 n eps`` of an exactly unitary set (backward stability): both allowances go into
``mu``, the eigenvector and phase errors into an allowance on ``F`` (:func:`count_above`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .apply import EPS64
from .geometry import ConvOperator


def gamma(n: float) -> float:
    """``gamma_n`` doubled for complex arithmetic: ``2 n eps / (1 - 2 n eps)``."""
    return 2 * n * EPS64 / (1 - 2 * n * EPS64)


def torus_size(op: ConvOperator) -> tuple[int, ...]:
    """The torus ``m`` of the module docstring for the forward convolution ``op`` (zero padding): per dimension
    a multiple of the stride with ``m >= N + b``, ``m >= s L`` and every read ``p <= s (L - 1) + d (k - 1)``
    either below ``m`` or wrapping into the leading zeros ``[0, b)`` (``p - m < b``)."""
    torus = []
    for n, l, s, d, k, (b, _) in zip(op.input_size, op.output_size, op.stride, op.dilation, op.kernel.shape[2:],
                                     op.padding):
        need = max(n + b, s * (l - 1) + d * (k - 1) - b + 1, s * l)
        torus.append(s * math.ceil(need / s))
    return tuple(torus)


def canonical_frequencies(M: tuple[int, ...], device) -> Tensor:
    """One frequency of each conjugate pair ``{w, -w}`` of the grid ``M``: ``(B, D)`` integers."""
    grids = torch.meshgrid(*(torch.arange(m, device=device) for m in M), indexing="ij")
    w = torch.stack([g.reshape(-1) for g in grids], dim=1)
    flat = torch.zeros(len(w), dtype=torch.long, device=device)
    neg = torch.zeros_like(flat)
    for d, m in enumerate(M):
        flat = flat * m + w[:, d]
        neg = neg * m + torch.remainder(-w[:, d], m)
    return w[flat <= neg]


def _phase(turns: Tensor, period: int) -> Tensor:
    """``exp(2 pi i turns / period)`` from integers, reduced modulo ``period`` first (one rounding)."""
    angle = (2 * math.pi / period) * torch.remainder(turns, period).to(torch.float64)
    return torch.polar(torch.ones_like(angle), angle)


def transfers(op: ConvOperator, torus: tuple[int, ...], freqs: Tensor) -> Tensor:
    """``K(w)`` at ``freqs`` ``(B, D)``: ``(B, g, c_out / g, (c_in / g) S)``, columns ordered ``(c, r_1, ..., r_D)``.

    One product ``(B, T) x (T, c_out (c_in / g) S)``: tap ``t``'s phase ``exp(2 pi i sum_d w_d a_{t,d} / M_d)``
    is taken as one integer number of turns over ``prod M`` (one rounding), times the kernel with each tap
    placed at its residue ``r_t``."""
    kernel, g = op.kernel.to(torch.float64), op.groups
    c_out, c_in_g = kernel.shape[:2]
    device = kernel.device
    M = [m // s for m, s in zip(torus, op.stride)]
    taps = torch.stack(torch.meshgrid(*(dil * torch.arange(k, device=device) for dil, k in
                                        zip(op.dilation, kernel.shape[2:])), indexing="ij"), -1).reshape(-1, op.dims)
    stride = torch.tensor(op.stride, device=device)
    a, r = taps // stride, taps % stride  # (T, D)
    turns = torch.zeros(len(freqs), len(taps), dtype=torch.long, device=device)
    residue = torch.zeros(len(taps), dtype=torch.long, device=device)
    for d in range(op.dims):
        turns = turns + freqs[:, d, None] * a[None, :, d] * (math.prod(M) // M[d])
        residue = residue * op.stride[d] + r[:, d]
    phase = _phase(turns, math.prod(M))  # (B, T)
    placed = torch.zeros(len(taps), c_out, c_in_g, math.prod(op.stride), dtype=torch.complex128, device=device)
    placed[torch.arange(len(taps), device=device), :, :, residue] = (
        kernel.reshape(c_out, c_in_g, -1).permute(2, 0, 1).to(placed.dtype))
    K = phase @ placed.reshape(len(taps), -1)
    return K.reshape(len(freqs), g, c_out // g, c_in_g * math.prod(op.stride))


@dataclass
class Deflation:
    """``mu`` (allowance included) bounds every eigenvalue not deflated, ``rest`` the largest computed one
    left (the weights are ``lambda_j - rest``: the allowance sits in ``mu``); the deflated pairs: frequencies
    ``(P, D)``, groups, eigenvalues and eigenvectors; ``top``: the largest eigenvalue (allowance included,
    ``>= ||C||^2``); ``vector_error``: the eigenvector allowance; ``paired``: the frequency differs from its
    conjugate ``-w`` (which then holds the conjugate pair), False where ``2 w = 0`` on the torus."""

    mu: float
    rest: float
    top: float
    freqs: Tensor
    groups: Tensor
    values: Tensor
    vectors: Tensor
    vector_error: float
    paired: Tensor


def deflate(op: ConvOperator, torus: tuple[int, ...], threshold: float, max_pairs: int, max_bytes: int,
            max_work: float = math.inf) -> Deflation | None:
    """Decompose every ``G(w)`` a block of frequencies at a time; deflate the eigenpairs above ``threshold``
    (at most ``max_pairs``, the largest; the threshold rises to the first one left). Where ``K(w)`` has fewer
    rows than columns (strides, ``c_out < c_in S``), the eigenvalues come from the smaller ``K K^H`` (the same
    nonzero ones, the rest 0) and only the frequencies with one above ``threshold`` are decomposed on the
    ``n`` side for their eigenvectors; the allowances take the longer of the two inner products. None where
    the work would exceed ``max_work`` (``n^3`` per decomposed frequency, ``c^2 n`` per screened one)."""
    M = tuple(m // s for m, s in zip(torus, op.stride))
    freqs = canonical_frequencies(M, op.kernel.device)
    g, c_out_g = op.groups, op.kernel.shape[0] // op.groups
    n = op.kernel.shape[1] * math.prod(op.stride)
    T = math.prod(op.kernel.shape[2:])
    W = op.kernel.detach().to(torch.float64).reshape(g, c_out_g, op.kernel.shape[1], T)
    taps = float(torch.linalg.vector_norm(W, dim=(1, 2)).sum(-1).max())
    eta = (2 * gamma(max(c_out_g, n)) + 4 * (gamma(T) + 8 * EPS64)) * taps**2
    chunk = max(1, max_bytes // (64 * g * n * max(n, c_out_g)))
    rest, top, slack, kept, work = 0.0, 0.0, 0.0, [], 0.0
    if len(freqs) * g * (n**3 if c_out_g >= n else c_out_g**2 * n) > max_work:
        return None
    for start in range(0, len(freqs), chunk):
        f = freqs[start : start + chunk]
        K = transfers(op, torus, f)
        b = torch.arange(len(f), device=f.device)[:, None].expand(len(f), g).reshape(-1)
        grp = torch.arange(g, device=f.device).repeat(len(f))
        if c_out_g < n:
            H = K @ K.mH
            small = torch.linalg.eigvalsh(H)[..., -1]
            slack = max(slack, 8 * c_out_g * EPS64 * float(torch.linalg.matrix_norm(H).max()))
            top = max(top, float(small.max()))
            hot = small > threshold
            if bool((~hot).any()):
                rest = max(rest, float(small[~hot].max()))
            b, grp = hot.nonzero(as_tuple=True)
            work += len(b) * n**3
            if work > max_work:
                return None
            if not len(b):
                continue
        G = K[b, grp].mH @ K[b, grp]
        lam, U = torch.linalg.eigh(G)
        slack = max(slack, 8 * n * EPS64 * float(torch.linalg.matrix_norm(G).max()))
        top = max(top, float(lam[..., -1].max()))
        above = lam > threshold
        if bool((~above).any()):
            rest = max(rest, float(lam[~above].max()))
        i, j = above.nonzero(as_tuple=True)
        kept.append((f[b[i]], grp[i], lam[i, j], U[i, :, j]))
    if not kept:
        kept.append((freqs[:0], torch.zeros(0, dtype=torch.long, device=freqs.device),
                     torch.zeros(0, dtype=torch.float64, device=freqs.device),
                     torch.zeros(0, n, dtype=torch.complex128, device=freqs.device)))
    freqs_k, groups_k, values_k, vectors_k = (torch.cat(p) for p in zip(*kept))
    if len(values_k) > max_pairs:
        order = values_k.argsort(descending=True)
        rest = max(rest, float(values_k[order[max_pairs]]))
        order = order[:max_pairs]
        freqs_k, groups_k, values_k, vectors_k = freqs_k[order], groups_k[order], values_k[order], vectors_k[order]
    eta += slack
    paired = torch.remainder(2 * freqs_k, torch.tensor(M, device=freqs_k.device)).any(dim=1)
    return Deflation(rest + eta, rest, top + eta, freqs_k, groups_k, values_k, vectors_k, 16 * (n + 1) * EPS64, paired)


def restrict(deflation: Deflation, threshold: float) -> Deflation:
    """The same decomposition with only the pairs above ``threshold`` deflated (``mu`` raised to cover the rest)."""
    keep = deflation.values > threshold
    rest = max(deflation.rest, float(deflation.values[~keep].max()) if bool((~keep).any()) else 0.0)
    return Deflation(deflation.mu - deflation.rest + rest, rest, deflation.top, deflation.freqs[keep],
                     deflation.groups[keep], deflation.values[keep], deflation.vectors[keep], deflation.vector_error,
                     deflation.paired[keep])


def _waves(op: ConvOperator, torus: tuple[int, ...], freqs: Tensor, groups: Tensor, vectors: Tensor) -> Tensor:
    """``E^T d`` for frequencies ``(P, D)``, groups ``(P,)`` and unit eigenvectors ``(P, (c_in / g) S)``:
    complex ``(P, c_in, *N)``."""
    P = len(vectors)
    c_in_g = op.kernel.shape[1]
    v = vectors.reshape(P, c_in_g, *op.stride)
    for d, (n, m, s, (b, _)) in enumerate(zip(op.input_size, torus, op.stride, op.padding)):
        j = torch.arange(n, device=v.device) + b
        v = v.index_select(2 + d, j % s)
        shape = [P] + [1] * (1 + op.dims)
        shape[2 + d] = n
        v = v * _phase(freqs[:, d, None] * (j // s)[None, :], m // s).reshape(shape)
    v = v / math.sqrt(math.prod(m // s for m, s in zip(torus, op.stride)))
    full = v.new_zeros(P, op.c_in, *op.input_size)
    channels = groups[:, None] * c_in_g + torch.arange(c_in_g, device=v.device)[None, :]
    full[torch.arange(P, device=v.device)[:, None], channels] = v
    return full


def window_vectors(op: ConvOperator, torus: tuple[int, ...], deflation: Deflation) -> Tensor:
    """``E^T d_j`` of the deflated pairs, real parts then imaginary parts: ``(2P, dim)``."""
    full = _waves(op, torus, deflation.freqs, deflation.groups, deflation.vectors).reshape(len(deflation.vectors), -1)
    return torch.cat([full.real, full.imag])


def start_block(op: ConvOperator, torus: tuple[int, ...], freq: Tensor, group: int) -> Tensor:
    """Starting vectors for Lanczos on ``A^T A`` from the circular peak (frequency ``freq`` ``(D,)`` on the
    output torus ``m / s``, ``group``: where the circular norm is attained, :mod:`.certified`): the top
    eigenvector ``u`` of ``G(w)`` as the wave ``E^T d`` on the window times the lowest Dirichlet mode
    ``prod_d sin(pi (j_d + 1) / (N_d + 1))`` (the envelope of a Toeplitz operator's top eigenvector near the
    peak of its symbol): real and imaginary parts ``(<= 2, dim)``, rows of zero norm dropped. Only a start:
    no bound rests on it."""
    K = transfers(op, torus, freq[None])[0, group]
    if K.shape[0] < K.shape[1]:  # the top right singular vector from the smaller Gram matrix
        u = K.mH @ torch.linalg.eigh(K @ K.mH).eigenvectors[:, -1]
    else:
        u = torch.linalg.eigh(K.mH @ K).eigenvectors[:, -1]
    u = u / torch.linalg.vector_norm(u)
    wave = _waves(op, torus, freq[None], torch.tensor([group], device=freq.device), u[None])[0]
    for d, size in enumerate(op.input_size):
        shape = [1] * (1 + op.dims)
        shape[1 + d] = size
        envelope = torch.sin(math.pi * (torch.arange(size, dtype=torch.float64, device=wave.device) + 1) / (size + 1))
        wave = wave * envelope.reshape(shape)
    rows = torch.stack([wave.real.reshape(-1), wave.imag.reshape(-1)])
    norms = torch.linalg.vector_norm(rows, dim=1)
    return rows[norms > 1e-8 * float(norms.max())]


def _dirichlet(op: ConvOperator, torus: tuple[int, ...], d: int) -> Tensor:
    """``D[r, delta] = sum_{p in [b, b + n), p = r mod s} exp(2 pi i delta (p // s) / (m / s))`` of axis ``d``:
    ``(s, m / s)``, the window's sums of one residue's phases at every frequency difference ``delta``."""
    n, m, s, (b, _) = op.input_size[d], torus[d], op.stride[d], op.padding[d]
    p = torch.arange(n, device=op.kernel.device) + b
    delta = torch.arange(m // s, device=p.device)
    phases = _phase(delta[:, None] * (p // s)[None, :], m // s)  # (M, n)
    residue = (p % s == torch.arange(s, device=p.device)[:, None]).to(phases.dtype)  # (s, n)
    return residue @ phases.T


def window_gram(op: ConvOperator, torus: tuple[int, ...], deflation: Deflation) -> Tensor:
    """The Gram matrix of :func:`window_vectors`' rows ``(2P, 2P)`` in closed form, without forming them.

    With ``e_j = E^T d_j`` (complex) and ``u_j`` the eigenvector as ``(c, r_1 .. r_D)``, over the window's
    positions ``p`` (residue ``r = p mod s``, polyphase index ``q = p // s``):
    ``e_i^H e_j = [g_i = g_j] sum_r (u_i[:, r]^H u_j[:, r]) prod_d D_d[r_d](w_j - w_i) / |m / s|`` and
    ``e_i^T e_j`` the same without the conjugate at ``w_i + w_j`` (:func:`_dirichlet`: Dirichlet-kernel sums);
    then ``Re e_i . Re e_j = Re(e_i^H e_j + e_i^T e_j) / 2``, ``Im . Im = Re(H - T) / 2``,
    ``Re e_i . Im e_j = Im(H + T) / 2``, ``Im e_i . Re e_j = Im(T - H) / 2``. Cost ``P^2 (c + D) S`` instead of
    ``P^2 dim``. Rounding: every entry is a sum of the same terms as the materialized product, of modulus at most
    ``|u_i| |u_j|`` in all (each residue class has at most ``|m / s|`` positions), through sums of lengths
    ``c``, ``S`` and ``n_d`` and ``D`` phases (each within ``16 eps``): within :func:`window_gram_error`."""
    P = len(deflation.vectors)
    c_in_g, S = op.kernel.shape[1], math.prod(op.stride)
    U = deflation.vectors.reshape(P, c_in_g, S)
    H = torch.einsum("icr,jcr->rij", U.conj(), U)
    T = torch.einsum("icr,jcr->rij", U, U)
    DH = DT = torch.ones(1, P, P, dtype=U.dtype, device=U.device)
    for d, (m, s) in enumerate(zip(torus, op.stride)):
        table = _dirichlet(op, torus, d)
        w = deflation.freqs[:, d]
        minus = torch.remainder(w[None, :] - w[:, None], m // s)
        plus = torch.remainder(w[None, :] + w[:, None], m // s)
        DH = (DH[:, None] * table[:, minus][None]).reshape(len(DH) * s, P, P)  # residues in (r_1, .., r_D) order
        DT = (DT[:, None] * table[:, plus][None]).reshape(len(DT) * s, P, P)
    same = (deflation.groups[:, None] == deflation.groups[None, :]).to(torch.float64)
    size = math.prod(m // s for m, s in zip(torus, op.stride))
    H = (H * DH).sum(0) * same / size
    T = (T * DT).sum(0) * same / size
    return torch.cat([torch.cat([(H + T).real, (H + T).imag], 1), torch.cat([(T - H).imag, (H - T).real], 1)]) / 2


def window_gram_error(op: ConvOperator) -> float:
    """``delta`` with every entry of :func:`window_gram` within ``delta |u_i| |u_j|`` of the exact Gram matrix of
    the computed eigenvectors: ``gamma`` of the summation depth ``c + S + sum n_d`` plus ``16 D`` for the phases."""
    depth = op.kernel.shape[1] + math.prod(op.stride) + sum(op.input_size) + 16 * op.dims + 8
    return gamma(depth)


def count_above(deflation: Deflation, window_gram: Tensor, dim: int, gram_error: float = 0.0):
    """A function ``rho -> c`` with ``c >=`` the number of eigenvalues of ``A^T A`` above ``rho`` (``None``
    where ``rho <= mu``: no count), from the eigenvalues of ``F F^T = D (E^T d)(E^T d)^T D`` (``window_gram``:
    the Gram matrix of :func:`window_vectors`' rows for these pairs, ``D`` the weights) less their allowances:
    the weights are rounded up (a larger majorant), ``F`` built from the computed eigenvectors is within
    ``sqrt(2 sum n_j w_j) (vector_error + 16 eps)`` of the exact one, and the products and ``eigvalsh`` add
    ``gamma_dim ||F||_F^2`` and ``8 (2P) eps ||F F^T||_F``; ``gram_error``: a bound ``delta`` on the entries of
    ``window_gram`` relative to the products of the eigenvector norms (:func:`window_gram_error`, for the closed
    form), which adds ``delta`` times the sum of the squared row weights."""
    mu = deflation.mu
    P = len(deflation.values)
    if P == 0:
        return lambda rho: None if rho <= mu else 0
    copies = 1 + deflation.paired.to(torch.float64)  # w and -w, or a self-conjugate frequency once
    weights = copies * ((deflation.values - deflation.rest).clamp_min(0) * (1 + 8 * EPS64) + 4 * EPS64 * deflation.values)
    scale = torch.cat([weights, weights]).sqrt() * (1 + 4 * EPS64)
    S = window_gram * scale[:, None] * scale[None, :]
    s = torch.linalg.eigvalsh(0.5 * (S + S.T))
    F_norm = math.sqrt(float(S.diagonal().sum()) * (1 + 4 * P * EPS64))
    dF = math.sqrt(2 * float(weights.sum())) * (deflation.vector_error + 16 * EPS64)
    slack = (2 * F_norm * dF + dF**2 + 2 * gamma(dim) * F_norm**2
             + 16 * P * EPS64 * float(torch.linalg.matrix_norm(S))
             + gram_error * (1 + deflation.vector_error) ** 2 * float(scale.square().sum()))
    upper = s + slack

    def count(rho: float):
        return None if rho <= mu else int((upper > rho - mu).sum())

    return count
