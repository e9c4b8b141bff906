"""Theorem 9 (zero padding degenerates to 1 x 1 convolutions).

Let T_N be the zero-padded 1-D convolution (T_N x)[i] = sum_{p<k} W_p x[i + p - pad] on
{0, ..., N-1} with n x n taps and a fixed offset 0 <= pad <= k - 1 (terms outside the image are
zero). If T_N is orthogonal for one N >= k, then W_p = 0 for every p != pad, i.e. the convolution is
the 1 x 1 convolution W_pad (which must be orthogonal); conversely a single orthogonal tap gives
T_N = I_N (x) W_pad, orthogonal for every N.

Reason: column block j of T_N collects the taps p whose output i = j - p + pad lies in the image.
An interior column (j = k - 1 - pad, which exists once N >= k) sees every tap, the first column
(j = 0) misses the taps p > pad and the last (j = N - 1) misses the taps p < pad. With
E = T_N^T T_N - I the diagonal blocks give

    sum_{p>pad} ||W_p||_F^2 = tr E_interior - tr E_first,
    sum_{p<pad} ||W_p||_F^2 = tr E_interior - tr E_last,

so orthogonality (E = 0) makes these real sums of squares vanish. Boundary columns lose norm
otherwise: the paraunitary kernel P + (I - P) z with P = diag(1, 0), orthogonal under circular
padding for every N, is not orthogonal under zero padding for any N and either offset. The 2-D
case is the same argument per axis.

(Li et al., NeurIPS 2019, arXiv 1911.00937, on using circular rather than zero padding.)

Proof. The zero-padded operator is built exactly for generic symbolic taps (n <= 2, k <= 4, every
pad, N = k and k + 1; n <= 3, k <= 5 with --full) and the two trace identities are expanded; the
converse and the example are exact matrix computations.
"""

from __future__ import annotations

import sympy as sp

from .kernels import symbolic_taps
from .operators import as_taps, circular_operator, is_orthogonal, zero_padded_operator
from .result import Check, ProofResult, run_theorem

NAME = "zero_padding"
STATEMENT = (
    "a zero-padded convolution that is orthogonal for an image size N >= k has a single nonzero tap "
    "(a 1x1 convolution); orthogonal 1x1 convolutions are orthogonal for every N"
)


def check(taps: list[sp.Matrix], N: int, pad: int) -> Check:
    """The zero-padded operator of these taps on N positions is orthogonal."""
    T = zero_padded_operator(as_taps(taps), N, pad)
    return Check(f"zero-padded operator at N = {N}, pad = {pad} is orthogonal", is_orthogonal(T))


def diagonal_block(M: sp.Matrix, j: int, n: int) -> sp.Matrix:
    return M[j * n : (j + 1) * n, j * n : (j + 1) * n]


def norm_loss_check(n: int, k: int, N: int, pad: int) -> bool:
    """The two trace identities for generic taps."""
    taps = symbolic_taps(n, n, k)
    T = zero_padded_operator(as_taps(taps), N, pad)
    E = sp.expand(T.T * T - sp.eye(n * N))
    interior = diagonal_block(E, k - 1 - pad, n).trace()
    first, last = diagonal_block(E, 0, n).trace(), diagonal_block(E, N - 1, n).trace()
    before = sum(entry**2 for W in taps[:pad] for entry in W)
    after = sum(entry**2 for W in taps[pad + 1 :] for entry in W)
    return sp.expand(interior - first - after) == 0 and sp.expand(interior - last - before) == 0


def norm_loss_checks(max_n: int, max_k: int) -> Check:
    holds = all(
        norm_loss_check(n, k, N, pad)
        for n in range(1, max_n + 1)
        for k in range(1, max_k + 1)
        for N in (k, k + 1)
        for pad in range(k)
    )
    return Check(
        f"lost norm of boundary columns = sum of dropped ||W_p||^2; n <= {max_n}, k <= {max_k}, every pad, N = k, k+1",
        holds,
    )


def single_tap_check(max_n: int, max_k: int) -> Check:
    """With only W_pad nonzero the zero-padded operator is I_N (x) W_pad."""
    holds = True
    for n in range(1, max_n + 1):
        W = symbolic_taps(n, n, 1, name="u")[0]
        for k in range(1, max_k + 1):
            for pad in range(k):
                taps = [W if p == pad else sp.zeros(n, n) for p in range(k)]
                for N in range(1, k + 2):
                    holds &= zero_padded_operator(as_taps(taps), N, pad) == sp.kronecker_product(sp.eye(N), W)
    return Check(f"single tap W_pad: T_N = I_N (x) W_pad (orthogonal iff W_pad is); n <= {max_n}, k <= {max_k}", holds)


def two_tap_example_check() -> Check:
    """P + (I - P) z with P = diag(1, 0) is circularly orthogonal but never orthogonal with zero padding."""
    taps = [sp.diag(1, 0), sp.diag(0, 1)]
    circular = all(is_orthogonal(circular_operator(as_taps(taps), N)) for N in range(1, 7))
    zero = not any(check(taps, N, pad).proved for N in range(1, 7) for pad in (0, 1))
    return Check(
        "P + (I-P) z, P = diag(1,0): orthogonal circularly for N = 1..6, zero-padded for no N = 1..6, pad = 0, 1",
        circular and zero,
    )


def claims(full: bool) -> list[Check]:
    max_n, max_k = (3, 5) if full else (2, 4)
    return [
        norm_loss_checks(max_n, max_k),
        single_tap_check(max_n, max_k),
        two_tap_example_check(),
    ]


def scope(full: bool) -> str:
    sizes = "n <= 3, k <= 5" if full else "n <= 2, k <= 4"
    return f"1-D, {sizes}, every pad, N = k and k + 1 (the mechanism; 2-D argued per axis)"


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
