"""check_model on what runs: functional code, upsampling, softmax heads, shape-only models, residual
certificates of 1-Lipschitz blocks, and the clear refusals (each refused or loose before the trace of
what runs). Truth: the dense Jacobian of the model's own forward, float64."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from orthoconv.math.spectral import module_spectrum
from orthoconv.verify import check_model

from test_verify_model import jacobian_norm

F64 = torch.float64


class Functional(nn.Module):
    """``F.conv2d`` / ``F.conv_transpose2d`` / ``F.linear`` with the module's own parameters and buffers."""

    def __init__(self, stride, groups, dilation, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(4, 4 // groups, 3, 3, generator=g, dtype=F64))
        self.register_buffer("t", torch.randn(4, 2, 2, 2, generator=g, dtype=F64))
        self.stride, self.groups, self.dilation = stride, groups, dilation

    def forward(self, x):
        h = F.conv2d(x, self.w * 0.5, padding=self.dilation, stride=self.stride, groups=self.groups,
                     dilation=self.dilation)
        return F.conv_transpose2d(h, self.t, stride=2)


@settings(max_examples=8, deadline=None)
@given(stride=st.sampled_from([1, 2]), groups=st.sampled_from([1, 2, 4]), dilation=st.sampled_from([1, 2]),
       seed=st.integers(0, 1000))
def test_functional_convolutions_with_own_weights_are_measured_like_modules(stride, groups, dilation, seed):
    model = Functional(stride, groups, dilation, seed)
    x = torch.randn(1, 4, 6, 6, dtype=F64)
    report = check_model(model, x, lower_steps=0)
    assert [layer.type for layer in report.layers] == ["Conv2d", "ConvTranspose2d"]
    assert all(layer.exact for layer in report.layers)
    assert report.lipschitz_upper == pytest.approx(math.prod(r.sigma_max for r in report.layers), rel=1e-12)
    assert report.lipschitz_upper >= jacobian_norm(model, x) * (1 - 1e-9)


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


SHAPE_ONLY = {
    "permute-crop-scale": lambda x: 3 * x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)[:, 5:40],
    "pad-flip": lambda x: torch.flip(F.pad(x, (1, 2, 0, 1), mode="replicate"), [2, 3]),
    "roll-transpose": lambda x: torch.roll(x, 2, dims=3).transpose(2, 3) / 4,
    "nearest-x2": lambda x: F.interpolate(x, scale_factor=2),
    "nearest-to-7x5": lambda x: F.interpolate(x, size=(7, 5)),
    "bilinear-x2": lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
    "bilinear-corners": lambda x: F.interpolate(x, size=(9, 7), mode="bilinear", align_corners=True),
    "bicubic": lambda x: F.interpolate(x, size=(8, 8), mode="bicubic"),
    "pixel-shuffle": lambda x: F.pixel_unshuffle(x, 2).flatten(1),
    "rsub-alpha-ones-like": lambda x: torch.rsub(x, torch.ones_like(x), alpha=3),
    "repeat-channels": lambda x: x.repeat(1, 3, 1, 1)[:, 1:],
    "gather": lambda x: x[:, :, torch.tensor([0, 2, 2, 1, 2])],
}


@pytest.mark.parametrize("name", sorted(SHAPE_ONLY))
def test_linear_shape_maps_and_upsampling_are_never_refused_and_exact(name):
    model = Lambda(SHAPE_ONLY[name])
    x = torch.randn(2, 2, 4, 6, dtype=F64)
    assert check_model(model, x, lower_steps=0).lipschitz_upper == pytest.approx(jacobian_norm(model, x), rel=1e-9)


@pytest.mark.parametrize("fn, constant", [
    (lambda x: F.softmax(x.flatten(1), dim=1), lambda n: 0.5),
    (lambda x: F.log_softmax(x.flatten(1), dim=1), lambda n: math.sqrt(n)),
    (lambda x: torch.linalg.vector_norm(x, dim=(2, 3)), lambda n: 1.0),
    (lambda x: x - x.mean(dim=1, keepdim=True), lambda n: 1.0),
])
def test_certified_constants_of_heads_norms_and_centering_dominate_the_jacobian(fn, constant):
    model = Lambda(fn)
    x = torch.randn(1, 2, 3, 3, dtype=F64)
    upper = check_model(model, x, lower_steps=0).lipschitz_upper
    assert upper == pytest.approx(constant(18))
    for seed in range(3):
        point = 3 * torch.randn(1, 2, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))
        assert jacobian_norm(model, point) <= upper * (1 + 1e-12)


def test_softmax_constant_one_half_is_reached():
    model = Lambda(lambda x: F.softmax(x, dim=1))
    assert jacobian_norm(model, torch.zeros(1, 2, dtype=F64)) == pytest.approx(0.5)


class CPL(nn.Module):
    """``x - a K^T Lambda relu(K x + b)`` with a convolution ``K`` (Meunier et al. 2022; SLL with ``Lambda``)."""

    def __init__(self, channels, inner, a, scales, seed, linear=False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        shape = (inner, channels) if linear else (inner, channels, 3, 3)
        self.k = nn.Parameter(torch.randn(*shape, generator=g, dtype=F64))
        self.b = nn.Parameter(torch.randn(inner, *(() if linear else (1, 1)), generator=g, dtype=F64))
        self.register_buffer("t", torch.tensor(scales, dtype=F64).view(-1, *(() if linear else (1, 1))))
        self.a, self.linear = a, linear

    def forward(self, x):
        if self.linear:
            return x - self.a * F.linear(self.t * F.relu(F.linear(x, self.k) + self.b), self.k.T)
        h = self.t * torch.relu(F.conv2d(x, self.k, padding=1) + self.b)
        return x - self.a * F.conv_transpose2d(h, self.k, padding=1)


@settings(max_examples=6, deadline=None)
@given(a=st.floats(0.05, 3.0), seed=st.integers(0, 1000), linear=st.booleans(),
       scales=st.lists(st.floats(0.0, 2.0), min_size=3, max_size=3))
def test_residual_certificate_is_never_below_the_jacobian(a, seed, linear, scales):
    model = CPL(2, 3, a, scales, seed, linear)
    x = torch.randn(1, 2) if linear else torch.randn(1, 2, 5, 5)
    report = check_model(model, x.to(F64), lower_steps=0)
    assert any(layer.type == "ResidualCertificate" for layer in report.layers) or max(scales) == 0
    for point in range(3):
        z = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(point))
        assert jacobian_norm(model, z) <= report.lipschitz_upper * (1 + 1e-9)


def test_a_network_of_cpl_blocks_normalized_by_their_exact_norm_is_certified_at_one():
    blocks = []
    for seed in range(4):
        block = CPL(2, 4, 1.0, [1.0] * 4, seed)
        conv = nn.Conv2d(2, 4, 3, padding=1, bias=False, dtype=F64)
        with torch.no_grad():
            conv.weight.copy_(block.k)
        block.a = 2 / module_spectrum(conv, (6, 6)).sigma_max ** 2
        blocks.append(block)
    model = nn.Sequential(*blocks)
    x = torch.randn(1, 2, 6, 6, dtype=F64)
    report = check_model(model, x, lower_steps=0)
    assert report.lipschitz_upper <= 1 + 1e-9  # composing the graph gives 3^4 = 81
    assert jacobian_norm(model, x) <= report.lipschitz_upper * (1 + 1e-12)


class MaxMin(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)


class ShapeBranch(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, dtype=F64)

    def forward(self, x):
        h = self.conv(x)
        return x + h if h.shape == x.shape else h


def test_maxmin_is_one_lipschitz_and_shape_branches_are_resolved_for_the_example():
    x = torch.randn(1, 4, 3, 3, dtype=F64)
    assert check_model(MaxMin(), x, lower_steps=0).lipschitz_upper == 1.0
    for c_out in (4, 3):
        model = ShapeBranch(4, c_out)
        report = check_model(model, x, lower_steps=0)
        assert report.example_shape == (1, 4, 3, 3) and "holds for inputs of shape 1x4x3x3" in report.table()
        assert report.lipschitz_upper == pytest.approx(report.layers[0].sigma_max + (c_out == 4))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(4, 2, batch_first=True, dtype=F64)

    def forward(self, x):
        return self.mha(x, x, x)[0]


@pytest.mark.parametrize("model, shape, message", [
    (Attention(), (1, 3, 4), r"aten\.\w+ .*in module 'mha' \(MultiheadAttention\)"),
    (nn.LayerNorm(4, dtype=F64), (1, 3, 4), r"aten\.layer_norm .*input's own statistics"),
    (Lambda(lambda x: x * x), (1, 3, 4), r"aten\.mul .*product of two input-dependent values"),
    (Lambda(lambda x: x if x.flatten(1).sum(1)[0] > 0 else -x), (1, 3, 4), r"aten\.select .*line \d+, in forward"),
])
def test_non_lipschitz_models_get_one_clear_error_naming_the_operation(model, shape, message):
    with pytest.raises(TypeError, match=message):
        check_model(model, torch.randn(*shape, dtype=F64), lower_steps=0)


class Block(nn.Module):
    """One drawn block of the zoo below, written as functional code on its own parameters."""

    def __init__(self, kind, c, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.kind = kind
        self.w = nn.Parameter(torch.randn(c, c, 3, 3, generator=g, dtype=F64) / 3)
        self.v = nn.Parameter(torch.randn(c, c // 2, 3, 3, generator=g, dtype=F64) / 3)

    def forward(self, x):
        if self.kind == "conv-circular":
            return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), self.w)
        if self.kind == "grouped-dilated":
            return F.conv2d(x, self.v, padding=2, dilation=2, groups=2)
        if self.kind == "cpl":
            return x - 0.5 * F.conv_transpose2d(F.relu(F.conv2d(x, self.w, padding=1)), self.w, padding=1)
        if self.kind == "maxmin":
            return MaxMin()(x)
        if self.kind == "concat-residual":
            a, b = x.chunk(2, dim=1)
            return torch.cat([a, torch.tanh(b[:, :, :, :]) * 0.9], dim=1)
        if self.kind == "up-down":
            return F.avg_pool2d(F.interpolate(x, scale_factor=2, mode="bilinear"), 2)
        if self.kind == "flip-roll-center":
            y = torch.roll(torch.flip(x, [3]), 1, dims=2)
            return y - y.mean(dim=(2, 3), keepdim=True)
        return F.leaky_relu(x, 0.3) + x


@settings(max_examples=10, deadline=None)
@given(kinds=st.lists(st.sampled_from(["conv-circular", "grouped-dilated", "cpl", "maxmin", "concat-residual",
                                       "up-down", "flip-roll-center", "leaky-skip"]), min_size=1, max_size=4),
       seed=st.integers(0, 1000))
def test_hypothesis_functional_zoo_upper_dominates_the_jacobian(kinds, seed):
    model = nn.Sequential(*[Block(kind, 4, seed + i) for i, kind in enumerate(kinds)])
    x = torch.randn(1, 4, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(seed))
    upper = check_model(model, x, lower_steps=0).lipschitz_upper
    for point in range(2):
        z = torch.randn(1, 4, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(point))
        assert jacobian_norm(model, z) <= upper * (1 + 1e-9)


def layer_norm_model():
    return nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))


def test_the_command_refuses_a_non_lipschitz_model_in_one_line(tmp_path, capsys, monkeypatch):
    from orthoconv.cli import main

    torch.save(layer_norm_model().state_dict(), tmp_path / "ln.pt")
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    code = main(["verify", str(tmp_path / "ln.pt"), "--model", "test_verify_rules:layer_norm_model",
                 "--input-shape", "4", "--lower-steps", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "aten.layer_norm" in err[0] and "LayerNorm" in err[0]


class UnpaddedCPL(nn.Module):
    """orthogonium's ``AOCLipschitzResBlock`` unpadded: ``x - a K^T relu(K x + b)`` with valid convolutions,
    each input padded circularly by 0 (``F.pad(x, (0,) * 4, mode="circular")``)."""

    def __init__(self, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = nn.Parameter(torch.randn(4, 2, 3, 3, generator=g, dtype=F64))
        self.b = nn.Parameter(torch.randn(4, 1, 1, generator=g, dtype=F64))

    def forward(self, x):
        h = torch.relu(F.conv2d(F.pad(x, (0,) * 4, mode="circular"), self.k) + self.b)
        return x - self.a * F.conv_transpose2d(F.pad(h, (0,) * 4, mode="circular"), self.k)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_padding_of_width_zero_does_not_hide_a_residual_block(seed):
    model = UnpaddedCPL(seed)
    x = torch.randn(1, 2, 6, 6, dtype=F64, generator=torch.Generator().manual_seed(seed))
    conv = nn.Conv2d(2, 4, 3, bias=False, dtype=F64)
    with torch.no_grad():
        conv.weight.copy_(model.k)
    model.a = 2 / module_spectrum(conv, (6, 6)).sigma_max ** 2
    report = check_model(model, x, lower_steps=0)
    assert "ResidualCertificate" in [layer.type for layer in report.layers]
    assert report.lipschitz_upper <= 1 + 1e-9  # composing the graph gives 3
    assert jacobian_norm(model, x) <= report.lipschitz_upper * (1 + 1e-12)


def test_a_convolution_subclass_with_its_own_residual_forward_is_traced_through_not_measured_as_a_conv():
    import orthoconv as oc

    class ResidualBCOP(oc.BCOP):
        def forward(self, x):
            return x - 0.5 * super().forward(x)

    ResidualBCOP.__module__ = "orthoconv.nn.residual_layer"  # as a layer of the library itself would be
    torch.manual_seed(0)
    layer = ResidualBCOP(2, 2, 3, dtype=F64)
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    report = check_model(layer, x, lower_steps=0)
    assert report.lipschitz_upper >= 1.5 - 1e-12  # 1 + 0.5 ||BCOP|| at best (the triangle inequality)
    assert jacobian_norm(layer, x) <= report.lipschitz_upper * (1 + 1e-12)
