"""check_model on maps that compare input values with masks (HouseHolder activations, masked ReLUs, ``where``)
and on square roots of sums of squares (L2-norm pooling, L2-norm residuals). Each was refused before (a step
function / no rule for ``aten.pow``). Truth: the dense Jacobian of the model's own forward in float64, and
the largest ratio ``||f(x) - f(y)|| / ||x - y||`` over random pairs."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_verify_rules import Lambda
from torch import nn

from orthoconv.verify import check_model

from test_verify_model import jacobian_norm

F64 = torch.float64


class HouseHolder(nn.Module):
    """``z -> z`` where ``<z, u> <= 0``, ``(I - 2 u u^T) z`` beyond, per channel pair ``z = (x, y)``, with the
    unit normal ``u = (sin(theta / 2), -cos(theta / 2))`` (Singla et al. 2021); ``tilt`` turns the mask off the
    reflection's own hyperplane (the pieces then jump)."""

    def __init__(self, channels, seed, scale=1.0, tilt=0.0, where=False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.theta = nn.Parameter(2 * math.pi * torch.rand(1, channels // 2, 1, 1, generator=g, dtype=F64))
        self.scale, self.tilt, self.where = scale, tilt, where

    def forward(self, z):
        x, y = z.chunk(2, dim=1)
        half = 0.5 * self.theta + self.tilt
        s = x * torch.sin(half) - y * torch.cos(half)
        rx = x * torch.cos(self.theta) + y * torch.sin(self.theta)
        ry = x * torch.sin(self.theta) - y * torch.cos(self.theta)
        if self.where:
            a, b = torch.where(s > 0, rx, x), torch.where(s > 0, ry, y)
        else:
            a, b = x * (s <= 0) + rx * (s > 0), y * (s <= 0) + ry * (s > 0)
        return self.scale * torch.cat([a, b], dim=1)


def pair_ratio(model, shape, pairs=200, seed=0):
    """``max ||f(x) - f(y)|| / ||x - y||`` over random pairs, some of them close."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(pairs, *shape, generator=g, dtype=F64)
    step = torch.randn(pairs, *shape, generator=g, dtype=F64) * torch.logspace(-3, 0, pairs, dtype=F64).view(
        -1, *(1,) * len(shape))
    with torch.no_grad():
        diff = (model(x + step) - model(x)).flatten(1).norm(dim=1)
    return float((diff / step.flatten(1).norm(dim=1)).max())


@settings(max_examples=10, deadline=None)
@given(pairs=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4), seed=st.integers(0, 10_000),
       scale=st.sampled_from([1.0, 1 / math.sqrt(2), 3.0]), where=st.booleans())
def test_householder_is_certified_at_its_exact_constant(pairs, h, w, seed, scale, where):
    model = HouseHolder(2 * pairs, seed, scale, where=where)
    x = torch.randn(1, 2 * pairs, h, w, dtype=F64, generator=torch.Generator().manual_seed(seed))
    report = check_model(model, x, lower_steps=0)
    assert report.lipschitz_upper == pytest.approx(scale, rel=1e-12)
    assert [layer.type for layer in report.layers] == ["PiecewiseLinearCertificate"]
    assert jacobian_norm(model, x) == pytest.approx(report.lipschitz_upper, rel=1e-9)  # attained
    assert pair_ratio(model, (2 * pairs, h, w), seed=seed) <= report.lipschitz_upper * (1 + 1e-9)


@pytest.mark.parametrize("fn, constant", [
    (lambda x: 2 * x * (x > 0), 2.0),
    (lambda x: x * (x >= 0) + 0.3 * x * (x < 0), 1.0),
    (lambda x: -3 * torch.where(x - 1 > 0, x, torch.ones_like(x)), 3.0),
    (lambda x: torch.where(x > 1, x, 1.0), 1.0),
    (lambda x: torch.where(-x <= 0.5, 0.5, -x), 1.0),
    (lambda x: torch.where(x.flip(1) <= 0.5, 0.5, x.flip(1)), 1.0),  # the same value computed twice
])
def test_masked_relus_are_certified_at_their_largest_slope(fn, constant):
    model = Lambda(fn)
    x = 2 * torch.randn(1, 2, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    report = check_model(model, x, lower_steps=0)
    assert report.lipschitz_upper == pytest.approx(constant, rel=1e-12)
    assert jacobian_norm(model, x + 5) == pytest.approx(constant, rel=1e-12) or constant == 1.0
    assert pair_ratio(model, (2, 3, 3)) <= constant * (1 + 1e-9)


@pytest.mark.parametrize("model", [
    Lambda(lambda x: x * (x > 0) + (x > 0)),  # a jump of 1 at 0
    Lambda(lambda x: x * (x > 0) * (x < 1)),  # two hyperplanes, a jump at 1
    Lambda(lambda x: x * (x.flip(1) > 0)),  # the mask reads other entries
    Lambda(lambda x: x * (x.sum(dim=(1, 2, 3), keepdim=True) > 0)),  # one mask for every entry
    HouseHolder(4, seed=3, tilt=0.2),  # the mask is not the reflection's hyperplane
])
def test_discontinuous_or_unrecognized_masks_are_refused_naming_the_operation(model):
    with pytest.raises(TypeError, match=r"^aten\.\w+ \(node \w+\).* step function"):
        check_model(model, torch.randn(1, 4, 3, 3, dtype=F64), lower_steps=0)


@settings(max_examples=10, deadline=None)
@given(k=st.integers(1, 3), stride=st.integers(1, 3), n=st.integers(3, 6), seed=st.integers(0, 10_000))
def test_l2_norm_pooling_is_the_square_root_of_the_window_overlap(k, stride, n, seed):
    """``sqrt(area * avg_pool(x^2))`` (``nn.LPPool2d(2)``): ``sqrt(max windows a pixel is in)``, exact for
    non-overlapping windows."""
    model = nn.LPPool2d(2, k, stride=stride)
    x = torch.randn(1, 2, n, n, dtype=F64, generator=torch.Generator().manual_seed(seed))
    report = check_model(model, x, lower_steps=0)
    reach = (n - k) // stride * stride + k  # the pixels some window reads
    overlap = min(math.ceil(k / stride), (reach - k) // stride + 1) ** 2
    assert report.lipschitz_upper == pytest.approx(math.sqrt(overlap), rel=1e-12)
    truth = jacobian_norm(model, x)
    assert truth <= report.lipschitz_upper * (1 + 1e-12)
    if stride >= k:
        assert truth == pytest.approx(1.0, rel=1e-12)
    assert pair_ratio(model, (2, n, n), seed=seed) <= report.lipschitz_upper * (1 + 1e-9)


class L2Residual(nn.Module):
    """``sqrt(a x^2 + b (K x)^2 + eps)``: ``sqrt(a + b ||K||^2)``."""

    def __init__(self, a, b, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = nn.Parameter(torch.randn(2, 2, 3, 3, generator=g, dtype=F64) / 3)
        self.a, self.b = a, b

    def forward(self, x):
        return torch.sqrt(self.a * x**2 + self.b * F.conv2d(x, self.k, padding=1) ** 2 + 1e-6)


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (2.0, 0.1)])
def test_l2_norm_residual_combines_the_terms_in_quadrature(a, b):
    model = L2Residual(a, b, seed=5)
    x = torch.randn(1, 2, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(5))
    report = check_model(model, x, lower_steps=0)
    conv = next(layer for layer in report.layers if layer.type == "Conv2d")
    assert report.lipschitz_upper == pytest.approx(math.sqrt(a + b * conv.sigma_max**2), rel=1e-12)
    assert jacobian_norm(model, x) <= report.lipschitz_upper * (1 + 1e-12)
    assert pair_ratio(model, (2, 4, 4)) <= report.lipschitz_upper * (1 + 1e-9)


@pytest.mark.parametrize("fn, message", [
    (lambda x: x**2, r"^aten\.pow .*no certified Lipschitz rule"),
    (lambda x: torch.sqrt(x**2 - x.flip(1) ** 2 + 9), r"^aten\.pow "),  # a difference of squares
    (lambda x: torch.sqrt(F.avg_pool2d(x**2, 2) * F.avg_pool2d(x, 2).abs()), r"^aten\.pow "),
    (lambda x: torch.sqrt(x.abs() + 1), r"^aten\.sqrt .*no certified Lipschitz rule"),
])
def test_roots_of_anything_but_a_nonnegative_sum_of_squares_are_refused(fn, message):
    with pytest.raises(TypeError, match=message):
        check_model(Lambda(fn), torch.randn(1, 2, 4, 4, dtype=F64), lower_steps=0)


@pytest.mark.parametrize("fn, constant", [
    (lambda x: torch.cat([F.relu(x), F.relu(-x)], 1), 1.0),  # deel-torchlip's MaxMin: sqrt(2) by composition
    (lambda x: torch.cat([F.relu(2 * x), F.relu(-x), x.abs()], 1), math.sqrt(5)),
    (lambda x: torch.cat([F.relu(x), F.relu(x)], 1), math.sqrt(2)),
    (lambda x: torch.cat([F.leaky_relu(x, 0.5), -F.relu(-x)], 1), math.sqrt(1.25)),
])
def test_concatenated_kinks_of_one_value_are_bounded_by_the_steeper_side(fn, constant):
    model = Lambda(fn)
    x = torch.randn(1, 2, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    upper = check_model(model, x, lower_steps=0).lipschitz_upper
    assert upper == pytest.approx(constant, rel=1e-12)
    assert max(jacobian_norm(model, x + 5), jacobian_norm(model, x - 5)) == pytest.approx(constant, rel=1e-12)
    assert pair_ratio(model, (2, 3, 3)) <= constant * (1 + 1e-9)
