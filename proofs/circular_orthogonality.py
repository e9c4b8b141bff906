"""Theorem 2 (circular orthogonality and paraunitarity).

Let K(z) = sum_{p<k} W_p z^p be a real 1-D kernel with n x n taps and T_N the circular convolution
on N-periodic signals, (T_N x)[i] = sum_p W_p x[(i + p) mod N] (taps fold modulo N when N < k).
Write K(1/z)^T K(z) = sum_{|d|<k} C_d z^d, C_d = sum_{q-p=d} W_p^T W_q; K is paraunitary iff
C_d = delta_{d0} I. Then, for every n, k and N:

  (a) T_N = sum_p S_N^p (x) W_p with S_N the cyclic shift, so T_N^T T_N = sum_d S_N^d (x) C_d.
      Hence paraunitary => T_N orthogonal for every N, including N < k; the 2-D operator on
      N x N images is the same with two commuting shifts.
  (b) Conversely, if T_N is orthogonal for one N >= 2k - 1, K is paraunitary: the S_N^d,
      |d| < k, are permutation matrices with pairwise disjoint supports (d = d' mod N with
      |d - d'| <= 2k - 2 < N forces d = d'), so the block (0, d mod N) of T_N^T T_N is C_d.
  (c) The bound matters: the one-channel kernel (1/2, 0, 1/2) is orthogonal for N = 1, 2 and not
      for N >= 3: its transfer function at w = exp(i t), t = 2 pi / N, has
      |K(w)|^2 = |(1 + w^2)/2|^2 = cos(t)^2 < 1 because sin t != 0 on (0, pi), and the singular
      values of a circulant are the |K(w)| at the N-th roots of unity.

(Sedghi, Gupta, Long, ICLR 2019 for the spectrum; Li et al., NeurIPS 2019, arXiv 1911.00937.)

Proof. (a) (S^p (x) W)^T (S^q (x) V) = S^(q-p) (x) W^T V because S^T = S^(-1) and the mixed-product
rule; this is checked with a commuting symbol s for S (S (x) I commutes with I (x) W) and symbolic
exponents p, q, so by bilinearity T_N^T T_N = sum_(p,q) S^(q-p) (x) W_p^T W_q = sum_d S^d (x) C_d for
every k. That S_N is orthogonal with S_N^N = I (a cyclic permutation matrix) is standard; it and the
operator identities are checked entry by entry for generic symbolic taps at N = 1..6 (8 with --full).
(b) That d = d' mod N with |d|, |d'| <= k - 1 and N >= 2k - 1 forces d = d' is a Farkas certificate
(:mod:`proofs.inequalities`) for symbolic d, d', t, k, N: d - d' = t N with t >= 1 or t <= -1
contradicts N >= 2k - 1. Cross-checks: disjointness iff N >= 2k - 1 for k <= 4, N <= 2k + 2, and
the block extraction for generic taps (n = 2, k <= 3, N = 2k - 1, 2k). (c) uses exact circulants
for N = 1..8 and the closed form for every N >= 3.
"""

from __future__ import annotations

import itertools

import sympy as sp

from . import rational
from .inequalities import contradictory
from .kernels import bcop_transfer, gram_coefficients, symbolic_taps, taps_1d, taps_of, transfer_1d
from .noncommutative import equal_modulo, matrices, transpose_product
from .operators import as_taps, circular_operator, is_orthogonal, shift
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "circular_orthogonality"
STATEMENT = (
    "paraunitary => orthogonal under circular padding for every N (also N < k); orthogonal for one "
    "N >= 2k-1 => paraunitary; (1/2, 0, 1/2) is orthogonal only for N = 1, 2"
)

COUNTEREXAMPLE = [sp.Matrix([[sp.Rational(1, 2)]]), sp.Matrix([[0]]), sp.Matrix([[sp.Rational(1, 2)]])]


def shift_power(N: int, d: int) -> sp.Matrix:
    """S_N^d for any integer d (S_N^{-1} = S_N^T)."""
    S = shift(N)
    return (S if d >= 0 else S.T) ** abs(d)


def check(taps: list[sp.Matrix], N: int) -> Check:
    """The circular convolution with these 1-D taps on N-periodic signals is orthogonal."""
    return Check(f"circular operator at N = {N} is orthogonal", is_orthogonal(circular_operator(as_taps(taps), N)))


def laurent_gram_check(k: int, symmetric_taps: bool = False) -> Check:
    """T(s)^T T(s) = sum_d C_d s^d for T(s) = sum_p W_p s^p, s a shift (s^T = 1/s), all n and N.

    symmetric_taps=True reads W_p^T as W_p (a wrong transpose), under which the identity fails.
    """
    s = sp.Symbol("s", nonzero=True)
    letters = matrices(f"W0:{k}")
    transposed = matrices(f"W0:{k}^T")
    transposes = {**dict(zip(letters, letters if symmetric_taps else transposed)), **dict(zip(transposed, letters))}
    T = sum(W * s**p for p, W in enumerate(letters))
    T_t = transpose_product([T], transposes)[0].subs(s, 1 / s)
    gram = sum(transposed[p] * letters[q] * s ** (q - p) for p in range(k) for q in range(k))
    return Check(f"T(s)^T T(s) = sum_d C_d s^d, k = {k}, all n and N", equal_modulo([T_t, T], [gram], {}))


def shift_pair_check(transposed_power) -> Check:
    """(s^p W)^T (s^q V) = s^(q-p) W^T V for symbolic p, q, with (s^p)^T = transposed_power(s, p) (= s^-p)."""
    s_ = sp.Symbol("s", positive=True)
    p, q = sp.symbols("p q", integer=True)
    Wt, V = matrices("W^T V")
    pair = transposed_power(s_, p) * Wt * s_**q * V
    return Check(
        "all n, k, N: (S^p (x) W)^T (S^q (x) V) = S^(q-p) (x) W^T V for symbolic p, q (S^T = S^-1)",
        sp.expand(sp.powsimp(pair) - s_ ** (q - p) * Wt * V) == 0,
    )


def disjoint_support_check(hypotheses: list[sp.Expr]) -> Check:
    """d - d' = t N with t >= 1 (or t <= -1) contradicts the hypotheses (|d|, |d'| <= k-1, N >= 2k-1)."""
    d, d2, t, N = sp.symbols("d d' t N", integer=True)
    shift = [d - d2 - t * N, t * N - d + d2]
    return Check(
        "all k, N >= 2k-1: d = d' mod N with |d|, |d'| < k forces d = d', so the S^d have disjoint supports",
        contradictory(hypotheses + shift + [t - 1, (t - 1) * N])
        and contradictory(hypotheses + shift + [-1 - t, (-1 - t) * N]),
    )


def operator_identity_check(n: int, k: int, sizes: range, operator=circular_operator) -> Check:
    """operator(taps, N) = sum_p S^p (x) W_p and its Gram matrix is sum_d S^d (x) C_d, for generic taps."""
    taps = symbolic_taps(n, n, k)
    C = gram_coefficients(taps)
    holds = True
    for N in sizes:
        S = shift(N)
        T = operator(as_taps(taps), N)
        image = sum((sp.kronecker_product(S**p, W) for p, W in enumerate(taps)), sp.zeros(n * N, n * N))
        gram = sum((sp.kronecker_product(shift_power(N, d), Cd) for d, Cd in C.items()), sp.zeros(n * N, n * N))
        holds &= S.T * S == sp.eye(N) and S**N == sp.eye(N)
        holds &= T == image and sp.expand(T.T * T - gram) == sp.zeros(n * N, n * N)
    return Check(
        f"T_N = sum_p S^p (x) W_p, T_N^T T_N = sum_d S^d (x) C_d; "
        f"n = {n}, k = {k}, N = {sizes.start}..{sizes.stop - 1}",
        holds,
    )


def bcop_instance() -> tuple[sp.Matrix, list[sp.Matrix], list[sp.Matrix]]:
    """A rational 2-channel BCOP with k = 3: H with det -1, rank-1 projectors."""
    H = rational.orthogonal([sp.Rational(1, 3)], 2, -1)
    Ps = [rational.projector(sp.Matrix([1, 2])), rational.projector(sp.Matrix([3, -1]))]
    Qs = [rational.projector(sp.Matrix([2, 5])), rational.projector(sp.Matrix([1, 1]))]
    return H, Ps, Qs


def instance_check(instance: tuple, sizes_1d: range, sizes_2d: range) -> Check:
    """The BCOP instance (H, Ps, Qs) (k = 3) is exactly orthogonal at every tested N, also N < 3."""
    H, Ps, Qs = instance
    taps = taps_1d(transfer_1d(H, Ps))
    one_d = all(check(taps, N).proved for N in sizes_1d)
    kernel_2d = taps_of(bcop_transfer(H, Ps, Qs))
    two_d = all(is_orthogonal(circular_operator(kernel_2d, N)) for N in sizes_2d)
    return Check(
        f"rational BCOP (n = 2, k = 3) orthogonal: 1-D N = {sizes_1d.start}..{sizes_1d.stop - 1}, "
        f"2-D N x N for N = {sizes_2d.start}..{sizes_2d.stop - 1}",
        one_d and two_d,
    )


def supports_disjoint(N: int, k: int) -> bool:
    """Whether S_N^d, |d| < k, have pairwise disjoint supports."""
    supports = [set(shift_power(N, d).todok()) for d in range(-(k - 1), k)]
    return all(a.isdisjoint(b) for a, b in itertools.combinations(supports, 2))


def support_check(max_k: int, threshold) -> Check:
    """Disjoint supports exactly when N >= threshold(k) (= 2k - 1), for k <= max_k and N <= 2k + 2."""
    holds = all(
        supports_disjoint(N, k) == (N >= threshold(k)) for k in range(1, max_k + 1) for N in range(1, 2 * k + 3)
    )
    return Check(f"S_N^d (|d| < k) have disjoint supports iff N >= 2k - 1; k <= {max_k}, N <= 2k + 2", holds)


def extraction_check(n: int, k: int, sizes: tuple[int, ...]) -> Check:
    """At each N (2k - 1 and 2k) the block (0, d mod N) of T_N^T T_N is C_d, so orthogonal => paraunitary."""
    taps = symbolic_taps(n, n, k)
    C = gram_coefficients(taps)
    holds = True
    for N in sizes:
        gram = sp.expand(circular_operator(as_taps(taps), N).T * circular_operator(as_taps(taps), N))
        for d, Cd in C.items():
            column = d % N
            holds &= gram[0:n, column * n : (column + 1) * n] == Cd
    return Check(f"block (0, d mod N) of T_N^T T_N is C_d at N = {sizes}; n = {n}, k = {k}", holds)


def counterexample_checks(taps: list[sp.Matrix], smallest_N: int) -> list[Check]:
    """The claims of (c) for the one-channel taps (1/2, 0, 1/2) and the sizes N >= smallest_N (= 3)."""
    t = sp.Symbol("t", real=True)
    z = sp.Symbol("z")
    transfer = sum(W[0, 0] * z**p for p, W in enumerate(taps))
    K = transfer.subs(z, sp.exp(sp.I * t))
    modulus = sp.simplify(sp.expand((K * K.subs(t, -t)).rewrite(sp.cos)) - sp.cos(t) ** 2)
    defect = sp.expand(transfer * transfer.subs(z, 1 / z) - 1)
    return [
        Check(
            "(1/2, 0, 1/2): circulant orthogonal exactly for N = 1, 2 among N = 1..8",
            [check(taps, N).proved for N in range(1, 9)] == [True, True] + [False] * 6,
        ),
        Check(
            "(1/2, 0, 1/2) is not paraunitary: K(z) K(1/z) - 1 = (z^2 - 2 + z^-2)/4 != 0",
            defect == sp.expand((z**2 - 2 + z**-2) / 4) and defect != 0,
        ),
        Check("|K(exp(it))|^2 = cos(t)^2 for K(w) = (1 + w^2)/2", modulus == 0),
        Check(
            "sin t != 0 on (0, pi), so cos(2 pi/N)^2 < 1 for every N >= 3 (0 < 2 pi/N <= 2 pi/3)",
            sp.solveset(sp.sin(t), t, sp.Interval.open(0, sp.pi)) == sp.EmptySet
            and sp.Interval.Lopen(0, 2 * sp.pi / smallest_N).is_subset(sp.Interval.open(0, sp.pi)),
        ),
    ]


def claims(full: bool) -> list[Check]:
    sizes = range(1, 9 if full else 7)
    d, d2, k, N = sp.symbols("d d' k N", integer=True)
    return [
        shift_pair_check(lambda s_, p: s_**-p),
        *(laurent_gram_check(k_) for k_ in (2, 3)),
        operator_identity_check(2, 3, sizes),
        instance_check(bcop_instance(), range(1, 9), range(1, 5 if full else 4)),
        disjoint_support_check([k - 1 - d, d + k - 1, k - 1 - d2, d2 + k - 1, N - 2 * k + 1, N]),
        support_check(4, lambda k_: 2 * k_ - 1),
        *(extraction_check(2, k_, (2 * k_ - 1, 2 * k_)) for k_ in (2, 3)),
        all_hold("counterexample (1/2, 0, 1/2)", counterexample_checks(COUNTEREXAMPLE, 3)),
    ]


def scope(full: bool) -> str:
    return (
        "(a) all n, k (symbolic exponents) and N (S_N orthogonal, S_N^N = I taken as known; operator identities "
        f"checked for n = 2, k = 3, N = 1..{8 if full else 6}; 2-D on one BCOP, N <= {4 if full else 3}); "
        "(b) all n, k, N >= 2k-1 (Farkas), block extraction cross-checked k <= 3; (c) N = 1..8 exact, every "
        "N >= 3 in closed form"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
