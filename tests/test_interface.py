"""One interface across layers: the nn.Conv2d-like signature, kernel(), lipschitz_bound(input_size=None)
checked against the dense operator of the layer's own forward, config() and from_config, and clear
errors for empty images."""

import inspect
import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.math.conv import conv2d_same, conv2d_same_adjoint, pad
from orthoconv.nn.norms import torus_norm_bound
from orthoconv.spectral import circular_spectral_norm, dense_operator
from orthoconv.verify.checkpoint import load_state_dicts, orthoconv_layers

from layer_zoo import CONV_LAYERS, LAYERS, PARAMETERLESS, SIZE, SIZED, build, example_input, kernel_of

F64 = torch.float64
CONV_CLASSES = [oc.BCOP, oc.RKO, oc.OSSN, oc.SVCM, oc.RKL2NE, oc.CayleyConv, oc.SOC, oc.StridedBCOP, oc.LOT, oc.BRO,
                oc.BCOPTranspose]
ORTHOGONAL = ("BCOP", "CayleyConv", "StridedBCOP", "LOT", "BRO", "BCOPTranspose")


def operator_norm(layer, shape):
    """The largest singular value of ``x -> layer(x) - layer(0)`` on inputs of ``shape`` (float64 SVD)."""
    n = int(np.prod(shape))
    basis = torch.eye(n, dtype=F64).reshape(n, *shape)
    with torch.no_grad():
        out = layer(basis) - layer(torch.zeros(1, *shape, dtype=F64))
    return float(torch.linalg.matrix_norm(out.reshape(n, -1), ord=2))


@pytest.mark.parametrize("cls", CONV_CLASSES, ids=lambda c: c.__name__)
def test_conv_layers_share_the_conv2d_signature(cls):
    parameters = list(inspect.signature(cls).parameters.values())
    names = [p.name for p in parameters]
    assert names[:7] == ["in_channels", "out_channels", "kernel_size", "stride", "padding", "bias", "padding_mode"]
    assert names[-2:] == ["device", "dtype"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters[:7])
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters[7:])
    defaults = {p.name: p.default for p in parameters}
    assert defaults["stride"] == (2 if cls in (oc.StridedBCOP, oc.BCOPTranspose) else 1)
    assert (defaults["padding"], defaults["bias"], defaults["device"], defaults["dtype"]) == ("same", True, None, None)
    for method in ("kernel", "config", "lipschitz_bound"):
        assert callable(getattr(cls, method))
    assert list(inspect.signature(cls.lipschitz_bound).parameters) == ["self", "input_size"]


def test_positional_arguments_follow_conv2d():
    layer = oc.RKO(3, 4, 3, 1, "same", False, "zeros")
    assert layer.bias is None and layer.padding_mode == "zeros"
    with pytest.raises(ValueError, match="stride 1 only"):
        oc.BCOP(3, 4, 3, 2)
    with pytest.raises(TypeError):
        oc.BCOP(3, 4, 3, 1, "same", True, "circular", None)  # layer options are keyword-only


@pytest.mark.parametrize("name", CONV_LAYERS)
def test_lipschitz_bound_is_certified_and_exact_where_the_layer_is_orthogonal(name):
    layer = build(name, dtype=F64)
    with torch.no_grad():
        layer.train(False)
    shape = example_input(name).shape[1:]
    norm = operator_norm(layer, shape)
    size = tuple(shape[-2:])
    bound = layer.lipschitz_bound(input_size=size)
    assert norm <= bound * (1 + 1e-12)
    if name in SIZED:  # the operator depends on the size: no bound without one
        with pytest.raises(ValueError, match="pass input_size"):
            layer.lipschitz_bound()
    else:
        assert layer.lipschitz_bound() >= norm * (1 - 1e-12)
    if name in ORTHOGONAL:
        assert bound == pytest.approx(norm, abs=1e-12)
        assert bound == pytest.approx(1.0, abs=1e-12)
    if name in ("OSSN", "SVCM"):  # they report their exact norm
        assert bound == pytest.approx(norm, rel=1e-10)


@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_bcop_bound_without_a_size_covers_every_size(padding):
    torch.manual_seed(0)
    layer = oc.BCOP(3, 5, 3, padding_mode=padding, dtype=F64)
    bound = layer.lipschitz_bound()
    assert 1 <= bound < 1 + 1e-12
    for H, W in [(1, 1), (2, 5), (4, 4), (7, 3)]:
        assert operator_norm(layer, (3, H, W)) <= bound
    strided = oc.StridedBCOP(2, 8, 3, 2, dtype=F64)
    assert 1 <= strided.lipschitz_bound() < 1 + 1e-12
    with pytest.raises(ValueError, match="does not divide"):
        strided.lipschitz_bound((5, 4))
    with pytest.raises(ValueError, match="built for"):
        oc.CayleyConv(2, 2, 3, input_size=SIZE).lipschitz_bound((4, 4))


@given(
    c_out=st.integers(1, 4), c_in=st.integers(1, 4), kh=st.integers(1, 4), kw=st.integers(1, 4),
    H=st.integers(1, 9), W=st.integers(1, 9), seed=st.integers(0, 2**16),
)
def test_torus_bound_dominates_every_circular_and_zero_padded_norm(c_out, c_in, kh, kw, H, W, seed):
    """``sqrt(1 + sum ||D[s]||)`` bounds ``sup_z ||K(z)||`` for ANY kernel, hence both paddings on every size."""
    kernel = torch.randn(c_out, c_in, kh, kw, generator=torch.Generator().manual_seed(seed), dtype=F64)
    bound = torus_norm_bound(kernel)
    assert circular_spectral_norm(kernel, (H, W)) <= bound * (1 + 1e-12)
    zeros = float(torch.linalg.matrix_norm(dense_operator(kernel, (H, W), "zeros"), ord=2))
    assert zeros <= bound * (1 + 1e-12)


@pytest.mark.parametrize("name", sorted({**LAYERS, **PARAMETERLESS}))
def test_config_is_json_and_rebuilds_the_layer(name):
    layer = build(name, dtype=F64)
    config = json.loads(json.dumps(layer.config()))
    assert config["type"] == name == type(layer).__name__
    copy = oc.nn.from_config(config, **({} if name in PARAMETERLESS else {"dtype": F64}))
    assert type(copy) is type(layer) and copy.config() == layer.config()
    if name in PARAMETERLESS:
        return
    assert layer.state_dict()["_extra_state"] == layer.config()
    copy.load_state_dict(layer.state_dict())
    x = example_input(name, dtype=F64)
    layer.eval(), copy.eval()
    with torch.no_grad():
        assert torch.equal(kernel_of(copy, name), kernel_of(layer, name))
        assert torch.equal(copy(x), layer(x))


def test_state_dict_refuses_another_structure_and_loads_old_checkpoints():
    state = oc.SOC(3, 3, 3, terms=6).state_dict()
    with pytest.raises(ValueError, match="saved from a SOC with config"):
        oc.SOC(3, 3, 3, terms=8).load_state_dict(state)
    with pytest.raises(ValueError, match="saved from a StridedBCOP"):
        oc.StridedBCOP(2, 8, 3, 2, method="expm").load_state_dict(oc.StridedBCOP(2, 8, 3, 2).state_dict())
    ossn = oc.OSSN(2, 2, 3, input_size=4, n_power_iterations=1)
    oc.OSSN(2, 2, 3, n_power_iterations=5).load_state_dict(ossn.state_dict())  # how it is maintained may differ
    old = {key: value for key, value in state.items() if not key.endswith("_extra_state")}
    oc.SOC(3, 3, 3, terms=6).load_state_dict(old)


def test_from_config_names_what_is_wrong():
    with pytest.raises(ValueError, match="unknown layer type 'Conv9'.*BCOP"):
        oc.nn.from_config({"type": "Conv9"})
    with pytest.raises(TypeError, match="'type' entry"):
        oc.nn.from_config([("type", "BCOP")])


def test_checkpoint_reader_rebuilds_every_saved_layer(tmp_path):
    model = torch.nn.Sequential(oc.BCOP(2, 3, 3, dtype=F64), oc.SOC(3, 3, 3, dtype=F64))
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    (name, state), = load_state_dicts(path)[0]
    layers = {prefix: layer for prefix, _, layer, _, _ in orthoconv_layers(state)[0]}
    assert set(layers) == {"0.", "1."}
    for prefix, original in zip(("0.", "1."), model):
        assert layers[prefix].config() == original.config()
        assert torch.equal(layers[prefix].kernel().detach(), original.kernel().detach())


@pytest.mark.parametrize("name", [*CONV_LAYERS, "InvertibleDownsampling"])
def test_an_empty_image_raises_a_value_error_naming_the_layer(name):
    layer = build(name)
    x = example_input(name)
    with pytest.raises(ValueError, match=rf"{name}: the image must have positive height and width, got 0x"):
        layer(x[..., :0, :])
    if name not in ("OSSN", "SVCM", "CayleyConv"):  # these are built for one image size
        with pytest.raises(ValueError, match=r"positive height and width, got \d+x0"):
            layer(x[..., :0])
    assert layer(x[:0]).shape[0] == 0  # an empty batch is fine


@pytest.mark.parametrize("fn", [
    lambda x, k: conv2d_same(x, k), lambda x, k: conv2d_same_adjoint(x, k), lambda x, k: pad(x, (1, 1, 1, 1), "circular"),
])
def test_math_convolutions_refuse_empty_images(fn):
    kernel = torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match="positive height and width, got 0x4"):
        fn(torch.randn(1, 2, 0, 4), kernel)
    with pytest.raises(TypeError, match="dtype torch.float64 but the kernel has dtype torch.float32"):
        conv2d_same(torch.randn(1, 2, 4, 4, dtype=F64), kernel)
