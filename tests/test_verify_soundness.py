"""check_model never certifies less than the truth: in-place writes, unbatched padding, casts, batch
broadcasting, replaced forwards, activation parameters and stateful layers (each case gave a bound below
the dense Jacobian's norm, with no error, before it was handled). Truth: the dense Jacobian, float64."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import orthoconv as oc
from orthoconv.math.spectral import module_spectrum
from orthoconv.verify import check_model, lipschitz_bound

from test_verify_model import jacobian_norm

F64 = torch.float64


def conv(seed, c=2):
    torch.manual_seed(seed)
    return nn.Conv2d(c, c, 3, padding=1, dtype=F64)


class ScaleInPlace(nn.Module):
    def __init__(self, scale, seed):
        super().__init__()
        self.c, self.scale = conv(seed), scale

    def forward(self, x):
        y = self.c(x)
        y.mul_(self.scale)  # y is not re-assigned: the traced node of y is the one before the write
        return y


class AddInPlace(nn.Module):
    def __init__(self, seed):
        super().__init__()
        self.c, self.d = conv(seed), conv(seed + 1)

    def forward(self, x):
        y = self.c(x)
        y.add_(5 * self.d(x))
        return y


class ScaleAView(nn.Module):
    def __init__(self, seed):
        super().__init__()
        self.c = conv(seed)

    def forward(self, x):
        y = self.c(x)
        y[:, :1].mul_(10)  # writes through a view of y
        return y


class InPlaceResidual(nn.Module):
    def __init__(self, seed, inplace):
        super().__init__()
        self.c, self.act = conv(seed), nn.ReLU(inplace=inplace)

    def forward(self, x):
        out = self.c(x)
        out += x
        return self.act(out)


@settings(max_examples=10, deadline=None)
@given(scale=st.floats(0.1, 50.0), seed=st.integers(0, 100))
def test_in_place_scaling_is_counted_exactly(scale, seed):
    model = ScaleInPlace(scale, seed)
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    report = check_model(model, x, lower_steps=0)
    assert report.lipschitz_upper == pytest.approx(jacobian_norm(model, x), rel=1e-9)
    assert lipschitz_bound(model, (2, 5, 5)) == pytest.approx(report.lipschitz_upper)


@pytest.mark.parametrize("model", [AddInPlace(0), ScaleAView(1)], ids=["add_", "view"])
def test_in_place_writes_are_bounded_from_above(model):
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    assert check_model(model, x, lower_steps=0).lipschitz_upper >= jacobian_norm(model, x) * (1 - 1e-12)


def test_in_place_residual_and_relu_bound_as_their_out_of_place_forms():
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    plain = check_model(InPlaceResidual(3, inplace=False), x, lower_steps=0).lipschitz_upper
    assert check_model(InPlaceResidual(3, inplace=True), x, lower_steps=0).lipschitz_upper == pytest.approx(plain)


def test_the_example_input_is_not_changed_by_an_in_place_model():
    class Doubles(nn.Module):
        def forward(self, x):
            return x.mul_(2)

    x = torch.randn(1, 2, 3, 3, dtype=F64)
    before = x.clone()
    assert check_model(Doubles(), x, lower_steps=0).lipschitz_upper == pytest.approx(2.0)
    assert torch.equal(x, before)


@pytest.mark.parametrize("pad, shape", [
    (nn.ReplicationPad3d(2), (1, 3, 4, 4)), (nn.CircularPad3d(3), (1, 3, 4, 4)),
    (nn.ReplicationPad2d(2), (1, 4, 4)), (nn.ReflectionPad2d(3), (1, 5, 5)), (nn.ReflectionPad1d(2), (1, 6)),
    (nn.ReplicationPad2d((1, 2, 0, 3)), (2, 3, 4, 4)),
])
def test_padding_bounds_every_padded_axis_also_of_unbatched_inputs(pad, shape):
    """torch reads an input one dimension short of the batched form as unbatched and pads its first
    per-sample dimension as well: the copy counts must follow (3**3 copies of a corner: 5.196)."""
    model = nn.Sequential(pad)
    x = torch.randn(*shape, dtype=F64)
    assert check_model(model, x, lower_steps=0).lipschitz_upper == pytest.approx(jacobian_norm(model, x), rel=1e-9)


class Cast(nn.Module):
    def forward(self, x):
        return x.to(torch.int64).to(x.dtype)


class BroadcastOverBatch(nn.Module):
    def forward(self, x):
        return x + torch.zeros(4, 1, 1, 1, dtype=x.dtype)  # one sample in, four copies out


class SumAll(nn.Module):
    def forward(self, x):
        return torch.sum(x, dim=[])


@pytest.mark.parametrize("model, message", [
    (Cast(), "step function"), (BroadcastOverBatch(), "broadcasts .* along dimension 0 .* the batch must stay"),
    (SumAll(), "batch"),
])
def test_maps_that_are_not_per_sample_lipschitz_are_refused(model, message):
    with pytest.raises(TypeError, match=message):
        check_model(model, torch.randn(1, 1, 2, 2, dtype=F64), lower_steps=0)


def test_a_forward_replaced_on_the_instance_or_the_class_is_verified_as_it_runs(monkeypatch):
    """What runs is traced: a replaced forward is counted (it was refused before the trace of what runs)."""
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    layer = conv(0)
    truth = jacobian_norm(nn.Sequential(layer), x)
    original = layer.forward
    layer.forward = lambda inp: 10 * original(inp)
    assert check_model(nn.Sequential(layer), x, lower_steps=0).lipschitz_upper == pytest.approx(10 * truth, rel=1e-9)

    def louder(self, inp):
        return 10 * F.conv2d(inp, self.weight, self.bias, padding=1)

    monkeypatch.setattr(nn.Conv2d, "forward", louder)
    model = nn.Sequential(conv(1))
    assert check_model(model, x, lower_steps=0).lipschitz_upper == pytest.approx(jacobian_norm(model, x), rel=1e-9)


@pytest.mark.parametrize("activation, message", [
    (nn.Softplus(beta=1.0, threshold=-3.0), "jumps by 3.05"), (nn.Softplus(threshold=10.0), "discontinuous"),
    (nn.Softplus(beta=-1.0), "beta > 0"), (nn.CELU(alpha=-1.0), "unbounded"),
])
def test_activation_parameters_that_break_the_bound_are_refused(activation, message):
    with pytest.raises(TypeError, match=message):
        check_model(nn.Sequential(activation), torch.zeros(1, 1, 2, 2, dtype=F64), lower_steps=0)


def test_functional_softplus_reads_its_threshold():
    class Soft(nn.Module):
        def forward(self, x):
            return F.softplus(x, 1.0, -3.0)

    with pytest.raises(TypeError, match="discontinuous"):
        check_model(Soft(), torch.zeros(1, 1, 2, 2, dtype=F64), lower_steps=0)


def test_default_softplus_and_celu_are_one_lipschitz_and_the_jump_is_stated():
    report = check_model(nn.Sequential(nn.Softplus(), nn.CELU(0.5)), torch.zeros(1, 1, 2, 2, dtype=F64),
                         lower_steps=0)
    assert report.lipschitz_upper == 1.0
    jump = math.log1p(math.exp(-20.0))
    assert f"{jump:.1e}" in report.layers[0].method


def test_a_layer_whose_forward_draws_its_own_state_has_no_spectrum_yet():
    """A fresh OSSN without input_size draws its power-iteration vector on its first forward: the map is
    not defined before, and a copy's forward would draw another one."""
    torch.manual_seed(1)
    layer = oc.OSSN(2, 2, 4, padding_mode="zeros")
    with pytest.raises(ValueError, match="changes its own state"):
        module_spectrum(layer, (5, 5))
    layer.eval()
    with torch.no_grad():
        layer(torch.zeros(1, 2, 5, 5))
    double = layer.double()
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    truth = jacobian_norm(nn.Sequential(double), x)
    assert module_spectrum(double, (5, 5)).sigma_max == pytest.approx(truth, rel=1e-9)
