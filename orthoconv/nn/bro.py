"""BRO, the block reflector orthogonal convolution (Lai et al., "Enhancing Certified Robustness via Block
Reflector Orthogonal Layers and Logit Annealing Loss", ICML 2025), built exactly.

From an unconstrained kernel ``V`` (``c x r x k x k``, ``c = max(c_in, c_out)``, rank ``r <= c``) and its
transfer matrices ``Vhat(w)`` (``c x r``) at the frequencies of the input's own size, the layer's transfer
matrix is the block reflector

    B(w) = I - 2 Vhat (Vhat^H Vhat)^(-1) Vhat^H = I - 2 P(w),

``P(w)`` the orthogonal projector onto the column space of ``Vhat(w)``; ``y = irfft2(B(w)[:c_out, :c_in]
rfft2(x))``. ``B`` is Hermitian and unitary (``B^2 = I``), so the layer is orthogonal with circular padding on
every image size (isometry for ``c_in < c_out``, co-isometry for ``c_in > c_out``). Differences from the
published code: there ``(Vhat^H Vhat)^(-1)`` is a solve with ``1e-5`` added to the diagonal on a zero-padded
FFT (so ``B`` is close to, not exactly, unitary); here ``P = U_k U_k^H`` from one SVD per frequency (batched),
with no jitter, and rank-deficient ``Vhat`` gives the projector onto its numerical range
(:func:`orthoconv.math.polar.range_projector`): ``B`` stays unitary and the gradient finite (``V = 0`` gives
``B = I`` and a zero gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..math.polar import range_projector
from .fourier import FourierConv2d


class BRO(FourierConv2d):
    """Block reflector orthogonal convolution (Lai et al. 2025): per frequency ``I - 2 P(w)``, ``P`` the
    projector onto the range of the rank-``r`` transfer matrix ``Vhat(w)``.

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d``; ``kernel_size`` is the support of the
            parameter ``V`` (square, any k >= 1). The operator on ``H x W`` images has ``H x W`` taps.
        stride, padding: only ``1`` and ``"same"``.
        bias: add a learnable bias.
        padding_mode: only ``"circular"``.
        rank: ``r``, the columns of ``V``, in ``[0, c]`` (``None``: ``c // 2``, the authors' suggestion);
            ``0`` is the identity, ``c`` is ``-I`` wherever ``Vhat`` is invertible.
        device, dtype: of the parameters (complex64 transfer matrices for float32 and half, complex128 for
            float64, built with autocast off).
    """

    _name = "BRO"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding="same", bias: bool = True,
                 padding_mode: str = "circular", *, rank=None, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        c = max(in_channels, out_channels)
        if rank is None:
            rank = c // 2
        elif isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= c:
            raise ValueError(f"BRO: rank must be an int in [0, {c}] (max(in_channels, out_channels)) or None, "
                             f"got {rank!r}")
        self.rank = rank
        self._init_weight(c, rank, bias, device, dtype)

    def reset_parameters(self) -> None:
        if self.weight.numel():
            nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        super().reset_parameters()

    def _parameter_kernel(self) -> Tensor:
        return self.weight

    def _matrix_map(self, A: Tensor) -> Tensor:
        eye = torch.eye(A.shape[-2], dtype=A.dtype, device=A.device)
        return eye - 2 * range_projector(A)

    def config(self) -> dict:
        return {**self._base_config(), "rank": self.rank}

    def _repr_fields(self) -> list[str]:
        return [f"padding_mode={self.padding_mode!r}", f"rank={self.rank}"]
