"""The Lipschitz-bounded (not orthogonal) layers around BCOP: RKO, OSSN, SVCM, RK-L2NE, each measured
against its claim on the dense matrix of its own forward map (:mod:`dense_reference`)."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from orthoconv.nn.ossn import OSSN
from orthoconv.nn.rkl2ne import RKL2NE, l2ne_scale
from orthoconv.nn.rko import RKO
from orthoconv.nn.svcm import (
    SVCM,
    clip_singular_values,
    svcm_history,
    svcm_project,
    svcm_rounds_needed,
)
from orthoconv.spectral import circular_spectral_norm, dense_operator

from dense_reference import (
    F64,
    forward_matrix,
    modes,
    set_bias,
    shapes,
    singular_values,
    small,
)

# ---------------------------------------------------------------- RKO


@small
@given(shape=shapes, padding=modes, method=st.sampled_from(["qr", "bjorck"]), seed=st.integers(0, 2**16))
def test_rko_is_1_lipschitz_and_its_bound_is_certified(shape, padding, method, seed):
    c_in, c_out, k, H, W = shape
    torch.manual_seed(seed)
    layer = RKO(c_in, c_out, k, padding_mode=padding, method=method, dtype=F64)
    set_bias(layer, seed)
    sigma = singular_values(forward_matrix(layer, c_in, H, W))
    bound = layer.lipschitz_bound()
    assert sigma.max() <= 1 + 1e-10
    assert sigma.max() <= bound + 1e-12
    assert abs(bound - 1) < 1e-10  # ||M(orth)||_2 = 1 exactly, times k / k
    kernel = layer.kernel().detach()
    reference = dense_operator(kernel, (H, W), padding)
    assert np.allclose(forward_matrix(layer, c_in, H, W).numpy(), reference.numpy(), atol=1e-12)


@pytest.mark.parametrize("c_in, c_out, k", [(1, 9, 3), (2, 9, 2), (1, 5, 2)])
def test_rko_with_tall_reshaping_is_an_isometry_under_circular_padding(c_in, c_out, k):
    """c_out >= c_in k^2: orthonormal columns make every patch norm-preserving, so ||conv x||^2 =
    sum_i ||x_i||^2 / k^2 = ||x||^2 (each pixel in exactly k^2 circular patches)."""
    torch.manual_seed(1)
    layer = RKO(c_in, c_out, k, bias=False, dtype=F64)
    sigma = singular_values(forward_matrix(layer, c_in, 4, 3))
    assert np.abs(sigma - 1).max() < 1e-12


def test_rko_is_not_gradient_norm_preserving():
    """The usual case c_out < c_in k^2 loses norm: the patch bound is far from tight (why BCOP exists)."""
    torch.manual_seed(0)
    layer = RKO(4, 4, 3, bias=False, dtype=F64)
    sigma = singular_values(forward_matrix(layer, 4, 5, 5))
    assert sigma.max() < 0.95 and sigma.min() < 0.5


# ---------------------------------------------------------------- OSSN


@small
@given(shape=shapes, padding=modes, scale=st.sampled_from([0.2, 5.0]), seed=st.integers(0, 2**16))
@example(shape=(1, 1, 3, 5, 1), padding="zeros", scale=5.0, seed=0)  # sigma_2 / sigma_1 = 0.993: 1.0012 after 100 steps
def test_ossn_normalizes_to_one_and_certifies_the_exact_norm(shape, padding, scale, seed):
    c_in, c_out, k, H, W = shape
    torch.manual_seed(seed)
    layer = OSSN(c_in, c_out, k, padding_mode=padding, n_power_iterations=5, dtype=F64)
    with torch.no_grad():
        layer.weight.mul_(scale)
    x = torch.randn(2, c_in, H, W, dtype=F64)
    for _ in range(20):
        layer(x)
    layer.eval()
    raw_spectrum = singular_values(dense_operator(layer.weight.detach(), (H, W), padding))
    raw = raw_spectrum.max()
    sigma = singular_values(forward_matrix(layer, c_in, H, W)).max()
    bound = layer.lipschitz_bound()
    assert abs(bound - sigma) <= 1e-10 * max(1.0, sigma)  # small images: the exact norm (FFT or dense)
    if raw <= 1 - 1e-6:
        assert abs(sigma - raw) < 1e-12  # one-sided: a contraction is left alone
    else:
        assert sigma >= 1 - 1e-12  # the power estimate is a lower bound, so W / estimate has norm >= 1 ...
        gap = raw_spectrum[1] / raw if len(raw_spectrum) > 1 else 0.0
        if gap <= 0.9:  # ... and 100 power steps converge like gap^200 < 1e-9 (a small gap converges slower)
            assert sigma <= 1 + 1e-6


def test_ossn_takes_the_size_from_the_first_input_and_keeps_it():
    layer = OSSN(2, 3, 3)
    assert layer.input_size is None
    with pytest.raises(ValueError, match="image size is unknown"):
        layer.kernel()
    layer(torch.randn(1, 2, 6, 5))
    assert layer.input_size == (6, 5)
    with pytest.raises(ValueError, match="normalized for 6x5"):
        layer(torch.randn(1, 2, 5, 5))
    restored = OSSN(2, 3, 3)
    restored.load_state_dict(layer.state_dict())
    assert restored.input_size == (6, 5) and torch.equal(restored.u, layer.u)
    fixed = OSSN(2, 3, 3, input_size=7)
    assert fixed.input_size == (7, 7)


@pytest.mark.parametrize("k, padding", [(1, "zeros"), (3, "circular")])
def test_ossn_used_twice_before_backward(k, padding):
    """The iterate is updated in place (``copy_``, so that export sees a buffer mutation); a layer applied
    twice in one graph still backpropagates, and its gradient is the sum over both uses."""
    layer = OSSN(3, 3, k, input_size=(4, 5), padding_mode=padding, dtype=F64)
    x = torch.randn(2, 3, 4, 5, dtype=F64)
    layer(layer(x)).square().sum().backward()
    assert bool(torch.isfinite(layer.weight.grad).all())


def test_ossn_bound_is_certified_even_when_the_iterate_is_poor():
    """One power step from a fixed start underestimates sigma; the certified bound sees the excess."""
    torch.manual_seed(3)
    layer = OSSN(4, 4, 3, input_size=(6, 6), warmup_iterations=0, dtype=F64)
    with torch.no_grad():
        layer.weight.mul_(10)
    exact = circular_spectral_norm(layer.kernel().detach(), (6, 6))
    assert exact > 1.01
    assert layer.lipschitz_bound() == pytest.approx(exact, rel=1e-12)


# ---------------------------------------------------------------- SVCM


@small
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_svcm_clipping_is_the_spectrum_clipped_at_one(shape, seed):
    c_in, c_out, k, H, W = shape
    kernel = 2 * torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(seed), dtype=F64)
    full = clip_singular_values(kernel, (H, W))
    assert full.shape == (c_out, c_in, H, W)
    before = np.sort(singular_values(dense_operator(kernel, (H, W))))
    after = np.sort(singular_values(dense_operator(full, (H, W))))
    assert np.abs(after - np.minimum(before, 1)).max() < 1e-10


@small
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_svcm_projection_keeps_the_support_and_fixes_contractions(shape, seed):
    c_in, c_out, k, H, W = shape
    H, W = max(H, k), max(W, k)
    kernel = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(seed), dtype=F64)
    projected = svcm_project(kernel, (H, W), 2)
    assert projected.shape == kernel.shape
    contraction = kernel / (2 * circular_spectral_norm(kernel, (H, W)))
    assert torch.allclose(svcm_project(contraction, (H, W), 3), contraction, atol=1e-13)
    assert torch.equal(svcm_project(kernel, (H, W), 0), kernel)


def test_svcm_masking_breaks_the_bound_and_rounds_shrink_it():
    """The measured fact behind the docstring: one round leaves sigma_max well above 1; more rounds
    approach 1 slowly (roughly 0.4 / rounds for these Gaussian kernels)."""
    kernel = torch.randn(8, 8, 3, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    history = svcm_history(kernel, (8, 8), 20)
    assert history[1] > 1.2  # the mask undoes the clip
    assert 1 < history[20] < 1.05
    assert svcm_rounds_needed(kernel, (8, 8), 1.1, max_rounds=20) <= 8
    assert svcm_rounds_needed(kernel, (8, 8), 1.0 + 1e-6, max_rounds=3) is None
    assert svcm_rounds_needed(kernel / 1e3, (8, 8), 1.0) == 0


def test_svcm_rounds_experiment_agrees_with_svcm_rounds_needed(tmp_path):
    """``analysis.experiments.svcm_rounds`` reads the rounds off one history; ``svcm_rounds_needed`` recomputes them."""
    from analysis.experiments import svcm_rounds

    assert svcm_rounds.main(["--quick", "--workers", "1", "--draws", "1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "svcm_rounds.json").read_text())
    for row, run in zip(data["rows"], data["histories"]):
        kernel = torch.randn(row["c"], row["c"], row["k"], row["k"], generator=torch.Generator().manual_seed(run["seed"]),
                             dtype=F64)
        assert run["history"][0] == pytest.approx(circular_spectral_norm(kernel, (row["n"], row["n"])), rel=1e-12)
        for bound in svcm_rounds.BOUNDS:
            assert row[f"to {bound}"] == svcm_rounds_needed(kernel, (row["n"], row["n"]), bound, data["max_rounds"])
        assert 1 < row["after 10"] < row["after 1"] < row["initial"]


def test_svcm_layer_reports_its_exact_norm():
    torch.manual_seed(0)
    layer = SVCM(3, 4, 3, input_size=(6, 5), rounds=2, dtype=F64)
    set_bias(layer)
    sigma = singular_values(forward_matrix(layer, 3, 6, 5)).max()
    assert layer.lipschitz_bound() == pytest.approx(sigma, rel=1e-10)
    before = layer.lipschitz_bound()
    layer.project_(rounds=20)
    assert layer.lipschitz_bound() < before
    with pytest.raises(ValueError, match="projected for"):
        layer(torch.randn(1, 3, 5, 5, dtype=F64))


# ---------------------------------------------------------------- RK-L2NE


@small
@given(shape=shapes, padding=modes, seed=st.integers(0, 2**16))
def test_rkl2ne_certifies_against_the_dense_operator(shape, padding, seed):
    c_in, c_out, k, H, W = shape
    torch.manual_seed(seed)
    layer = RKL2NE(c_in, c_out, k, padding_mode=padding, dtype=F64)
    set_bias(layer, seed)
    sigma = singular_values(forward_matrix(layer, c_in, H, W)).max()
    assert sigma <= layer.lipschitz_bound() + 1e-12 <= 1 + 1e-10
    raw = singular_values(dense_operator(layer.weight.detach(), (H, W), padding)).max()
    assert raw <= float(l2ne_scale(layer.weight.detach())) * (1 + 1e-12)


def test_rkl2ne_needs_the_induced_norm_and_the_full_factor_k():
    """Equal taps make the patch bound tight (norm at frequency 0 = k ||M||), so a smaller factor than
    k fails; the max-entry reading of ||.||_inf fails on an all-ones Gram."""
    k, c = 3, 4
    V = torch.ones(c, c, k, k, dtype=F64)
    exact = circular_spectral_norm(V, (6, 6))
    M = V.reshape(c, -1)
    assert exact == pytest.approx(k * float(torch.linalg.matrix_norm(M, ord=2)), rel=1e-12)
    assert exact == pytest.approx(float(l2ne_scale(V)), rel=1e-12)  # the L2NE scale is exactly tight here
    assert exact > math.sqrt(k) * float(torch.linalg.matrix_norm(M, ord=2)) * 1.5
    max_entry = k * math.sqrt(min(float((M @ M.T).abs().max()), float((M.T @ M).abs().max())))
    assert exact > 3 * max_entry
