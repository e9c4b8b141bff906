"""OSSN: one-sided spectral normalization of a convolution (a baseline in Li et al. 2019).

    W_eff = W / max(1, sigma),   sigma ~ ||conv(W)||_2 on the layer's image size,

with ``sigma`` estimated by power iteration on the true operator (Miyato et al. 2018, made one-sided
and applied to the convolution rather than the reshaped kernel, as in Gouk et al. 2018 and the BCOP
paper's OSSN baseline): ``u <- A^T A u / ||A^T A u||`` with ``A = conv(W)`` and its adjoint
(:func:`orthoconv.conv.conv2d_same`, :func:`orthoconv.conv.conv2d_same_adjoint`, the layer's padding),
and ``sigma = ||A u||`` for the unit iterate ``u``. The iterate persists in a buffer; each training
forward runs ``n_power_iterations`` more steps (no gradient), and the gradient flows through ``sigma``
with ``u`` held fixed. Kernels with ``sigma <= 1`` are left unchanged (one-sided).

Power iteration finds the top singular vector only from an iterate with a component along it, and
``A^T A`` has invariant subspaces that exclude it: for a circular convolution every frequency's subspace
(the spatially constant images are frequency 0), for a block-diagonal kernel (any padding) the images on
one block's channels. In floating point an iterate that converges onto one of them can land in it
EXACTLY: a circular convolution and its adjoint map a constant image (or a +-1 pattern at a Nyquist
frequency) to one without any rounding difference between pixels, and a zero channel stays zero. Measured on the Wasserstein critic
(``conv_critic("ossn", 1, (28, 28))`` on ``gaussian_translation(128)``, 300 Adam steps at lr 3e-2): the
top singular vector of each 3x3 layer sat at frequency 0 early on, the iterate became a constant image
by step 40, and when training moved the top to other frequencies the estimate stayed at 0.98 while the
true norm grew to 50 (critic L = 2576). So every training forward first mixes fresh noise into the
persistent iterate, ``u <- (u + tau g / ||g||) / ||.||`` with ``g`` standard Gaussian from torch's
global RNG (like dropout: seed it with ``torch.manual_seed``) and ``tau = sqrt(eps)`` of the iterate's
dtype (1.5e-8 float64, 3.5e-4 float32, 0.088 bfloat16): almost surely a nonzero component along every
direction, amplified by the power steps, yet far above the rounding of the stored iterate, so no
invariant subspace can hold it. Its cost at convergence: a noise component whose eigenvalue is ``x`` times
the top one keeps, over the forwards, an expected energy ``tau^2 x^(2n) / (1 - x^(2n))`` after the ``n =
n_power_iterations`` steps, so the expected relative loss in ``sigma^2`` is at most ``tau^2 max_x (1 - x)
x^(2n) / (1 - x^(2n)) <= eps / (2n)``: the size of the rounding of ``u`` itself. The noise does not speed
up power iteration itself: a top that moves to another frequency is followed at the rate ``(s_2 / s_1)^2``
per step (in the run above the 3x3 layers' norm ``||conv(W)|| / sigma`` peaked at 1.48 while the top left
frequency 0, and was 1.0000 at the end; :meth:`OSSN.lipschitz_bound` shows it at any time).

``sigma`` is a LOWER bound of the norm (a Rayleigh quotient), so ``||conv(W_eff)|| = ||conv(W)|| /
sigma >= 1`` whenever it rescales: the layer is 1-Lipschitz only up to the power iteration's error.
:meth:`OSSN.lipschitz_bound` therefore never uses the iterate: it returns the exact FFT norm of the
effective kernel (circular padding) or the certified upper end of
:func:`orthoconv.spectral.conv_spectral_norm` (zero padding: dense SVD when small, else the circular
norm on the image enlarged by ``k - 1``).

The image size: ``input_size`` in the constructor, or, when omitted (``None``), taken from the first
input; it then stays fixed (a different size raises ``ValueError``, since ``sigma`` belongs to one
operator). The iterate is initialized with ``warmup_iterations`` power steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..math.checks import image_size, non_negative_int, positive_int
from ..math.constants import constant
from ..math.conv import conv2d_same, conv2d_same_adjoint
from ..math.orthogonal import binary_scale
from ._precision import full_precision, promote
from .base import KernelConv2d
from .norms import kernel_bound


def _ramp(n: int, dtype: torch.dtype, device) -> Tensor:
    ramp = torch.cos(torch.arange(n, device=device, dtype=dtype) * 0.618 + 0.5)
    return ramp / torch.linalg.vector_norm(ramp)


def _fallback_direction(u: Tensor) -> Tensor:
    """A fixed unit vector of ``u``'s shape with every entry nonzero (no random state is used; built once per
    size, dtype and device)."""
    return constant(_ramp, u.numel(), u.dtype, device=u.device).view_as(u)


def power_iteration_step(u: Tensor, kernel: Tensor, padding_mode: str, steps: int) -> Tensor:
    """``steps`` normalized power-iteration steps ``u <- A^T A u / ||A^T A u||`` (no gradient).

    Where ``A^T A u = 0`` (``u`` in the null space, or ``A = 0``) the iterate restarts from a fixed
    direction; the choice is made by ``torch.where``, without a host synchronization. The kernel is
    divided by :func:`orthoconv.math.orthogonal.binary_scale` (the direction does not depend on it), so
    huge or tiny kernels neither overflow nor underflow.
    """
    with torch.no_grad():
        kernel = kernel / binary_scale(kernel.reshape(1, -1))
        fallback = _fallback_direction(u)
        for _ in range(steps):
            v = conv2d_same_adjoint(conv2d_same(u, kernel, padding_mode), kernel, padding_mode)
            norm = torch.linalg.vector_norm(v)
            u = torch.where(norm > 0, v / norm, fallback)  # no gradient: the branch not taken may be nan
    return u


def mixing_size(dtype: torch.dtype) -> float:
    """``tau = sqrt(eps)`` of ``dtype``: the relative size of the noise mixed into the iterate (module
    docstring)."""
    return torch.finfo(dtype).eps ** 0.5


def mix_noise(u: Tensor, tau: float) -> Tensor:
    """``(u / ||u|| + tau g / ||g||) / ||.||``, ``g ~ N(0, I)`` drawn from torch's global RNG (no gradient).

    A unit vector within ``~tau`` of ``u``'s direction with, almost surely, a nonzero component along every
    direction, so that power iteration can leave any invariant subspace of ``A^T A`` ``u`` lies in. A
    zero ``u`` becomes ``g / ||g||``.
    """
    with torch.no_grad():
        g = torch.randn_like(u)
        g = g / torch.linalg.vector_norm(g)
        norm = torch.linalg.vector_norm(u)
        mixed = torch.where(norm > 0, u / norm + tau * g, g)  # no gradient: the branch not taken may be nan
        return mixed / torch.linalg.vector_norm(mixed)


def rayleigh_sigma(u: Tensor, kernel: Tensor, padding_mode: str) -> Tensor:
    """``||A u|| / ||u||``, differentiable in the kernel: a lower bound on ``||A||_2`` (computed on the
    kernel divided by its binary scale, then scaled back)."""
    u = u.detach().clone()  # the layer updates its iterate in place: what the backward keeps must not alias it
    scale = binary_scale(kernel.detach().reshape(1, -1)).reshape(())
    image = conv2d_same(u, kernel / scale, padding_mode)
    return torch.linalg.vector_norm(image) / torch.linalg.vector_norm(u) * scale


class OSSN(KernelConv2d):
    """One-sided spectral normalization ``W / max(1, sigma)`` of a stride-1 same-size convolution.

    Args:
        in_channels, out_channels, kernel_size, bias: as ``nn.Conv2d`` (square kernels).
        stride, padding: only ``1`` and ``"same"``.
        padding_mode: ``"circular"`` (default) or ``"zeros"``; the power iteration uses the same one.
        input_size: ``(H, W)`` (or an int) of the images, or ``None`` to take it from the first input.
        n_power_iterations: power steps per training forward (default 2), after the noise is mixed in
            (module docstring: a training forward draws from torch's global RNG).
        warmup_iterations: power steps when the iterate is created (default 20).
        device, dtype: of the parameters (half precisions run the normalization in float32).
    """

    _name = "OSSN"
    _runtime_options = ("n_power_iterations", "warmup_iterations")

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
        input_size=None,
        n_power_iterations: int = 2,
        warmup_iterations: int = 20,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        self.n_power_iterations = positive_int(n_power_iterations, "n_power_iterations")
        self.warmup_iterations = non_negative_int(warmup_iterations, "warmup_iterations")
        self.register_buffer("u", torch.empty(0, device=device, dtype=dtype))  # the iterate, sized on first use
        self._init_weight(out_channels, in_channels, bias, device, dtype)
        if input_size is not None:
            self._init_iterate(image_size(input_size))

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv2d's default
        super().reset_parameters()
        if self.u.numel():
            self._init_iterate(self.input_size)

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The image size the normalization is for (``None`` until known)."""
        return tuple(self.u.shape[-2:]) if self.u.numel() else None

    def _init_iterate(self, size: tuple[int, int]) -> None:
        w = self.weight
        u = torch.randn(1, self.in_channels, *size, dtype=w.dtype, device=w.device)
        with full_precision(w.device):
            u = promote(u) / torch.linalg.vector_norm(promote(u))
            u = power_iteration_step(u, promote(w.detach()), self.padding_mode, self.warmup_iterations)
        self.u = u.to(w.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "u")
        if saved is not None and saved.shape != self.u.shape and self.u.numel() == 0:
            self.u = torch.empty_like(saved, device=self.u.device, dtype=self.u.dtype)  # adopt the saved size
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check_size(self, size: tuple[int, int]) -> None:
        if self.input_size is None:
            self._init_iterate(size)
        elif size != self.input_size:
            raise ValueError(
                f"OSSN is normalized for {self.input_size[0]}x{self.input_size[1]} images, got {size[0]}x{size[1]}; "
                "use one OSSN layer per image size"
            )

    def sigma(self) -> Tensor:
        """The current estimate ``||conv(W) u||`` (a lower bound on the norm), differentiable in W,
        in working precision (float32 for half parameters)."""
        if self.input_size is None:
            raise ValueError("OSSN: the image size is unknown; pass input_size or run a forward pass first")
        with full_precision(self.weight.device):
            return rayleigh_sigma(promote(self.u), promote(self.weight), self.padding_mode)

    def _kernel(self) -> Tensor:
        """The effective kernel ``W / max(1, sigma)`` (no iterate update), differentiable."""
        return promote(self.weight) / self.sigma().clamp_min(1)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self._check_size(tuple(x.shape[-2:]))
        if self.training:
            with full_precision(self.weight.device):
                u = mix_noise(promote(self.u), mixing_size(self.u.dtype))
                u = power_iteration_step(u, promote(self.weight.detach()), self.padding_mode, self.n_power_iterations)
            with torch.no_grad():
                self.u.copy_(u)
        return conv2d_same(x, self.kernel(), self.padding_mode, self.bias)

    def lipschitz_bound(self, input_size=None) -> float:
        """A certified bound on the effective kernel's operator norm on ``input_size`` (default: the
        layer's): exact FFT norm (circular) or the certified upper end of ``conv_spectral_norm``
        (zeros), in float64. Never the power iterate. The layer is not orthogonal."""
        size = self.input_size if input_size is None else image_size(input_size)
        if size is None:
            raise ValueError("OSSN.lipschitz_bound: the image size is unknown; pass input_size")
        return kernel_bound(self.kernel(), size, self.padding_mode)

    def config(self) -> dict:
        size = self.input_size
        return {
            **self._base_config(),
            "input_size": None if size is None else list(size),
            "n_power_iterations": self.n_power_iterations,
            "warmup_iterations": self.warmup_iterations,
        }

    def _repr_fields(self) -> list[str]:
        return [
            f"padding_mode={self.padding_mode!r}",
            f"input_size={self.input_size}",
            f"n_power_iterations={self.n_power_iterations}",
        ]
