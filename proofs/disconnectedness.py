"""Theorem 4 (disconnectedness and the number of components).

For a BCOP kernel the triple (det H, a, b) of Theorem 3 equals
(det K(1, 1), sum_pq p ||W_pq||^2, sum_pq q ||W_pq||^2): polynomial, hence continuous, functions of
the kernel with values in {-1, 1} x Z x Z. A continuous function into a discrete set is constant on
connected components, so kernels with different invariants lie in different components. Moreover:

  (a) n = 1, 1-D, every k: the real solutions of the paraunitarity equations
      sum_p w_p w_{p+d} = delta_{d0} (d = 0..k-1) are exactly the 2k signed one-hot kernels
      +-e_p, so the 1-D orthogonal convolutions of size k over one channel have
      2k = 2(k-1) n + 2 components (isolated points).
  (b) Every n, k: a = sum_i (n - rank P_i) takes exactly the values 0..(k-1)n, so 1-D BCOP has
      2((k-1)n + 1) classes (det H, a) (the paper's count of components) and 2-D BCOP has
      2((k-1)n + 1)^2 classes (det H, a, b).
  (c) Class overlap: all rank tuples with the same a share a kernel. With diagonal projectors whose
      zero diagonal entries are placed round-robin (factor i puts its n - rank P_i zeros on the next
      coordinates modulo n), the product of the factors is diag(z^{m_j}) with
      m_j = floor(a/n) + [j < a mod n], which depends on a only; the same holds per variable in 2-D.
      For n = 2, k = 3 (1-D), the tuples (2, 0), (0, 2), (1, 1) with a = 2 all give H z, because
      (P + (I-P) z)((I-P) + P z) = z I for every projector P (any n).

Each rank tuple's parameter set (a component of O(n) times Grassmannians) is connected and its
images overlap at the common kernel, so each class is connected: BCOP has exactly that many
components. That every 1-D orthogonal convolution is a BCOP (Kautsky & Turcajova 1994) is proved
here only for n = 1 (a) and for k = 2, n = 2 (Theorem 5).

(Li et al., NeurIPS 2019, arXiv 1911.00937, theorem on connected components.)

Proof. (a) If the support of w runs from p to q > p, the coefficient of z^(q-p) in K(z) K(1/z) is
w_p w_q: a pair p <= p' <= q' <= q with q' - p' = q - p must be (p, q), a Farkas certificate for
symbolic p, q, p', q' (:mod:`proofs.inequalities`). Paraunitarity makes it 0, so the support is one
tap p and w_p^2 = 1; conversely (+-z^p)(+-z^-p) = 1 for symbolic p. Cross-check: the lex Groebner
basis of the equations has exactly the 2k one-hot kernels as its solutions for small k.
(b) Induction on k with sum sets: the deficits of one factor are {n - r : 0 <= r <= n} = [0, n],
and [0, A] + [0, n] = [0, A + n] (both inclusions by Farkas certificates, the second split at
t <= A and t >= A + 1), so k - 1 factors give [0, (k-1)n]; the 2-D invariants a and b range
independently. Cross-check: enumeration for n <= 3, k <= 4. (c) Checked for n <= 3, k <= 4 (5 with
--full); the complementary pair identity for every n. The topology (continuity, connectedness of
O(n)^{+-} and of Grassmannians) is standard and argued, not machine-checked.
"""

from __future__ import annotations

import itertools

import sympy as sp

from .inequalities import follows
from .noncommutative import equal_modulo, idempotent_rules, matrices
from .result import Check, ProofResult, all_hold, run_theorem

NAME = "disconnectedness"
STATEMENT = (
    "(det H, a, b) are continuous and discrete, so they separate components; 1-D: 2(k-1)n + 2 "
    "classes (n = 1: exactly the 2k signed one-hot kernels), 2-D BCOP: 2((k-1)n + 1)^2 classes"
)


def signed_one_hots(k: int) -> set[tuple[int, ...]]:
    return {tuple(sign if q == p else 0 for q in range(k)) for p in range(k) for sign in (1, -1)}


def one_channel_solutions(k: int) -> set[tuple[sp.Expr, ...]]:
    """All complex solutions of sum_p w_p w_{p+d} = delta_{d0}, d = 0..k-1 (lex Groebner basis)."""
    w = sp.symbols(f"w0:{k}")
    equations = [sum(w[p] * w[p + d] for p in range(k - d)) - (1 if d == 0 else 0) for d in range(k)]
    basis = sp.groebner(equations, *w, order="lex")
    if basis.exprs == [1]:
        return set()
    return {tuple(solution) for solution in sp.solve_poly_system(basis.exprs, *w)}


def check(k: int, expected: set[tuple[int, ...]]) -> Check:
    """The one-channel orthogonal convolutions of size k are exactly the kernels in `expected`."""
    return Check(
        f"n = 1, k = {k}: the orthogonal kernels are exactly {len(expected)} points",
        one_channel_solutions(k) == expected,
    )


def one_hot_invariants_check(k: int, invariant) -> Check:
    """invariant(w) (= (det K(1), sum_p p w_p^2)) separates the 2k signed one-hot kernels."""
    invariants = {invariant(w) for w in signed_one_hots(k)}
    return Check(f"n = 1, k = {k}: the 2k one-hot kernels have 2k distinct invariants (s, a)", len(invariants) == 2 * k)


def deficits(n: int, k: int) -> set[int]:
    """{sum_i (n - r_i) : 0 <= r_i <= n} over k - 1 factors."""
    return {sum(n - r for r in ranks) for ranks in itertools.product(range(n + 1), repeat=k - 1)}


def support_check(hypotheses: list[sp.Expr]) -> Check:
    """Under the hypotheses (p <= p', q' <= q, q' - p' = q - p), the pair (p', q') is (p, q)."""
    p, q, p2, q2 = sp.symbols("p q p' q'", integer=True)
    return Check(
        "all k, n = 1: the coefficient of z^(q-p) in K(z) K(1/z) is w_p w_q (p, q the ends of the support)",
        all(follows(c, hypotheses) for c in (p - p2, q2 - q)),
    )


def one_hot_check(sign: sp.Expr) -> Check:
    """(sign z^p)(sign z^-p) = 1 for symbolic p: every signed one-hot kernel is paraunitary."""
    z = sp.Symbol("z", positive=True)
    p = sp.Symbol("p", integer=True)
    return Check("all k: +-e_p is paraunitary, (+-z^p)(+-z^-p) = 1", sp.powsimp(sign * z**p * sign * z**-p) == 1)


def sumset_checks(hypotheses: list[sp.Expr], factor_top: sp.Expr, sum_top: sp.Expr) -> list[Check]:
    """One factor's deficits are [0, factor_top] and [0, A] + [0, n] = [0, sum_top], given the hypotheses.

    The proof uses factor_top = n and sum_top = A + n, with hypotheses A >= 0, n >= 0.
    """
    A, n, r, x, y, t = sp.symbols("A n r x y t", integer=True)
    return [
        Check(
            "one factor's deficits {n - r : 0 <= r <= n} are [0, n]",
            all(follows(c, hypotheses + [r, n - r]) for c in (n - r, factor_top - (n - r)))
            and all(follows(c, hypotheses + [x, factor_top - x]) for c in (n - x, x)),
        ),
        Check(
            "[0, A] + [0, n] is inside [0, A + n]",
            all(follows(c, hypotheses + [x, A - x, y, n - y]) for c in (x + y, sum_top - x - y)),
        ),
        Check(
            "[0, A + n] is inside [0, A] + [0, n]: t = t + 0 for t <= A, t = A + (t - A) for t >= A + 1",
            all(follows(c, hypotheses + [t, A - t]) for c in (t, A - t, n))
            and all(follows(c, hypotheses + [t - A - 1, sum_top - t]) for c in (A, t - A, n - (t - A))),
        ),
    ]


def class_count_check(max_n: int, max_k: int, top) -> Check:
    """The deficits of k - 1 factors are exactly 0..top(n, k) (= (k-1) n), by enumeration."""
    counts = all(
        deficits(n_, k_) == set(range(top(n_, k_) + 1))
        for n_ in range(1, max_n + 1)
        for k_ in range(1, max_k + 1)
    )
    return Check(f"enumerated: a ranges over 0..(k-1)n for n <= {max_n}, k <= {max_k}", counts)


def round_robin_projectors(n: int, ranks: tuple[int, ...]) -> list[sp.Matrix]:
    """Diagonal projectors of the given ranks whose zeros are placed cyclically, continuing from the last."""
    projectors, start = [], 0
    for r in ranks:
        zeros = {(start + t) % n for t in range(n - r)}
        projectors.append(sp.diag(*[0 if j in zeros else 1 for j in range(n)]))
        start = (start + n - r) % n
    return projectors


def canonical(n: int, a: int, z: sp.Symbol) -> sp.Matrix:
    """diag(z^{m_j}) with m_j = floor(a/n) + [j < a mod n]."""
    return sp.diag(*[z ** (a // n + (1 if j < a % n else 0)) for j in range(n)])


def overlap_check(max_n: int, max_k: int, target) -> Check:
    """Every 1-D rank tuple realizes target(n, a, z) (= canonical); hence 2-D tuples do so per variable."""
    z = sp.Symbol("z")
    holds = True
    for n in range(1, max_n + 1):
        for k in range(1, max_k + 1):
            for ranks in itertools.product(range(n + 1), repeat=k - 1):
                product = sp.eye(n)
                for P in round_robin_projectors(n, ranks):
                    product = sp.expand(product * (P + (sp.eye(n) - P) * z))
                holds &= product == target(n, sum(n - r for r in ranks), z)
    return Check(
        f"round-robin diagonal projectors: every rank tuple with deficit a gives diag(z^m_j(a)); "
        f"n <= {max_n}, k <= {max_k}",
        holds,
    )


def complementary_pair_check(rules: dict) -> Check:
    """(P + (I-P) z)((I-P) + P z) = z I modulo the rules (P^2 = P), for every size."""
    (P,) = matrices("P")
    z = sp.Symbol("z")
    return Check(
        "n = 2, k = 3, a = 2: ranks (1,1) with (P, I-P), (2,0), (0,2) all give H z; "
        "(P + (I-P)z)((I-P) + Pz) = z I, all n",
        equal_modulo([P + (1 - P) * z, (1 - P) + P * z], [z], rules),
    )


def claims(full: bool) -> list[Check]:
    p, q, p2, q2 = sp.symbols("p q p' q'", integer=True)
    A, n = sp.symbols("A n", integer=True)
    max_k = 5 if full else 4
    return [
        support_check([p2 - p, q - q2, (q2 - p2) - (q - p), (q - p) - (q2 - p2)]),
        one_hot_check(sp.Integer(-1)),
        all_hold(
            f"cross-check n = 1: exactly the 2k signed one-hot kernels, k = 1..{max_k}",
            (check(k, signed_one_hots(k)) for k in range(1, max_k + 1)),
        ),
        one_hot_invariants_check(max_k, lambda w: (sum(w), sum(p * x**2 for p, x in enumerate(w)))),
        all_hold("all n, k: a ranges over [0, (k-1)n] by induction on k", sumset_checks([A, n], n, A + n)),
        class_count_check(3, 4, lambda n_, k_: (k_ - 1) * n_),
        overlap_check(3, 5 if full else 4, canonical),
        complementary_pair_check(idempotent_rules(matrices("P"))),
    ]


def scope(full: bool) -> str:
    return (
        f"(a) n = 1, every k (Groebner cross-check k <= {5 if full else 4}); (b) class counts every n, k; "
        f"(c) overlap n <= 3, k <= {5 if full else 4} (complementary pair all n); topology argued"
    )


def prove(full: bool = False) -> ProofResult:
    return run_theorem(NAME, STATEMENT, scope(full), lambda: claims(full))
