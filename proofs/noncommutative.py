"""Matrices of unknown size as non-commutative symbols, with relations applied by word rewriting.

A matrix of any size n is modelled by a non-commutative sympy symbol; a scalar (or an identity
matrix) is a commutative expression, so ``1`` stands for I and ``z`` for z I. A polynomial in these
symbols is a sum of commutative coefficients times words. A relation such as P^2 = P, or
A(z)^T A(1/z) = I, becomes a rule that replaces a pair of adjacent letters by a shorter word.

Every rule shortens a word, so rewriting terminates. The rule sets used in these proofs only overlap
as P P P (both ways give P) and as A B A with A B -> 1 and B A -> 1 (both ways give A), so the
normal form of a word does not depend on the order in which rules fire. Two polynomials are therefore
equal modulo the relations when their normal forms coincide, and an identity proved this way holds
for every n and every matrix satisfying the relations: substituting matrices for the letters is an
algebra homomorphism from the free algebra modulo the relations.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import sympy as sp

Word = tuple[sp.Symbol, ...]
Rules = Mapping[tuple[sp.Symbol, sp.Symbol], Word]


def matrices(names: str) -> tuple[sp.Symbol, ...]:
    """Non-commutative symbols standing for matrices of an arbitrary common size."""
    return tuple(sp.symbols(names, commutative=False, seq=True))


def idempotent_rules(symbols: Iterable[sp.Symbol]) -> dict[tuple[sp.Symbol, sp.Symbol], Word]:
    """P P -> P for each symbol: the relation P^2 = P."""
    return {(p, p): (p,) for p in symbols}


def inverse_rules(
    pairs: Iterable[tuple[sp.Symbol, sp.Symbol]],
) -> dict[tuple[sp.Symbol, sp.Symbol], Word]:
    """A B -> 1 and B A -> 1 for each pair (A, B): B is the two-sided inverse of A."""
    rules: dict[tuple[sp.Symbol, sp.Symbol], Word] = {}
    for a, b in pairs:
        rules[(a, b)] = ()
        rules[(b, a)] = ()
    return rules


def split_term(term: sp.Expr) -> tuple[sp.Expr, Word]:
    """Split a monomial into its commutative coefficient and its word of matrix letters.

    Only positive integer powers of a letter are words; P**-1 or P**(1/2) name matrices that the
    relations know nothing about, so they raise ValueError instead of being read as some word.
    """
    commutative, letters = term.args_cnc()
    word: list[sp.Symbol] = []
    for factor in letters:
        base, exponent = factor.as_base_exp()
        if not (base.is_Symbol and exponent.is_Integer and exponent > 0):
            raise ValueError(f"split_term: {factor} is not a positive integer power of a matrix letter")
        word.extend([base] * int(exponent))
    return sp.Mul(*commutative), tuple(word)


def rewrite(word: Word, rules: Rules) -> Word:
    """Normal form of a word: apply the pair rules until none matches."""
    letters = list(word)
    i = 0
    while i < len(letters) - 1:
        pair = (letters[i], letters[i + 1])
        if pair in rules:
            letters[i : i + 2] = rules[pair]
            i = max(i - 1, 0)
        else:
            i += 1
    return tuple(letters)


def _accumulate(poly: dict[Word, sp.Expr], word: Word, coefficient: sp.Expr) -> None:
    total = sp.expand(poly.get(word, sp.S.Zero) + coefficient)
    if total == 0:
        poly.pop(word, None)
    else:
        poly[word] = total


def terms(expr: sp.Expr, rules: Rules) -> dict[Word, sp.Expr]:
    """Normal form of an expression as {word: nonzero commutative coefficient}."""
    poly: dict[Word, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        coefficient, word = split_term(term)
        _accumulate(poly, rewrite(word, rules), coefficient)
    return poly


def normal_form(factors: Sequence[sp.Expr], rules: Rules) -> dict[Word, sp.Expr]:
    """Normal form of the product factors[0] factors[1] ..., reduced after every multiplication.

    Reducing early is sound because rewriting is compatible with multiplication, and it keeps
    telescoping products such as F(z)^T F(1/z) small.
    """
    poly: dict[Word, sp.Expr] = {(): sp.S.One}
    for factor in factors:
        right = terms(factor, rules)
        product: dict[Word, sp.Expr] = {}
        for left_word, left_coefficient in poly.items():
            for right_word, right_coefficient in right.items():
                _accumulate(product, rewrite(left_word + right_word, rules), left_coefficient * right_coefficient)
        poly = product
    return poly


def equal_modulo(lhs: Sequence[sp.Expr], rhs: Sequence[sp.Expr], rules: Rules) -> bool:
    """Whether the products of the factor lists lhs and rhs are equal modulo the rules."""
    left, right = normal_form(lhs, rules), normal_form(rhs, rules)
    return all(sp.expand(left.get(word, 0) - right.get(word, 0)) == 0 for word in set(left) | set(right))


def trace(expr: sp.Expr, size: sp.Expr, rules: Rules) -> sp.Expr:
    """tr of a polynomial in matrix letters of size `size`: tr(1) = size, tr of a word is a symbol.

    The trace is linear and tr(X_1 X_2 ... X_m) = tr(X_2 ... X_m X_1), so a word's symbol is named
    after its least rotation: tr(PQ) and tr(QP) are the same symbol. Equal results therefore prove
    equal traces for every size; different results prove nothing (the rules act on the word before
    rotation, so some equal traces may print differently).
    """
    total = sp.S.Zero
    for word, coefficient in terms(expr, rules).items():
        if not word:
            total += coefficient * size
            continue
        names = [str(letter) for letter in word]
        least = min(names[i:] + names[:i] for i in range(len(names)))
        total += coefficient * sp.Symbol("tr(" + " ".join(least) + ")")
    return sp.expand(total)


def transpose(expr: sp.Expr, transposes: Mapping[sp.Symbol, sp.Symbol]) -> sp.Expr:
    """(X_1 ... X_m)^T = X_m^T ... X_1^T; every letter must have an entry (P: P when symmetric)."""
    total = sp.S.Zero
    for term in sp.Add.make_args(sp.expand(expr)):
        coefficient, word = split_term(term)
        total += coefficient * sp.Mul(*(transposes[letter] for letter in reversed(word)))
    return total


def transpose_product(factors: Sequence[sp.Expr], transposes: Mapping[sp.Symbol, sp.Symbol]) -> list[sp.Expr]:
    """(F_1 ... F_m)^T as the factor list F_m^T, ..., F_1^T."""
    return [transpose(factor, transposes) for factor in reversed(factors)]
