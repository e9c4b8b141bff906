"""Sandwich layer (Wang & Manchester, "Direct Parameterization of Lipschitz-Bounded Deep Networks", ICML 2023),
convolutional form.

    y = sqrt(2) A^T Psi relu(sqrt(2) Psi^(-1) B x + b),   Psi = diag(e^d),   [A B] with orthonormal rows,

``B`` ``c_in -> c_out``, ``A`` ``c_out -> c_out``, ``b``, ``d`` ``(c_out,)``. Convolutional form with circular
padding on the input's ``H x W``: per frequency ``w`` of the half spectrum, from the ``rfft2`` ``X(w)`` of a
parameter kernel ``(c_out + c_in, c_out, k, k)`` (taps beyond the image fold), split into ``U`` (first ``c_out``
rows) and ``V``, the Cayley transform

    Z = U - U^H + V^H V,   Q(w) = [(I - Z)(I + Z)^(-1); -2 V (I + Z)^(-1)]   ((c_out + c_in) x c_out)

has orthonormal columns (``Q^H Q = I``: ``(I + Z)^H (I + Z) - (I - Z)^H (I - Z) = 2 (Z + Z^H) = 4 V^H V``; ``I + Z``
has Hermitian part ``I + V^H V >= I``, so it is invertible), and ``[A(w) B(w)] = Q(w)^H``. The layer computes
``v = irfft2(sqrt(2) B(w) xhat(w))``, ``u = relu(v + Psi b)`` and ``y = irfft2(sqrt(2) A(w)^H uhat(w))``: ReLU is
positively homogeneous, so ``Psi relu(Psi^(-1) v + b) = relu(v + Psi b)`` exactly, and ``Psi^(-1)`` never
appears (no ``e^(-d) * e^d`` overflow to ``0 * inf``). ``d`` is clamped to ``|d| <= log(max) / 4`` of the working
dtype (22 in float32), which keeps ``e^d b`` finite; any positive ``Psi`` keeps the guarantee. (So with ReLU,
``Psi`` acts only through the effective bias ``e^d b``; without a bias it cancels and ``d`` gets no gradient.)

Why 1-Lipschitz (the paper's Theorem 3, for any activation with slope in ``[0, 1]``): with ``u = Psi (s(v_1) -
s(v_2))`` and ``A A^H + B B^H = I``, ``||dx||^2 - ||dy||^2 >= ||dx - sqrt(2) B^H u||^2 >= 0``. On ``H x W`` the
operators ``A``, ``B`` are block-diagonal over the frequencies, so this holds for the whole layer. Exact up to the
rounding of the solve; ``lipschitz_bound(input_size)`` measures it: with ``delta = max_w ||Q^H Q - I||_2``
(float64), ``sqrt(1 + 4 delta (1 + delta))`` is certified. At the self-conjugate frequencies ``X`` is made exactly
real (as :class:`orthoconv.CayleyConv` does), so that the inverse real FFT keeps all of ``Q`` there.

Magnitudes: the parameter is clipped to ``|X| <= 2^(e_max / 2 - 16)`` entrywise (``2^47`` in float32) before the
transform, so that ``V^H V`` stays finite; below that the map is the paper's. Differences from the published code:
it reparameterizes the kernel as ``alpha W / ||W||_F`` and zero-pads the FFT; both are choices of parameterization,
not of the guarantee; here the kernel is used as is (clipped only far beyond any trained value) and the Fourier
domain is the input's own, so that the layer is exactly the circular operator analysed above.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..math.checks import image_size
from ..math.products import matmul
from ..math.spectral.transfer import _half_spectrum, apply_transfer
from ._args import check_image
from ._precision import check_finite, full_precision, promote
from .base import KernelConv2d
from .cayley import _self_conjugate


def cayley_columns(X: Tensor, rows: int) -> Tensor:
    """``Q`` ``(..., m + n, m)`` with orthonormal columns from ``X`` ``(..., m + n, m)``, ``U = X[:m]``, ``V = X[m:]``
    (module docstring), differentiable."""
    m = X.shape[-1]
    U, V = X[..., :rows, :], X[..., rows:, :]
    Z = U - U.mH + matmul(V.mH, V)
    eye = torch.eye(m, dtype=X.dtype, device=X.device)
    # (I + Z)^(-1), I - Z commutes with it; Z is skew-Hermitian plus PSD, so I + Z is never singular: solve_ex, whose
    # error status stays on the device (linalg.solve reads it on the host)
    inverse = torch.linalg.solve_ex(eye + Z, eye).result
    return matmul(torch.cat([eye - Z, -2 * V], dim=-2), inverse)


def clip_magnitude(X: Tensor) -> Tensor:
    """``X`` clipped entrywise to ``|X| <= 2^(e_max / 2 - 16)`` of its dtype (module docstring)."""
    limit = 2.0 ** (math.floor(math.log2(torch.finfo(X.dtype).max)) // 2 - 16)
    return X.clamp(-limit, limit)


class Sandwich(KernelConv2d):
    """Sandwich layer ``sqrt(2) A^T Psi relu(sqrt(2) Psi^(-1) B x + b)``: 1-Lipschitz, circular padding, any size.

    Args:
        in_channels, out_channels: ``c_in``, ``c_out`` (any; ``A`` is ``c_out x c_out``, ``B`` ``c_out x c_in``).
        kernel_size: support of the parameter kernel (square, any ``k >= 1``).
        stride, padding: only ``1`` and ``"same"``.
        bias: the hidden bias ``b`` ``(c_out,)``.
        padding_mode: only ``"circular"`` (the construction is per frequency).
        device, dtype: of the parameters. The transfer matrices are built with autocast off (complex64 for float32
            and half parameters, complex128 for float64); the Fourier-domain products run in that precision.

    Parameters: ``weight`` ``(c_out + c_in, c_out, k, k)``, ``log_psi`` (``d``, initialized to 0), ``bias``. Not a
    convolution: ``transfer(input_size)`` gives ``Q(w)``; ``kernel()`` raises ``TypeError``.
    """

    _name = "Sandwich"
    _padding_modes = ("circular",)
    nonlinear = True

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
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        k, c = self.kernel_size, self.out_channels
        self.weight = nn.Parameter(torch.empty(c + self.in_channels, c, k, k, device=device, dtype=dtype))
        self.log_psi = nn.Parameter(torch.empty(c, device=device, dtype=dtype))
        self._init_bias(bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        nn.init.zeros_(self.log_psi)
        super().reset_parameters()

    def kernel(self) -> Tensor:
        raise TypeError("Sandwich is not a convolution (a ReLU sits between its two Fourier-domain maps): use "
                        "transfer(input_size) for Q(w), lipschitz_bound(input_size) for its certified bound")

    def _transfer(self, size: tuple[int, int]) -> Tensor:
        H, W = size
        X = _half_spectrum(clip_magnitude(promote(self.weight)), H, W)
        X = torch.where(_self_conjugate(H, W, X.device)[..., None, None], X.real.to(X.dtype), X)
        Q = cayley_columns(X, self.out_channels)
        Q = check_finite(Q, "Sandwich: the Cayley transform is not finite (non-finite parameters)")
        return Q

    def transfer(self, input_size) -> Tensor:
        """``Q(w)`` on the half spectrum of ``input_size``: ``(H, W // 2 + 1, c_out + c_in, c_out)`` complex, with
        ``A(w)^H = Q[:c_out]`` and ``B(w)^H = Q[c_out:]``; built with autocast off, differentiable."""
        size = image_size(input_size)
        return self._build(f"transfer {size}", lambda: self._transfer(size))

    def _psi_bias(self, dtype: torch.dtype) -> Tensor:
        d = promote(self.log_psi)
        limit = math.log(torch.finfo(d.dtype).max) / 4
        return (torch.exp(d.clamp(-limit, limit)) * promote(self.bias)).to(dtype)

    def _check_input(self, x: Tensor) -> None:
        check_image(x, self.in_channels, self._name, self._dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        H, W = x.shape[-2:]
        c = self.out_channels
        if x.shape[0] == 0:  # an empty batch (the FFT backends refuse one)
            return x.new_zeros(0, c, H, W)
        Q = self.transfer((H, W))
        with full_precision(x.device):
            xhat = torch.fft.rfft2(x.to(Q.real.dtype))
            v = torch.fft.irfft2(math.sqrt(2) * apply_transfer(Q[..., c:, :].mH, xhat), s=(H, W))
            if self.bias is not None:
                v = v + self._psi_bias(v.dtype)[:, None, None]
            uhat = torch.fft.rfft2(torch.relu(v))
            y = torch.fft.irfft2(math.sqrt(2) * apply_transfer(Q[..., :c, :], uhat), s=(H, W))
        return y.to(x.dtype)

    def lipschitz_bound(self, input_size=None) -> float:
        """``sqrt(1 + 4 delta (1 + delta))`` with ``delta = max_w ||Q(w)^H Q(w) - I||_2`` on ``input_size``, in float64
        (module docstring). ``None``: 1, the theorem in exact arithmetic at every size (``Q`` is built per input
        size; pass ``input_size`` for the measured certificate, which includes the rounding)."""
        if input_size is None:
            return 1.0
        with torch.no_grad():
            Q = self.transfer(input_size).detach().to(torch.complex128)
            eye = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
            delta = float(torch.linalg.matrix_norm(Q.mH @ Q - eye, ord=2).max())
        return math.sqrt(1 + 4 * delta * (1 + delta))

    def config(self) -> dict:
        return self._base_config()

    def _repr_fields(self) -> list[str]:
        return []
