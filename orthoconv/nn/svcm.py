"""SVCM: singular value clipping and masking (Sedghi, Gupta, Long, ICLR 2019; a baseline in Li et al. 2019).

One projection round on an ``H x W`` image with circular padding:

1. transfer matrices ``K(w) = U S V^H`` at every frequency (:func:`orthoconv.spectral.frequency_response`);
2. clip: ``K'(w) = U min(S, 1) V^H`` -- the nearest (Frobenius) operator of norm <= 1;
3. inverse FFT: a kernel with ``H x W`` taps whose operator has norm <= 1;
4. mask: keep the original ``kh x kw`` support (taps ``[0, kh) x [0, kw)``), drop the rest.

Step 4 breaks the guarantee: the masked kernel's norm can exceed 1 again. Alternating the two
projections (clip, mask, clip, mask, ...) is the alternating-projection scheme of Sedghi et al.; the
norm decreases toward the intersection (norm-<=-1 operators with the kernel's support) but reaches 1
only in the limit, and slowly. :func:`svcm_project` runs ``rounds`` of it; :func:`svcm_history` and
:func:`svcm_rounds_needed` measure it. ``orthoconv experiment svcm-rounds`` measured (float64, iid
N(0, 1) kernels, exact FFT norm, c = 4..64, k = 3, 5, n = 8, 16; table in docs/experiments/svcm-rounds.md) ``sigma_max``
1.38..1.48 after one round, 1.026..1.036 after ten, and 30..88 rounds to reach 1.001,
so the excess ``sigma_max - 1`` falls roughly like ``0.4 / rounds`` at first. The layer therefore
reports its certified norm with :meth:`SVCM.lipschitz_bound` (the exact FFT norm), never assuming
the projection succeeded.

Clipping commutes with complex conjugation, so clipping the half spectrum and inverting with
``irfft2`` gives a real kernel. The mask needs the kernel's support to fit in the image
(``kh <= H``, ``kw <= W``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..math.checks import check_kernel, image_size, non_negative_int
from ..math.spectral import circular_spectral_norm, frequency_response
from ._precision import full_precision, promote
from .base import KernelConv2d
from .norms import kernel_bound


def _check_fits(kernel: Tensor, size: tuple[int, int]) -> None:
    kh, kw = kernel.shape[-2:]
    if kh > size[0] or kw > size[1]:
        raise ValueError(
            f"SVCM masks the clipped kernel back to its {kh}x{kw} support, which must fit in the image; "
            f"input_size {size} is smaller"
        )


def clip_singular_values(kernel: Tensor, input_size, bound: float = 1.0) -> Tensor:
    """Steps 1-3: the ``(c_out, c_in, H, W)`` kernel whose circular operator on ``input_size`` is the
    original one with every singular value clipped to ``<= bound``."""
    check_kernel(kernel)
    H, W = image_size(input_size)
    K = frequency_response(kernel, (H, W)).contiguous()
    try:
        U, S, Vh = torch.linalg.svd(K, full_matrices=False)
    except torch.linalg.LinAlgError:  # complex64 gesdd fails to converge on some highly degenerate spectra
        U, S, Vh = (t.to(K.dtype if t.is_complex() else K.real.dtype)
                    for t in torch.linalg.svd(K.to(torch.complex128), full_matrices=False))
    clipped = (U * S.clamp_max(bound).to(U.dtype)[..., None, :]) @ Vh
    return torch.fft.irfft2(clipped.permute(2, 3, 0, 1), s=(H, W))


def svcm_project(kernel: Tensor, input_size, rounds: int = 1) -> Tensor:
    """``rounds`` of clip-then-mask on ``input_size`` (module docstring); same shape as ``kernel``.

    ``rounds = 0`` returns the kernel unchanged. The result's norm is NOT guaranteed to be <= 1;
    measure it (:func:`orthoconv.spectral.circular_spectral_norm`) or see :func:`svcm_history`.
    """
    check_kernel(kernel)
    size = image_size(input_size)
    rounds = non_negative_int(rounds, "rounds")
    _check_fits(kernel, size)
    kh, kw = kernel.shape[-2:]
    for _ in range(rounds):
        kernel = clip_singular_values(kernel, size)[..., :kh, :kw]
    return kernel


def svcm_history(kernel: Tensor, input_size, rounds: int) -> list[float]:
    """``[||conv(W_0)||, ||conv(W_1)||, ..., ||conv(W_rounds)||]``: the exact circular norm on
    ``input_size`` before and after each clip-and-mask round (computed in the kernel's dtype)."""
    size = image_size(input_size)
    norms = [circular_spectral_norm(kernel, size)]
    for _ in range(rounds):
        kernel = svcm_project(kernel, size, 1)
        norms.append(circular_spectral_norm(kernel, size))
    return norms


def svcm_rounds_needed(kernel: Tensor, input_size, bound: float, max_rounds: int = 100) -> int | None:
    """The first number of rounds after which the exact norm is ``<= bound`` (0 if it already is), or
    ``None`` when ``max_rounds`` rounds do not reach it."""
    size = image_size(input_size)
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound!r}")
    for rounds in range(max_rounds + 1):
        if circular_spectral_norm(kernel, size) <= bound:
            return rounds
        if rounds < max_rounds:
            kernel = svcm_project(kernel, size, 1)
    return None


class SVCM(KernelConv2d):
    """A convolution kept near the unit ball by clip-and-mask projections (Sedghi et al. 2019).

    The kernel is a plain parameter; :meth:`project_` applies ``rounds`` clip-and-mask rounds in place
    (call it after optimizer steps, as in projected gradient descent; the constructor calls it once).
    ``forward`` uses the current kernel as is; its certified norm is :meth:`lipschitz_bound`.

    Args:
        in_channels, out_channels, kernel_size, bias: as ``nn.Conv2d`` (square kernels, ``k <= H, W``).
        stride, padding: only ``1`` and ``"same"``.
        padding_mode: ``"circular"`` (default; what the projection controls) or ``"zeros"`` (the
            zero-padded operator is then bounded by :meth:`lipschitz_bound`, not by the projection).
        input_size: ``(H, W)`` the projection is computed for (required keyword; other sizes raise in
            forward).
        rounds: clip-and-mask rounds per :meth:`project_` (default 10: about 1.03 to 1.05 for Gaussian
            kernels, see the module docstring).
        device, dtype: of the parameters (half precisions project in float32).
    """

    _name = "SVCM"
    _runtime_options = ("rounds",)

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
        rounds: int = 10,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        self.input_size = image_size(input_size)
        self.rounds = non_negative_int(rounds, "rounds")
        _check_fits(torch.empty(1, 1, self.kernel_size, self.kernel_size), self.input_size)
        self._init_weight(out_channels, in_channels, bias, device, dtype)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        super().reset_parameters()
        self.project_()

    @torch.no_grad()
    def project_(self, rounds: int | None = None) -> "SVCM":
        """Replace the kernel by ``svcm_project(kernel, input_size, rounds)`` (default ``self.rounds``),
        computed in full precision (float32 for half parameters). A no-op on the ``meta`` device."""
        if self.weight.device.type == "meta":
            return self
        with full_precision(self.weight.device):
            kernel = svcm_project(promote(self.weight), self.input_size, self.rounds if rounds is None else rounds)
        self.weight.copy_(kernel)
        return self

    def _kernel(self) -> Tensor:
        """The current kernel (the parameter itself)."""
        return promote(self.weight)

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"SVCM is projected for {self.input_size} images, got {tuple(x.shape[-2:])}")

    def lipschitz_bound(self, input_size=None) -> float:
        """The certified norm of the current kernel on ``input_size`` (default: the layer's), float64:
        exact FFT norm (circular) or the certified upper end of ``conv_spectral_norm`` (zeros). The
        layer is not orthogonal: this is its measured norm, not 1."""
        return kernel_bound(self.weight, self.input_size if input_size is None else input_size, self.padding_mode)

    def config(self) -> dict:
        return {**self._base_config(), "input_size": list(self.input_size), "rounds": self.rounds}

    def _repr_fields(self) -> list[str]:
        return [f"input_size={self.input_size}", f"rounds={self.rounds}", f"padding_mode={self.padding_mode!r}"]
