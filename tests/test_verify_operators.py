"""Per-module bounds against dense Jacobians (float64): pooling in 1-3 dimensions with every option,
padding, BatchNorm, and the activation constants against their derivatives."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from orthoconv.verify.operators import GELU_LIPSCHITZ, activation_lipschitz, module_bound

F64 = torch.float64


def dense(module, shape):
    x = torch.randn(1, *shape, dtype=F64)
    jac = torch.autograd.functional.jacobian(lambda t: module(t).reshape(-1), x)
    return jac.reshape(jac.shape[0], -1), module(x).shape[1:]


def extremes(matrix):
    sigma = torch.linalg.svdvals(matrix)
    return float(sigma[-1]), float(sigma[0])


@st.composite
def avg_pools(draw):
    d = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 4)) for _ in range(d))
    s = tuple(draw(st.integers(1, 3)) for _ in range(d))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    spatial = tuple(draw(st.integers(max(kk, 1), 7 if d < 3 else 4)) for kk in k)
    ceil_mode, include = draw(st.booleans()), draw(st.booleans())
    override = draw(st.sampled_from([None, 2, 5]))
    cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[d - 1]
    options = {} if d == 1 else {"divisor_override": override}
    module = cls(k, s, p, ceil_mode=ceil_mode, count_include_pad=include, **options)
    return module, (2, *spatial)


@settings(max_examples=40, deadline=None)
@given(case=avg_pools())
def test_average_pooling_is_exact(case):
    module, shape = case
    matrix, out_shape = dense(module, shape)
    bound = module_bound(module, shape, tuple(out_shape))
    low, high = extremes(matrix)
    assert bound.exact and bound.linear
    assert bound.sigma_max == pytest.approx(high, rel=1e-12, abs=1e-15)
    assert bound.sigma_min == pytest.approx(low, rel=1e-9, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 3), data=st.data())
def test_adaptive_average_pooling_is_exact(d, data):
    spatial = tuple(data.draw(st.integers(1, 7 if d < 3 else 4)) for _ in range(d))
    out = tuple(data.draw(st.integers(1, 5)) for _ in range(d))
    module = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[d - 1](out if d > 1 else out[0])
    shape = (2, *spatial)
    matrix, out_shape = dense(module, shape)
    bound = module_bound(module, shape, tuple(out_shape))
    low, high = extremes(matrix)
    assert bound.sigma_max == pytest.approx(high, rel=1e-12)
    assert bound.sigma_min == pytest.approx(low, rel=1e-9, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 3), dil=st.integers(1, 2), ceil_mode=st.booleans(),
       side=st.integers(4, 9), seed=st.integers(0, 1000), data=st.data())
def test_max_pooling_bound_holds_and_counts_windows(k, s, dil, ceil_mode, side, seed, data):
    p = data.draw(st.integers(0, k // 2))
    side = max(side, dil * (k - 1) + 1)
    module = nn.MaxPool2d(k, s, p, dilation=dil, ceil_mode=ceil_mode)
    shape = (2, side, side)
    torch.manual_seed(seed)
    matrix, out_shape = dense(module, shape)
    bound = module_bound(module, shape, tuple(out_shape))
    assert extremes(matrix)[1] <= bound.lipschitz + 1e-12
    x = torch.zeros(1, *shape, dtype=F64)  # all ties: every window may pick any pixel; the bound is reached by
    counts = torch.autograd.functional.jacobian(  # a pixel in the most windows when it is the max of each
        lambda t: nn.functional.avg_pool2d(t, k, s, p, ceil_mode=ceil_mode, divisor_override=1), x) if dil == 1 else None
    if counts is not None:
        most = counts.reshape(-1, x.numel()).sum(0).max()
        assert bound.lipschitz == pytest.approx(math.sqrt(float(most)))


@pytest.mark.parametrize("module", [nn.ZeroPad2d((1, 0, 2, 1)), nn.ConstantPad1d((2, -1), 3.0),
                                    nn.ReflectionPad2d((2, 1, 1, 2)), nn.ReplicationPad1d((3, 1)),
                                    nn.CircularPad2d((1, 2, 0, 1)), nn.ZeroPad2d((-1, 0, 0, -2))])
def test_padding_singular_values_are_exact(module):
    shape = (2, 5) if "1d" in type(module).__name__ else (2, 4, 5)
    matrix, out_shape = dense(module, shape)
    bound = module_bound(module, shape, tuple(out_shape))
    low, high = extremes(matrix)
    assert bound.sigma_max == pytest.approx(high, rel=1e-12)
    assert bound.sigma_min == pytest.approx(low, abs=1e-12)


def test_batch_norm_in_eval_is_its_diagonal_scale():
    bn = nn.BatchNorm2d(3, dtype=F64).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([0.25, 4.0, 1.0]))
        bn.weight.copy_(torch.tensor([-1.0, 2.0, 0.5]))
    matrix, _ = dense(bn, (3, 2, 2))
    bound = module_bound(bn, (3, 2, 2), (3, 2, 2))
    low, high = extremes(matrix)
    assert bound.sigma_max == pytest.approx(high, rel=1e-4) and bound.sigma_min == pytest.approx(low, rel=1e-4)
    without = nn.BatchNorm2d(3, track_running_stats=False)
    with pytest.raises(TypeError, match="batch's own statistics"):
        module_bound(without, (3, 2, 2), (3, 2, 2))


@pytest.mark.parametrize("module", [nn.ReLU(), nn.LeakyReLU(0.3), nn.LeakyReLU(-2.0), nn.Tanh(), nn.Sigmoid(),
                                    nn.ELU(1.7), nn.SELU(), nn.GELU(), nn.SiLU(), nn.Softplus(beta=3.0),
                                    nn.Hardswish(), nn.Hardsigmoid(), nn.CELU(0.5), nn.Softsign(), nn.LogSigmoid()])
def test_activation_constants_bound_the_derivative_and_are_reached(module):
    x = torch.linspace(-20, 20, 400001, dtype=F64)
    with torch.no_grad():
        y = module(x)
    slope = (y[1:] - y[:-1]) / (x[1:] - x[:-1])  # the secants of the function itself
    constant, exact = activation_lipschitz(module)
    assert float(slope.abs().max()) <= constant * (1 + 1e-9)
    assert float(slope.abs().max()) >= constant * (1 - (2e-3 if not exact else 1e-4))


def test_gelu_constant_is_the_closed_form():
    assert GELU_LIPSCHITZ == pytest.approx(1.1289041, abs=1e-7)
