"""The BCOP layer: orthogonal for any parameters, measured against the dense operator's SVD."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from orthoconv import BCOP, MaxMin, check_orthogonal, gradient_norm_ratio
from orthoconv.spectral import conv_singular_values, dense_operator


def dense_deviation(kernel, size, padding="circular"):
    sigma = np.linalg.svd(dense_operator(kernel.detach().double(), size, padding).numpy(), compute_uv=False)
    return np.abs(sigma - 1).max(), sigma


def perturb(layer, scale, seed, condition=None):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (layer.h_param, layer.pq_param):
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
            if condition is not None:
                p.mul_(torch.logspace(0, condition, p.shape[-1], dtype=p.dtype))


@given(
    c_in=st.integers(1, 5), c_out=st.integers(1, 5), k=st.integers(1, 5), H=st.integers(1, 7), W=st.integers(1, 7),
    params=st.sampled_from(["init", "noise30", "ill-conditioned"]), method=st.sampled_from(["qr", "expm"]),
    seed=st.integers(0, 2**16),
)
def test_orthogonal_in_float64_for_any_parameters(c_in, c_out, k, H, W, params, method, seed):
    torch.manual_seed(seed)
    layer = BCOP(c_in, c_out, k, dtype=torch.float64, method=method)
    if params == "noise30":
        perturb(layer, 30.0, seed)
    if params == "ill-conditioned":
        perturb(layer, 1.0, seed, condition=-10)
    deviation, sigma = dense_deviation(layer.kernel(), (H, W))
    assert len(sigma) == min(c_in, c_out) * H * W
    assert deviation < 1e-12


@pytest.mark.parametrize("c_in, c_out, k", [(64, 64, 3), (32, 48, 4), (48, 32, 5), (16, 16, 1)])
def test_orthogonal_in_float32_after_noise(c_in, c_out, k):
    torch.manual_seed(0)
    layer = BCOP(c_in, c_out, k)
    perturb(layer, 30.0, 1)
    sigma = conv_singular_values(layer.kernel().detach().double(), (16, 12))
    assert float((sigma - 1).abs().max()) < 1e-5


def test_rank_deficient_parameters_still_give_an_orthogonal_layer():
    layer = BCOP(4, 4, 3, dtype=torch.float64)
    with torch.no_grad():
        layer.h_param[:, 1] = layer.h_param[:, 0]
        layer.pq_param.zero_()
    assert dense_deviation(layer.kernel(), (5, 5))[0] < 1e-12


def test_bjorck_method_is_orthogonal_or_raises():
    torch.manual_seed(0)
    layer = BCOP(6, 6, 3, dtype=torch.float64, method="bjorck")
    assert dense_deviation(layer.kernel(), (4, 4))[0] < 1e-12
    with torch.no_grad():
        layer.h_param[:, 1] = layer.h_param[:, 0]
    with pytest.raises(RuntimeError, match="singular or too ill-conditioned"):
        layer.kernel()


@given(
    c_in=st.integers(1, 4), c_out=st.integers(1, 4), k=st.integers(1, 4), H=st.integers(1, 6), W=st.integers(1, 6),
    padding=st.sampled_from(["circular", "zeros"]), seed=st.integers(0, 2**16),
)
def test_forward_applies_the_dense_operator(c_in, c_out, k, H, W, padding, seed):
    torch.manual_seed(seed)
    layer = BCOP(c_in, c_out, k, padding_mode=padding, dtype=torch.float64)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, c_in, H, W, dtype=torch.float64)
    operator = dense_operator(layer.kernel().detach(), (H, W), padding)
    expected = (x.flatten(1) @ operator.T).view(2, c_out, H, W) + layer.bias.detach()[:, None, None]
    assert torch.allclose(layer(x), expected, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_zero_padding_is_lipschitz_but_not_orthogonal(k):
    torch.manual_seed(k)
    layer = BCOP(3, 3, k, padding_mode="zeros", dtype=torch.float64)
    _, sigma = dense_deviation(layer.kernel(), (5, 5), "zeros")
    assert sigma.max() <= 1 + 1e-12
    assert sigma.min() < 0.99
    report = check_orthogonal(layer, (5, 5))
    assert report.padding == "zeros" and not report.passed


def test_explicit_projector_ranks():
    layer = BCOP(5, 5, 3, projector_ranks=((0, 5), (2, 3)), dtype=torch.float64)
    Ps, Qs = layer.projectors()
    traces = torch.cat([Ps, Qs]).diagonal(dim1=-2, dim2=-1).sum(-1)
    assert torch.allclose(traces, torch.tensor([0.0, 5, 2, 3], dtype=torch.float64), atol=1e-12)
    assert dense_deviation(layer.kernel(), (4, 4))[0] < 1e-12
    default = BCOP(5, 5, 4)
    assert default.ranks == ((2, 2, 2), (2, 2, 2))


def test_gradient_norm_is_preserved_through_thirty_layers():
    """BCOP + MaxMin is gradient norm preserving: ||J^T g|| = ||g||; ReLU is the control that loses norm."""
    torch.manual_seed(0)
    layers = []
    for _ in range(30):
        layers += [BCOP(8, 8, 3, dtype=torch.float64), MaxMin()]
    net = torch.nn.Sequential(*layers)
    x = torch.randn(4, 8, 10, 10, dtype=torch.float64)
    ratios = gradient_norm_ratio(net, x)
    assert float((ratios - 1).abs().max()) < 1e-12
    relu_net = torch.nn.Sequential(*[torch.nn.ReLU() if isinstance(m, MaxMin) else m for m in layers])
    assert float(gradient_norm_ratio(relu_net, x).max()) < 0.1


def test_every_call_builds_a_differentiable_kernel():
    layer = BCOP(3, 5, 2)
    assert layer.kernel() is not layer.kernel()
    with torch.no_grad():
        assert layer.eval().kernel() is not layer.kernel()
    layer.kernel().sum().backward()
    assert layer.h_param.grad is not None and layer.pq_param.grad is not None


def test_deterministic_and_state_dict_round_trip():
    torch.manual_seed(0)
    layer = BCOP(6, 4, 3, projector_ranks=2)
    assert torch.equal(layer.kernel(), layer.kernel())
    copy = BCOP(6, 4, 3, projector_ranks=2)
    copy.load_state_dict(layer.state_dict())
    assert torch.equal(copy.kernel(), layer.kernel())
    with pytest.raises(ValueError, match="saved from a BCOP with config"):
        BCOP(6, 4, 3, projector_ranks=1).load_state_dict(layer.state_dict())


@pytest.mark.parametrize("k, padding", [(1, "circular"), (2, "circular"), (3, "zeros"), (4, "zeros"), (5, "circular")])
def test_to_conv2d_computes_the_same_map(k, padding):
    layer = BCOP(3, 5, k, padding_mode=padding, dtype=torch.float64)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    conv = layer.to_conv2d()
    assert isinstance(conv, torch.nn.Conv2d)
    assert torch.allclose(conv(x), layer(x), atol=1e-13)


def test_float32_and_device(device):
    layer = BCOP(4, 6, 3, device=device)
    x = torch.randn(2, 4, 5, 5, device=device)
    y = layer(x)
    assert y.device.type == device and y.dtype == torch.float32
    assert check_orthogonal(layer, (5, 5)).passed


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"in_channels": 0}, ValueError, "in_channels must be a positive integer"),
        ({"out_channels": 2.5}, ValueError, "out_channels must be a positive integer"),
        ({"kernel_size": 0}, ValueError, "kernel_size"),
        ({"kernel_size": (3, 2)}, ValueError, "square kernels only"),
        ({"padding_mode": "reflect"}, ValueError, "padding_mode must be one of"),
        ({"method": "svd"}, ValueError, "method must be one of"),
        ({"projector_ranks": ((1,), (1, 1))}, ValueError, "needs 2 P ranks"),
        ({"projector_ranks": 9}, ValueError, r"must lie in \[0, 4\]"),
        ({"projector_ranks": "half"}, ValueError, "projector_ranks must be None, an int, or a pair"),
    ],
)
def test_bad_constructor_arguments_name_the_problem(kwargs, error, match):
    args = {"in_channels": 4, "out_channels": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=match):
        BCOP(**args)


def test_bad_forward_input_names_the_problem():
    layer = BCOP(4, 4, 3)
    with pytest.raises(ValueError, match="BCOP: x has 3 channels, the layer expects in_channels = 4"):
        layer(torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="4-D batch"):
        layer(torch.randn(4, 5, 5))
    with torch.no_grad():
        layer.h_param[0, 0] = float("nan")
    with pytest.raises(ValueError, match="nan or inf"):
        layer.kernel()


def test_recondition_keeps_the_kernel_and_restores_conditioning():
    torch.manual_seed(0)
    layer = BCOP(5, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        layer.h_param.mul_(torch.logspace(0, -9, 5, dtype=torch.float64))
        layer.pq_param.mul_(torch.logspace(0, 8, layer.pq_param.shape[-1], dtype=torch.float64))
    before = layer.kernel().detach()
    assert layer.recondition_()
    assert torch.allclose(layer.kernel(), before, atol=1e-12)
    for param in (layer.h_param, layer.pq_param):
        sigma = torch.linalg.svdvals(param.detach())
        assert float((sigma[..., 0] / sigma[..., -1]).max()) < 1 + 1e-12
    assert not layer.recondition_()
    with pytest.raises(ValueError, match="needs method='qr'"):
        BCOP(2, 2, 2, method="expm").recondition_()
