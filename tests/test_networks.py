"""Networks by name: shapes, the certified Lipschitz bound against independent measurements, the
parameter-free pieces' constants, and checkpoints that rebuild the network from the file alone."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import orthoconv as oc
from orthoconv.networks import (
    CONV_LAYERS,
    FirstChannels,
    GlobalMaxPool,
    Normalize,
    ZeroChannelPad,
    build,
    convnet_blocks,
    load,
    save,
)


def jacobian_norm(module: nn.Module, x: torch.Tensor) -> float:
    """The exact spectral norm of the Jacobian of ``module`` at one input (dense, float64)."""
    J = torch.autograd.functional.jacobian(lambda v: module(v.view_as(x)).flatten(), x.flatten())
    return float(torch.linalg.matrix_norm(J, ord=2))


def check_shapes(arch, shapes):
    for channels, side in shapes:
        torch.manual_seed(0)
        model = build(arch, "bcop", channels, side, 10)
        assert model(torch.rand(2, channels, side, side)).shape == (2, 10)
        assert model.spec["arch"] == arch and model.spec["image_size"] == [side, side]


@pytest.mark.parametrize("arch", ["small", "large", "convnet-xs"])
def test_architectures_classify_mnist_and_cifar_shapes(arch):
    check_shapes(arch, [(1, 28), (3, 32)])


@pytest.mark.parametrize("arch", ["convnet-s", "convnet-m", "convnet-l"])
def test_wide_convnets_classify_small_images(arch):
    check_shapes(arch, [(3, 8)])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["convnet-s", "convnet-m", "convnet-l"])
def test_wide_convnets_classify_cifar_shapes(arch):
    check_shapes(arch, [(3, 32)])


@pytest.mark.parametrize("layer", CONV_LAYERS)
def test_every_layer_builds_small_and_its_bound_covers_the_jacobian(layer):
    torch.manual_seed(1)
    model = build("small", layer, 1, 8, 3).double().eval()
    L = oc.lipschitz_bound(model, (8, 8))
    for _ in range(3):
        x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
        assert jacobian_norm(model, x) <= L * (1 + 1e-9)


@pytest.mark.parametrize("arch", ["small", "large", "convnet-xs"])
def test_orthogonal_networks_have_certified_constant_one(arch):
    """BCOP convolutions, orthogonal linear layers, MaxMin and the permutations all have norm exactly
    1 (isometries or co-isometries), so the product is 1 up to float32 kernels (< 1e-5)."""
    torch.manual_seed(2)
    model = build(arch, "bcop", 1, 16, 10)
    layers = sum(isinstance(m, (oc.BCOP, oc.OrthogonalLinear)) for m in model.modules())
    assert abs(oc.lipschitz_bound(model.eval(), (1, 16, 16)) - 1) < 2e-6 * layers


def test_standardizing_is_counted_in_the_constant():
    torch.manual_seed(3)
    centered = build("small", "bcop", 3, 8, 10, mean=[0.5, 0.4, 0.3])
    standardized = build("small", "bcop", 3, 8, 10, mean=[0.5, 0.4, 0.3], std=[0.25, 0.5, 0.2])
    weights = {k: v for k, v in centered.state_dict().items() if not k.startswith("0.")}  # all but Normalize
    standardized.load_state_dict(weights, strict=False)
    L0 = oc.lipschitz_bound(centered.eval(), (8, 8))
    L1 = oc.lipschitz_bound(standardized.eval(), (8, 8))
    assert math.isclose(L1 / L0, 1 / 0.2, rel_tol=1e-6)


@given(std=st.lists(st.floats(0.05, 3.0), min_size=1, max_size=4))
def test_normalize_bound_is_its_exact_norm(std):
    layer = Normalize([0.3] * len(std), std).double()
    x = torch.rand(1, len(std), 2, 3, dtype=torch.float64)
    assert math.isclose(jacobian_norm(layer, x), layer.lipschitz_bound(), rel_tol=1e-5)


@given(seed=st.integers(0, 10_000), channels=st.integers(1, 4), side=st.integers(1, 5))
def test_global_max_pool_is_one_lipschitz_and_attains_one(seed, channels, side):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, channels, side, side, generator=g, dtype=torch.float64)
    pool = GlobalMaxPool()
    out = torch.linalg.vector_norm(pool(a[None]) - pool(b[None]))
    assert out <= torch.linalg.vector_norm(a - b) * (1 + 1e-12)
    shift = torch.full_like(a, 0.7)  # a constant shift moves every maximum by exactly the shift
    moved = torch.linalg.vector_norm(pool((a + shift)[None]) - pool(a[None]))
    assert math.isclose(float(moved), 0.7 * math.sqrt(channels))
    assert pool.lipschitz_bound() == 1.0


def test_zero_channel_pad_is_an_isometry_and_first_channels_a_projection():
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    padded = ZeroChannelPad(5)(x)
    assert padded.shape == (3, 5, 4, 4) and torch.equal(padded[:, :2], x) and not padded[:, 2:].any()
    assert torch.equal(FirstChannels(2)(padded), x)
    with pytest.raises(ValueError, match="more than"):
        ZeroChannelPad(1)(x)
    with pytest.raises(ValueError, match="fewer than"):
        FirstChannels(3)(x)


@pytest.mark.parametrize("side, blocks", [(32, 5), (28, 2), (64, 5), (16, 4), (6, 1)])
def test_convnet_blocks_follow_the_halvings(side, blocks):
    assert convnet_blocks(side) == blocks


def test_convnet_structure_matches_prach_et_al():
    model = build("convnet-xs", "bcop", 3, 32, 10)
    convs = [m for m in model if isinstance(m, oc.BCOP)]
    assert len(convs) == 1 + 5 * 5  # the 1x1 layer, five blocks of five
    assert [c.in_channels for c in convs[1::5]] == [16, 32, 64, 128, 256]
    assert [c.kernel_size for c in convs[1::5]] == [3, 3, 3, 3, 1]  # 2x2 images in the last block
    assert not any(isinstance(m, GlobalMaxPool) for m in model)  # 32 halves to 1x1


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch="huge"), "arch must be one of"),
    (dict(layer="eco"), "layer must be one of"),
    (dict(activation="tanh"), "activation must be one of"),
    (dict(image_size=30), "divisible by 4"),
    (dict(num_classes=1), "at least 2"),
    (dict(arch="convnet-xs", image_size=7), "must be even"),
    (dict(arch="convnet-xs", in_channels=17), "at most 16 input channels"),
    (dict(mean=[0.1, 0.2]), "1 or in_channels"),
    (dict(std=0.0), "std must be positive"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**{"arch": "small", "layer": "bcop", "in_channels": 1, "image_size": 28, "num_classes": 10, **kwargs})


@pytest.mark.parametrize("layer", CONV_LAYERS)
def test_checkpoint_rebuilds_the_same_function(tmp_path, layer):
    torch.manual_seed(4)
    model = build("small", layer, 1, 8, 10, mean=0.2)
    model.train()
    model(torch.rand(4, 1, 8, 8))  # one training forward moves the power-iteration buffers (ossn, conv)
    model.eval()
    path = save(model, tmp_path / "net.pt", note="extra keys are kept")
    loaded = load(path)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.spec == model.spec and not loaded.training
    assert torch.load(path, weights_only=True)["note"] == "extra keys are kept"


def test_load_rejects_other_files(tmp_path):
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not an orthoconv network checkpoint"):
        load(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")

