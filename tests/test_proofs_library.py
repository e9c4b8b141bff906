"""The symbolic BCOP kernels of the proofs agree with the library's ``orthoconv.bcop_kernel`` at random exact
points (float64), so what the proofs establish is about the kernels the library computes."""

from __future__ import annotations

import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proofs import circle, rational
from proofs.kernels import bcop_transfer, kernel_array


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
    algebra, H, Ps, Qs = circle.generic_factors(tuple(ranks[0::2]), tuple(ranks[1::2]))
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
