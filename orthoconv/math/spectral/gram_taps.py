"""Per-frequency Gram matrices and Frobenius norms of a circular convolution, straight from its taps.

With ``K(u) = sum_t W'_t phi_t(u)`` (``W'_t`` the tap in its polyphase column block, :mod:`.transfer`,
``phi_t(u) = exp(-2 pi i u e_t / N)``, ``e_t = d t``) the Gram matrix on the smaller side is

    K K^H = sum_{t, t'} W'_t W'_t'^T phi_t conj(phi_t') = sum_D A_D phi_D(u),   D = e_t - e_t',
    K^H K = sum_{t, t'} W'_t^T W'_t' conj(phi_t) phi_t' = sum_D B_D conj(phi_D(u)),

so the ``(2 k - 1)^dims`` "autocorrelation" taps ``A_D`` (``W_t W_t'^T`` summed over pairs of the same
residue mod ``s``) or ``B_D`` (``W_t^T W_t'`` in block ``(r(t), r(t'))``) are formed once, with one
product of the reshaped kernel, and each frequency's Gram matrix is a short sum of them: ``c^2 (2k-1)^D``
per frequency instead of the ``c^3`` of a product. The trace of that sum, ``||K(u)||_F^2``, needs only
the ``T x T`` inner products of the taps: a quadratic form of size ``T = prod k`` per frequency.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EPS64 = 2.0**-53


def frequency_list(rows: tuple[Tensor, ...]) -> Tensor:
    """The ``(B, D)`` integer frequencies of the grid ``rows[0] x ... x rows[D-1]`` (row-major)."""
    grids = torch.meshgrid(*rows, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def phases(freqs: Tensor, size: tuple[int, ...], offsets: tuple[Tensor, ...]) -> Tensor:
    """``exp(-2 pi i sum_d u_d o_d / N_d)`` for every frequency ``u`` (rows of ``freqs``) and every
    multi-offset ``o`` of the grid ``offsets[0] x ... x offsets[D-1]`` (row-major): ``(B, prod len)``.
    Per dimension a table of ``N_d x len(o_d)`` phases, each from the integer ``u o mod N`` (exact to one
    rounding), gathered and multiplied across dimensions (a few ulps in all)."""
    out = None
    for d, (n, o) in enumerate(zip(size, offsets)):
        u = torch.arange(n, device=freqs.device)
        angle = (-2 * math.pi / n) * torch.remainder(u[:, None] * o[None, :], n).to(torch.float64)
        part = torch.polar(torch.ones_like(angle), angle)[freqs[:, d]]
        out = part if out is None else (out[:, :, None] * part[:, None, :]).reshape(freqs.shape[0], -1)
    return out


def tap_offsets(kernel_size, dilation, device) -> tuple[Tensor, ...]:
    return tuple(d * torch.arange(k, device=device) for k, d in zip(kernel_size, dilation))


def residues(kernel_size, stride, dilation, device) -> Tensor:
    """The flat residue index ``r(t)`` (row-major over dimensions) of every tap ``t``: ``(T,)``."""
    r = None
    for k, s, d in zip(kernel_size, stride, dilation):
        part = torch.remainder(d * torch.arange(k, device=device), s)
        r = part if r is None else (r[:, None] * s + part[None, :]).reshape(-1)
    return r


def grouped_taps(kernel: Tensor, groups: int) -> Tensor:
    """``(g, T, c_out / g, c_in / g)`` float64: the kernel's taps per group."""
    c_out, c_in_g = kernel.shape[:2]
    W = kernel.detach().to(torch.float64).reshape(groups, c_out // groups, c_in_g, -1)
    return W.permute(0, 3, 1, 2)


def tap_norm_sum(W: Tensor) -> Tensor:
    """``sum_t ||W_t||_F`` per group: ``(g,)``; ``(sum_t ||W_t||_F)^2`` bounds every Gram entry's magnitude."""
    return torch.linalg.matrix_norm(W).sum(dim=1)


def frobenius_squares(W: Tensor, same_residue: Tensor, freqs: Tensor, size, offsets) -> Tensor:
    """``||K(u)||_F^2`` for every frequency and group, ``(B, g)``: ``Re phi^H Q phi`` with
    ``Q[t, t'] = <W_t, W_t'>`` where ``t, t'`` share a residue (others never meet in one column)."""
    Q = torch.einsum("gtoc,gsoc->gts", W, W) * same_residue
    Phi = phases(freqs, size, offsets)
    return torch.einsum("bt,gts,bs->bg", Phi.conj(), Q.to(Phi.dtype), Phi).real


def gram_side(m: int, n: int) -> str:
    """``"rows"`` (``K K^H``, ``m x m``) when ``m <= n``, else ``"columns"`` (``K^H K``, ``n x n``)."""
    return "rows" if m <= n else "columns"


def autocorrelation_taps(W: Tensor, kernel_size, r: Tensor, S: int, side: str) -> Tensor:
    """The Gram taps ``A_D`` (``side="rows"``) or ``B_D`` (``"columns"``) of the module docstring:
    ``(g, prod(2k - 1), c, c)`` float64, bin ``D`` row-major with ``t - t' + k - 1`` per dimension."""
    g, T, m, c_in_g = W.shape
    t = torch.arange(T, device=W.device)
    strides = [math.prod(kernel_size[d + 1 :]) for d in range(len(kernel_size))]
    multi = torch.stack([(t // st) % k for st, k in zip(strides, kernel_size)], dim=1)  # (T, D), row-major
    diff = multi[:, None, :] - multi[None, :, :] + torch.tensor(kernel_size, device=W.device) - 1
    bins = torch.zeros(T, T, dtype=torch.long, device=W.device)
    for d, k in enumerate(kernel_size):
        bins = bins * (2 * k - 1) + diff[..., d]
    n_bins = math.prod(2 * k - 1 for k in kernel_size)
    if side == "rows":
        M = W.reshape(g, T * m, c_in_g)
        P = (M @ M.mT).reshape(g, T, m, T, m).permute(0, 1, 3, 2, 4)  # W_t W_t'^T
        P = P * (r[:, None] == r[None, :]).to(P.dtype)[None, :, :, None, None]
        out = P.new_zeros(g, n_bins, m, m)
        return out.index_add_(1, bins.reshape(-1), P.reshape(g, T * T, m, m))
    M = W.permute(0, 2, 1, 3).reshape(g, m, T * c_in_g)
    P = (M.mT @ M).reshape(g, T, c_in_g, T, c_in_g).permute(1, 3, 0, 2, 4)  # W_t^T W_t', pairs first
    out = P.new_zeros(n_bins, S, S, g, c_in_g, c_in_g)
    index = (bins.reshape(-1), r[:, None].expand(T, T).reshape(-1), r[None, :].expand(T, T).reshape(-1))
    out.index_put_(index, P.reshape(T * T, g, c_in_g, c_in_g), accumulate=True)
    return out.permute(3, 0, 4, 1, 5, 2).reshape(g, n_bins, c_in_g * S, c_in_g * S)


def grams_from_taps(A: Tensor, freqs: Tensor, size, kernel_size, dilation, side: str) -> Tensor:
    """``G(u) = sum_D A_D phi_D(u)`` (rows) or ``sum_D B_D conj phi_D(u)`` (columns): ``(B, g, c, c)``."""
    offsets = tuple(d * torch.arange(-(k - 1), k, device=A.device) for k, d in zip(kernel_size, dilation))
    Psi = torch.view_as_real(phases(freqs, size, offsets))  # (B, bins, 2)
    if side == "columns":
        Psi = Psi * torch.tensor([1.0, -1.0], dtype=Psi.dtype, device=Psi.device)
    g, n_bins, c, _ = A.shape
    taps = A.permute(1, 0, 2, 3).reshape(n_bins, -1)  # real taps: real products, no complex copy
    return torch.view_as_complex(torch.einsum("jx,bjr->bxr", taps, Psi)).reshape(-1, g, c, c)


def gram_frobenius(A: Tensor, freqs: Tensor, size, kernel_size, dilation) -> Tensor:
    """Upper bounds on ``||G(u)||_F >= lambda_max(G(u)) = sigma_1(K(u))^2`` for every frequency and group,
    ``(B, g)``: ``||G(u)||_F^2 = psi^H Q psi`` with ``Q[D, D'] = <A_D, A_D'>`` (either side: the phases'
    conjugation leaves the real form unchanged), plus the form's rounding bound."""
    offsets = tuple(d * torch.arange(-(k - 1), k, device=A.device) for k, d in zip(kernel_size, dilation))
    Psi = phases(freqs, size, offsets)
    Q = torch.einsum("gdxy,gexy->gde", A, A)
    q = torch.einsum("bd,gde,be->bg", Psi.conj(), Q.to(Psi.dtype), Psi).real
    rounding = 2 * (A.shape[1] ** 2 + A.shape[-1] + 16) * EPS64 * torch.linalg.matrix_norm(A).sum(1) ** 2
    return (q + rounding[None, :]).clamp_min(0).sqrt()


def transfers_at(W: Tensor, freqs: Tensor, size, kernel_size, dilation, r: Tensor, S: int) -> Tensor:
    """The transfer matrices ``(B, g, c_out / g, (c_in / g) S)`` at a list of frequencies (columns ordered
    ``(c, residue)`` as :func:`.transfer.polyphase_transfer`): the phases of each residue's taps times the
    real taps, as real products."""
    g, T, m, c_in_g = W.shape
    Phi = phases(freqs, size, tap_offsets(kernel_size, dilation, W.device))  # (B, T)
    R = torch.nn.functional.one_hot(r, S).to(W.dtype)  # (T, S)
    PhiR = torch.view_as_real(Phi)[:, :, None, :] * R[None, :, :, None]  # (B, T, S, 2)
    taps = W.permute(1, 0, 2, 3).reshape(T, -1)  # (T, g m c)
    K = torch.view_as_complex(torch.einsum("tx,btsr->bxsr", taps, PhiR).contiguous())  # (B, g m c, S)
    return K.reshape(-1, g, m, c_in_g * S)


def grams_direct(K: Tensor, side: str) -> Tensor:
    return K @ K.mH if side == "rows" else K.mH @ K


def gram_error_bound(W: Tensor, n_bins: int, dims: int) -> Tensor:
    """A bound on ``||fl(G(u)) - G(u)||_F`` for either construction, per group ``(g,)``: every entry is
    a sum of at most ``T^2 max(c_out/g, c_in/g)`` products of tap entries and unit phases, each phase
    within a few ulps, so ``gamma`` of that many terms (doubled for complex arithmetic) times
    ``(sum_t ||W_t||_F)^2``, which bounds the Frobenius norm of the sum of the absolute values."""
    g, T, m, c_in_g = W.shape
    terms = T * T * max(m, c_in_g) + 2 * n_bins + 8 * dims + 16
    return 2 * terms * EPS64 * tap_norm_sum(W) ** 2
