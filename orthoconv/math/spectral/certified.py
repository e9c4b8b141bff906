"""A certified enclosure of a circular convolution's norm to a relative tolerance, without an SVD per frequency.

The norm is ``max_u sigma_1(K(u))`` over the frequencies (and groups). The method:

1. **Prune** (no per-frequency matrix): ``sigma_1(K(u)) <= ||K(u)||_F``, and ``||K(u)||_F^2`` is a
   ``T x T`` quadratic form in the taps' inner products (:func:`.gram_taps.frobenius_squares`). The
   frequency with the largest Frobenius norm is decomposed exactly (its largest Gram eigenvalue is a
   lower bound ``L``); every frequency whose Frobenius bound is below ``L`` cannot hold the maximum.
   Where the autocorrelation taps are cheap next to the spectrum, the tighter Schatten-4 bound
   ``sigma_1^2 <= ||G(u)||_F`` (again a quadratic form, :func:`.gram_taps.gram_frobenius`) prunes more.
   Kernels with a dominant band (smooth filters) keep a small fraction of the frequencies here.
2. **Rank** the rest: their Gram matrices ``G(u)`` (``c x c`` on the smaller side, built from the
   autocorrelation taps or from the transfer matrices, whichever costs less) and one batched power
   iteration step from each matrix's column of largest diagonal; each Rayleigh quotient ``v^H G v / v^H v = ||K v||^2 / ||v||^2`` is a singular value
   witness and raises ``L``; the best few are decomposed exactly (``eigvalsh`` of ``G``).
3. **Certify** every remaining frequency at once: ``sigma_1(K(u)) <= U = (1 + rtol) L`` holds iff
   ``U^2 I - G(u)`` is positive semidefinite, which a Cholesky factorization that runs to completion
   proves (below). The few that fail are decomposed exactly and raise ``L``.

Rounding, accounted for: ``G`` is computed in float64 with ``||fl(G) - G|| <= E`` (:func:`.gram_taps.gram_error_bound`);
a Cholesky factorization of a floating-point ``c x c`` matrix ``B`` that completes gives
``R^H R = B + F`` with ``|F| <= gamma_{c+1} |R^H| |R|`` (Higham, *Accuracy and Stability of Numerical
Algorithms*, Thm 10.3; ``gamma`` doubled here for complex arithmetic), hence ``||F||_2 <= ||R||_F^2 gamma
<= gamma tr(B) / (1 - gamma)`` and ``lambda_min(B) >= -gamma tr(B) / (1 - gamma)``. The threshold is
lowered by these amounts (and by the rounding of ``B = mu I - G``) so that a completed factorization
certifies ``lambda_max(G) <= U^2``; the factorization runs in complex64 where these margins in single
precision fit well inside ``rtol``, in complex128 otherwise. Eigenvalues from ``eigvalsh`` carry
``4 c eps ||G||_F`` (backward stability) plus ``E``. The returned ``lower`` is a certified singular value
(a real ``||A x||`` for a unit ``x``), ``upper`` a certified bound, and ``upper <= (1 + rtol) lower`` unless
rounding margins alone exceed ``rtol`` (kernels with extreme cancellation), which is then visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .gram_taps import (
    EPS64,
    autocorrelation_taps,
    frequency_list,
    frobenius_squares,
    gram_error_bound,
    gram_frobenius,
    gram_side,
    grams_direct,
    grams_from_taps,
    grouped_taps,
    residues,
    tap_norm_sum,
    tap_offsets,
    transfers_at,
)
from .transfer import DEFAULT_CHUNK_BYTES, frequency_grid

EPS32 = 2.0**-24
POWER_STEPS = 4
SMALL_WORK = 2**16  # below about this many c^3 flops a block is decomposed whole (overheads dominate)


@dataclass(frozen=True)
class CertifiedNorm:
    """``lower <= ||A||_2 <= upper``; how many of the ``frequencies`` (times groups) were pruned by their
    Frobenius norm, certified by a Cholesky factorization, or decomposed exactly; ``peak``: the frequency
    (integers on the output torus) and group whose witness gave ``lower``."""

    lower: float
    upper: float
    frequencies: int
    pruned: int
    certified: int
    decomposed: int
    peak: tuple[Tensor, int] | None = None  # (frequency (D,), group) of the largest lower bound found

    @property
    def method(self) -> str:
        return (f"certified Gram/Cholesky: {self.pruned} of {self.frequencies} frequencies pruned by "
                f"Frobenius, {self.certified} certified, {self.decomposed} decomposed")


class _State:
    """The running enclosure: ``lower2`` a certified lower bound on the norm squared, ``upper2`` the
    largest certified bound so far on a frequency already handled."""

    def __init__(self) -> None:
        self.lower2 = 0.0
        self.upper2 = 0.0
        self.certified = 0
        self.decomposed = 0
        self.peak: int | None = None  # the flat (frequency, group) index of lower2

    def witness(self, values: Tensor, index: Tensor) -> None:
        """Certified lower bounds on ``lambda_max`` of the flat (frequency, group) pairs ``index`` raise ``lower2``."""
        if len(values):
            best = int(values.argmax())
            if float(values[best]) > self.lower2:
                self.lower2, self.peak = float(values[best]), int(index[best])

    def exact(self, G: Tensor, error: Tensor, side_dim: int, index: Tensor) -> None:
        """Decompose ``G`` (``(B, c, c)``, error bounds ``(B,)``, flat pairs ``index``) exactly: both ends move."""
        if G.shape[0] == 0:
            return
        lam = torch.linalg.eigvalsh(G)[:, -1]
        slack = error + 4 * side_dim * EPS64 * torch.linalg.matrix_norm(G)
        self.witness(lam - slack, index)
        self.upper2 = max(self.upper2, float((lam + slack).max()))
        self.decomposed += G.shape[0]


def _cholesky_margin(c: int, eps: float) -> float:
    """``gamma / (1 - gamma)`` for a ``c x c`` complex Cholesky factorization in precision ``eps``
    (``gamma_{c+1}`` doubled for complex arithmetic): the backward error relative to ``tr(B)``."""
    gamma = 2 * (c + 1) * eps
    return gamma / (1 - gamma)


def _cholesky_dtype(c: int, rtol: float) -> torch.dtype:
    """complex64 when its margins (at most ``c`` times the factorization's relative backward error, on
    ``tr(B) <= c mu``) take at most half of the room ``(1 + rtol)^2 - 1``; complex128 otherwise."""
    room = (1 + rtol) ** 2 - 1
    return torch.complex64 if c * _cholesky_margin(c, EPS32) + 4 * EPS32 <= 0.5 * room else torch.complex128


def _certify(G: Tensor, index: Tensor | None, error: Tensor, frob2: Tensor, target2: float,
             dtype: torch.dtype) -> Tensor:
    """Which of the Gram matrices ``G[index]`` (all when ``index`` is None; ``error``, ``frob2`` given for
    those) a completed Cholesky factorization of ``B = mu I - G`` in ``dtype`` proves to have
    ``lambda_max <= target2``.

    With ``m`` the relative backward error (:func:`_cholesky_margin`), a completed factorization gives
    ``lambda_min(B) >= -m tr(B)`` and ``tr(B) = c mu - tr(G)``; rounding ``G`` and the shift to
    ``dtype`` costs ``2 eps ||G||_F <= 2 eps frob2`` and ``2 eps mu``; ``G`` itself is within ``error``
    of the exact Gram matrix. So ``lambda_max <= mu (1 + m c + 2 eps) - m tr(G) + error + 2 eps frob2``,
    and ``mu`` is chosen to make that ``target2``.
    """
    B = G.to(dtype, copy=True) if index is None else G.index_select(0, index).to(dtype)
    c = B.shape[-1]
    eps = EPS32 if dtype == torch.complex64 else EPS64
    m = _cholesky_margin(c, eps)
    diagonal = B.diagonal(dim1=-2, dim2=-1)
    trace = diagonal.real.sum(-1).to(torch.float64) * (1 - (c + 1) * eps)
    mu = (target2 - error - 2 * eps * frob2 - 2 * EPS64 * frob2 + m * trace.clamp_min(0)) / (1 + m * c + 2 * eps)
    B.neg_()
    diagonal.add_(mu.to(B.real.dtype)[:, None])
    _, info = torch.linalg.cholesky_ex(B)
    return (info == 0) & (mu > 0)


def _rayleigh(G: Tensor, steps: int = 1) -> Tensor:
    """``v^H G v / v^H v`` for ``v = G^steps e_j``, ``j`` each matrix's largest diagonal entry: a witness (a
    lower bound on ``lambda_max``) weighted toward the top eigenvalues, ``steps`` products per matrix."""
    diag = torch.diagonal(G, dim1=-2, dim2=-1).real
    v = torch.take_along_dim(G, diag.argmax(-1)[:, None, None], dim=-1)
    for _ in range(steps - 1):
        v = G @ (v / torch.linalg.vector_norm(v, dim=-2, keepdim=True).clamp_min(1e-300))
    Gv = G @ v
    return ((v.mH @ Gv).real / (v.mH @ v).real.clamp_min(1e-300)).reshape(-1)


def _settle(state: _State, G: Tensor, err: Tensor, frob2: Tensor, index: Tensor, rtol: float,
            dtype: torch.dtype) -> None:
    """Certify or decompose every Gram matrix of a block: decompose those of largest Rayleigh quotient (one,
    or up to 8 small ones), certify the others at ``(1 + rtol)`` times the best lower bound, and repeat on the failures (ranked
    again by three power steps) with the raised bound until none is left."""
    c = G.shape[-1]
    if len(G) * c**3 <= SMALL_WORK:
        state.exact(G, err, c, index)
        return
    rayleigh = _rayleigh(G)
    pending = torch.arange(len(G), device=G.device)
    probes = max(1, min(8, 2**12 // c**2))  # small matrices: decompositions are cheap next to a round
    while len(pending):
        state.witness(rayleigh[pending] * (1 - 4 * c * EPS64) - err[pending], index[pending])
        order = rayleigh[pending].argsort(descending=True)
        best, pending = pending[order[:probes]], pending[order[probes:]]
        state.exact(G[best], err[best], c, index[best])
        if not len(pending):
            return
        target2 = (1 + rtol) ** 2 * state.lower2
        if c == 1:
            passed = G[pending, 0, 0].real + err[pending] <= target2
        elif len(pending) == len(G) - len(best):  # the first round: factor all (the decomposed too) without a gather
            passed = _certify(G, None, err, frob2, target2, dtype)[pending]
        else:
            passed = _certify(G, pending, err[pending], frob2[pending], target2, dtype)
        if bool(passed.any()):
            state.upper2 = max(state.upper2, target2)
            state.certified += int(passed.sum())
        pending = pending[~passed]
        if len(pending) <= probes:
            state.exact(G[pending], err[pending], c, index[pending])
            return
        rayleigh[pending] = _rayleigh(G[pending], steps=POWER_STEPS)


def certified_circular_norm(kernel: Tensor, size: tuple[int, ...], stride: tuple[int, ...],
                            dilation: tuple[int, ...], groups: int, rtol: float,
                            max_bytes: int = DEFAULT_CHUNK_BYTES) -> CertifiedNorm:
    """``lower <= ||A||_2 <= upper <= (1 + rtol) lower`` for the circular convolution ``A`` (checked
    arguments as :func:`.circular.circular_arguments` returns them), by the method of the module docstring.

    The norm is homogeneous, so the kernel is first divided by the power of two ``s`` that brings its
    largest entry into ``[1/2, 1)``: the rounding margins of the method are relative and hold for entries
    of unit size, not for subnormal or overflowing Gram entries (kernels near 1e-160 or 1e150 in float64,
    1e-22 in float32, gave enclosures on the wrong side). Entries that the division flushes to zero are
    a perturbation ``D`` with ``||conv(D)|| <= sum |D|``, added to the margins; the ends are multiplied back by ``s``.
    """
    peak = float(kernel.detach().abs().max()) if kernel.numel() else 0.0
    if not math.isfinite(peak):
        raise ValueError("kernel has nan or inf entries")
    if peak == 0.0:
        return _certified_unit(kernel, size, stride, dilation, groups, rtol, max_bytes)
    scale = math.ldexp(1.0, math.frexp(peak)[1])
    unit = (kernel / scale).to(kernel.dtype)
    lost = float((kernel - unit * scale).abs().sum())  # exact but for entries flushed below the smallest subnormal
    result = _certified_unit(unit, size, stride, dilation, groups, rtol, max_bytes)
    lower = max(0.0, result.lower * scale - lost)
    upper = result.upper * scale + lost
    if not (math.isfinite(upper) and math.isfinite(result.lower * scale)):
        raise ValueError(f"the kernel's norm (about {peak:.3g} times its size) overflows float64")
    return CertifiedNorm(lower, upper, result.frequencies, result.pruned, result.certified, result.decomposed,
                         result.peak)


def _certified_unit(kernel: Tensor, size: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                    groups: int, rtol: float, max_bytes: int) -> CertifiedNorm:
    """:func:`certified_circular_norm` of a kernel whose entries are at most 1 in magnitude."""
    dims = kernel.dim() - 2
    device = kernel.device
    ksize = tuple(kernel.shape[2:])
    W = grouped_taps(kernel, groups)  # (g, T, m, c_in_g)
    g, T, m, c_in_g = W.shape
    S = math.prod(stride)
    n = c_in_g * S
    side = gram_side(m, n)
    c = min(m, n)
    _, F = frequency_grid(size, stride)
    freqs = frequency_list(tuple(torch.arange(f, device=device) for f in F))
    B = freqs.shape[0]
    r = residues(ksize, stride, dilation, device)
    offsets = tap_offsets(ksize, dilation, device)
    n_bins = math.prod(2 * k - 1 for k in ksize)
    error = gram_error_bound(W, n_bins, dims)  # (g,)
    state = _State()
    with torch.no_grad():
        frob2 = frobenius_squares(W, (r[:, None] == r[None, :]).to(W.dtype), freqs, size, offsets)  # (B, g)
        frob2 = frob2 + 2 * (T * T + 16) * EPS64 * tap_norm_sum(W)[None, :] ** 2
        if float(frob2.max()) <= 0:
            return CertifiedNorm(0.0, 0.0, B * g, B * g, 0, 0)
        # Gram matrices from the autocorrelation taps (one product, then c^2 bins per frequency) or from
        # the transfer matrices (c^2 T + c^3 per frequency), whichever costs less for the frequencies kept.
        taps_memory = 8 * g * max(T * T, n_bins * S * S) * c * c
        autocorrelation = None

        def grams(index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            """Gram matrices ``(k, c, c)`` of the flat (frequency, group) pairs ``index``."""
            nonlocal autocorrelation
            f, grp = index // g, index % g
            # real multiply-adds: the bins' real taps times complex phases; the transfer matrices likewise,
            # then one complex product (four real ones) per Gram matrix
            cost_taps = 2 * len(index) * g * c * c * n_bins + (0 if autocorrelation is not None else
                                                              g * (T * max(m, c_in_g)) ** 2 * min(m, c_in_g))
            cost_direct = 2 * len(index) * g * m * n * T + 4 * len(index) * g * c * c * max(m, n)
            if cost_taps < cost_direct and taps_memory <= max_bytes:
                if autocorrelation is None:
                    autocorrelation = autocorrelation_taps(W, ksize, r, S, side)
                G = grams_from_taps(autocorrelation, freqs[f], size, ksize, dilation, side)
            else:
                K = transfers_at(W, freqs[f], size, ksize, dilation, r, S)
                G = grams_direct(K, side)
            G = G[:, 0] if g == 1 else G[torch.arange(len(index), device=device), grp]
            return G, error[grp], frob2.reshape(-1)[index]

        flat = frob2.reshape(-1)
        top = flat.argmax().reshape(1)
        state.exact(*grams(top)[:2], c, top)
        keep = (flat > state.lower2).nonzero().squeeze(1)
        keep = keep[keep != top[0]]
        pruned = B * g - len(keep) - 1
        # A Schatten-4 bound prunes further where the autocorrelation taps cost little next to the spectrum
        if len(keep) and taps_memory <= max_bytes and g * (T * max(m, c_in_g)) ** 2 * min(m, c_in_g) <= B * g * c**3 // 5:
            autocorrelation = autocorrelation_taps(W, ksize, r, S, side)
            bound2 = gram_frobenius(autocorrelation, freqs, size, ksize, dilation).reshape(-1)[keep] + error[keep % g]
            low = bound2 <= state.lower2
            pruned += int(low.sum())
            keep = keep[~low]
        keep = keep[flat[keep].argsort(descending=True)]
        dtype = _cholesky_dtype(c, rtol)
        chunk = max(1, max_bytes // (16 * c * c * (g + 2)))
        for start in range(0, len(keep), chunk):
            index = keep[start : start + chunk]
            _settle(state, *grams(index), index, rtol, dtype)
    lower = math.sqrt(max(state.lower2, 0.0))
    upper = math.sqrt(max(state.upper2, state.lower2, 0.0))  # pruned frequencies' bounds are below lower2
    peak = None if state.peak is None else (freqs[state.peak // g], state.peak % g)
    return CertifiedNorm(lower, upper, B * g, pruned, state.certified, state.decomposed, peak)
