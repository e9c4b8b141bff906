"""The skeleton of the layers defined frequency by frequency on the input's own size (LOT, BRO).

With circular padding on ``H x W`` images a real convolution acts on each frequency ``w`` of the half
spectrum (``rfft2``, ``H x (W // 2 + 1)``) by a ``c_out x c_in`` matrix ``T(w)``. These layers map the
transfer matrices of a small parameter kernel ``V`` (``Vhat(w)``, :func:`orthoconv.spectral.frequency_response`,
taps beyond the image folded) through a unitary-valued matrix function ``f`` (a polar factor, a block
reflector) and compute ``y = irfft2(f(Vhat(w)) rfft2(x))``: orthogonal on every image size, which the
FFT follows. The operator is the circular convolution with the ``H x W`` kernel :meth:`kernel` returns
(:func:`orthoconv.nn.cayley.cayley_kernel`).

For ``irfft2`` to return the operator ``f`` defines, the half spectrum must be that of a real kernel:
at the self-conjugate frequencies (0 or Nyquist on both axes) ``f`` is evaluated on the real matrix
``Vhat(w)`` in real arithmetic (a rank-deficient ``Vhat`` has many unitary factors, and a complex one
would lose its imaginary part in ``irfft2``), and in the columns ``v = 0`` and ``v = W / 2`` the rows
``u > H / 2`` are the conjugates of the rows ``H - u`` (:func:`real_half_spectrum`). ``f`` must commute
with conjugation (``f(conj A) = conj f(A)``), as the SVD-defined maps of :mod:`orthoconv.math.polar` do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..math.checks import image_size
from ..math.spectral.transfer import _half_spectrum, apply_transfer
from ._precision import check_finite, full_precision, promote
from .base import KernelConv2d
from .cayley import cayley_kernel
from .norms import kernel_bound


def real_half_spectrum(f: Callable[[Tensor], Tensor], Vhat: Tensor, input_size) -> Tensor:
    """``f`` per frequency of the half spectrum ``Vhat`` (``(H, W // 2 + 1, a, b)`` complex), made the half
    spectrum of a real operator (module docstring). Index bookkeeping only: no loop over frequencies."""
    H, W = image_size(input_size)
    T = f(Vhat)
    device = Vhat.device
    rows = torch.arange(2 - H % 2, device=device) * (H // 2)  # 0, and H / 2 for even H
    cols = torch.arange(2 - W % 2, device=device) * (W // 2)
    u, v = rows.repeat_interleave(cols.numel()), cols.repeat(rows.numel())
    T = T.index_put((u, v), f(Vhat[u, v].real).to(T.dtype))
    mirrored = torch.arange(H // 2 + 1, H, device=device)
    u, v = mirrored.repeat_interleave(cols.numel()), cols.repeat(mirrored.numel())
    T = T.index_put((u, v), T[H - u, v].conj())
    return T


class FourierConv2d(KernelConv2d):
    """Base of LOT and BRO: a stride-1 circular layer whose transfer matrices at the input's size are
    ``f(Vhat(w))`` (subclasses define ``_transfer_full(Vhat)`` on ``c x c`` matrices, ``c = max(c_in,
    c_out)``); the first ``c_out`` rows and ``c_in`` columns are kept (an isometry for ``c_in < c_out``,
    a co-isometry for ``c_in > c_out``)."""

    _padding_modes = ("circular",)
    kernel_depends_on_size = True

    def _parameter_kernel(self) -> Tensor:
        raise NotImplementedError

    def _matrix_map(self, A: Tensor) -> Tensor:
        raise NotImplementedError

    def _transfer(self, size: tuple[int, int]) -> Tensor:
        V = self._parameter_kernel()
        V = check_finite(V, f"{self._name}: the parameter has nan or inf entries")
        # a poisoned V must not reach the SVD (it raises there): decompose zeros, poison the result instead
        poison = V.detach().sum() * 0
        V = promote(torch.nan_to_num(V, nan=0.0, posinf=0.0, neginf=0.0))
        scale = V.detach().abs().amax().clamp_min(torch.finfo(V.dtype).tiny) if V.numel() else V.new_ones(())
        # f is scale invariant: the scale only keeps the sums finite; frequency_response without its host-side check
        Vhat = _half_spectrum(V / scale, *size)
        T = real_half_spectrum(self._matrix_map, Vhat, size) + poison
        return T[..., : self.out_channels, : self.in_channels]

    def transfer(self, input_size) -> Tensor:
        """The transfer matrices on ``input_size`` images, half spectrum: ``(H, W // 2 + 1, c_out, c_in)``
        complex (complex64 for float32 and half parameters, complex128 for float64), differentiable."""
        size = image_size(input_size)

        def build() -> Tensor:
            with full_precision(self._device):
                return self._transfer(size)

        return self._build(f"transfer {size[0]}x{size[1]}", build)

    def kernel(self, input_size=None) -> Tensor:
        """The ``(c_out, c_in, H, W)`` kernel whose circular "same" convolution is the layer on ``input_size``
        images (the operator depends on the size: ``ValueError`` without one), in the parameters' dtype."""
        if input_size is None:
            raise ValueError(f"{self._name}.kernel: the layer's operator is defined on the input's own size; "
                             "pass input_size=(H, W)")
        size = image_size(input_size)

        def build() -> Tensor:
            with full_precision(self._device):
                return cayley_kernel(self.transfer(size), size).to(self._dtype)

        return self._build(f"kernel {size[0]}x{size[1]}", build)

    def forward(self, x: Tensor) -> Tensor:
        """``irfft2(T(w) rfft2(x))`` at the input's size, plus the bias."""
        self._check_input(x)
        H, W = x.shape[-2:]
        if x.shape[0] == 0:  # an empty batch (the FFT backends refuse one)
            return self._add_bias(x.new_zeros(0, self.out_channels, H, W))
        T = self.transfer((H, W))
        with full_precision(x.device):
            xhat = torch.fft.rfft2(x.to(T.real.dtype))
            y = torch.fft.irfft2(apply_transfer(T, xhat), s=(H, W))
        return self._add_bias(y.to(x.dtype))

    def lipschitz_bound(self, input_size=None) -> float:
        """The exact norm (float64 FFT of :meth:`kernel`) on ``input_size`` images: 1 up to rounding (the layer
        is orthogonal there). The operator differs from size to size, so ``input_size=None`` raises
        ``ValueError`` instead of claiming a bound no finite computation checked."""
        if input_size is None:
            raise ValueError(f"{self._name}.lipschitz_bound: the operator depends on the image size (orthogonal on "
                             "each, measured on one): pass input_size=(H, W)")
        size = image_size(input_size)
        return kernel_bound(self.kernel(size), size, "circular")
