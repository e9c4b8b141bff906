"""check_model: the certified upper bound dominates the dense Jacobian's norm, the empirical lower bound
stays below it, and both meet it exactly where the network is linear (float64, small models)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import orthoconv as oc
from orthoconv.verify import check_model

F64 = torch.float64


def jacobian_norm(model, x):
    """``||J(x)||_2`` of one sample, from the dense Jacobian built by autograd through the model's forward."""
    model.eval()
    sample = x[:1]
    jac = torch.autograd.functional.jacobian(lambda t: model(t).reshape(-1), sample)
    return float(torch.linalg.svdvals(jac.reshape(jac.shape[0], -1))[0])


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class Concat(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


def batch_norm(c, seed):
    bn = nn.BatchNorm2d(c, dtype=F64)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_var.copy_(torch.rand(c, generator=g, dtype=F64) * 2 + 0.1)
        bn.running_mean.copy_(torch.randn(c, generator=g, dtype=F64))
        bn.weight.copy_(torch.randn(c, generator=g, dtype=F64))
    return bn


LINEAR_MODELS = {
    "conv": lambda: nn.Conv2d(3, 4, 3, padding=1, dtype=F64),
    "strided-grouped": lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=F64),
    "dilated-circular": lambda: nn.Conv2d(2, 2, 3, padding=2, dilation=2, padding_mode="circular", dtype=F64),
    "transposed": lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1, dtype=F64),
    "residual-bn": lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=F64), batch_norm(3, 1),
                                         Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, dtype=F64),
                                                                batch_norm(3, 2)))),
    "concat-pools": lambda: nn.Sequential(Concat(nn.AvgPool2d(2), nn.Conv2d(2, 3, 2, stride=2, dtype=F64)),
                                          nn.AdaptiveAvgPool2d((3, 2)), nn.Flatten(), nn.Linear(30, 4, dtype=F64)),
    "avgpool-ceil": lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    "reflection-pad": lambda: nn.ReflectionPad2d((1, 2, 0, 1)),
    "pad-conv": lambda: nn.Sequential(nn.ReplicationPad2d((1, 2, 0, 1)), nn.Conv2d(2, 2, 2, dtype=F64)),
}
INPUT = {"conv": (3, 6, 6), "strided-grouped": (4, 6, 6), "transposed": (2, 4, 3)}


@pytest.mark.parametrize("name", sorted(LINEAR_MODELS))
def test_linear_models_are_exact(name):
    torch.manual_seed(0)
    model = LINEAR_MODELS[name]()
    x = torch.randn(2, *INPUT.get(name, (2, 6, 6)), dtype=F64)
    exact = jacobian_norm(model, x)
    report = check_model(model, x, lower_steps=30)
    chain = math.prod(layer.sigma_max for layer in report.layers)
    assert report.lipschitz_upper >= exact * (1 - 1e-12)
    assert report.lipschitz_lower <= exact * (1 + 1e-9)
    assert report.lipschitz_lower >= 0.8 * exact
    if name in ("conv", "strided-grouped", "dilated-circular", "transposed", "avgpool-ceil", "reflection-pad"):
        assert report.lipschitz_upper == pytest.approx(exact, rel=1e-10)
        assert report.lipschitz_upper == pytest.approx(chain, rel=1e-12)


def test_single_conv_reports_its_configuration_and_spectrum():
    conv = nn.Conv2d(8, 8, 3, groups=4, padding=1, padding_mode="circular", dtype=F64)
    report = check_model(conv, torch.randn(1, 8, 8, 8, dtype=F64), lower_steps=0)
    (layer,) = report.layers
    dense = torch.autograd.functional.jacobian(lambda t: conv(t) - conv.bias[:, None, None],
                                               torch.zeros(1, 8, 8, 8, dtype=F64)).reshape(512, 512)
    sigma = torch.linalg.svdvals(dense)
    assert layer.config["groups"] == 4 and layer.config["padding_mode"] == "circular"
    assert layer.input_shape == (8, 8, 8) and layer.exact
    assert layer.sigma_max == pytest.approx(float(sigma[0]), rel=1e-12)
    assert layer.sigma_min == pytest.approx(float(sigma[-1]), rel=1e-9, abs=1e-12)
    assert report.lipschitz_lower is None


def test_orthogonal_chain_is_exactly_one_and_layers_say_so():
    torch.manual_seed(0)
    model = nn.Sequential(oc.BCOP(2, 4, 3, dtype=F64), oc.MaxMin(), oc.StridedBCOP(4, 16, 3, 2, dtype=F64),
                          oc.GroupSort(4), oc.CayleyConv(16, 16, 3, input_size=(4, 4), dtype=F64), oc.InvertibleDownsampling(2),
                          nn.Flatten(), oc.OrthogonalLinear(256, 10, dtype=F64))
    report = check_model(model, torch.randn(3, 2, 8, 8, dtype=F64))
    assert report.lipschitz_upper == pytest.approx(1.0, abs=1e-12)
    assert 0.5 < report.lipschitz_lower <= 1 + 1e-12
    verdicts = {layer.name: layer.verdict for layer in report.layers}
    assert verdicts["0"] == "isometry" and verdicts["2"] == "orthogonal" and verdicts["7"] == "co-isometry"
    assert verdicts["1"] == "1-Lipschitz" and verdicts["4"] == "orthogonal"
    assert report.layers[2].input_shape == (4, 8, 8)


def test_orthoconv_layers_are_checked_through_their_kernel_not_their_weight():
    torch.manual_seed(0)
    soc = oc.SOC(8, 8, 3, terms=12, dtype=F64)
    (layer,) = check_model(soc, torch.randn(1, 8, 8, 8, dtype=F64), lower_steps=0).layers
    assert layer.verdict == "orthogonal" and abs(layer.sigma_min - 1) < 1e-10
    zeros = oc.BCOP(8, 8, 3, padding_mode="zeros", dtype=F64)
    (layer,) = check_model(zeros, torch.randn(1, 8, 8, 8, dtype=F64), lower_steps=0).layers
    assert layer.verdict == "NOT orthogonal" and layer.sigma_min < 0.1 and layer.exact
    assert layer.config["padding_mode"] == "zeros"


def test_residual_sum_adds_and_concat_takes_the_root_of_squares():
    identity = nn.Identity()
    x = torch.randn(1, 2, 4, 4, dtype=F64)
    assert check_model(Residual(identity), x, lower_steps=0).lipschitz_upper == pytest.approx(2.0)
    assert check_model(Concat(identity, identity), x, lower_steps=0).lipschitz_upper == pytest.approx(math.sqrt(2))
    scaled = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False, dtype=F64))
    with torch.no_grad():
        scaled[0].weight.copy_(-torch.eye(2, dtype=F64)[:, :, None, None])
    report = check_model(Residual(scaled), x, lower_steps=5)
    assert report.lipschitz_upper == pytest.approx(2.0)  # certified, though x - x = 0
    assert report.lipschitz_lower == 0.0


class Gate(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class Noisy(nn.Module):
    def forward(self, x):
        return x * torch.rand(1, dtype=x.dtype)


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


@pytest.mark.parametrize(
    "model, message",
    [
        (Gate(), "product of two input-dependent values"),
        (nn.Sequential(nn.Conv2d(2, 2, 1, dtype=F64), nn.LayerNorm([2, 4, 4], dtype=F64)), "LayerNorm"),
        (Branchy(), r"aten\.sum .* line \d+, in forward: if x\.sum\(\) > 0"),
        (Noisy(), "draws random numbers"),
    ],
)
def test_what_cannot_be_bounded_is_named(model, message):
    with pytest.raises(TypeError, match=message):
        check_model(model, torch.randn(1, 2, 4, 4, dtype=F64))


def test_a_data_dependent_branch_deep_in_the_model_names_its_module():
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, dtype=F64), nn.Sequential(nn.Tanh(), Branchy()))
    with pytest.raises(TypeError, match="in module '1.1' \\(Branchy\\)"):
        check_model(model, torch.randn(1, 2, 4, 4, dtype=F64))


def test_forward_hooks_run_and_are_verified_as_part_of_what_runs():
    conv = nn.Conv2d(2, 2, 3, padding=1, dtype=F64)
    model = nn.Sequential(conv, nn.ReLU())
    x = torch.randn(1, 2, 4, 4, dtype=F64)
    plain = check_model(model, x, lower_steps=0).lipschitz_upper
    conv.register_forward_hook(lambda module, args, out: 10 * out)
    assert check_model(model, x, lower_steps=0).lipschitz_upper == pytest.approx(10 * plain, rel=1e-12)


def test_a_graph_that_does_not_reproduce_the_model_is_refused():
    class Stateful(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return x * self.calls

    with pytest.raises(ValueError, match="does not reproduce the model's output"):
        check_model(Stateful(), torch.randn(1, 2, 4, 4, dtype=F64))


def test_spectral_norm_weights_are_read_after_their_hook():
    conv = torch.nn.utils.spectral_norm(nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular", dtype=F64))
    x = torch.randn(1, 2, 4, 4, dtype=F64)
    report = check_model(conv, x, lower_steps=0)
    assert report.lipschitz_upper == pytest.approx(jacobian_norm(conv, x), rel=1e-10)


def test_modes_are_restored_and_dropout_is_eval():
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, dtype=F64), nn.Dropout(0.5), batch_norm(2, 0)).train()
    report = check_model(model, torch.randn(2, 2, 4, 4, dtype=F64))
    assert all(m.training for m in model.modules())
    assert report.lipschitz_lower <= report.lipschitz_upper * (1 + 1e-9)


def test_non_finite_parameters_are_refused():
    conv = nn.Conv2d(2, 2, 3, dtype=F64)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite.*weight"):
        check_model(conv, torch.randn(1, 2, 4, 4, dtype=F64))


def test_functional_pools_activations_and_means_compose():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1, dtype=F64)

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            y = torch.nn.functional.avg_pool2d(torch.nn.functional.leaky_relu(y, 0.2), 2, 1)
            return 3.0 * y.mean(dim=(2, 3)) - y.flatten(1)[:, :4] / 2

    model = Functional()
    x = torch.randn(2, 2, 8, 8, dtype=F64)
    report = check_model(model, x)
    conv = report.layers[0].sigma_max
    pool = 1 - 0.0  # avg_pool2d(2, stride 1) on 4x4: exact norm computed by check_model; bound it by 1
    assert report.lipschitz_upper <= conv * pool * (3 / 3 + 1 / 2) * (1 + 1e-12)
    for seed in range(3):
        torch.manual_seed(seed)
        assert jacobian_norm(model, torch.randn(1, 2, 8, 8, dtype=F64)) <= report.lipschitz_upper * (1 + 1e-12)


@st.composite
def small_networks(draw):
    """A random residual/concat/pool network of standard layers and its input shape."""
    c = draw(st.sampled_from([1, 2, 4]))
    side = draw(st.integers(4, 8))
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    layers, channels, size = [], c, side
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "strided", "grouped", "residual", "concat", "bn", "relu", "tanh",
                                     "avgpool", "maxpool", "transposed"]))
        k = draw(st.integers(1, 3))
        if kind == "conv":
            out = draw(st.integers(1, 4))
            mode = draw(st.sampled_from(["zeros", "circular", "reflect"]))
            layers.append(nn.Conv2d(channels, out, k, padding=k // 2, padding_mode=mode, dtype=F64))
            channels, size = out, size + 2 * (k // 2) - k + 1
        elif kind == "strided" and size >= 2:
            layers.append(nn.Conv2d(channels, channels, k, stride=2, padding=k // 2, dilation=1, dtype=F64))
            size = (size + 2 * (k // 2) - k) // 2 + 1
        elif kind == "grouped" and channels % 2 == 0:
            layers.append(nn.Conv2d(channels, channels, 3, padding=2, dilation=2, groups=2, dtype=F64))
        elif kind == "residual":
            layers.append(Residual(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, dtype=F64), nn.ReLU())))
        elif kind == "concat":
            layers.append(Concat(nn.Identity(), nn.Conv2d(channels, channels, 1, dtype=F64)))
            channels *= 2
        elif kind == "bn":
            layers.append(batch_norm(channels, seed))
        elif kind in ("relu", "tanh"):
            layers.append(nn.ReLU() if kind == "relu" else nn.Tanh())
        elif kind == "avgpool" and size >= 2:
            layers.append(nn.AvgPool2d(2, ceil_mode=draw(st.booleans())))
            size = -(-size // 2) if layers[-1].ceil_mode else size // 2
        elif kind == "maxpool" and size >= 2:
            layers.append(nn.MaxPool2d(3, 2, 1))
            size = (size + 2 - 3) // 2 + 1
        elif kind == "transposed" and size <= 6:
            layers.append(nn.ConvTranspose2d(channels, channels, 2, stride=2, dtype=F64))
            size *= 2
    return nn.Sequential(*layers) if layers else nn.Identity(), (c, side, side)


@settings(max_examples=20, deadline=None)
@given(net=small_networks())
def test_hypothesis_networks_upper_dominates_jacobians_and_lower(net):
    model, shape = net
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, *shape, generator=generator, dtype=F64)
    report = check_model(model, x, lower_steps=5)
    assert report.lipschitz_lower <= report.lipschitz_upper * (1 + 1e-9)
    for _ in range(2):
        point = torch.randn(1, *shape, generator=generator, dtype=F64)
        assert jacobian_norm(model, point) <= report.lipschitz_upper * (1 + 1e-9)
