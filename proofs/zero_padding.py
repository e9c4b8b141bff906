"""Theorem 10 (zero padding degenerates to 1 x 1 convolutions).

Let T_N be the zero-padded 1-D convolution (T_N x)[i] = sum_{p<k} W_p x[i + p - pad] on
{0, ..., N-1} with n x n taps and a fixed offset 0 <= pad <= k - 1 (terms outside the image are
zero). If T_N is orthogonal for one N >= k, then W_p = 0 for every p != pad, i.e. the convolution is
the 1 x 1 convolution W_pad (which must be orthogonal); conversely a single orthogonal tap gives
T_N = I_N (x) W_pad, orthogonal for every N. The same holds in 2-D (taps W_pq, offsets pad_1, pad_2,
an N1 x N2 image with N1, N2 >= k): only W_(pad_1, pad_2) can be nonzero.

Reason: the block (i, j) of T_N is W_p for p = j - i + pad when 0 <= i <= N - 1, so column block j
collects the taps p in S_j = {p : 0 <= j - p + pad <= N - 1} and the diagonal block j of
E = T_N^T T_N - I is sum_{p in S_j} W_p^T W_p - I. For every N >= k and every pad:

    S_(k-1-pad) = {0, ..., k-1} (an interior column),  S_0 = {p <= pad},  S_(N-1) = {p >= pad},

so sum_{p>pad} ||W_p||_F^2 = tr E_interior - tr E_first and sum_{p<pad} ||W_p||_F^2 =
tr E_interior - tr E_last, and orthogonality (E = 0) makes these real sums of squares vanish. In 2-D
a column (j1, j2) collects S_j1 x S_j2, and the columns (interior, interior), (first, interior),
(last, interior) and their transposes remove every tap off the row p = pad_1 and the column q = pad_2.
Boundary columns lose norm otherwise: the paraunitary kernel P + (I - P) z with P = diag(1, 0),
orthogonal under circular padding for every N, is not orthogonal under zero padding for N = 1..6.

(Li et al., NeurIPS 2019, arXiv 1911.00937, on using circular rather than zero padding.)

Proof. The three index sets and the single-tap row (p = pad lands on row i = j of every column) are
proved for symbolic N, k, pad, p, j by Farkas certificates (:mod:`proofs.inequalities`), so they hold
for every N >= k. The block formula and the trace identities are checked on the exact operator for
generic symbolic taps (1-D: n <= 2, k <= 4, every pad, N = k, k + 1; 2-D: n = 1, k <= 3,
pad_1 = pad_2); the
converse and the example are exact matrix computations.
"""

from __future__ import annotations

import sympy as sp

from .inequalities import follows
from .kernels import symbolic_taps
from .operators import as_taps, circular_operator, is_orthogonal, zero_padded_operator
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "zero_padding"
STATEMENT = (
    "a zero-padded convolution (1-D or 2-D) that is orthogonal for an image size N >= k has a single "
    "nonzero tap (a 1x1 convolution); orthogonal 1x1 convolutions are orthogonal for every N"
)

N, K, PAD, P, J = sp.symbols("N k pad p j", integer=True)
SIZES = [N - K, PAD, K - 1 - PAD]  # N >= k, 0 <= pad <= k - 1
TAP = [P, K - 1 - P]  # 0 <= p <= k - 1


def in_column(j: sp.Expr, p: sp.Expr) -> list[sp.Expr]:
    """Tap p reaches column j iff its row i = j - p + pad satisfies 0 <= i <= N - 1."""
    row = j - p + PAD
    return [row, N - 1 - row]


def index_set_checks(sizes: list[sp.Expr], columns: list[sp.Expr]) -> list[Check]:
    """S_(k-1-pad) = all taps, S_0 = {p <= pad}, S_(N-1) = {p >= pad} under `sizes`, and tap pad reaches
    every column j allowed by `columns` (0 <= j <= N - 1); each by a Farkas certificate."""
    interior = K - 1 - PAD
    hypotheses = sizes + TAP
    return [
        Check(
            "all N >= k, pad: column k-1-pad exists and every tap reaches it",
            all(follows(c, sizes) for c in (interior, N - 1 - interior))
            and all(follows(c, hypotheses) for c in in_column(interior, P)),
        ),
        Check(
            "all N >= k, pad: tap p reaches column 0 iff p <= pad",
            all(follows(c, hypotheses + [PAD - P]) for c in in_column(0, P))
            and follows(-(PAD - P) - 1, hypotheses + [P - PAD - 1]),
        ),
        Check(
            "all N >= k, pad: tap p reaches column N-1 iff p >= pad",
            all(follows(c, hypotheses + [P - PAD]) for c in in_column(N - 1, P))
            and follows(-(P - PAD) - 1, hypotheses + [PAD - P - 1]),
        ),
        Check(
            "all N, pad: tap pad reaches every column j on row j, so one tap gives I_N (x) W_pad",
            all(follows(c, columns) for c in in_column(J, PAD)),
        ),
    ]


def check(taps: list[sp.Matrix], N_: int, pad: int) -> Check:
    """The zero-padded operator of these taps on N positions is orthogonal."""
    T = zero_padded_operator(as_taps(taps), N_, pad)
    return Check(f"zero-padded operator at N = {N_}, pad = {pad} is orthogonal", is_orthogonal(T))


def block_trace(E: sp.Matrix, column: tuple[int, ...], N_: int, n: int) -> sp.Expr:
    """tr of the diagonal block of E at a column (positions ordered row-major, n channels each)."""
    position = 0
    for c in column:
        position = position * N_ + c
    return E[position * n : (position + 1) * n, position * n : (position + 1) * n].trace()


def norm_loss_check(taps: dict, n: int, k: int, N_: int, pad: int, operator=zero_padded_operator) -> bool:
    """tr E at (interior, ...) minus tr E at each boundary column is the dropped taps' sum of squares."""
    T = operator(taps, N_, pad)
    E = sp.expand(T.T * T - sp.eye(T.cols))
    dims = len(next(iter(taps)))
    interior = (k - 1 - pad,) * dims
    holds = True
    for axis in range(dims):
        for boundary, dropped in ((0, lambda e: e > pad), (N_ - 1, lambda e: e < pad)):
            column = interior[:axis] + (boundary,) + interior[axis + 1 :]
            lost = sum(x**2 for e, W in taps.items() if dropped(e[axis]) for x in W)
            holds &= sp.expand(block_trace(E, interior, N_, n) - block_trace(E, column, N_, n) - lost) == 0
    return holds


def norm_loss_checks(max_n: int, max_k: int, max_k_2d: int, operator=zero_padded_operator) -> Check:
    """norm_loss_check for generic symbolic taps of every size up to the bounds, every pad, N = k, k + 1."""
    one_d = all(
        norm_loss_check(as_taps(symbolic_taps(n, n, k)), n, k, N_, pad, operator)
        for n in range(1, max_n + 1)
        for k in range(1, max_k + 1)
        for N_ in (k, k + 1)
        for pad in range(k)
    )
    two_d = all(
        norm_loss_check(
            {(p, q): sp.Matrix([[sp.Symbol(f"w{p}{q}")]]) for p in range(k) for q in range(k)}, 1, k, N_, pad, operator
        )
        for k in range(1, max_k_2d + 1)
        for N_ in (k, k + 1)
        for pad in range(k)
    )
    return Check(
        f"lost norm of boundary columns = sum of dropped ||W||^2: 1-D n <= {max_n}, k <= {max_k}; "
        f"2-D n = 1, k <= {max_k_2d}; every pad, N = k, k + 1",
        one_d and two_d,
    )


def single_tap_check(max_n: int, max_k: int, position=lambda pad: pad) -> Check:
    """With only the tap at position(pad) (= pad) nonzero the zero-padded operator is I_N (x) W."""
    holds = True
    for n in range(1, max_n + 1):
        W = symbolic_taps(n, n, 1, name="u")[0]
        for k in range(1, max_k + 1):
            for pad in range(k):
                taps = [W if p == position(pad) else sp.zeros(n, n) for p in range(k)]
                for N_ in range(1, k + 2):
                    holds &= zero_padded_operator(as_taps(taps), N_, pad) == sp.kronecker_product(sp.eye(N_), W)
    return Check(f"single tap W_pad: T_N = I_N (x) W_pad (orthogonal iff W_pad is); n <= {max_n}, k <= {max_k}", holds)


def two_tap_example_check(taps: list[sp.Matrix]) -> Check:
    """These taps are circularly orthogonal for N = 1..6 but zero-padded orthogonal for no N = 1..6, pad."""
    circular = all(is_orthogonal(circular_operator(as_taps(taps), N_)) for N_ in range(1, 7))
    zero = not any(check(taps, N_, pad).proved for N_ in range(1, 7) for pad in range(len(taps)))
    return Check(
        "P + (I-P) z, P = diag(1,0): orthogonal circularly for N = 1..6, zero-padded for no N = 1..6, pad = 0, 1",
        circular and zero,
    )


def claims(full: bool) -> list[Check]:
    max_n, max_k = (3, 5) if full else (2, 4)
    return [
        all_hold("index sets for symbolic N >= k", index_set_checks(SIZES, [J, N - 1 - J])),
        norm_loss_checks(max_n, max_k, 3),
        single_tap_check(max_n, max_k),
        two_tap_example_check([sp.diag(1, 0), sp.diag(0, 1)]),
    ]


def scope(full: bool) -> str:
    sizes = "n <= 3, k <= 5" if full else "n <= 2, k <= 4"
    return (
        "1-D and 2-D, every N >= k and pad (index sets by Farkas certificates); block traces on the exact "
        f"operator for 1-D {sizes}, 2-D n = 1, k <= 3"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))

