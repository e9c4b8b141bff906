"""The Lipschitz and orthogonal layer family around BCOP, each measured against its claim.

Reference: the dense matrix of the layer's own forward map (applied to the identity basis, bias
removed) and its SVD in float64, independent of the layers' kernels and of the FFT code.
"""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.nn.cayley import CayleyConv
from orthoconv.nn.downsample import InvertibleDownsampling, StridedBCOP
from orthoconv.nn.linear import OrthogonalLinear
from orthoconv.nn.ossn import OSSN
from orthoconv.nn.rkl2ne import RKL2NE, l2ne_scale
from orthoconv.nn.rko import RKO
from orthoconv.nn.soc import SOC, skew_symmetric_kernel, soc_deviation, taylor_deviation_bound
from orthoconv.spectral import circular_spectral_norm, dense_operator
from orthoconv.nn.svcm import SVCM, clip_singular_values, svcm_history, svcm_project, svcm_rounds_needed

F64 = torch.float64
small = settings(max_examples=max(30, settings().max_examples), deadline=None)  # the profile may ask for more


def forward_matrix(layer, c_in, H, W, dtype=F64):
    """The matrix of ``x -> layer(x) - layer(0)`` on ``c_in x H x W`` images, rows = output coordinates."""
    basis = torch.eye(c_in * H * W, dtype=dtype).reshape(-1, c_in, H, W)
    with torch.no_grad():
        out = layer(basis) - layer(torch.zeros(1, c_in, H, W, dtype=dtype))
    return out.reshape(c_in * H * W, -1).T


def singular_values(matrix):
    """Descending singular values (LAPACK through torch, on one thread here), as a numpy array."""
    return torch.linalg.svdvals(matrix.detach().double()).numpy()


def set_bias(layer, seed=0):
    if getattr(layer, "bias", None) is not None:
        with torch.no_grad():
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=torch.Generator().manual_seed(seed), dtype=F64))


shapes = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))
modes = st.sampled_from(["circular", "zeros"])


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
    """``analysis.svcm_rounds`` reads the rounds off one history; ``svcm_rounds_needed`` recomputes them."""
    from analysis import svcm_rounds

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


# ---------------------------------------------------------------- Cayley


@small
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_cayley_is_orthogonal_on_its_image_size(shape, seed):
    c_in, c_out, k, H, W = shape
    torch.manual_seed(seed)
    layer = CayleyConv(c_in, c_out, k, input_size=(H, W), dtype=F64)
    with torch.no_grad():
        layer.weight.mul_(10)
    set_bias(layer, seed)
    matrix = forward_matrix(layer, c_in, H, W)
    sigma = singular_values(matrix)
    assert len(sigma) == min(c_in, c_out) * H * W
    assert np.abs(sigma - 1).max() < 1e-10
    assert np.allclose(matrix.numpy(), dense_operator(layer.kernel().detach(), (H, W)).numpy(), atol=1e-12)


def test_cayley_is_not_orthogonal_on_another_size():
    torch.manual_seed(0)
    layer = CayleyConv(3, 3, 3, input_size=(6, 6), dtype=F64)
    with pytest.raises(ValueError, match="for \\(6, 6\\) images only"):
        layer(torch.randn(1, 3, 5, 5, dtype=F64))
    # the operator's kernel has 6x6 taps; on a 4x4 image they fold and orthogonality is lost
    sigma = oc.conv_singular_values(layer.kernel().detach(), (4, 4))
    assert float((sigma - 1).abs().max()) > 1e-3


# ---------------------------------------------------------------- SOC


@small
@given(
    shape=shapes, padding=modes, terms=st.integers(2, 12), scale=st.sampled_from([1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_soc_deviation_is_within_its_certified_bound(shape, padding, terms, scale, seed):
    c_in, c_out, k, H, W = shape
    torch.manual_seed(seed)
    layer = SOC(c_in, c_out, k, padding_mode=padding, terms=terms, dtype=F64)
    with torch.no_grad():
        layer.weight.mul_(scale)
    set_bias(layer, seed)
    matrix = forward_matrix(layer, c_in, H, W)
    sigma = singular_values(matrix)
    assert len(sigma) == min(c_in, c_out) * H * W
    assert np.abs(sigma - 1).max() <= layer.lipschitz_bound() - 1 + 1e-12
    assert sigma.max() <= layer.lipschitz_bound() + 1e-12
    if padding == "circular":
        assert np.allclose(matrix.numpy(), dense_operator(layer.kernel().detach(), (H, W)).numpy(), atol=1e-12)
        if c_in == c_out:
            exact = soc_deviation(layer.skew_kernel().detach(), (H, W), terms)
            assert abs(exact - np.abs(sigma - 1).max()) < 1e-12


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_skew_kernel_gives_a_skew_operator(k):
    L = torch.randn(3, 3, k, k, generator=torch.Generator().manual_seed(k), dtype=F64)
    S = skew_symmetric_kernel(L)
    assert S.shape[-1] == k + 1 - k % 2
    for padding in ("circular", "zeros"):
        A = dense_operator(S, (5, 4), padding)
        B = dense_operator(L, (5, 4), padding)
        assert torch.allclose(A, B - B.T, atol=1e-13)  # conv(S) = conv(L) - conv(L)^T, skew


def test_soc_deviation_falls_with_terms_like_the_taylor_remainder():
    S = skew_symmetric_kernel(torch.randn(6, 6, 3, 3, generator=torch.Generator().manual_seed(0), dtype=F64))
    rho = oc.math.bounds.reshaped_kernel_bound(S)
    S = S / rho  # ||conv(S)|| <= 1
    deviations = [soc_deviation(S, (8, 8), n) for n in range(1, 13)]
    assert all(d <= taylor_deviation_bound(1.0, n) + 1e-15 for n, d in zip(range(1, 13), deviations))
    assert all(b < a for a, b in zip(deviations[:10], deviations[1:11]))
    assert deviations[11] < 1e-12


@pytest.mark.parametrize("terms", [4, 6, 8])
def test_soc_on_a_1x1_kernel_reaches_the_deviation_of_the_series(terms):
    """For a 1x1 kernel the certified norm is the exact one, rescaled to max_norm = 1, so conv(S) has the
    eigenvalues +-i and the deviation is the series' own, ``||T_n(i)| - 1|``: 1.514e-4 for the default 6
    terms, not float32 resolution; within ``lipschitz_bound``, which therefore exceeds 1 honestly."""
    torch.manual_seed(terms)
    layer = SOC(4, 4, 1, terms=terms, bias=False, dtype=F64)
    with torch.no_grad():
        layer.weight.mul_(10)  # certified norm above max_norm: the rescaling brings it to exactly 1
    sigma = singular_values(forward_matrix(layer, 4, 3, 3))
    series = abs(abs(sum(1j**j / math.factorial(j) for j in range(terms + 1))) - 1)
    assert abs(np.abs(sigma - 1).max() - series) < 1e-12
    assert series <= layer.lipschitz_bound() - 1
    if terms == 6:
        assert 1.5e-4 < series < 1.52e-4


# ---------------------------------------------------------------- linear, GroupSort, downsampling


@small
@given(
    n_in=st.integers(1, 7), n_out=st.integers(1, 7), method=st.sampled_from(["qr", "expm", "bjorck"]),
    seed=st.integers(0, 2**16),
)
def test_orthogonal_linear_is_an_isometry_or_coisometry(n_in, n_out, method, seed):
    torch.manual_seed(seed)
    layer = OrthogonalLinear(n_in, n_out, method=method, dtype=F64)
    W = layer.matrix().detach()
    gram = W.T @ W if n_out >= n_in else W @ W.T
    assert torch.allclose(gram, torch.eye(min(n_in, n_out), dtype=F64), atol=1e-12)
    x = torch.randn(3, n_in, dtype=F64)
    assert torch.allclose(layer(x), x @ W.T + layer.bias, atol=1e-13)


@small
@given(group=st.integers(1, 5), groups=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_groupsort_is_a_permutation_with_orthogonal_jacobian(group, groups, seed):
    torch.manual_seed(seed)
    layer = oc.GroupSort(group)
    x = torch.randn(2, group * groups, 3, 2, dtype=F64)
    y = layer(x)
    y_groups, x_groups = y.unflatten(1, (groups, group)), x.unflatten(1, (groups, group))
    assert torch.equal(y_groups.sort(dim=2).values, x_groups.sort(dim=2).values)  # a permutation within groups
    assert bool((y_groups.diff(dim=2) <= 0).all())  # sorted, descending
    jac = torch.autograd.functional.jacobian(layer, x[:1]).reshape(y[:1].numel(), -1)
    assert torch.allclose(jac @ jac.T, torch.eye(jac.shape[0], dtype=F64))
    assert float((oc.gradient_norm_ratio(layer, x) - 1).abs().max()) < 1e-14


@pytest.mark.parametrize("factor, c, H, W", [(1, 2, 3, 3), (2, 3, 4, 6), (3, 1, 6, 3)])
def test_invertible_downsampling_is_a_permutation(factor, c, H, W):
    layer = InvertibleDownsampling(factor)
    matrix = forward_matrix(layer, c, H, W)
    assert matrix.shape == (c * H * W, c * H * W)
    assert torch.equal(matrix.abs().sum(0), torch.ones(c * H * W, dtype=F64))
    assert torch.equal(matrix.abs().sum(1), torch.ones(c * H * W, dtype=F64))
    x = torch.randn(2, c, H, W, dtype=F64)
    assert layer(x).shape == (2, c * factor**2, H // factor, W // factor)
    assert torch.equal(layer.inverse(layer(x)), x)


@small
@given(
    c_in=st.integers(1, 3), c_out=st.integers(1, 8), k=st.integers(1, 5), stride=st.integers(1, 3),
    side=st.integers(1, 2), seed=st.integers(0, 2**16),
)
def test_strided_bcop_is_orthogonal(c_in, c_out, k, stride, side, seed):
    torch.manual_seed(seed)
    layer = StridedBCOP(c_in, c_out, k, stride, dtype=F64)
    H, W = stride * side, stride * (side + 1)
    assert layer.kernel().shape == (c_out, c_in * stride**2, math.ceil(k / stride), math.ceil(k / stride))
    sigma = singular_values(forward_matrix(layer, c_in, H, W))
    assert len(sigma) == min(c_in * stride**2, c_out) * side * (side + 1)
    assert np.abs(sigma - 1).max() < 1e-10


def test_layers_work_in_float32_with_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6)
    layers = [RKO(4, 4, 3), OSSN(4, 4, 3), SVCM(4, 4, 3, input_size=(6, 6)), RKL2NE(4, 4, 3),
              CayleyConv(4, 4, 3, input_size=(6, 6)),
              SOC(4, 4, 3), StridedBCOP(4, 8, 3, 2)]
    for layer in layers:
        y = layer(x)
        assert y.dtype == torch.float32
        y.square().sum().backward()
        assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in layer.parameters())


def test_layers_run_on_the_device_of_their_parameters(device):
    """Built on ``device`` (CPU, and CUDA where present): forward, kernel and bounds stay there."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, device=device)
    layers = [RKO(4, 4, 3, device=device), OSSN(4, 4, 3, device=device), SVCM(4, 4, 3, input_size=8, device=device),
              RKL2NE(4, 4, 3, device=device), CayleyConv(4, 4, 3, input_size=8, device=device), SOC(4, 4, 3, device=device),
              StridedBCOP(4, 8, 3, 2, device=device)]
    for layer in layers:
        y = layer(x)
        assert y.device == x.device and bool(torch.isfinite(y).all())
        assert layer.kernel().device == x.device
        if hasattr(layer, "lipschitz_bound"):
            assert layer.lipschitz_bound() <= 1.1
    linear = OrthogonalLinear(6, 4, device=device)
    assert linear(torch.randn(3, 6, device=device)).device == x.device
    assert oc.lipschitz_bound(torch.nn.Sequential(*layers[:-1]), (8, 8)) <= 1.1


# ---------------------------------------------------------------- bad input


BAD = [
    (lambda: RKO(0, 3, 3), ValueError, "in_channels"),
    (lambda: RKO(3, 3, (3, 2)), ValueError, "kernel_size must be square"),
    (lambda: RKO(3, 3, 3, stride=2), ValueError, "stride 1 only"),
    (lambda: RKO(3, 3, 3, padding=0), ValueError, "padding must be 'same'"),
    (lambda: RKO(3, 3, 2, padding=1), ValueError, "padding must be 'same'"),
    (lambda: RKO(3, 3, 3, padding_mode="reflect"), ValueError, "padding_mode"),
    (lambda: RKO(3, 3, 3, method="svd"), ValueError, "method"),
    (lambda: RKO(3, 3, 3, dtype=torch.int32), TypeError, "dtype"),
    (lambda: OSSN(3, 3, 3, n_power_iterations=0), ValueError, "n_power_iterations"),
    (lambda: OSSN(3, 3, 3, input_size=(0, 4)), ValueError, "input_size"),
    (lambda: OSSN(3, 3, 3).lipschitz_bound(), ValueError, "image size is unknown"),
    (lambda: SVCM(3, 3, 5, input_size=(4, 8)), ValueError, "must fit in the image"),
    (lambda: SVCM(3, 3, 3, input_size=(4, 4), rounds=-1), ValueError, "rounds"),
    (lambda: svcm_project(torch.randn(2, 2, 3, 3), (4, 4), 1.5), ValueError, "rounds"),
    (lambda: svcm_rounds_needed(torch.randn(2, 2, 3, 3), (4, 4), 0.0), ValueError, "bound"),
    (lambda: RKL2NE(2, 2, 3, stride=(1, 2)), ValueError, "stride"),
    (lambda: l2ne_scale(torch.randn(2, 2, 3)), ValueError, "4-D"),
    (lambda: CayleyConv(3, 3, 3, input_size=(4, 4), padding_mode="zeros"), ValueError, "padding_mode"),
    (lambda: CayleyConv(3, 3, 3, input_size=None), TypeError, "input_size"),
    (lambda: CayleyConv(3, 3, 3, (4, 4)), TypeError, "input_size"),
    (lambda: CayleyConv(3, 3, 3, 2, input_size=4), ValueError, "stride 1 only"),
    (lambda: SOC(3, 3, 3, terms=0), ValueError, "terms"),
    (lambda: SOC(3, 3, 3, max_norm=-1.0), ValueError, "max_norm"),
    (lambda: SOC(3, 3, 3, padding_mode="zeros").kernel(), ValueError, "zero padding"),
    (lambda: soc_deviation(torch.randn(3, 3, 3, 3), (4, 4), 4), ValueError, "not skew-symmetric"),
    (lambda: soc_deviation(torch.zeros(3, 3, 2, 2), (4, 4), 4), ValueError, "odd"),
    (lambda: skew_symmetric_kernel(torch.randn(3, 2, 3, 3)), ValueError, "as many output as input"),
    (lambda: OrthogonalLinear(3, 0), ValueError, "out_features"),
    (lambda: OrthogonalLinear(3, 2)(torch.randn(4, 2)), ValueError, "in_features"),
    (lambda: InvertibleDownsampling(2)(torch.randn(1, 1, 3, 4)), ValueError, "not divisible"),
    (lambda: InvertibleDownsampling(2).inverse(torch.randn(1, 3, 2, 2)), ValueError, "multiple of factor"),
    (lambda: InvertibleDownsampling(0), ValueError, "factor"),
    (lambda: StridedBCOP(2, 4, 3, stride=(2, 1)), ValueError, "square strides"),
    (lambda: StridedBCOP(2, 4, 3, stride=2)(torch.randn(1, 2, 5, 4)), ValueError, "not divisible"),
    (lambda: oc.GroupSort(3)(torch.randn(1, 4, 2, 2)), ValueError, "group_size"),
    (lambda: RKO(3, 3, 3)(torch.randn(1, 2, 4, 4)), ValueError, "in_channels = 3"),
    (lambda: RKO(3, 3, 3)(torch.randn(3, 4, 4)), ValueError, "4-D batch"),
]


@pytest.mark.parametrize("build, error, match", BAD)
def test_bad_input_raises(build, error, match):
    with pytest.raises(error, match=match):
        build()
