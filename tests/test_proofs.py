"""Tests for the symbolic proofs: every theorem proves, every checker can fail, and the symbolic
BCOP kernels agree with the library's ``orthoconv.bcop_kernel`` at random exact points."""

from __future__ import annotations

import importlib
import json
import types

import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import proofs
from proofs import (
    block_paraunitary,
    channel_doubling,
    circle,
    circular_orthogonality,
    determinant_degree,
    disconnectedness,
    grassmannian,
    incompleteness_2d,
    rational,
    two_tap_completeness,
    zero_padding,
)
from proofs.cli import main
from proofs.kernels import bcop_transfer, kernel_array, taps_1d, transfer_1d
from proofs.noncommutative import idempotent_rules
from proofs.paraunitary_ideal import equations, paraunitary_basis
from proofs.result import Check, ProofResult, all_hold, run_theorem


def test_run_all_proves_every_theorem():
    results = proofs.run_all()
    assert [r.name for r in results] == [t.NAME for t in proofs.THEOREMS]
    failed = {r.name: r.detail for r in results if not r.proved}
    assert not failed, failed
    assert all(r.scope and r.statement and r.detail for r in results)


# Negative controls: each checker, given a broken hypothesis, must report "not proved".


def test_block_paraunitarity_needs_idempotent_projectors():
    P, Q = block_paraunitary.P, block_paraunitary.Q
    assert block_paraunitary.check(idempotent_rules([P, Q])).proved
    assert not block_paraunitary.check(idempotent_rules([P])).proved
    assert not block_paraunitary.check({}).proved


def test_circular_check_rejects_non_orthogonal_operators():
    counterexample = circular_orthogonality.COUNTEREXAMPLE
    assert circular_orthogonality.check(counterexample, 2).proved
    assert not circular_orthogonality.check(counterexample, 5).proved
    H, Ps, _ = circular_orthogonality.bcop_instance()
    broken = [Ps[0], sp.Matrix([[1, 1], [1, 1]])]
    assert circular_orthogonality.check(taps_1d(transfer_1d(H, Ps)), 4).proved
    assert not circular_orthogonality.check(taps_1d(transfer_1d(H, broken)), 4).proved


def _two_channel_bcop(ranks_P, ranks_Q):
    algebra = circle.circle_algebra(1 + len(ranks_P) + len(ranks_Q))
    H = circle.rotation(algebra, 0)
    Ps = [circle.projector(algebra, r, 1 + i) for i, r in enumerate(ranks_P)]
    Qs = [circle.projector(algebra, r, 1 + len(ranks_P) + i) for i, r in enumerate(ranks_Q)]
    return algebra, H, Ps, Qs


def test_determinant_check_rejects_wrong_rank_projector_and_rotation():
    algebra, H, Ps, Qs = _two_channel_bcop((1, 0), (2, 1))
    sigma = algebra.sigma
    assert determinant_degree.check(algebra, H, Ps, Qs, sigma, 3, 1).proved
    assert not determinant_degree.check(algebra, H, Ps, Qs, sigma, 2, 1).proved
    assert not determinant_degree.check(algebra, H, Ps, Qs, -sigma, 3, 1).proved
    not_idempotent = circle.matrix(algebra, [[1, 1], [1, 1]])
    assert not determinant_degree.check(algebra, H, [not_idempotent, Ps[1]], Qs, sigma, 3, 1).proved
    not_orthogonal = circle.matrix(algebra, [[1, 1], [0, 1]])
    assert not determinant_degree.check(algebra, not_orthogonal, Ps, Qs, 1, 3, 1).proved


def test_one_channel_solution_set_is_exact():
    one_hots = disconnectedness.signed_one_hots(3)
    assert disconnectedness.check(3, one_hots).proved
    assert not disconnectedness.check(3, {w for w in one_hots if sum(w) > 0}).proved
    assert not disconnectedness.check(3, one_hots | {(0, 0, 0)}).proved


def test_two_tap_completeness_needs_every_paraunitarity_equation():
    taps, _ = paraunitary_basis(2, 2)
    generators = equations(list(taps))
    assert two_tap_completeness.check(generators).proved
    assert not two_tap_completeness.check(generators[:-1]).proved
    assert not two_tap_completeness.check(generators[1:]).proved


def test_incompleteness_needs_non_commuting_projectors():
    P = incompleteness_2d.P_EXAMPLE
    assert incompleteness_2d.check(P, incompleteness_2d.Q_EXAMPLE).proved
    assert not incompleteness_2d.check(P, sp.diag(0, 1)).proved
    assert not incompleteness_2d.check(P, P).proved


def test_channel_doubling_rejects_wrong_sign_and_wrong_complement():
    algebra, H, Ps, Qs = _two_channel_bcop((2, 1), (0, 1))
    identity = circle.identity(algebra, 2)
    complements_P = [identity - P for P in Ps]
    complements_Q = [identity - Q for Q in Qs]
    assert channel_doubling.check(algebra, H, H, Ps, Qs, complements_P, complements_Q).proved
    flipped = circle.product(algebra, H, circle.matrix(algebra, [[1, 0], [0, -1]]))
    assert not channel_doubling.check(algebra, H, flipped, Ps, Qs, complements_P, complements_Q).proved
    assert not channel_doubling.check(algebra, H, H, Ps, Qs, Ps, complements_Q).proved


def test_grassmannian_check_rejects_wrong_dimension():
    assert grassmannian.check(4, 1, 3).proved
    assert grassmannian.check(4, 2, 4).proved
    assert not grassmannian.check(4, 2, 3).proved
    assert not grassmannian.check(6, 3, 6).proved


def test_zero_padding_check_rejects_two_tap_kernels():
    quarter = [sp.Matrix([[sp.Rational(3, 5)]]), sp.Matrix([[sp.Rational(4, 5)]])]
    assert not any(zero_padding.check(quarter, N, pad).proved for N in (1, 2, 3) for pad in (0, 1))
    single = [sp.zeros(2, 2), rational.orthogonal([sp.Rational(1, 2)], 2, -1)]
    assert all(zero_padding.check(single, N, 1).proved for N in (1, 2, 3))
    assert not zero_padding.check(single, 2, 0).proved


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


# Cross-check of the symbolic BCOP kernels against the library, in float64.


def _library_kernel(H, Ps, Qs):
    torch = pytest.importorskip("torch")
    orthoconv = pytest.importorskip("orthoconv")

    def tensor(M):
        return torch.tensor([[float(x) for x in row] for row in M.tolist()], dtype=torch.float64)

    return orthoconv.bcop_kernel(tensor(H), torch.stack([tensor(P) for P in Ps]), torch.stack([tensor(Q) for Q in Qs]))


def _assert_kernel_matches(library, K, size):
    torch = pytest.importorskip("torch")
    expected = torch.tensor(
        [[[[float(x) for x in row] for row in plane] for plane in out] for out in kernel_array(K, size)],
        dtype=torch.float64,
    )
    assert tuple(library.shape) == tuple(expected.shape)
    torch.testing.assert_close(library.to(torch.float64), expected, rtol=0, atol=1e-12)


small_rationals = st.fractions(min_value=-3, max_value=3, max_denominator=4).map(sp.Rational)


@st.composite
def rational_projectors(draw, n):
    """An exact symmetric projector V (V^T V)^{-1} V^T of random rank from a random integer V."""
    rank = draw(st.integers(0, n))
    entries = draw(st.lists(st.integers(-3, 3), min_size=n * rank, max_size=n * rank))
    V = sp.Matrix(n, rank, entries)
    assume(V.rank() == rank)
    return rational.projector(V)


@st.composite
def rational_bcop(draw):
    n = draw(st.integers(1, 3))
    k = draw(st.integers(2, 4))
    angles = draw(st.lists(small_rationals, min_size=n * (n - 1) // 2, max_size=n * (n - 1) // 2))
    H = rational.orthogonal(angles, n, draw(st.sampled_from([1, -1])))
    Ps = [draw(rational_projectors(n)) for _ in range(k - 1)]
    Qs = [draw(rational_projectors(n)) for _ in range(k - 1)]
    return k, H, Ps, Qs


@settings(max_examples=25, deadline=None)
@given(rational_bcop())
def test_symbolic_bcop_matches_library_at_rational_points(instance):
    k, H, Ps, Qs = instance
    _assert_kernel_matches(_library_kernel(H, Ps, Qs), bcop_transfer(H, Ps, Qs), k)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(0, 2), min_size=4, max_size=4),
    st.lists(small_rationals, min_size=5, max_size=5),
    st.sampled_from([1, -1]),
)
def test_proved_symbolic_kernel_matches_library_on_the_circle(ranks, ts, sign):
    """The symbolic 2-channel, k = 3 kernel of Theorem 3, at rational points (c_i, s_i) of the circle."""
    algebra, H, Ps, Qs = _two_channel_bcop(tuple(ranks[0::2]), tuple(ranks[1::2]))
    K = circle.bcop_kernel(algebra, H, Ps, Qs)
    point = {sp.Symbol("sigma"): sign}
    for (c, s), t in zip(algebra.angles, ts):
        point[sp.Symbol(str(c))], point[sp.Symbol(str(s))] = rational.circle_point(t)

    def at_point(M):
        return sp.Matrix([[algebra.domain.to_sympy(x).subs(point) for x in row] for row in M.to_list()])

    _assert_kernel_matches(
        _library_kernel(at_point(H), [at_point(P) for P in Ps], [at_point(Q) for Q in Qs]),
        at_point(K),
        3,
    )
