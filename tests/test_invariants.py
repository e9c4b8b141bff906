"""Component invariants, class sampling and the 2n embedding (Li et al. 2019, arXiv 1911.00937).

References used here are independent of the code under test: the ranks the kernel was built from,
the phase of ``det K`` unwrapped along circles of the torus (numpy), ``det`` multiplicativity under
composition, and the layer's own kernel map.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from orthoconv import BCOP, bcop_kernel, compose_kernels
from orthoconv.invariants import (
    ComponentInvariants,
    bcop_invariants,
    component_invariants,
    count_invariant_classes,
    default_tolerance,
    determinant_coefficients,
    embed_2n,
    sample_bcop_factors,
)


@st.composite
def bcop_classes(draw, max_n: int = 4, max_k: int = 4):
    """``(n, k, p_ranks, q_ranks, sign, seed)`` of a BCOP parameter class."""
    n, k = draw(st.integers(1, max_n)), draw(st.integers(1, max_k))
    ranks = st.lists(st.integers(0, n), min_size=k - 1, max_size=k - 1)
    return n, k, draw(ranks), draw(ranks), draw(st.sampled_from([1, -1])), draw(st.integers(0, 2**31 - 1))


def make_kernel(n, k, p_ranks, q_ranks, sign, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    H, Ps, Qs = sample_bcop_factors(n, k, p_ranks, q_ranks, sign, generator, dtype)
    return bcop_kernel(H, Ps, Qs), (H, Ps, Qs)


def unwrapped_winding(kernel: torch.Tensor, axis: int, points: int = 2048) -> float:
    """Total phase change / 2 pi of ``theta -> det K(e^{i theta}, w)`` (axis 0) or ``det K(w, e^{i theta})``
    (axis 1), ``w = e^{0.7 i}``, evaluated with numpy on a fine circle."""
    W = kernel.numpy()
    theta = np.linspace(0, 2 * np.pi, points + 1)
    moving = np.exp(1j * theta)[:, None] ** np.arange(W.shape[2 + axis])
    fixed = np.exp(0.7j) ** np.arange(W.shape[3 - axis])
    if axis == 0:
        K = np.einsum("tp,q,oipq->toi", moving, fixed, W)
    else:
        K = np.einsum("p,tq,oipq->toi", fixed, moving, W)
    phase = np.unwrap(np.angle(np.linalg.det(K)))
    return (phase[-1] - phase[0]) / (2 * np.pi)


@given(bcop_classes())
def test_invariants_equal_det_h_and_rank_deficits(cls):
    n, k, p_ranks, q_ranks, sign, seed = cls
    kernel, _ = make_kernel(*cls)
    expected = ComponentInvariants(sign, sum(n - r for r in p_ranks), sum(n - r for r in q_ranks))
    assert component_invariants(kernel) == expected
    assert component_invariants(kernel.float()) == expected
    assert bcop_invariants(n, p_ranks, q_ranks, sign) == expected


@given(bcop_classes(max_n=3, max_k=3))
def test_invariants_match_unwrapped_phase_winding(cls):
    kernel, _ = make_kernel(*cls)
    inv = component_invariants(kernel)
    assert unwrapped_winding(kernel, 0) == pytest.approx(inv.a, abs=1e-6)
    assert unwrapped_winding(kernel, 1) == pytest.approx(inv.b, abs=1e-6)


@given(bcop_classes(max_n=3, max_k=3))
def test_det_is_the_monomial_sign_z1a_z2b(cls):
    kernel, _ = make_kernel(*cls)
    inv = component_invariants(kernel)
    coefficients = determinant_coefficients(kernel)
    assert complex(coefficients[inv.a, inv.b]) == pytest.approx(inv.sign, abs=1e-10)
    coefficients[inv.a, inv.b] = 0
    assert float(coefficients.abs().max()) < 1e-10


@given(bcop_classes(max_n=3, max_k=3), bcop_classes(max_n=3, max_k=3))
def test_composition_multiplies_signs_and_adds_degrees(cls1, cls2):
    n = cls1[0]
    cls2 = (n, cls2[1], [min(r, n) for r in cls2[2]], [min(r, n) for r in cls2[3]], *cls2[4:])
    (K1, _), (K2, _) = make_kernel(*cls1), make_kernel(*cls2)
    inv1, inv2 = component_invariants(K1), component_invariants(K2)
    composed = component_invariants(compose_kernels(K1, K2))
    assert composed == ComponentInvariants(inv1.sign * inv2.sign, inv1.a + inv2.a, inv1.b + inv2.b)


@given(bcop_classes(max_n=3, max_k=3))
def test_swapping_spatial_axes_swaps_degrees(cls):
    kernel, _ = make_kernel(*cls)
    inv = component_invariants(kernel)
    assert component_invariants(kernel.transpose(2, 3)) == ComponentInvariants(inv.sign, inv.b, inv.a)


def test_non_orthogonal_kernels_are_rejected():
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="not orthogonal"):
        component_invariants(torch.randn(3, 3, 3, 3, generator=generator, dtype=torch.float64))
    kernel, _ = make_kernel(3, 3, [1, 2], [0, 3], 1, 1)
    with pytest.raises(ValueError, match="not orthogonal"):
        component_invariants(kernel + 1e-4 * torch.randn(kernel.shape, generator=generator, dtype=torch.float64))
    with pytest.raises(ValueError, match="square"):
        component_invariants(kernel[:2])
    with pytest.raises(ValueError, match="non-finite"):
        component_invariants(torch.full((2, 2, 2, 2), float("nan")))


def test_a_loose_tolerance_does_not_let_a_non_paraunitary_kernel_through():
    """K(z1, z2) = -0.5 + 1.5 z2 passes ``max ||K^H K - I|| <= tol`` at tol = 3.01 (the deviation is 3), and
    det K(1, 1) = 1 and the degrees (0, 2.25) round within the slack; but det K is no monomial, and the cross-check
    against its coefficients still refuses it."""
    kernel = torch.tensor([[[[-0.5, 1.5]]]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"det K is not the monomial 1 z1\^0 z2\^2: its largest coefficient sits at "
                       r"\(0, 1\), max deviation 5.000e-01"):
        component_invariants(kernel, tol=3.01)
    with pytest.raises(ValueError, match=r"det K\(1, 1\) rounds to 2, not \+-1"):
        component_invariants(torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64), tol=3.0)  # det K = 2, a monomial


def test_class_count_formula():
    assert count_invariant_classes(2, 3, dims=1) == 2 * (3 - 1) * 2 + 2 == 10
    assert count_invariant_classes(2, 3) == 50
    with pytest.raises(ValueError):
        count_invariant_classes(2, 3, dims=3)


@given(bcop_classes())
def test_sampled_factors_lie_in_their_class(cls):
    n, k, p_ranks, q_ranks, sign, seed = cls
    _, (H, Ps, Qs) = make_kernel(*cls)
    eye = torch.eye(n, dtype=torch.float64)
    assert torch.allclose(H.T @ H, eye, atol=1e-12)
    assert torch.sign(torch.linalg.det(H)) == sign
    for projectors, ranks in ((Ps, p_ranks), (Qs, q_ranks)):
        assert projectors.shape == (k - 1, n, n)
        assert torch.allclose(projectors, projectors.transpose(-2, -1), atol=1e-12)
        assert torch.allclose(projectors @ projectors, projectors, atol=1e-12)
        assert [round(float(torch.trace(P))) for P in projectors] == list(ranks)


def test_sampling_rejects_bad_classes():
    with pytest.raises(ValueError, match="sign"):
        sample_bcop_factors(2, 3, [1, 1], [1, 1], 0)
    with pytest.raises(ValueError, match="P ranks"):
        sample_bcop_factors(2, 3, [1], [1, 1], 1)
    with pytest.raises(ValueError, match=r"q_ranks must lie in \[0, 2\], got \(1, 3\)"):
        sample_bcop_factors(2, 3, [1, 1], [1, 3], 1)
    with pytest.raises(ValueError, match=r"p_ranks must lie in \[0, 2\], got \(-1, 1\)"):
        sample_bcop_factors(2, 3, [-1, 1], [1, 1], 1)


@pytest.mark.parametrize("k", [1, 3])
def test_sampling_follows_its_generator_and_dtype(k):
    def draw(seed, dtype=torch.float64):
        return sample_bcop_factors(3, k, [1] * (k - 1), [2] * (k - 1), -1, torch.Generator().manual_seed(seed), dtype)

    first, again, other = draw(5), draw(5), draw(6)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    for dtype in (torch.float32, torch.float64):
        H, Ps, Qs = draw(0, dtype)
        assert H.dtype == Ps.dtype == Qs.dtype == dtype and Ps.shape == Qs.shape == (k - 1, 3, 3)
    assert default_tolerance(torch.float64) == pytest.approx(2**-26) and default_tolerance(torch.float32) == 2**-11.5


@given(bcop_classes())
def test_embed_2n_reproduces_the_n_channel_bcop(cls):
    n, k = cls[0], cls[1]
    kernel, factors = make_kernel(*cls)
    embedding = embed_2n(*factors)
    assert embedding.Ps.shape == embedding.Qs.shape == (k - 1, 2 * n, 2 * n)
    big = bcop_kernel(embedding.H, embedding.Ps, embedding.Qs)
    assert torch.allclose(big[:n, :n], kernel, atol=1e-12)
    assert float(big[:n, n:].abs().max()) == 0 and float(big[n:, :n].abs().max()) == 0
    assert float(torch.linalg.det(embedding.H)) == pytest.approx(1.0, abs=1e-12)
    for P in torch.cat([embedding.Ps, embedding.Qs]):
        assert torch.allclose(P @ P, P, atol=1e-12) and torch.allclose(P, P.T, atol=1e-12)
        assert round(float(torch.trace(P))) == n
    assert component_invariants(big) == ComponentInvariants(1, (k - 1) * n, (k - 1) * n)
    layer = BCOP(2 * n, 2 * n, k, bias=False, dtype=torch.float64)
    assert layer.ranks == ((n,) * (k - 1), (n,) * (k - 1))
    with torch.no_grad():
        layer.h_param.copy_(embedding.h_param)
        layer.pq_param.copy_(embedding.pq_param)
    assert torch.allclose(layer.kernel(), big, atol=1e-12)


def test_embed_2n_rejects_non_projectors():
    _, (H, Ps, Qs) = make_kernel(2, 3, [1, 1], [0, 2], 1, 0)
    with pytest.raises(ValueError, match="projectors"):
        embed_2n(H, Ps + 0.1, Qs)
    with pytest.raises(ValueError, match="orthogonal"):
        embed_2n(2 * H, Ps, Qs)
    with pytest.raises(ValueError, match=r"Ps and Qs must both have shape \(k - 1, 2, 2\)"):
        embed_2n(H, Ps, Qs[:1])
    with pytest.raises(ValueError, match="must both have shape"):
        embed_2n(H, Ps[0], Qs[0])
