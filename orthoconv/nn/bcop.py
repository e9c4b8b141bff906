"""The BCOP layer: a convolution that is orthogonal for every value of its parameters.

Li, Haque, Anil, Lucas, Grosse, Jacobsen, "Preventing Gradient Attenuation in Lipschitz Constrained
Convolutional Networks", NeurIPS 2019 (arXiv 1911.00937). The kernel is

    K(z1, z2) = H (P_1 + (I - P_1) z1)(Q_1 + (I - Q_1) z2) ... (P_{k-1} + (I - P_{k-1}) z1)(Q_{k-1} + (I - Q_{k-1}) z2)

over ``c = max(c_in, c_out)`` channels, ``H`` orthogonal and ``P_i = U_i U_i^T``, ``Q_i = V_i V_i^T``
symmetric projectors. Each factor is paraunitary, so ``K`` is, and the operator is orthogonal under
circular padding on every image size. With ``c_in != c_out`` the first ``c_out`` rows (``c_in``
columns) of ``K`` are kept: a co-isometry (isometry).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..math.blocks import bcop_kernel
from ..math.orthogonal import orthogonal, qr_orthogonal
from ._args import check_method
from ._precision import full_precision, promote
from .base import KernelConv2d
from .norms import kernel_bound


def resolve_ranks(projector_ranks, channels: int, kernel_size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ranks ``((rank P_1, ...), (rank Q_1, ...))`` of the ``k - 1`` projector pairs.

    ``None`` is half rank ``c // 2`` everywhere (the largest connected component, Li et al. 2019
    Sec. 4); an int applies to every projector; a pair of sequences gives each rank explicitly.
    """
    n = kernel_size - 1
    if projector_ranks is None:
        projector_ranks = channels // 2
    if isinstance(projector_ranks, int) and not isinstance(projector_ranks, bool):
        ranks = ((projector_ranks,) * n, (projector_ranks,) * n)
    else:
        try:
            p_ranks, q_ranks = (tuple(operator.index(r) for r in seq) for seq in projector_ranks)
        except (TypeError, ValueError):
            raise ValueError(
                "projector_ranks must be None, an int, or a pair (P ranks, Q ranks) of sequences, "
                f"got {projector_ranks!r}"
            ) from None
        ranks = (p_ranks, q_ranks)
    for label, seq in zip("PQ", ranks):
        if len(seq) != n:
            raise ValueError(f"projector_ranks needs {n} {label} ranks for kernel_size {kernel_size}, got {len(seq)}")
        if any(r < 0 or r > channels for r in seq):
            raise ValueError(f"projector_ranks must lie in [0, {channels}] for {channels} channels, got {seq}")
    return ranks


class BCOP(KernelConv2d):
    """Block Convolution Orthogonal Parameterization (Li et al. 2019), stride 1, same size.

    Args:
        in_channels, out_channels: channel counts (any positive integers).
        kernel_size: k >= 1 (odd, even or 1); the kernel is k x k.
        stride, padding: only ``1`` and ``"same"`` are supported (anything else raises).
        bias: add a learnable bias (the bias does not change the Lipschitz constant).
        padding_mode: ``"circular"`` (default) makes the layer exactly orthogonal (an isometry when
            ``in_channels < out_channels``, a co-isometry when ``in_channels > out_channels``) on every
            image size, including images smaller than the kernel. ``"zeros"`` keeps the layer
            1-Lipschitz (a compression of the circular operator) but NOT orthogonal: pixels near the
            border lose norm.
        projector_ranks: ``None`` (half rank, the default), an int, or ``(P ranks, Q ranks)``; see
            :func:`resolve_ranks`.
        method: orthogonalization of the parameter matrices, ``"qr"`` (exact, default), ``"expm"``
            or ``"bjorck"`` (iterated to tolerance; raises when it cannot converge). ``"qr"`` and
            ``"expm"`` have finite gradients at every parameter value (:mod:`orthoconv.math.orthogonal`).
        device, dtype: of the parameters. float16/bfloat16 layers build the kernel in float32 and round
            it: measured, a float16 kernel deviates from orthogonality by float16 rounding only
            (max |sigma - 1| about 3e-4; bfloat16 about 2e-3), and under ``torch.autocast`` a float32
            layer's kernel is the float32 one (max |sigma - 1| about 1e-6); only the convolution runs
            in low precision.

    The kernel is rebuilt from the parameters at every call; to build it once for many forwards
    (evaluation), use ``with orthoconv.nn.cached(): ...``.
    """

    _name = "BCOP"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride=1,
        padding="same",
        bias: bool = True,
        padding_mode: str = "circular",
        *,
        projector_ranks=None,
        method: str = "qr",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, padding_mode, dtype)
        self.method = check_method(method)
        c = max(in_channels, out_channels)
        self.ranks = resolve_ranks(projector_ranks, c, self.kernel_size)
        width = max((r for seq in self.ranks for r in seq), default=0)
        factory = {"device": device, "dtype": dtype}
        self.h_param = nn.Parameter(torch.empty(c, c, **factory))
        self.pq_param = nn.Parameter(torch.empty(2, self.kernel_size - 1, c, width, **factory))
        # the kept columns of every frame (H, then P_1..P_{k-1}, Q_1..Q_{k-1}), zero-padded to c columns
        ranks = torch.tensor([c, *self.ranks[0], *self.ranks[1]], device=device)
        mask = torch.arange(c, device=device) < ranks[:, None]
        self.register_buffer("frame_mask", mask[:, None, :].to(self.pq_param.dtype), persistent=False)
        self._init_bias(bias, **factory)

    def reset_parameters(self) -> None:
        """Haar-random ``H`` and uniformly random projectors of the configured ranks; zero bias."""
        nn.init.normal_(self.h_param)
        nn.init.normal_(self.pq_param)
        super().reset_parameters()

    def frames(self) -> Tensor:
        """``(2k - 1, c, c)`` in working precision: ``H``, then the orthonormal frames ``U`` of ``P_1 .. P_{k-1}``,
        ``Q_1 .. Q_{k-1}`` (first ``rank`` columns kept, the others zero). ``method="qr"`` builds all of them
        in one batched QR (the parameters zero-padded to ``c`` columns, :func:`qr_orthogonal`'s ``mask``:
        Householder QR keeps the first r columns' span)."""
        h, pq = promote(self.h_param), promote(self.pq_param)
        mask = promote(self.frame_mask)
        with full_precision(h.device):
            if self.method == "qr":
                padded = F.pad(pq.flatten(0, 1), (0, h.shape[-1] - pq.shape[-1]))
                return qr_orthogonal(torch.cat([h[None], padded]), mask)
            frames = orthogonal(pq, self.method).flatten(0, 1)
            padded = F.pad(frames, (0, h.shape[-1] - pq.shape[-1]))
            return torch.cat([orthogonal(h, self.method)[None], padded]) * mask

    def projectors(self) -> tuple[Tensor, Tensor]:
        """``(Ps, Qs)``, each ``(k - 1, c, c)`` in working precision: ``U U^T``."""
        U = self.frames()[1:]
        PQ = torch.bmm(U, U.mT)
        return PQ.chunk(2) if PQ.shape[0] else (PQ, PQ)

    def _kernel(self) -> Tensor:
        H, U = self.frames().split([1, 2 * (self.kernel_size - 1)])
        Ps, Qs = torch.bmm(U, U.mT).chunk(2) if U.shape[0] else (U, U)
        kernel = bcop_kernel(H[0], Ps, Qs)  # KernelConv2d.kernel() checks it is finite
        if kernel.shape[:2] == (self.out_channels, self.in_channels):
            return kernel
        return kernel[: self.out_channels, : self.in_channels]

    def lipschitz_bound(self, input_size=None) -> float:
        """A certified bound on the layer's operator norm (bias excluded), float64.

        ``input_size=None``: valid for every image size and both paddings,
        :func:`orthoconv.nn.norms.torus_norm_bound` (1 up to the kernel's rounding). ``(H, W)``: the
        exact norm on that size with circular padding (the layer is orthogonal there, so this is 1 up to
        rounding), the certified upper end of :func:`orthoconv.spectral.conv_spectral_norm` with zeros.
        """
        return kernel_bound(self.kernel(), input_size, self.padding_mode)

    def to_conv2d(self) -> nn.Conv2d:
        """An ordinary ``nn.Conv2d`` carrying the current kernel and bias (``padding="same"``).

        Same outputs as this layer on images at least as large as the kernel (``nn.Conv2d`` cannot
        wrap a circular pad around a smaller image).
        """
        kernel = self.kernel().detach()
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            padding="same",
            padding_mode=self.padding_mode,
            bias=self.bias is not None,
            device=kernel.device,
            dtype=kernel.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(kernel)
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    @torch.no_grad()
    def recondition_(self, max_condition: float = 100.0) -> bool:
        """Replace ``h_param`` and ``pq_param`` by their Q factors where their condition number exceeds
        ``max_condition``; the kernel does not change. Returns whether anything was replaced.

        The QR map is invariant under ``A -> A R`` (R upper triangular with positive diagonal) and keeps
        the span of the first r columns, so ``orthogonal(orthogonal(A)) = orthogonal(A)`` and every ``H``
        and projector is kept. Gradient steps drift along those flat directions towards singular ``A``,
        where the map is discontinuous and badly conditioned; calling this between optimizer steps undoes
        the drift. Only for ``method="qr"``.
        """
        if self.method != "qr":
            raise ValueError(f"recondition_ needs method='qr', this layer has method={self.method!r}")
        changed = False
        for param in (self.h_param, self.pq_param):
            if param.numel() == 0:
                continue
            sigma = torch.linalg.svdvals(promote(param))
            if float((sigma[..., 0] / sigma[..., -1]).max()) > max_condition:
                param.copy_(orthogonal(param, "qr"))
                changed = True
        return changed

    def config(self) -> dict:
        """The constructor arguments that fix the kernel's structure (saved in ``state_dict``)."""
        return {**self._base_config(), "projector_ranks": [list(seq) for seq in self.ranks], "method": self.method}

    def _repr_fields(self) -> list[str]:
        return [f"padding_mode={self.padding_mode!r}", f"ranks={self.ranks}", f"method={self.method!r}"]
