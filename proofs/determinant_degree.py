"""Theorem 3 (determinant and degree of BCOP kernels).

  (a) For a symmetric projector P of size n, det(P + (I - P) z) = z^(n - rank P), for every n.
  (b) Hence a BCOP kernel K = H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1}) has
          det K(z1, z2) = det H * z1^a * z2^b,  a = sum_i (n - rank P_i),  b = sum_i (n - rank Q_i),
      and its taps W_pq satisfy, for every n and k,
          sum_pq ||W_pq||_F^2 = n,  sum_pq p ||W_pq||_F^2 = a,  sum_pq q ||W_pq||_F^2 = b,
          sum_pq W_pq = H.
  (c) For n = 2, k = 2 the degree identity holds for every paraunitary K(z) = W_0 + W_1 z, BCOP or
      not: z d/dz det K = (sum_p p ||W_p||_F^2) det K.

(Li et al., NeurIPS 2019, arXiv 1911.00937, Sec. 4 and the connected-components theorem.)

Proof. Matrices of any size are non-commutative symbols (:mod:`proofs.noncommutative`).
(a) By the spectral theorem P = U D U^T with U orthogonal and D = diag(I_r, 0), r = rank P; the
identity P + (I - P) z = U (D + (I - D) z) U^T holds modulo U^T U = I = U U^T, and
D + (I - D) z = diag(I_r, z I_(n-r)) blockwise (blocks of sizes r and n - r). det is multiplicative,
det U det U^T = det(U U^T) = 1 and a block-diagonal matrix with scalar blocks c I_m has determinant
prod c^m, so det = z^(n-r). Checked again directly for every projector of R^2 and of R^3.
(b) det is multiplicative and B(P, Q) = (P + (I-P) z1)(Q + (I-Q) z2). For the quadratic identities
let L(K) = K~ z1 dK/dz1 with K~(z1, z2) = K(1/z1, 1/z2)^T. For K paraunitary and any F,
L(K F) = F~ L(K) F + F~ z1 dF/dz1 (Leibniz and K~ K = I); with F F~ = I (Theorem 1) the cyclic
trace gives tr L(K F) = tr L(K) + tr(F~ z1 dF/dz1), where F~ z1 F' = I - P for F = P + (I-P) z1
and a z2-factor adds 0. From L(H) = 0, induction on the factors gives tr L(K) = a, a constant
Laurent polynomial. Its constant coefficient is sum_pq p tr(W_pq^T W_pq), because two taps
contribute (W_pq z1^p z2^q)~ z1 d/dz1 (W_st z1^s z2^t) = s W_pq^T W_st z1^(s-p) z2^(t-q), constant
iff (s, t) = (p, q). The same with z2 gives b, the constant coefficient of tr(K~ K) = tr I gives n,
and sum_pq W_pq = K(1, 1) = H because B(P, Q)(1, 1) = I. The identities are also verified exactly
for symbolic 2-channel BCOP kernels over all rank choices, 2-D k = 2 and 1-D k = 3 (2-D k = 2, 3
and 1-D k = 4, 5 with --full): H = [[c, -sigma s], [s, sigma c]], rank-1 projectors
[[c^2, c s], [c s, s^2]], reduced modulo c_i^2 + s_i^2 = 1, sigma^2 = 1 (a Groebner basis, so the
normal form decides equality on the whole parameter space).
(c) The coefficients of z (det K)' - (sum_p p ||W_p||^2) det K lie in the ideal of the paraunitarity
equations (Groebner basis over the 8 tap entries), without assuming BCOP form. For paraunitary
kernels of other sizes that are not BCOP the identity follows from Jacobi's formula; that is argued,
not checked here.
"""

from __future__ import annotations

import itertools

import sympy as sp
from sympy.polys.matrices import DomainMatrix

from . import circle
from .circle import CircleAlgebra
from .noncommutative import equal_modulo, idempotent_rules, inverse_rules, matrices, trace
from .paraunitary_ideal import equations, generators, in_ideal, paraunitary_basis
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "determinant_degree"
STATEMENT = (
    "det(P + (I-P) z) = z^(n - rank P); det K = det H z1^a z2^b with a = sum(n - rank P_i) = "
    "sum p ||W_pq||^2, b = sum(n - rank Q_i) = sum q ||W_pq||^2, sum ||W_pq||^2 = n, sum W_pq = H"
)


def factor_log_derivative_check(rules: dict) -> Check:
    """F(1/z) z F'(z) = I - P modulo the rules, for F = P + (I - P) z and every n."""
    (P,) = matrices("P")
    z = sp.Symbol("z", nonzero=True)
    return Check(
        "all n: F~ z F' = I - P for F(z) = P + (I-P) z",
        equal_modulo([P + (1 - P) / z, (1 - P) * z], [1 - P], rules),
    )


def spectral_form_check(rules: dict) -> Check:
    """P + (I - P) z = U (D + (I - D) z) U^T for P = U D U^T, modulo the rules (U orthogonal, D^2 = D)."""
    U, Ut, D = matrices("U U^T D")
    z = sp.Symbol("z")
    P = U * D * Ut
    return Check(
        "all n: P = U D U^T gives P + (I-P) z = U (D + (I-D) z) U^T",
        equal_modulo([P + (1 - P) * z], [U, D + (1 - D) * z, Ut], rules),
    )


def block_determinant_check(D: sp.Matrix, sizes: tuple[sp.Expr, sp.Expr]) -> Check:
    """D + (I - D) z is block diagonal with scalar blocks, so det = prod block^size = z^(n - r)."""
    z = sp.Symbol("z")
    n, r = sp.symbols("n r")
    M = (D + (sp.eye(2) - D) * z).applyfunc(sp.expand)
    diagonal = M[0, 1] == 0 and M[1, 0] == 0
    return Check(
        "all n, r: D = diag(I_r, 0) gives D + (I-D) z = diag(I_r, z I_(n-r)), det = z^(n-r)",
        diagonal and sp.powsimp(M[0, 0] ** sizes[0] * M[1, 1] ** sizes[1]) == z ** (n - r),
    )


def log_derivative_step_check(rules: dict) -> Check:
    """L(K F) = F~ L(K) F + F~ z F' for L(K) = K~ z K', modulo the rules (K~ K = I); F = P + (I - P) z."""
    K, Kt, Kd, P = matrices("K K~ zK' P")
    z = sp.Symbol("z", nonzero=True)
    F, Ft, Fd = P + (1 - P) * z, P + (1 - P) / z, (1 - P) * z
    return Check(
        "all n: L(K F) = F~ L(K) F + F~ z F' with L(K) = K~ z K' (Leibniz, K~ K = I)",
        equal_modulo([Ft * Kt * (Kd * F + K * Fd)], [Ft * Kt * Kd * F + Ft * Fd], rules),
    )


def trace_step_check(rules: dict) -> Check:
    """F F~ = I (so tr(F~ X F) = tr(X F F~) = tr X) and tr(F~ z F') = n - tr P, modulo the rules."""
    (P,) = matrices("P")
    z = sp.Symbol("z", nonzero=True)
    n = sp.Symbol("n")
    return Check(
        "all n: F F~ = I, so tr L(K F) = tr L(K) + tr(I - P) = tr L(K) + n - rank P",
        equal_modulo([P + (1 - P) * z, P + (1 - P) / z], [1], rules)
        and trace((P + (1 - P) / z) * (1 - P) * z, n, rules) == n - sp.Symbol("tr(P)"),
    )


def constant_coefficient_check(derivative) -> Check:
    """(W z1^p z2^q)~ z1 d/dz1 (V z1^s z2^t) = s W^T V z1^(s-p) z2^(t-q) for symbolic exponents."""
    z1, z2 = sp.symbols("z1 z2", positive=True)
    p, q, s, t = sp.symbols("p q s t", integer=True)
    Wt, V = matrices("W^T V")
    pair = Wt * z1**-p * z2**-q * z1 * derivative(V * z1**s * z2**t, z1)
    return Check(
        "all k: two taps contribute s W_pq^T W_st z1^(s-p) z2^(t-q) to L(K), constant iff (s,t) = (p,q)",
        sp.expand(sp.powsimp(sp.expand(pair)) - s * Wt * V * z1 ** (s - p) * z2 ** (t - q)) == 0,
    )


def tap_sum_check(factor) -> Check:
    """B(P, Q)(1, 1) = factor(P, 1) factor(Q, 1) = I, so sum_pq W_pq = K(1, 1) = H."""
    P, Q = matrices("P Q")
    return Check(
        "all n, k: B(P,Q)(1,1) = (P + I - P)(Q + I - Q) = I, so sum W_pq = H",
        equal_modulo([factor(P, 1), factor(Q, 1)], [1], {}),
    )


def factor_determinant_checks(exponent) -> list[Check]:
    """det(P + (I - P) z) = z^exponent(n, rank P) for every projector of R^2 and of R^3 (n - rank P)."""
    algebra = circle.circle_algebra(1)
    two = all(
        circle.determinant(algebra, circle.factor(algebra, circle.projector(algebra, r, 0), algebra.z1))
        == algebra.z1 ** exponent(2, r)
        for r in range(3)
    )
    z = sp.Symbol("z")
    v = sp.Matrix(sp.symbols("v0:3", real=True))
    line = v * v.T / (v.T * v)[0, 0]
    projectors_3 = {0: sp.zeros(3), 1: line, 2: sp.eye(3) - line, 3: sp.eye(3)}
    three = all(
        sp.cancel((P + (sp.eye(3) - P) * z).det() - z ** exponent(3, r)) == 0 for r, P in projectors_3.items()
    )
    return [
        Check("det(P + (I-P) z) = z^(2 - rank P) for every projector of R^2", two),
        Check("det(P + (I-P) z) = z^(3 - rank P) for every projector of R^3", three),
    ]


def check(algebra: CircleAlgebra, H: DomainMatrix, Ps: list, Qs: list, sign, a: int, b: int) -> list[Check]:
    """The determinant and quadratic identities for one BCOP kernel with claimed invariants (sign, a, b)."""
    n = H.shape[0]
    K = circle.bcop_kernel(algebra, H, Ps, Qs)
    taps = circle.taps(algebra, K)
    norms = {pq: circle.squared_norm(algebra, W) for pq, W in taps.items()}
    zero = algebra.domain.ring.zero
    return [
        Check("det K = det H z1^a z2^b", circle.determinant(algebra, K) == sign * algebra.z1**a * algebra.z2**b),
        Check("sum ||W_pq||^2 = n", sum(norms.values(), zero) == n),
        Check("sum p ||W_pq||^2 = a", sum((p * v for (p, _), v in norms.items()), zero) == a),
        Check("sum q ||W_pq||^2 = b", sum((q * v for (_, q), v in norms.items()), zero) == b),
    ]


def bcop_checks(k: int, two_d: bool) -> Check:
    """All rank choices of the symbolic 2-channel BCOP of size k; in 1-D every Q_i = I.

    Angle 0 parametrizes H, angles 1..k-1 the P_i and angles k..2k-2 the Q_i.
    """
    algebra = circle.circle_algebra(2 * k - 1 if two_d else k)
    H = circle.rotation(algebra, 0)
    q_ranks_choices = itertools.product(range(3), repeat=k - 1) if two_d else [(2,) * (k - 1)]
    results = []
    for q_ranks in q_ranks_choices:
        for p_ranks in itertools.product(range(3), repeat=k - 1):
            Ps = [circle.projector(algebra, r, 1 + i) for i, r in enumerate(p_ranks)]
            Qs = [circle.projector(algebra, r, k + i) for i, r in enumerate(q_ranks)]
            a, b = sum(2 - r for r in p_ranks), sum(2 - r for r in q_ranks)
            results += check(algebra, H, Ps, Qs, algebra.sigma, a, b)
    dimension = "2-D" if two_d else "1-D"
    choices = 3 ** ((k - 1) * (2 if two_d else 1))
    return all_hold(f"symbolic 2-channel {dimension} BCOP, k = {k}, all {choices} rank choices, det H = sigma", results)


def general_degree_check(generating: list[sp.Expr]) -> Check:
    """n = 2, k = 2: z (det K)' - (sum_p p ||W_p||^2) det K lies in the ideal of `generating`."""
    taps, _ = paraunitary_basis(2, 2)
    basis = sp.groebner(generating, *generators(list(taps)), order="grevlex")
    z = sp.Symbol("z")
    K = taps[0] + taps[1] * z
    determinant = sp.expand(K.det())
    degree = sum(p * sum(entry**2 for entry in W) for p, W in enumerate(taps))
    identity = sp.Poly(sp.expand(z * determinant.diff(z) - degree * determinant), z)
    return Check(
        "every paraunitary W0 + W1 z (n = 2): z (det K)' = (sum p ||W_p||^2) det K, by ideal membership",
        all(in_ideal(basis, coefficient) for coefficient in identity.all_coeffs()),
    )


def claims(full: bool) -> list[Check]:
    (P,) = matrices("P")
    U, Ut, D = matrices("U U^T D")
    K, Kt = matrices("K K~")
    n, r = sp.symbols("n r")
    return [
        factor_log_derivative_check(idempotent_rules([P])),
        spectral_form_check({**idempotent_rules([D]), **inverse_rules([(U, Ut)])}),
        block_determinant_check(sp.diag(1, 0), (r, n - r)),
        *factor_determinant_checks(lambda n, rank: n - rank),
        log_derivative_step_check(inverse_rules([(Kt, K)])),
        trace_step_check(idempotent_rules([P])),
        constant_coefficient_check(sp.diff),
        tap_sum_check(lambda X, z: X + (1 - X) * z),
        *(bcop_checks(k, two_d=True) for k in ((2, 3) if full else (2,))),
        *(bcop_checks(k, two_d=False) for k in ((4, 5) if full else (3,))),
        general_degree_check(equations(list(paraunitary_basis(2, 2)[0]))),
    ]


def scope(full: bool) -> str:
    return (
        "(a), (b) all n, k (block symbols, log-derivative induction; spectral theorem, det multiplicative and "
        "tr cyclic taken as known); cross-checked for every projector of "
        f"R^2, R^3 and symbolic n = 2 BCOP, all ranks, 2-D k = {'2, 3' if full else '2'}, "
        f"1-D k = {'4, 5' if full else '3'}; (c) every paraunitary kernel with n = 2, k = 2"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
