"""Theorem 1 (block paraunitarity, every channel count n).

Let P, Q be n x n symmetric projectors (P^2 = P = P^T, Q^2 = Q = Q^T) for any n. Then

  (a) B(P, Q)(z1, z2) = (P + (I - P) z1)(Q + (I - Q) z2) is the transfer function of the 2 x 2 block
      kernel [[PQ, P(I - Q)], [(I - P)Q, (I - P)(I - Q)]] (tap [p, q] multiplies z1^p z2^q);
  (b) the 1-D factor F(z) = P + (I - P) z is paraunitary: F(z)^T F(1/z) = I = F(1/z) F(z)^T;
  (c) B is paraunitary: B(z)^T B(1/z) = I = B(1/z) B(z)^T;
  (d) if A and B are paraunitary (A(z)^T A(1/z) = I, for square matrices also A(1/z) A(z)^T = I),
      so is their composition A B; with H^T H = I = H H^T this makes every BCOP kernel
      H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1}) paraunitary, which is also expanded directly.

(Li et al., NeurIPS 2019, arXiv 1911.00937, Sec. 4.)

Proof. The matrices are non-commutative symbols, so the computation holds for every n: B's taps
come from expanding the product; paraunitarity of F is (P + (I - P) z)(P + (I - P)/z)
= P^2 + (I - P)^2 + P(I - P)/z + (I - P)P z, which the rewrite P^2 -> P reduces to I; B^T(z) B(1/z)
= G(z)^T F(z)^T F(1/z) G(1/z) with G the z2-factor then telescopes; and (A B)^T(z) (A B)(1/z)
= B(z)^T [A(z)^T A(1/z)] B(1/z) telescopes the same way. Each identity is verified by reducing both
sides to the normal form of :mod:`proofs.noncommutative`.
"""

from __future__ import annotations

import sympy as sp

from .noncommutative import (
    Rules,
    equal_modulo,
    idempotent_rules,
    inverse_rules,
    matrices,
    transpose_product,
)
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "block_paraunitary"
STATEMENT = (
    "B(P,Q) = (P + (I-P) z1)(Q + (I-Q) z2) is the transfer function of the 2x2 block kernel and is "
    "paraunitary for symmetric projectors; compositions of paraunitary kernels are paraunitary"
)

Z1, Z2 = sp.symbols("z1 z2", nonzero=True)
P, Q = matrices("P Q")


def factor(projector: sp.Symbol, z: sp.Symbol) -> sp.Expr:
    """P + (I - P) z with I written as 1."""
    return projector + (1 - projector) * z


def block(p: sp.Symbol, q: sp.Symbol) -> list[sp.Expr]:
    """B(P, Q) as its factor list [P + (I-P) z1, Q + (I-Q) z2]."""
    return [factor(p, Z1), factor(q, Z2)]


def at_inverse(factors: list[sp.Expr], zs: tuple[sp.Symbol, ...]) -> list[sp.Expr]:
    """Every factor with each z replaced by 1/z."""
    return [f.subs({z: 1 / z for z in zs}, simultaneous=True) for f in factors]


def is_paraunitary(K: list[sp.Expr], zs: tuple[sp.Symbol, ...], transposes: dict, rules: Rules) -> bool:
    """K(z)^T K(1/z) = I and K(1/z) K(z)^T = I modulo the rules, K given as a factor list."""
    K_t, K_inv = transpose_product(K, transposes), at_inverse(K, zs)
    return equal_modulo(K_t + K_inv, [1], rules) and equal_modulo(K_inv + K_t, [1], rules)


def check(rules: Rules) -> Check:
    """B(P, Q) and the 1-D factor are paraunitary under the given relations for P and Q."""
    symmetric = {P: P, Q: Q}
    return all_hold(
        "F(z) = P + (I-P) z and B(P,Q) are paraunitary for all n",
        [
            Check("F(z)^T F(1/z) = I = F(1/z) F(z)^T", is_paraunitary([factor(P, Z1)], (Z1,), symmetric, rules)),
            Check("B(z)^T B(1/z) = I = B(1/z) B(z)^T", is_paraunitary(block(P, Q), (Z1, Z2), symmetric, rules)),
        ],
    )


BLOCK_TAPS = {(0, 0): P * Q, (0, 1): P * (1 - Q), (1, 0): (1 - P) * Q, (1, 1): (1 - P) * (1 - Q)}


def block_taps_check(taps: dict) -> Check:
    """B(P, Q) = sum_pq taps[p, q] z1^p z2^q; the proof passes PQ, P(I-Q), (I-P)Q, (I-P)(I-Q)."""
    kernel = sum(W * Z1**p * Z2**q for (p, q), W in taps.items())
    return Check(
        "B(P,Q)(z1,z2) = sum_pq W_pq z1^p z2^q with W = [[PQ, P(I-Q)], [(I-P)Q, (I-P)(I-Q)]]",
        equal_modulo(block(P, Q), [kernel], {}),
    )


def composition_check(paraunitary_pairs: list[tuple[str, str]]) -> Check:
    """(A B)(z)^T (A B)(1/z) = I given X(z)^T X(1/z) = I for each named pair, letters A(z), A(z)^T, A(1/z), ..."""
    letters = dict(zip("A A^T Ai Ai^T B B^T Bi Bi^T".split(), matrices("A A^T Ai Ai^T B B^T Bi Bi^T")))
    a, a_t, a_inv, a_inv_t, b, b_t, b_inv, b_inv_t = letters.values()
    transposes = {a: a_t, a_t: a, a_inv: a_inv_t, a_inv_t: a_inv, b: b_t, b_t: b, b_inv: b_inv_t, b_inv_t: b_inv}
    rules = inverse_rules([(letters[x], letters[y]) for x, y in paraunitary_pairs])
    composed_t, composed_inv = transpose_product([a, b], transposes), [a_inv, b_inv]
    return Check(
        "A, B paraunitary => A B paraunitary (both orders), all n",
        equal_modulo(composed_t + composed_inv, [1], rules) and equal_modulo(composed_inv + composed_t, [1], rules),
    )


def bcop_check(k: int, orthogonal_H: bool = True) -> Check:
    """H B(P_1, Q_1) ... B(P_{k-1}, Q_{k-1}) expanded directly is paraunitary given H^T H = I (if assumed)."""
    h, h_t = matrices("H H^T")
    ps = matrices(f"P1:{k}")
    qs = matrices(f"Q1:{k}")
    transposes = {h: h_t, h_t: h, **{x: x for x in ps + qs}}
    rules = {**idempotent_rules(ps + qs), **(inverse_rules([(h_t, h)]) if orthogonal_H else {})}
    kernel = [h] + [f for p, q in zip(ps, qs) for f in block(p, q)]
    return Check(
        f"BCOP kernel of size k = {k} is paraunitary, all n",
        is_paraunitary(kernel, (Z1, Z2), transposes, rules),
    )


def claims(full: bool) -> list[Check]:
    sizes = (2, 3, 4, 5) if full else (2, 3, 4)
    return [
        block_taps_check(BLOCK_TAPS),
        check(idempotent_rules([P, Q])),
        composition_check([("A^T", "Ai"), ("B^T", "Bi")]),
        *(bcop_check(k) for k in sizes),
    ]


def scope(full: bool) -> str:
    return f"all n (non-commutative symbols); direct BCOP expansion for k = {'2..5' if full else '2..4'}"


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
