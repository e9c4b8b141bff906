"""CPL: Convex Potential Layers (Meunier, Delattre, Araujo, Allauzen, "A Dynamical System Perspective for
Lipschitz Neural Networks", ICML 2022).

    z = x - h W^T relu(W x + b),   h = 2 / beta^2,   beta >= ||W||_2 certified,

``W = conv(K)`` with ``K`` ``(inner_channels, c, k, k)`` (a same-size convolution, the layer's padding), ``W^T`` its
exact adjoint (:func:`orthoconv.math.conv.conv2d_same_adjoint`: the transposed convolution with the same padding),
``b`` ``(inner_channels,)``. Shapes ``(N, c, H, W) -> (N, c, H, W)``.

Why it is 1-Lipschitz: the Jacobian is ``I - h W^T D W`` with ``D = diag(relu')`` in ``[0, 1]``; ``h W^T D W`` is
symmetric with eigenvalues in ``[0, h ||W||^2] subset [0, 2]``, so every eigenvalue of the Jacobian lies in
``[-1, 1]``. That needs ``beta`` to be an UPPER bound of ``||W||`` on the operator the forward applies (the
input's size and padding); the published code divides by a power-iteration estimate (a lower bound: then the
layer is not certified).

``beta``, certified, differentiable, without a host synchronization or an SVD: on the input's ``H x W`` the
circular operator is block-diagonalized by the DFT, ``||W|| = max_w sigma_1(K(w))``; a zero-padded one is a
compression of the circular operator on ``(H + p) x (W + p)``, ``p = k // 2`` the larger of the two "same" pads
(the image embedded at the origin, a band of ``p`` zeros serves the reads past both edges, which never wrap into
the image), so the same maximum on that grid bounds it. At every frequency, Gram iteration (Delattre, Barthelemy,
Araujo, Allauzen, ICML 2023): ``G_1 = K^H K``, ``G_{t+1} = G_t^2``, and ``sigma_1^2 <= ||G_t||_F^(2^(1-t))``,
an upper bound at every step, within a factor ``r^(2^-t)`` of ``sigma_1^2`` (``r`` the rank; reached by a flat spectrum,
e.g. an orthogonal kernel: ``beta`` 1.011 times the norm at 16 channels, 6 steps) and in practice much
closer (measured in docs/layers-residual.md). Each step is rescaled to unit Frobenius norm and the logarithm of
the scale carried, so nothing overflows. The result is multiplied by ``1 + 16 (n + log2(HW) + 1) eps`` (``n``
the channel width, ``eps`` of the working precision): an allowance for the rounding of the FFT and the products,
so that ``h ||W||^2 <= 2`` holds for the floating-point bound too. ``gram_steps`` (default 6) is ``t - 1``.
The kernel is divided by its power-of-two scale first, so ``K`` of magnitude ``1e-30`` or ``1e30`` is safe; at
``K = 0`` the correction term is 0 (``h`` is not needed).

``lipschitz_bound(input_size)`` recomputes, in float64, ``max(1, 2 ||S||^2 - 1)`` with ``S = sqrt(h / 2) W`` and
``||S||`` the exact (circular) or certified (zeros) norm (:func:`orthoconv.nn.residual.residual_bound`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..math.checks import image_size, positive_int
from ..math.conv import conv2d_same, conv2d_same_adjoint
from ..math.spectral.transfer import _half_spectrum
from ._precision import check_finite, full_precision, promote
from .residual import ResidualConv2d, normalized, residual_bound, safe_reciprocal


def _frobenius(G: Tensor) -> Tensor:
    """``||G_b||_F`` for each matrix of a batch ``(B, m, n)``, real or complex."""
    real = torch.view_as_real(G) if G.is_complex() else G
    return torch.linalg.vector_norm(real.flatten(1), dim=1)


def gram_sigma_squared(M: Tensor, steps: int) -> Tensor:
    """Per matrix of a batch ``(B, m, n)``, a certified upper bound on ``sigma_1(M)^2`` by ``steps`` Gram squarings
    after ``G_1`` (module docstring), differentiable, ``(B,)``; ``0`` for a zero matrix."""
    G = torch.bmm(M.mH, M) if M.shape[-2] >= M.shape[-1] else torch.bmm(M, M.mH)
    log_scale = torch.zeros(G.shape[0], dtype=G.real.dtype, device=G.device)
    norm = _frobenius(G)
    nonzero = norm > 0
    zero = ~nonzero  # added to the norm: 1 for a zero matrix (which stays zero), 0 for every other
    for step in range(steps):
        # a nonzero G stays nonzero: G is Hermitian positive semidefinite, and ||G^2||_F >= ||G||_F^2 / sqrt(n)
        norm = (norm if step == 0 else _frobenius(G)) + zero
        G = G / norm[:, None, None]
        log_scale = 2 * (log_scale + torch.log(norm))
        G = torch.bmm(G, G)
    last = _frobenius(G)
    log_bound = (log_scale + torch.log(torch.where(nonzero, last, 1))) / 2**steps
    return torch.where(nonzero, torch.exp(log_bound), 0)


def cpl_norm_squared(K: Tensor, input_size, padding_mode: str, steps: int) -> Tensor:
    """A certified upper bound on ``||conv(K)||_2^2`` on ``input_size`` with ``padding_mode`` (a 0-d tensor in
    ``K``'s precision, differentiable), rounding allowance included (module docstring)."""
    H, W = image_size(input_size)
    if padding_mode == "zeros":
        H, W = H + K.shape[-2] // 2, W + K.shape[-1] // 2
    M = _half_spectrum(K, H, W).reshape(-1, K.shape[0], K.shape[1])  # no finiteness check: no host sync
    eps = torch.finfo(K.dtype).eps
    allowance = 1 + 16 * (max(K.shape[0], K.shape[1]) + math.log2(H * W) + 1) * eps
    return gram_sigma_squared(M, steps).amax() * allowance


class CPL(ResidualConv2d):
    """Convex potential layer ``x - 2 / beta^2 W^T relu(W x + b)``, 1-Lipschitz with a certified ``beta``.

    Args:
        in_channels, out_channels: the width ``c`` (must be equal: a residual map).
        kernel_size: of ``W`` (square, any ``k >= 1``).
        stride, padding: only ``1`` and ``"same"``.
        bias: the hidden bias ``b`` ``(inner_channels,)``.
        padding_mode: ``"circular"`` (default) or ``"zeros"``, of ``W`` and ``W^T`` alike.
        inner_channels: the output width of ``W`` (default ``c``).
        gram_steps: Gram squarings for ``beta`` (default 6; module docstring).
        device, dtype: of the parameters (half precisions compute ``beta`` in float32).

    ``kernel()`` is the kernel ``K`` of ``W`` (the parameter itself, ``(inner_channels, c, k, k)``); the layer
    is not a convolution.
    """

    _name = "CPL"

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
        inner_channels: int | None = None,
        gram_steps: int = 6,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, inner_channels, dtype)
        self.gram_steps = positive_int(gram_steps, "gram_steps")
        self._init_inner(bias, device, dtype)

    def _kernel(self) -> Tensor:
        return promote(self.weight).clone()  # a built value, like the other layers' kernels (cached() keeps it)

    def _adjoint_kernel(self, input_size: tuple[int, int]) -> Tensor:
        """``h K`` in the parameters' dtype: the kernel whose adjoint convolution applies ``h W^T``."""

        def build() -> Tensor:
            K, scale = normalized(promote(self.weight))
            beta2 = cpl_norm_squared(K, input_size, self.padding_mode, self.gram_steps)
            adjoint = K * (2 * safe_reciprocal(beta2) / scale)
            message = "CPL: the step 2 / beta^2 or the kernel is not finite (non-finite parameters)"
            adjoint = check_finite(adjoint, message)
            return adjoint.to(self._dtype)

        return self._build(f"adjoint {input_size}", build)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        size = (x.shape[-2], x.shape[-1])
        hidden = torch.relu(conv2d_same(x, self.kernel(), self.padding_mode, self.bias))
        return x - conv2d_same_adjoint(hidden, self._adjoint_kernel(size), self.padding_mode)

    def lipschitz_bound(self, input_size=None) -> float:
        """``max(1, 2 ||S||^2 - 1)``, ``S = sqrt(h / 2) W`` with the layer's own ``h`` on ``input_size``, in float64
        (exact norm for circular padding, certified upper for zeros). ``None``: ``h`` is computed at each input's
        size, so the layer is 1-Lipschitz at every size by construction (module docstring); returns 1."""
        if input_size is None:
            return 1.0
        size = image_size(input_size)
        with torch.no_grad(), full_precision(self.weight.device):
            K, _ = normalized(promote(self.weight.detach()))
            beta2 = cpl_norm_squared(K, size, self.padding_mode, self.gram_steps)
            effective = K.to(torch.float64) * torch.sqrt(safe_reciprocal(beta2.to(torch.float64)))
        return residual_bound(effective, size, self.padding_mode)

    def config(self) -> dict:
        return {**super().config(), "gram_steps": self.gram_steps}
