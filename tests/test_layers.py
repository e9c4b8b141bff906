"""The orthogonal layers around BCOP (Cayley, SOC, orthogonal linear, GroupSort, downsampling, StridedBCOP),
their devices and their errors, each measured against its claim on the dense matrix of its own forward
map (:mod:`dense_reference`)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.nn.cayley import CayleyConv, cayley_transfer
from orthoconv.nn.downsample import InvertibleDownsampling, StridedBCOP
from orthoconv.nn.linear import OrthogonalLinear
from orthoconv.nn.ossn import OSSN
from orthoconv.nn.rkl2ne import RKL2NE, l2ne_scale
from orthoconv.nn.rko import RKO
from orthoconv.nn.soc import (
    SOC,
    skew_symmetric_kernel,
    soc_deviation,
    taylor_deviation_bound,
)
from orthoconv.nn.svcm import SVCM, svcm_project, svcm_rounds_needed
from orthoconv.spectral import dense_operator

from dense_reference import (
    F64,
    forward_matrix,
    modes,
    set_bias,
    shapes,
    singular_values,
    small,
)

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


@small
@given(seed=st.integers(0, 2**16), ties=st.booleans())
def test_maxmin_backward_is_torchs_sort_backward(seed, ties):
    """MaxMin's own backward (a gather by the pair's permutation) against autograd's through ``sort``, ties
    (equal pairs) included."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 3, 4, generator=g, dtype=F64)
    if ties:
        x[:, 1::2] = x[:, ::2]
    x.requires_grad_(True)
    grad = torch.randn(2, 6, 3, 4, generator=g, dtype=F64)
    (actual,) = torch.autograd.grad(oc.MaxMin()(x), x, grad)
    (expected,) = torch.autograd.grad(x.unflatten(1, (3, 2)).sort(dim=2, descending=True).values.flatten(1, 2), x, grad)
    assert torch.equal(actual, expected)
    distinct = torch.randn(1, 6, 2, 2, generator=g, dtype=F64, requires_grad=True)  # no ties: differentiable there
    assert torch.autograd.gradcheck(oc.MaxMin(), (distinct,), check_forward_ad=True)


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


@pytest.mark.parametrize("c, k, size", [(3, 3, (5, 4)), (4, 2, (4, 4)), (2, 3, (3, 6))])
def test_cayley_transfer_gradient_passes_gradcheck_through_the_polish(c, k, size):
    """The polish steps' backward is the identity (exact on the Cayley transform's tangent directions): the
    gradient of the transfer matrices equals central differences in float64, real and imaginary parts."""
    V = (0.5 * torch.randn(c, c, k, k, generator=torch.Generator().manual_seed(c), dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda V: torch.view_as_real(cayley_transfer(V, size)), (V,), check_forward_ad=True)
