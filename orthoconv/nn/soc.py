"""SOC: Skew Orthogonal Convolution (Singla & Feizi, "Skew Orthogonal Convolutions", ICML 2021).

A convolution ``S`` whose operator is skew-symmetric (``conv(S)^T = -conv(S)``) has an orthogonal
exponential ``exp(conv(S)) = sum_j conv(S)^j / j!``. From any parameter kernel ``L`` (``c x c``)

    S = L' - adj(L'),   adj(L') = flip(L')^T  (the kernel of the adjoint, same "same" padding),

where ``L'`` is ``L`` itself for odd sizes and ``L`` with one zero row/column PREPENDED for an even size
(the adjoint of an even kernel's same-size convolution is shifted by one tap; in the odd ``k + 1``
frame both sit at the right offsets, and ``conv(L') = conv(L)``). ``conv(S)`` is skew for circular AND
zero padding (the zero-padded adjoint of an odd kernel is the zero-padded convolution with the
flipped transpose), so SOC is orthogonal under both paddings, up to the truncation below.

The layer applies the Taylor series truncated after ``terms`` powers, ``T_n(S) x = sum_{j<=n} S^j x /
j!``, by ``n`` convolutions. ``conv(S)`` is normal with eigenvalues ``i theta``, ``|theta| <= ||S||``, so
``T_n(conv(S))`` has singular values ``|T_n(i theta)|`` and

    max |sigma - 1| <= max_{|theta| <= rho} |T_n(i theta) - e^{i theta}| <= rho^(n+1) / (n+1)!

for any certified ``rho >= ||conv(S)||``; :meth:`SOC.lipschitz_bound` returns ``1 + rho^(n+1)/(n+1)!``
with ``rho`` the smaller of :func:`orthoconv.math.bounds.reshaped_kernel_bound` and
:func:`orthoconv.math.bounds.tap_norm_bound` (valid for every image size and both paddings). To keep
``rho`` small, the paper rescales the skew kernel by a certified bound on its norm (its own bound);
here ``S`` is multiplied by ``min(1, max_norm / rho(S))`` (default ``max_norm = 1``; ``None`` disables
the rescaling).

:func:`soc_deviation` measures the exact deviation through the FFT. Measured (float64, ``S`` the skew
part of a 16 x 16 x 3 x 3 Gaussian kernel rescaled to certified ``rho``, 16 x 16 image; the certified
``rho`` is about twice the exact norm here), ``max |sigma - 1|`` measured / certified:

    terms   rho = 0.5             rho = 1 (the default)    rho = 2
    4       1.8e-06 / 2.6e-04     1.1e-04 / 8.3e-03        6.6e-03 / 2.7e-01
    6       2.9e-09 / 1.6e-06     7.3e-07 / 2.0e-04        1.7e-04 / 2.5e-02
    8       2.7e-12 / 5.4e-09     2.7e-09 / 2.8e-06        2.5e-06 / 1.4e-03
    12      8.9e-16 / 2.0e-14     9.3e-15 / 1.6e-10        1.5e-10 / 1.3e-06

The small measured values come from the slack of the bound, not from the series: where the certified
``rho`` IS the exact norm, a frequency with ``theta = rho`` exists and the deviation is the series' own,
``max_{|theta| <= rho} ||T_n(i theta)| - 1|`` = 6.1e-3, 1.5e-4, 2.2e-6, 1.3e-10 for 4, 6, 8, 12 terms at
``rho = 1``. Every 1 x 1 kernel is such a case (the reshaped-kernel bound is its exact norm): measured
1.514e-4 for ``SOC(16, 16, 1)`` with the defaults (float64, 7 x 7 image), e.g. the 1 x 1 layer behind an
invertible downsampling. So with the defaults (6 terms, ``max_norm = 1``) SOC is NOT orthogonal to float32
resolution: it is 1-Lipschitz up to ``1 + 1/7! = 1.000198``, the bound :meth:`SOC.lipschitz_bound`
reports (a Wasserstein critic with one 1 x 1 and two 3 x 3 SOC layers reached the value 15.0014 where
every 1-Lipschitz function gives at most 15). The certified deviation at ``rho = 1`` is ``1/(n+1)!``:
below float32's eps (1.2e-7) from 10 terms (2.5e-8), below float64's (2.2e-16) from 17 terms (1.6e-16).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..math.blocks import compose_kernels
from ..math.checks import check_kernel, image_size, positive_int
from ..math.conv import conv2d_same
from ..math.spectral import frequency_response
from ._precision import check_finite, promote
from .base import KernelConv2d


def skew_symmetric_kernel(L: Tensor) -> Tensor:
    """``S = L' - flip(L')^T`` (module docstring): shape ``(c, c, kh', kw')``, ``k' = k`` (odd) or ``k + 1`` (even)."""
    check_kernel(L)
    if L.shape[0] != L.shape[1]:
        raise ValueError(f"L must have as many output as input channels (c, c, kh, kw), got {tuple(L.shape)}")
    return _skew_part(L)


def _skew_part(L: Tensor) -> Tensor:
    kh, kw = L.shape[-2:]
    L = F.pad(L, (1 - kw % 2, 0, 1 - kh % 2, 0))
    return L - L.transpose(0, 1).flip(-2, -1)


def check_skew(S: Tensor, rtol: float = 1e-6) -> None:
    """Raise ``ValueError`` unless ``S`` has odd sizes and ``S = -flip(S)^T`` (a skew-symmetric operator)."""
    check_kernel(S)
    S = S.detach()
    if S.shape[0] != S.shape[1] or S.shape[-2] % 2 == 0 or S.shape[-1] % 2 == 0:
        raise ValueError(f"a skew kernel is (c, c, kh, kw) with odd kh, kw, got {tuple(S.shape)}")
    gap = float((S + S.transpose(0, 1).flip(-2, -1)).abs().max())
    if gap > rtol * max(float(S.abs().max()), 1e-300):
        raise ValueError(f"the kernel is not skew-symmetric: max |S + flip(S)^T| = {gap:.3e}")


def skew_norm_bound(S: Tensor) -> float:
    """``rho(S)``: the smaller of the reshaped-kernel and tap-sum bounds on ``||conv(S)||_2``, certified
    for every image size and both paddings (float64; :func:`orthoconv.math.bounds.reshaped_kernel_bound`,
    :func:`orthoconv.math.bounds.tap_norm_bound`)."""
    check_kernel(S)
    return float(_skew_norm_bound(S))


def _skew_norm_bound(S: Tensor) -> Tensor:
    """:func:`skew_norm_bound` as a 0-dim float64 tensor, without a host synchronization (compiles whole)."""
    S = S.detach().to(torch.float64)
    kh, kw = S.shape[-2:]
    reshaped = math.sqrt(kh * kw) * torch.linalg.matrix_norm(S.reshape(S.shape[0], -1), ord=2)
    taps = torch.linalg.matrix_norm(S.permute(2, 3, 0, 1), ord=2).sum()
    return torch.minimum(reshaped, taps)


def taylor_deviation_bound(rho: float, terms: int) -> float:
    """``rho^(n+1) / (n+1)!``: a bound on ``max |sigma - 1|`` of ``T_n(conv(S))`` when ``||conv(S)|| <= rho``."""
    return math.exp((terms + 1) * math.log(rho) - math.lgamma(terms + 2)) if rho > 0 else 0.0


def _check_terms(terms) -> int:
    return positive_int(terms, "terms")


def soc_apply(x: Tensor, S: Tensor, terms: int, padding_mode: str = "circular") -> Tensor:
    """``sum_{j=0}^{terms} conv(S)^j x / j!`` by ``terms`` convolutions (works for both paddings)."""
    terms = _check_terms(terms)
    y = term = x
    for j in range(1, terms + 1):
        term = conv2d_same(term, S, padding_mode) / j
        y = y + term
    return y


def soc_kernel(S: Tensor, terms: int) -> Tensor:
    """The explicit kernel of ``T_n(conv(S))`` under circular padding: ``sum_j S^{*j} / j!`` with the
    ``j``-fold compositions centered, size ``terms (k' - 1) + 1``. (Zero padding has no single kernel:
    there ``conv(S)^2`` is not the convolution with ``S * S`` near the border.)"""
    terms = _check_terms(terms)
    check_skew(S)
    c, _, kh, kw = S.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    eye = torch.eye(c, dtype=S.dtype, device=S.device)[:, :, None, None]
    total = power = eye
    for j in range(1, terms + 1):
        power = compose_kernels(S, power) / j
        total = F.pad(total, (pw, pw, ph, ph)) + power
    return total


def soc_deviation(S: Tensor, input_size, terms: int) -> float:
    """``max |sigma - 1|`` of ``T_n(conv(S))`` on ``input_size`` with circular padding, exactly (FFT).

    Per frequency the operator acts by ``M(w) = conj(K(w)) exp(-2 pi i w.b)`` (``K`` the transfer
    matrix, ``b`` the "before" padding), a skew-Hermitian matrix; ``T_n(M)`` is evaluated by Horner's
    rule and its singular values are those of the truncated exponential on that frequency.
    """
    terms = _check_terms(terms)
    check_skew(S)
    H, W = image_size(input_size)
    kh, kw = S.shape[-2:]
    K = frequency_response(S, (H, W))
    u = torch.arange(H, device=S.device)[:, None]
    v = torch.arange(W // 2 + 1, device=S.device)[None, :]
    turns = ((u * ((kh - 1) // 2)) % H).to(torch.float64) / H + ((v * ((kw - 1) // 2)) % W).to(torch.float64) / W
    phase = torch.polar(torch.ones_like(turns), -2 * math.pi * turns).to(K.dtype)
    M = (K.conj() * phase[..., None, None]).contiguous()
    eye = torch.eye(S.shape[0], dtype=M.dtype, device=M.device)
    T = eye.expand_as(M)
    for j in range(terms, 0, -1):  # Horner: I + M/1 (I + M/2 (I + ... (I + M/n)))
        T = eye + (M @ T) / j
    sigma = torch.linalg.svdvals(T)
    return float((sigma - 1).abs().max())


class SOC(KernelConv2d):
    """Skew Orthogonal Convolution (Singla & Feizi 2021): ``T_terms(conv(S))``, ``S`` skew.

    Args:
        in_channels, out_channels, kernel_size, bias: as ``nn.Conv2d`` (square kernels, any k >= 1;
            an even k is embedded in k + 1). ``c_in != c_out``: zero-pad the input to ``c = max`` channels
            and keep the first ``c_out`` outputs (as the paper does): an isometry / co-isometry.
        stride, padding: only ``1`` and ``"same"``.
        padding_mode: ``"circular"`` (default) or ``"zeros"``: both are orthogonal up to truncation.
        terms: Taylor terms (default 6). At ``max_norm = 1`` the deviation ``max |sigma - 1|`` is at most
            ``1/(terms+1)!``: 2.0e-4 for 6 terms (1.5e-4 reached by 1 x 1 kernels; about 1e-6 for 3 x 3
            Gaussian kernels, whose certified norm is about twice their norm), 2.5e-8 for 10 (below
            float32's eps), 1.6e-16 for 17 (float64's); see the module docstring.
        max_norm: rescale ``S`` so that its certified norm bound is at most this (default 1.0), or
            ``None`` for no rescaling.
        device, dtype: of the parameters (the skew kernel and its rescaling are computed with autocast
            off, in float32 for half parameters; the series of convolutions runs in the input's precision).
    """

    _name = "SOC"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding="same",
        bias: bool = True,
        padding_mode: str = "circular",
        *,
        terms: int = 6,
        max_norm: float | None = 1.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        self.terms = _check_terms(terms)
        if max_norm is not None and not (isinstance(max_norm, (int, float)) and not isinstance(max_norm, bool)
                                         and math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be a positive finite number or None, got {max_norm!r}")
        self.max_norm = None if max_norm is None else float(max_norm)
        c = max(in_channels, out_channels)
        self._init_weight(c, c, bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        super().reset_parameters()

    def _skew_kernel(self) -> Tensor:
        S = _skew_part(promote(self.weight))
        if self.max_norm is None:
            return S
        rho = _skew_norm_bound(S)
        factor = torch.where(rho > self.max_norm, self.max_norm / torch.where(rho > 0, rho, 1), 1.0)
        return S * factor.to(S.dtype)

    def skew_kernel(self) -> Tensor:
        """The (rescaled) skew kernel ``S`` in working precision, differentiable. The rescaling factor
        ``min(1, max_norm / rho(S))`` is computed without gradient from the certified bound (one float64
        SVD of the reshaped kernel and of each tap)."""
        return self._build("skew_kernel", self._skew_kernel)

    def forward(self, x: Tensor) -> Tensor:
        """The truncated series applied by ``terms`` convolutions (zero padding has no single kernel)."""
        self._check_input(x)
        c = self.weight.shape[0]
        if self.in_channels < c:
            x = F.pad(x, (0, 0, 0, 0, 0, c - self.in_channels))
        S = self.skew_kernel()
        S = check_finite(S, "SOC: the skew kernel has nan or inf entries (non-finite parameters): the layer is undefined")
        y = soc_apply(x, S.to(self._dtype), self.terms, self.padding_mode)[:, : self.out_channels]
        return self._add_bias(y)

    def _kernel(self) -> Tensor:
        """The explicit ``(c_out, c_in, K, K)`` kernel, ``K = terms (k' - 1) + 1`` (circular padding only)."""
        if self.padding_mode != "circular":
            raise ValueError(
                "SOC.kernel: with zero padding the layer is exp of the zero-padded operator, not one kernel"
            )
        return soc_kernel(self.skew_kernel(), self.terms)[: self.out_channels, : self.in_channels]

    def lipschitz_bound(self, input_size=None) -> float:
        """``1 + rho^(terms+1) / (terms+1)!`` with ``rho`` the certified bound of the skew kernel: valid
        for every image size and both paddings (module docstring), so the same for every ``input_size``.
        The layer is orthogonal only up to the truncation (with the defaults its norm can reach 1.00015),
        which this bound accounts for; it bounds the truncated series itself, not the rounding of the
        convolutions that evaluate it (about the dtype's eps per term)."""
        if input_size is not None:
            image_size(input_size)
        return 1.0 + taylor_deviation_bound(skew_norm_bound(self.skew_kernel().detach()), self.terms)

    def config(self) -> dict:
        return {**self._base_config(), "terms": self.terms, "max_norm": self.max_norm}

    def _repr_fields(self) -> list[str]:
        return [f"terms={self.terms}", f"max_norm={self.max_norm}", f"padding_mode={self.padding_mode!r}"]
