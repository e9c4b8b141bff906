"""Tests for the symbolic proofs: every theorem proves, every sub-check fails when its hypothesis is
broken (a checker that cannot fail proves nothing), and the symbolic BCOP kernels agree with the
library's ``orthoconv.bcop_kernel`` at random exact points."""

from __future__ import annotations

import importlib
import json
import types
from fractions import Fraction

import pytest
import sympy as sp

import proofs
from proofs import (
    block_paraunitary,
    certified_zero,
    channel_doubling,
    circle,
    circular_orthogonality,
    determinant_degree,
    disconnectedness,
    grassmannian,
    incompleteness_2d,
    rational,
    two_tap_completeness,
    unfactorable_2d,
    zero_padding,
)
from proofs.cli import main
from proofs.inequalities import contradictory, follows
from proofs.kernels import bcop_transfer, taps_of
from proofs.noncommutative import equal_modulo, idempotent_rules, inverse_rules, matrices, trace
from proofs.operators import circular_operator, zero_padded_operator
from proofs.paraunitary_ideal import equations, paraunitary_basis
from proofs.result import Check, ProofResult, all_hold, run_theorem


def test_run_all_proves_every_theorem():
    results = proofs.run_all()
    assert [r.name for r in results] == [t.NAME for t in proofs.THEOREMS]
    failed = {r.name: r.detail for r in results if not r.proved}
    assert not failed, failed
    assert all(r.scope and r.statement and r.detail for r in results)


# The shared machinery.


def test_rewriting_refuses_powers_it_cannot_read():
    P, Q = matrices("P Q")
    for power in (P**-1, P ** sp.Rational(1, 2), sp.exp(P)):
        with pytest.raises(ValueError, match="positive integer power"):
            equal_modulo([power], [1], {})
    assert equal_modulo([P**3 * Q], [P * Q], idempotent_rules([P]))
    assert not equal_modulo([P**3 * Q], [P * Q], {})


def test_trace_is_linear_and_cyclic_only():
    P, Q = matrices("P Q")
    n = sp.Symbol("n")
    assert trace(P * Q - Q * P, n, {}) == 0
    assert trace(1 - P, n, {}) + trace(P, n, {}) == n
    assert trace(P * P * Q, n, {}) != trace(P * Q, n, {})
    assert trace(P * P * Q, n, idempotent_rules([P])) == trace(P * Q, n, {})


def test_farkas_certificates():
    x, y = sp.symbols("x y")
    assert follows(x + y, [x, y])
    assert follows(x + y - 1, [x - 1, y])
    assert not follows(x - y, [x, y])
    assert not follows(x + y - 1, [x, y])
    assert contradictory([x - 1, -x])
    assert not contradictory([x - 1, 2 - x])


def test_krawczyk_machinery():
    x, y = sp.symbols("x y")
    system = certified_zero.quadratic_system([x**2 + y**2 - 1, x - y], [x, y])
    center, proved = certified_zero.certify(system, [Fraction(7, 10), Fraction(7, 10)], Fraction(1, 10**20))
    assert proved and abs(center[0] ** 2 - Fraction(1, 2)) < Fraction(1, 10**20)
    Y = certified_zero.inverse(certified_zero.jacobian(system, center))
    assert not certified_zero.krawczyk(system, [center[0] + Fraction(1, 10**10), center[1]], Fraction(1, 10**20), Y)
    with pytest.raises(ValueError, match="degree 3"):
        certified_zero.quadratic_system([x**3, y], [x, y])
    with pytest.raises(ValueError, match="2 equations in 1 unknowns"):
        certified_zero.quadratic_system([x, x], [x])
    with pytest.raises(ValueError, match="singular"):
        certified_zero.inverse([[Fraction(1), Fraction(2)], [Fraction(2), Fraction(4)]])


# Negative controls: each sub-check, given a broken hypothesis, must report "not proved".


def test_theorem_1_block_paraunitarity():
    P, Q = block_paraunitary.P, block_paraunitary.Q
    assert block_paraunitary.check(idempotent_rules([P, Q])).proved
    assert not block_paraunitary.check(idempotent_rules([P])).proved
    assert not block_paraunitary.check({}).proved
    swapped = dict(block_paraunitary.BLOCK_TAPS)
    swapped[0, 1], swapped[1, 0] = swapped[1, 0], swapped[0, 1]
    assert block_paraunitary.block_taps_check(block_paraunitary.BLOCK_TAPS).proved
    assert not block_paraunitary.block_taps_check(swapped).proved
    assert block_paraunitary.composition_check([("A^T", "Ai"), ("B^T", "Bi")]).proved
    assert not block_paraunitary.composition_check([("A^T", "Ai")]).proved
    assert block_paraunitary.bcop_check(2).proved
    assert not block_paraunitary.bcop_check(2, orthogonal_H=False).proved


def test_theorem_2_circular_orthogonality():
    co = circular_orthogonality
    counterexample = co.COUNTEREXAMPLE
    assert co.check(counterexample, 2).proved and not co.check(counterexample, 5).proved
    assert co.laurent_gram_check(2).proved and not co.laurent_gram_check(2, symmetric_taps=True).proved
    assert co.shift_pair_check(lambda s, p: s**-p).proved
    assert not co.shift_pair_check(lambda s, p: s**p).proved
    assert co.operator_identity_check(1, 2, range(1, 4)).proved
    assert not co.operator_identity_check(1, 2, range(1, 4), lambda taps, N: zero_padded_operator(taps, N, 0)).proved
    H, Ps, Qs = co.bcop_instance()
    assert co.instance_check((H, Ps, Qs), range(1, 4), range(1, 2)).proved
    assert not co.instance_check((H, [Ps[0], sp.Matrix([[1, 1], [1, 1]])], Qs), range(1, 4), range(1, 2)).proved
    d, d2, k, N = sp.symbols("d d' k N", integer=True)
    bounds = [k - 1 - d, d + k - 1, k - 1 - d2, d2 + k - 1, N]
    assert co.disjoint_support_check(bounds + [N - 2 * k + 1]).proved
    assert not co.disjoint_support_check(bounds + [N - 2 * k + 2]).proved
    assert co.support_check(3, lambda k_: 2 * k_ - 1).proved
    assert not co.support_check(3, lambda k_: 2 * k_ - 2).proved
    assert co.extraction_check(2, 2, (3, 4)).proved and not co.extraction_check(2, 2, (2,)).proved
    assert all(c.proved for c in co.counterexample_checks(counterexample, 3))
    minus = [counterexample[0], counterexample[1], -counterexample[2]]
    assert [c.proved for c in co.counterexample_checks(minus, 3)] == [False, False, False, True]
    assert [c.proved for c in co.counterexample_checks(counterexample, 2)] == [True, True, True, False]


def test_theorem_3_determinant_check_rejects_wrong_rank_projector_and_rotation():
    algebra, H, Ps, Qs = circle.generic_factors((1, 0), (2, 1))
    sigma = algebra.sigma
    def verdicts(*args):
        return [c.proved for c in determinant_degree.check(algebra, *args)]

    assert verdicts(H, Ps, Qs, sigma, 3, 1) == [True] * 4
    assert verdicts(H, Ps, Qs, -sigma, 3, 1) == [False, True, True, True]
    assert verdicts(H, Ps, Qs, sigma, 2, 1) == [False, True, False, True]
    assert verdicts(H, Ps, Qs, sigma, 3, 2) == [False, True, True, False]
    not_orthogonal = circle.matrix(algebra, [[1, 1], [0, 1]])
    assert verdicts(not_orthogonal, Ps, Qs, 1, 3, 1)[1] is False
    not_idempotent = circle.matrix(algebra, [[1, 1], [1, 1]])
    assert not all(verdicts(H, [not_idempotent, Ps[1]], Qs, sigma, 3, 1))


def test_theorem_3_general_steps():
    dd = determinant_degree
    (P,) = matrices("P")
    U, Ut, D = matrices("U U^T D")
    K, Kt = matrices("K K~")
    n, r = sp.symbols("n r")
    assert dd.factor_log_derivative_check(idempotent_rules([P])).proved
    assert not dd.factor_log_derivative_check({}).proved
    orthogonal_U = inverse_rules([(U, Ut)])
    assert dd.spectral_form_check({**idempotent_rules([D]), **orthogonal_U}).proved
    assert not dd.spectral_form_check(idempotent_rules([D])).proved
    assert dd.block_determinant_check(sp.diag(1, 0), (r, n - r)).proved
    assert not dd.block_determinant_check(sp.diag(1, 0), (n - r, r)).proved
    assert not dd.block_determinant_check(sp.Matrix([[1, 1], [0, 0]]), (r, n - r)).proved
    assert all(c.proved for c in dd.factor_determinant_checks(lambda n_, rank: n_ - rank))
    assert not any(c.proved for c in dd.factor_determinant_checks(lambda n_, rank: rank))
    assert dd.log_derivative_step_check(inverse_rules([(Kt, K)])).proved
    assert not dd.log_derivative_step_check({}).proved
    assert dd.trace_step_check(idempotent_rules([P])).proved and not dd.trace_step_check({}).proved
    assert dd.constant_coefficient_check(sp.diff).proved
    assert not dd.constant_coefficient_check(lambda expr, z: expr).proved
    assert dd.tap_sum_check(lambda X, z: X + (1 - X) * z).proved
    assert not dd.tap_sum_check(lambda X, z: X * z).proved
    generating = equations(list(paraunitary_basis(2, 2)[0]))
    assert dd.general_degree_check(generating).proved
    assert not dd.general_degree_check(generating[:-1]).proved


def test_theorem_4_disconnectedness():
    dc = disconnectedness
    one_hots = dc.signed_one_hots(3)
    assert dc.check(3, one_hots).proved
    assert not dc.check(3, {w for w in one_hots if sum(w) > 0}).proved
    assert not dc.check(3, one_hots | {(0, 0, 0)}).proved
    p, q, p2, q2 = sp.symbols("p q p' q'", integer=True)
    same_shift = [(q2 - p2) - (q - p), (q - p) - (q2 - p2)]
    assert dc.support_check([p2 - p, q - q2] + same_shift).proved
    assert not dc.support_check([q - q2] + same_shift).proved
    assert dc.one_hot_check(sp.Integer(-1)).proved and not dc.one_hot_check(sp.I).proved
    assert dc.one_hot_invariants_check(4, lambda w: (sum(w), sum(p_ * x**2 for p_, x in enumerate(w)))).proved
    assert not dc.one_hot_invariants_check(4, lambda w: sum(p_ * x**2 for p_, x in enumerate(w))).proved
    A, n = sp.symbols("A n", integer=True)
    assert all(c.proved for c in dc.sumset_checks([A, n], n, A + n))
    assert [c.proved for c in dc.sumset_checks([A, n], n - 1, A + n)] == [False, True, True]
    assert [c.proved for c in dc.sumset_checks([A, n], n, A + n - 1)] == [True, False, True]
    assert [c.proved for c in dc.sumset_checks([A, n], n, A + n + 1)] == [True, True, False]
    assert dc.class_count_check(2, 3, lambda n_, k_: (k_ - 1) * n_).proved
    assert not dc.class_count_check(2, 3, lambda n_, k_: k_ * n_).proved
    assert dc.overlap_check(2, 3, dc.canonical).proved
    late = lambda n_, a, z: sp.diag(*[z ** (a // n_ + (1 if j >= n_ - a % n_ else 0)) for j in range(n_)])  # noqa: E731
    assert not dc.overlap_check(2, 3, late).proved
    assert dc.complementary_pair_check(idempotent_rules(matrices("P"))).proved
    assert not dc.complementary_pair_check({}).proved


def test_theorem_5_each_identity_needs_the_paraunitarity_equations():
    taps, _ = paraunitary_basis(2, 2)
    generators = equations(list(taps))
    assert all(c.proved for c in two_tap_completeness.check(generators))
    failing = set()
    for drop in range(len(generators)):
        remaining = generators[:drop] + generators[drop + 1 :]
        failing |= {c.claim for c in two_tap_completeness.check(remaining) if not c.proved}
    assert failing == {c.claim for c in two_tap_completeness.check(generators)}


def test_theorem_6_incompleteness_of_size_two():
    ic = incompleteness_2d
    P, Q, I = ic.P_EXAMPLE, ic.Q_EXAMPLE, sp.eye(2)
    assert ic.check(P, Q).proved
    assert not ic.check(P, sp.diag(0, 1)).proved and not ic.check(P, P).proved
    assert all(c.proved for c in ic.example_checks(P, Q))
    assert [c.proved for c in ic.example_checks(P, sp.diag(0, 1))] == [False, True, False]
    assert [c.proved for c in ic.example_checks(P, sp.Matrix([[1, 1], [0, 0]]))] == [False, False, True]
    assert ic.structural_check(lambda X, z: X + (1 - X) * z).proved
    assert not ic.structural_check(lambda X, z: X * z + (1 - X)).proved
    assert ic.size_three_check(I, [I, P], [Q, I]).proved
    assert not ic.size_three_check(I, [P, I], [I, Q]).proved


def test_theorem_7_unfactorable_kernel():
    uf = unfactorable_2d
    (X,) = matrices("X")
    assert uf.peel_check(idempotent_rules([X])).proved and not uf.peel_check({}).proved
    z1, z2 = uf.Z1, uf.Z2
    assert uf.gram_identity_check(z1**2 * z2**2).proved
    assert not uf.gram_identity_check(z1**2 * z2**2 + z1).proved
    assert uf.symmetry_check(uf.SHIFTS).proved
    assert not uf.symmetry_check(uf.SHIFTS[:-1]).proved
    assert not uf.symmetry_check(uf.SHIFTS[:-1] + [(0, -1)]).proved
    coefficients = uf.autocorrelation(uf.polynomial(uf.F_COEFFICIENTS), uf.polynomial(uf.G_COEFFICIENTS))
    energy_minus_one = [coefficients[d].subs(uf.FIXED) + (2 if d == (0, 0) else 0) for d in uf.SHIFTS]
    no_real_zero = certified_zero.quadratic_system(energy_minus_one, uf.UNKNOWNS)  # sum of squares = -1
    assert not uf.certified_solution(no_real_zero, uf.START, uf.RADIUS)[1]
    assert uf.check(uf.kernel_taps(), uf.RADIUS).proved
    H, Ps, Qs = circular_orthogonality.bcop_instance()
    taps = taps_of(bcop_transfer(H, Ps, Qs))
    bcop = {e: [[Fraction(str(x)) for x in taps.get(e, sp.zeros(2)).tolist()[i]] for i in range(2)] for e in taps}
    assert not uf.check(bcop, uf.RADIUS).proved


def test_theorem_8_channel_doubling():
    cd = channel_doubling
    both_P = lambda X: sp.diag(X, X)  # noqa: E731
    assert cd.step_check(cd.complement_double).proved and not cd.step_check(both_P).proved
    assert cd.projector_check(cd.complement_double).proved and not cd.projector_check(both_P).proved
    H, H2 = matrices("H H''")
    sigma = sp.Symbol("sigma")
    assert cd.determinant_check(sp.diag(H, H2), {H: sigma, H2: sigma}).proved
    assert not cd.determinant_check(sp.diag(H, H2), {H: sigma, H2: -sigma}).proved
    assert not cd.determinant_check(sp.Matrix([[H, H2], [0, H2]]), {H: sigma, H2: sigma}).proved
    assert cd.converse_block_check(cd.block_transpose).proved
    assert not cd.converse_block_check(lambda At, Bt, Ct, Dt: sp.Matrix([[At, Bt], [Ct, Dt]])).proved
    assert cd.converse_check(1, 2).proved and not cd.converse_check(1, 2, swap_off_diagonal=True).proved
    algebra, H, Ps, _ = circle.generic_factors((2, 1, 0), ())
    identity = circle.identity(algebra, 2)
    doubled = [circle.block_diagonal(algebra, P, identity - P) for P in Ps]
    assert all(c.proved for c in cd.check(algebra, H, H, doubled))
    flipped = circle.product(algebra, H, circle.matrix(algebra, [[1, 0], [0, -1]]))
    assert [c.proved for c in (cd.check(algebra, H, flipped, doubled))] == [True, True, False]
    same = [circle.block_diagonal(algebra, P, P) for P in Ps]
    assert [c.proved for c in (cd.check(algebra, H, H, same))] == [True, False, True]
    skew = [circle.block_diagonal(algebra, Ps[1], circle.matrix(algebra, [[1, 1], [0, 0]]))]
    assert [c.proved for c in (cd.check(algebra, H, H, skew))] == [False, True, True]


def test_theorem_9_grassmannian():
    gr = grassmannian
    n, r = sp.symbols("n r", real=True)
    assert gr.maximum_check(r * (2 * n - r)).proved and not gr.maximum_check(r * (2 * n - r) + r).proved
    assert gr.block_tangent_check(sp.diag(1, 0)).proved
    assert not gr.block_tangent_check(sp.diag(1, 1)).proved
    assert gr.factor_sum_check(r * (2 * n - r)).proved and not gr.factor_sum_check(r * (n - r)).proved
    assert gr.check(4, 1, 3).proved and gr.check(4, 2, 4).proved
    assert not gr.check(4, 2, 3).proved and not gr.check(6, 3, 6).proved
    assert gr.component_dimension_check(2, lambda r_, m: r_ * (m - r_)).proved
    assert not gr.component_dimension_check(2, lambda r_, m: r_ * (m - r_) + r_).proved


def test_theorem_10_zero_padding():
    zp = zero_padding
    columns = [zp.J, zp.N - 1 - zp.J]
    assert all(c.proved for c in zp.index_set_checks(zp.SIZES, columns))
    one_short = [zp.N - zp.K + 1, zp.PAD, zp.K - 1 - zp.PAD]
    assert [c.proved for c in zp.index_set_checks(one_short, columns)] == [False, False, False, True]
    assert [c.proved for c in zp.index_set_checks(zp.SIZES, [zp.J])] == [True, True, True, False]
    quarter = [sp.Matrix([[sp.Rational(3, 5)]]), sp.Matrix([[sp.Rational(4, 5)]])]
    assert not any(zp.check(quarter, N, pad).proved for N in (1, 2, 3) for pad in (0, 1))
    single = [sp.zeros(2, 2), rational.orthogonal([sp.Rational(1, 2)], 2, -1)]
    assert all(zp.check(single, N, 1).proved for N in (1, 2, 3))
    assert not zp.check(single, 2, 0).proved
    assert zp.norm_loss_checks(1, 3, 2).proved and not zp.norm_loss_checks(1, 3, 2, circular_operator).proved
    assert zp.single_tap_check(1, 3).proved and not zp.single_tap_check(1, 3, lambda pad: pad + 1).proved
    assert zp.two_tap_example_check([sp.diag(1, 0), sp.diag(0, 1)]).proved
    assert not zp.two_tap_example_check([sp.zeros(2), sp.eye(2)]).proved


# The result type and the runner.


def test_runner_reports_failures_and_exceptions():
    assert run_theorem("t", "s", "c", lambda: [Check("a", True)]).proved
    assert not run_theorem("t", "s", "c", lambda: [Check("a", True), Check("b", False)]).proved
    assert not run_theorem("t", "s", "c", lambda: []).proved

    def crashes():
        raise ZeroDivisionError("boom")

    crashed = run_theorem("t", "s", "c", crashes)
    assert not crashed.proved and "ZeroDivisionError" in crashed.detail
    assert not all_hold("none", []).proved
    assert "b" in all_hold("ab", [Check("a", True), Check("b", False)]).claim


def test_proof_result_is_frozen():
    result = ProofResult("t", "s", "c", True, 0.0, "")
    with pytest.raises(AttributeError):
        result.proved = False


def _fake_theorem(name: str, proved: bool) -> types.SimpleNamespace:
    result = ProofResult(name, "statement", "scope", proved, 0.5, "ok      claim")
    return types.SimpleNamespace(NAME=name, prove=lambda full=False: result)


def test_cli_exit_code_lines_and_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(proofs, "THEOREMS", [_fake_theorem("first", True), _fake_theorem("second", True)])
    out = tmp_path / "results.json"
    assert main(["--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["first", "PROVED"] and lines[1].split()[:2] == ["second", "PROVED"]
    written = json.loads(out.read_text())
    assert [r["name"] for r in written] == ["first", "second"]
    assert set(written[0]) == {"name", "statement", "scope", "proved", "seconds", "detail"}

    monkeypatch.setattr(proofs, "THEOREMS", [_fake_theorem("first", True), _fake_theorem("second", False)])
    assert main([]) == 1
    assert "second                   FAILED" in capsys.readouterr().out


def test_main_module_is_importable_for_the_console_script():
    assert importlib.import_module("proofs.__main__").main is main
