"""Cayley convolution (Trockman & Kolter, "Orthogonalizing Convolutional Layers with the Cayley
Transform", ICLR 2021): orthogonal for ONE image size, computed in the Fourier domain.

With circular padding on ``H x W`` images the operator acts on each frequency separately. From a
parameter kernel ``V`` (``c x c``, ``c = max(c_in, c_out)``, ``k x k``) take ``Vhat(w) = rfft2(V)`` at
the ``H (W // 2 + 1)`` frequencies of the half spectrum and

    A(w) = Vhat(w) - Vhat(w)^H          (skew-Hermitian: eigenvalues on the imaginary axis),
    Q(w) = (I + A(w))^{-1} (I - A(w))   (the Cayley transform: unitary, I + A is always invertible).

The layer computes ``yhat(w) = Q(w) xhat(w)`` and ``y = irfft2(yhat)``. Since ``Vhat(-w) =
conj(Vhat(w))`` for a real ``V``, ``Q(-w) = conj(Q(w))`` and ``y`` is real; ``Q`` unitary at every
frequency makes the operator orthogonal on ``H x W`` (and on no other size in general: the kernel of
the operator has ``H x W`` taps, see :func:`cayley_kernel`). Channel change as in the paper: with
``c_in < c_out`` the input is zero-padded to ``c`` channels (an isometry: the first ``c_in`` columns of
``Q``), with ``c_in > c_out`` the first ``c_out`` output channels are kept (a co-isometry).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..math.checks import image_size
from ..math.constants import constant
from ..math.spectral.transfer import _half_spectrum, apply_transfer
from ._precision import check_finite, check_true, full_precision, promote
from .base import KernelConv2d
from .norms import kernel_bound

POLISH_STEPS = 3


def _polish_steps(Q: Tensor) -> Tensor:
    """:data:`POLISH_STEPS` Newton-Schulz steps on the stacked batch (one ``bmm`` and one ``baddbmm`` each)."""
    shape = Q.shape
    Q = Q.reshape(-1, *shape[-2:])
    eye = torch.eye(shape[-1], dtype=Q.dtype, device=Q.device).expand_as(Q)
    for _ in range(POLISH_STEPS):
        Q = torch.bmm(Q, torch.baddbmm(eye, Q.mH, Q, beta=1.5, alpha=-0.5))
    return Q.view(shape)


class _Polish(torch.autograd.Function):
    """:data:`POLISH_STEPS` Newton-Schulz steps ``Q <- Q (3 I - Q^H Q) / 2`` forward; the identity backward.

    At a unitary ``Q`` the step's derivative is ``dQ -> (dQ - Q dQ^H Q) / 2``, which is ``dQ`` itself on the
    tangent directions (``Q^H dQ`` skew-Hermitian, as every derivative of the Cayley transform is): the
    gradient passes through unchanged, where autograd would differentiate every step (about 25 operations
    each). The forward's correction is of the order of the solve's rounding, and so is the difference."""

    generate_vmap_rule = True

    @staticmethod
    def forward(Q: Tensor) -> Tensor:
        return _polish_steps(Q)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def jvp(ctx, tangent: Tensor) -> Tensor:
        return tangent.clone(memory_format=torch.contiguous_format)  # the layout of the output (solve_ex: columns)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def cayley_transfer(V: Tensor, input_size) -> Tensor:
    """``Q(w) = (I + A)^{-1} (I - A)``, ``A = Vhat - Vhat^H``, on the half spectrum: ``(H, W // 2 + 1, c, c)``.

    The solve rounds to about ``eps cond(I + A)``, and ``cond(I + A) ~ ||A||`` wherever ``A`` has an eigenvalue
    near 0 (always at the real frequencies for odd ``c``): measured 1.7e-2 in float32 at weights 1e6 times
    their initialization. :data:`POLISH_STEPS` Newton-Schulz steps ``Q <- Q (3 I - Q^H Q) / 2`` follow; they
    leave a unitary ``Q`` unchanged and take a deviation ``d`` to about ``3 d^2 / 4`` (from 1e-1 to the
    rounding level), so ``Q`` is unitary to working precision up to much larger weights. Their backward is
    the identity (:class:`_Polish`: exact on the tangent directions the Cayley transform's derivative takes).
    """
    if not isinstance(V, Tensor) or V.dim() != 4 or V.shape[0] != V.shape[1]:
        raise ValueError(f"V must be a square-channel kernel (c, c, kh, kw), got {getattr(V, 'shape', V)!r}")
    H, W = image_size(input_size)
    Vhat = _half_spectrum(V, H, W)  # no host check: the layer checks V (orthoconv.nn._precision)
    A = Vhat - Vhat.mH
    # at the self-conjugate frequencies (0 or Nyquist on both axes) the inverse real FFT keeps only the real
    # part of Q: A must be exactly real there, not real up to the FFT's rounding (sin(pi) != 0), which the
    # Cayley transform amplifies by ||A|| near its zero eigenvalue
    A = torch.where(constant(_self_conjugate, H, W, device=A.device)[..., None, None], A.real.to(A.dtype), A)
    eye = torch.eye(V.shape[0], dtype=A.dtype, device=A.device)
    Q = torch.linalg.solve_ex(eye + A, eye - A).result  # a singular I + A leaves Q non-unitary: the layer checks
    if torch.compiler.is_compiling():  # dynamo traces no Function with a jvp rule: inductor differentiates the steps
        return _polish_steps(Q)
    return _Polish.apply(Q)


def _self_conjugate(H: int, W: int, device) -> Tensor:
    """``(H, W // 2 + 1)`` mask of the half-spectrum frequencies equal to their own conjugates."""
    u = torch.arange(H, device=device)[:, None]
    v = torch.arange(W // 2 + 1, device=device)[None, :]
    return ((2 * u) % H == 0) & ((2 * v) % W == 0)


def unitary_deviation(Q: Tensor) -> Tensor:
    """``max |Q^H Q - I|`` over every frequency (a 0-d real tensor)."""
    Q = Q.reshape(-1, *Q.shape[-2:])
    eye = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device).expand_as(Q)
    return torch.baddbmm(eye, Q.mH, Q, alpha=-1).abs().amax()


def _origin_phase(H: int, W: int, dtype: torch.dtype, device) -> Tensor:
    """``exp(-2 pi i (u b_h / H + v b_w / W))`` on the half spectrum, ``b = ((H - 1) // 2, (W - 1) // 2)``:
    the shift between tap index and offset of an ``H x W`` kernel in :func:`orthoconv.conv.conv2d_same`."""
    u = torch.arange(H, device=device)[:, None]
    v = torch.arange(W // 2 + 1, device=device)[None, :]
    turns = ((u * ((H - 1) // 2)) % H).to(torch.float64) / H + ((v * ((W - 1) // 2)) % W).to(torch.float64) / W
    angle = (-2 * math.pi * turns).to(dtype)
    return torch.polar(torch.ones_like(angle), angle)


def cayley_kernel(Q: Tensor, input_size) -> Tensor:
    """The ``(c_out, c_in, H, W)`` real kernel whose same-size circular convolution
    (:func:`orthoconv.conv.conv2d_same`) is the map ``x -> irfft2(Q rfft2(x))``.

    For a real kernel with taps at offsets ``p - b``, ``yhat(w) = conj(K(w)) exp(-2 pi i w.b) xhat(w)``
    (``K`` the ``rfft2`` of the taps), so ``K(w) = conj(Q(w)) exp(-2 pi i w.b)`` and the taps are its
    ``irfft2``.
    """
    H, W = image_size(input_size)
    K = Q.conj() * _origin_phase(H, W, Q.real.dtype, Q.device)[..., None, None]
    return torch.fft.irfft2(K.permute(2, 3, 0, 1), s=(H, W))


class CayleyConv(KernelConv2d):
    """An orthogonal convolution on ``input_size`` images by the Cayley transform per frequency.

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d``; ``kernel_size`` is the support of the
            parameter ``V`` (square, any k >= 1; taps beyond the image wrap around), the operator itself
            has ``H x W`` taps.
        stride, padding: only ``1`` and ``"same"``.
        bias: add a learnable bias.
        padding_mode: only ``"circular"`` (the construction is a circular convolution).
        input_size: ``(H, W)`` (or an int), required keyword: the one image size the layer is orthogonal
            for; other sizes raise ``ValueError``.
        device, dtype: of the parameters. The transfer matrices are built with autocast off (complex64
            for float32 and half parameters, complex128 for float64) and the Fourier-domain product runs
            in that precision; the output has the input's dtype.
    """

    _name = "CayleyConv"
    _padding_modes = ("circular",)

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
        input_size,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        self.input_size = image_size(input_size)
        c = max(in_channels, out_channels)
        self._init_weight(c, c, bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        super().reset_parameters()

    def _transfer(self) -> Tensor:
        V = check_finite(promote(self.weight), "CayleyConv: the parameter has nan or inf entries")
        Q = cayley_transfer(V, self.input_size)
        limit = 2e-12 if Q.dtype == torch.complex128 else 2e-5  # twice the promised max |sigma - 1|
        Q = check_true(unitary_deviation(Q.detach()) <= limit,
                       f"CayleyConv: the Cayley transform is not unitary to {limit / 2:g} at these weights (too "
                       f"large for {Q.real.dtype}: the solve rounds to about eps ||A||, or I + A is singular); rescale "
                       "the parameter or use float64", Q)
        return Q[..., : self.out_channels, : self.in_channels]

    def transfer(self) -> Tensor:
        """``Q(w)[:c_out, :c_in]`` on the half spectrum, ``(H, W // 2 + 1, c_out, c_in)`` complex."""
        return self._build("transfer", self._transfer)

    def _kernel(self) -> Tensor:
        """The equivalent ``(c_out, c_in, H, W)`` kernel for ``conv2d_same(x, kernel, "circular")``."""
        return cayley_kernel(self.transfer(), self.input_size)

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"CayleyConv is orthogonal for {self.input_size} images only, got {tuple(x.shape[-2:])}")

    def forward(self, x: Tensor) -> Tensor:
        """``irfft2(Q(w) rfft2(x))`` in the Fourier domain (no explicit kernel), plus the bias."""
        self._check_input(x)
        H, W = self.input_size
        if x.shape[0] == 0:  # an empty batch (the FFT backends refuse one)
            return self._add_bias(x.new_zeros(0, self.out_channels, H, W))
        Q = self.transfer()
        with full_precision(x.device):
            xhat = torch.fft.rfft2(x.to(Q.real.dtype))
            y = torch.fft.irfft2(apply_transfer(Q, xhat), s=(H, W))
        return self._add_bias(y.to(x.dtype))

    def lipschitz_bound(self, input_size=None) -> float:
        """The exact norm (float64 FFT) of the operator on the layer's image size, 1 up to rounding
        (the layer is orthogonal there). Any other ``input_size`` raises ``ValueError``: the layer is
        built for one size."""
        if input_size is not None and image_size(input_size) != self.input_size:
            raise ValueError(
                f"CayleyConv.lipschitz_bound: the layer is built for {self.input_size} images (orthogonal on "
                f"that size only), input_size is {image_size(input_size)}"
            )
        return kernel_bound(self.kernel(), self.input_size, "circular")

    def config(self) -> dict:
        return {**self._base_config(), "input_size": list(self.input_size)}

    def _repr_fields(self) -> list[str]:
        return [f"input_size={self.input_size}"]
