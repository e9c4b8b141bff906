"""The norm of a zero-padded convolution at the image's own size, certified to a relative tolerance.

The circular embedding (``||A|| <= ||C||``, :mod:`.majorant`) tends to the norm on the infinite plane, not to
the norm at the image's size (1% above it for Gaussian 3 x 3 kernels at 16 x 16). This module closes the gap
with **Lehmann's bound** (N. J. Lehmann 1949; in the form of Plum, *J. Math. Anal. Appl.* 1991 and Behnke &
Goerisch 1994): for a self-adjoint ``H``, a real ``rho``, linearly independent ``v_1 .. v_p`` with
``A_0 = (<(H - rho) v_i, v_j>)``, ``A_1 = (<(H - rho) v_i, (H - rho) v_j>)`` positive definite and
``tau_1 <= ... <= tau_p`` the eigenvalues of ``A_0 x = tau A_1 x``: for each ``k`` with ``tau_k < 0`` the
interval ``[rho + 1 / tau_k, rho)`` holds at least ``k`` eigenvalues of ``H``.

Applied to ``H = -M``, ``M = A^T A``, at ``-rho``: ``(rho, rho - 1 / tau_k]`` holds at least ``k`` eigenvalues of
``M``, with ``A_0 = rho V V^T - V M V^T`` and ``A_1 = (M V - rho V)(M V - rho V)^T`` (rows ``v_i``: the Lanczos
basis of :mod:`.lanczos`). The majorant of :mod:`.majorant` says ``M`` has at most ``c`` eigenvalues above
``rho``; so if ``tau_c < 0`` all of them, ``||A||^2`` included, are at most ``rho - 1 / tau_c``. By Sylvester's law
for the pencil, ``tau_c <= -1 / (u - rho)`` (so ``||A||^2 <= u``) as soon as ``Z(u) = A_0 + A_1 / (u - rho)`` has
``c`` negative eigenvalues: the certificate checked, in float64, with the allowances below. Where ``c = 0``,
``||A||^2 <= rho`` directly. The bound tends to ``||A||^2`` as the Lanczos space resolves the ``c`` top
eigenvectors (exact to rounding when it does: measured ``1 + 1e-14``).

Rounding: ``M v`` is computed within ``beta (2 ||C|| + beta) ||v||`` (``beta``: :func:`.apply.rounding_bound`);
the Gram products of length ``dim`` within ``gamma_dim`` times the products of the norms; ``eigvalsh`` of a
``p x p`` matrix within ``8 p eps`` of its Frobenius norm. Their sum bounds ``||Z - fl(Z)||``, and only
eigenvalues below minus that count (Weyl). ``V`` itself is exact data: no orthonormality is assumed.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from .apply import EPS64, rounding_bound
from .certified import certified_circular_norm
from .geometry import ConvOperator
from .lanczos import Krylov, lanczos, witness
from .majorant import (
    count_above,
    deflate,
    gamma,
    restrict,
    start_block,
    torus_size,
    window_gram,
    window_gram_error,
)

GAPS = (0.05, 0.15, 0.3)  # deflate circular eigenvalues above (1 - gap) x the Lanczos estimate
RHO_STEPS = 32
MAX_PAIRS = 192  # the window Gram matrix (closed form) costs P^2 (c + D) S, its eigenvalues (2 P)^3
EARLY_MARGIN = 1e-8  # Lanczos stops this far past what the embedding needs (room for the witness's rounding)
DEFLATION_WORK = 2.0**33  # the deflation's work bound (n^3 per decomposition, c^2 n per screening): ~10 s
STALL_ROUNDS = 2  # extensions in a row that improve no bound before the run gives up on rtol (says so)
GROWTH = 24  # the Lanczos run is extended by at least this many vectors (or half its length) per retry


def krylov_grams(krylov: Krylov, previous: tuple | None = None) -> tuple:
    """``V V^T``, ``V Y^T``, ``Y Y^T`` (``V = Q``, ``Y = MQ``), the ``p^2 dim`` part of :func:`lehmann_bound`,
    computed once per Krylov space; ``previous``: those of a run this one extends (only the new rows are
    computed: the leading rows of ``Q`` and ``MQ`` are the same tensors' values)."""
    V, Y = krylov.Q, krylov.MQ
    p0 = 0 if previous is None else len(previous[0])
    G, VY, YY = (torch.empty(len(V), len(V), dtype=V.dtype, device=V.device) for _ in range(3))
    if p0:
        G[:p0, :p0], VY[:p0, :p0], YY[:p0, :p0] = previous
    G[p0:], VY[p0:], YY[p0:] = V[p0:] @ V.T, V[p0:] @ Y.T, Y[p0:] @ Y.T
    G[:p0, p0:], VY[:p0, p0:], YY[:p0, p0:] = G[p0:, :p0].T, V[:p0] @ Y[p0:].T, YY[p0:, :p0].T
    return G, VY, YY


def lehmann_bound(op: ConvOperator, krylov: Krylov, count, top: float, grams: tuple | None = None) -> float:
    """The smallest certified ``u >= ||A||^2`` over a set of shifts ``rho`` (Ritz midpoints and a grid below the
    top Ritz value), from the certificate of the module docstring; ``top`` (``>= ||C||^2 >= ||M||``) where
    none holds. ``count(rho)``: an upper bound on the eigenvalues of ``M`` above ``rho``, or None. ``grams``:
    :func:`krylov_grams` of ``krylov`` (computed here when None)."""
    p, dim = krylov.Q.shape
    V, Y = krylov.Q, krylov.MQ
    G, VY, YY = krylov_grams(krylov) if grams is None else grams
    VY = 0.5 * (VY + VY.T)
    v_norm = float(torch.linalg.vector_norm(V, dim=1).max())
    y_norm, v_frob = float(torch.linalg.matrix_norm(Y)), float(torch.linalg.matrix_norm(V))
    beta = rounding_bound(op)
    delta_mv = beta * (2 * math.sqrt(top) + beta)
    dY = math.sqrt(p) * delta_mv * v_norm  # ||fl(M V) - M V||_F
    ritz = torch.linalg.eigvalsh(VY)  # Rayleigh quotients of the (nearly orthonormal) rows: where to put rho
    theta = float(ritz[-1])
    mids = [0.5 * float(ritz[-i] + ritz[-i - 1]) for i in range(1, min(p, 40))]
    grid = [theta * (1 - 0.3 * (i / RHO_STEPS) ** 2) for i in range(1, RHO_STEPS + 1)]
    best = top
    for rho in sorted(set(mids + grid), reverse=True):
        c = count(rho) if 0 < rho < best else None
        if c is None:
            continue
        if c == 0:
            best = min(best, rho)
            continue
        if c > int((ritz > rho).sum()):
            continue
        A0 = rho * G - VY
        A1 = YY - 2 * rho * VY + rho**2 * G
        eta0 = rho * gamma(dim) * p * v_norm**2 + v_frob * dY + gamma(dim) * v_frob * y_norm
        P_frob = y_norm + rho * v_frob
        eta1 = 2 * P_frob * dY + dY**2 + gamma(dim) * P_frob**2 + 8 * EPS64 * P_frob**2
        a1 = torch.linalg.eigvalsh(A1)
        if float(a1[0]) - 16 * p * EPS64 * float(torch.linalg.matrix_norm(A1)) - eta1 <= 0:
            continue
        L = torch.linalg.cholesky(A1)
        B = torch.linalg.solve_triangular(L, torch.linalg.solve_triangular(L, A0, upper=False).T, upper=False)
        tau = torch.linalg.eigvalsh(0.5 * (B + B.T))
        if not float(tau[c - 1]) < 0:
            continue
        u0 = rho - 1 / float(tau[c - 1])
        for inflate in (1e-9, 1e-6, 1e-4, 1e-2, 0.1, 0.3, 1.0):  # past the root by more than the allowances
            u = rho + (u0 - rho) * (1 + inflate)
            if u >= best:
                break
            Z = A0 + A1 / (u - rho)
            z = torch.linalg.eigvalsh(Z)
            norms = float(torch.linalg.matrix_norm(A0)) + float(torch.linalg.matrix_norm(A1)) / (u - rho)
            margin = (eta0 + eta1 / (u - rho) + 4 * EPS64 * norms
                      + 16 * p * EPS64 * float(torch.linalg.matrix_norm(Z)))
            if int((z < -margin).sum()) >= c:
                best = u
                break
    return best


def compression_norm(op: ConvOperator, rtol: float, n_iter: int | None = None,
                     max_bytes: int = 2**28) -> tuple[float, float, str]:
    """``(lower, upper, method)`` with ``lower <= ||A||_2 <= upper`` for a zero-padded (``"valid"``, transposed)
    convolution, aiming at ``upper <= (1 + rtol) lower``: the Lanczos witness below, the circular embedding
    and, where that is not within ``rtol``, Lehmann's bound (module docstring) above, the deflation widened
    through ``GAPS`` and the Lanczos run extended (by half its length, settling to ``1e-6 rtol``) until ``rtol``
    is met or ``n_iter`` vectors. ``max_bytes`` bounds the
    window Gram matrix's terms (``P^2 S`` complex numbers) and the per-frequency decompositions.

    The kernel is divided by the power of two that brings its largest entry into ``[1/2, 1)`` (exact; the
    allowances are for entries of unit size); entries flushed below the smallest subnormal are a perturbation
    ``D`` with ``||conv(D)|| <= sum |D|``, added to the ends.
    """
    op = replace(op, adjoint=False)
    kernel = op.kernel.detach().to(torch.float64)
    peak = float(kernel.abs().max())
    if peak == 0.0:
        return 0.0, 0.0, "zero kernel"
    scale = math.ldexp(1.0, math.frexp(peak)[1])
    unit = kernel / scale
    lost = float((kernel - unit * scale).abs().sum())
    op = replace(op, kernel=unit)
    dim = math.prod(op.forward_shapes[0])
    torus = torus_size(op)
    steps = 200 if n_iter is None else n_iter
    max_pairs = max(1, min(MAX_PAIRS, math.isqrt(max_bytes // (16 * (math.prod(op.stride) + 4)))))
    with torch.no_grad():
        embedding = certified_circular_norm(unit, torus, op.stride, op.dilation, op.groups, rtol / 4)
        upper2, how = embedding.upper**2, f"the circular embedding [{embedding.method}]"
        enough = upper2 / (1 + rtol) ** 2 * (1 + EARLY_MARGIN)
        start = None if embedding.peak is None else start_block(op, torus, *embedding.peak)
        krylov = lanczos(op, rtol, steps, enough=enough, start=start)
        lower = witness(op, krylov.y)
        target2 = ((1 + rtol) * lower) ** 2
        if upper2 > target2 and krylov.theta >= enough:  # stopped early, yet the witness fell short: settle
            krylov = lanczos(op, rtol, steps, resume=krylov)
            lower = max(lower, witness(op, krylov.y))
            target2 = ((1 + rtol) * lower) ** 2
        deflations: dict[float, tuple] = {}  # at the first Lanczos estimate: decomposed once
        # per gap where K(w) is wide (only the frequencies above the gap's threshold are decomposed on the wide
        # side), else once at the widest gap, restricted for the others
        screened = op.kernel.shape[0] // op.groups < op.kernel.shape[1] * math.prod(op.stride)
        grams = None
        stalled = 0  # rounds in a row whose Lehmann bounds all stayed above the best upper end
        while True:
            before = upper2
            for gap in GAPS:
                if upper2 <= target2:
                    break
                key = gap if screened else GAPS[-1]
                if key not in deflations:
                    found = deflate(op, torus, krylov.theta * (1 - key), max_pairs, max_bytes // 4, DEFLATION_WORK)
                    deflations[key] = found, None if found is None else window_gram(op, torus, found)
                found, gram = deflations[key]
                if found is None:
                    how += f"; Lehmann's bound not tried: its decompositions exceed the work bound {DEFLATION_WORK:.1e}"
                    break
                grams = krylov_grams(krylov) if grams is None else grams
                threshold = krylov.theta * (1 - gap)
                deflation = restrict(found, threshold)
                rows = torch.cat([found.values > threshold] * 2)
                count = count_above(deflation, gram[rows][:, rows], dim, window_gram_error(op))
                bound = lehmann_bound(op, krylov, count, min(found.top, upper2), grams)
                if bound < upper2:
                    upper2, how = bound, f"Lehmann's bound ({len(deflation.values)} circular pairs deflated)"
            stalled = stalled + 1 if upper2 >= before else 0
            if (upper2 <= target2 or len(krylov.Q) >= steps or krylov.last == 0 or stalled > STALL_ROUNDS
                    or any(found is None for found, _ in deflations.values())):
                if stalled > STALL_ROUNDS and upper2 > target2:
                    how += f"; stopped: {stalled} Lanczos extensions in a row left Lehmann's bound above it"
                break
            previous = len(krylov.Q)
            krylov = lanczos(op, rtol * 1e-6, min(previous + max(GROWTH, previous // 2), steps), resume=krylov)
            if len(krylov.Q) == previous:  # the whole space (dim < steps): nothing to extend
                break
            grams = None if grams is None else krylov_grams(krylov, grams)
            lower = max(lower, witness(op, krylov.y))
            target2 = ((1 + rtol) * lower) ** 2
    where = "x".join(map(str, torus))
    upper = math.sqrt(max(upper2, lower**2)) * scale + lost
    method = (f"enclosure: lower: Lanczos witness, {len(krylov.Q)} steps; upper: {how} (torus {where}, "
              "of which the zero-padded operator is a compression)")
    return max(0.0, lower * scale - lost), upper, method
