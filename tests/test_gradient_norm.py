"""Gradient norm preservation, measured (analysis.experiments.gradient_norm and its networks, analysis.experiments.gradient_stacks) and the
Jacobian helpers (analysis.experiments.jacobian).

References are independent of the helpers: ``torch.autograd.functional.jacobian`` and ``torch.linalg.svdvals``
for the Jacobian spectrum, the FFT spectrum of ``orthoconv.spectral`` for the plain convolution's norm.
"""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from orthoconv.analysis.experiments import gradient_norm as gn
from orthoconv.analysis.experiments import gradient_stacks as stacks
from orthoconv.analysis.experiments.jacobian import (
    dense_jacobian,
    dense_singular_values,
    jacobian_spectrum,
    sublayer_gradient_ratios,
    unit_cotangents,
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gradient_norm")
    assert gn.main(["--quick", "--workers", "1", "--out", str(out)]) == 0
    return out, json.loads((out / "gradient_norm.json").read_text())


def networks(data, layer, activation):
    return [n for n in data["networks"] if (n["layer"], n["activation"]) == (layer, activation)]


def test_quick_bcop_maxmin_keeps_every_ratio_at_one_in_float32(quick_run):
    _, data = quick_run
    nets = networks(data, "BCOP", "MaxMin")
    assert data["settings"]["dtype"] == "float32"
    assert set(data["settings"]["depths"]) <= {n["depth"] for n in nets}
    for net in nets:
        for stage in ("before", "after"):
            if stage in net:
                ratios = torch.tensor(net[stage]["sublayer_ratios"])
                assert ratios.shape == (2 * net["depth"] + 1, data["settings"]["probes"])
                assert (ratios - 1).abs().max() < 1e-5, (net["depth"], stage)
    assert any("after" in net for net in nets)


def test_quick_relu_attenuates_at_every_depth(quick_run):
    _, data = quick_run
    nets = sorted(networks(data, "BCOP", "ReLU"), key=lambda n: (n["image_size"], n["depth"]))
    main = [n for n in nets if n["image_size"] == data["settings"]["image_size"]]
    for net in nets:
        assert max(net["before"]["ratio_max"][:-1]) < 1
        assert net["before"]["act_sq_factor"] < 0.8 and abs(net["before"]["conv_sq_factor"] - 1) < 1e-5
    ratios = [n["before"]["ratio_mean"][0] for n in main]
    assert all(deeper < shallower for shallower, deeper in zip(ratios, ratios[1:]))
    assert ratios[-1] < 0.9 ** main[-1]["depth"]


def test_quick_records_every_argument_and_the_versions(quick_run):
    out, data = quick_run
    arguments = data["run"]["arguments"]
    assert set(arguments) == set(vars(gn.build_parser().parse_args([])))
    assert arguments["quick"] is True and arguments["workers"] == 1 and arguments["out"] == str(out)
    assert data["run"]["torch"] == torch.__version__ and data["run"]["device"].startswith("cpu")
    assert data["run"]["arguments"]["device"] == "cpu"


def test_quick_writes_both_figures(quick_run):
    out, data = quick_run
    for name in ("gradient_norm_depth.png", "jacobian_spectra.png"):
        path = out / name
        assert path.exists() and path.stat().st_size > 10_000
        assert str(path) in data["figures"].values()


@given(
    half_channels=st.integers(1, 3),
    size=st.integers(1, 6),
    depth=st.integers(1, 6),
    kernel_size=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_sublayer_ratios_are_exactly_one_for_bcop_maxmin_in_float64(half_channels, size, depth, kernel_size, seed):
    channels = 2 * half_channels
    net = stacks.build_network("BCOP", "MaxMin", depth, channels, size, kernel_size, seed, torch.float64, "cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in net[0::2]:
            conv.bias.normal_(generator=generator)
    x = torch.randn(3, channels, size, size, generator=generator, dtype=torch.float64)
    cotangents = unit_cotangents(x.shape, generator, torch.float64, "cpu")
    ratios, inputs = sublayer_gradient_ratios(list(net), x, cotangents)
    assert ratios.shape == (2 * depth + 1, 3) and len(inputs) == 2 * depth
    assert (ratios - 1).abs().max() < 1e-12


def small_network(layer, activation, seed=0):
    return stacks.build_network(layer, activation, 3, 4, 4, 3, seed, torch.float64, "cpu")


def reference_singular_values(net, x):
    J = torch.autograd.functional.jacobian(net, x)
    return torch.linalg.svdvals(J.reshape(x.numel(), x.numel()))


def test_dense_jacobian_spectrum_is_one_for_bcop_maxmin_and_spread_for_a_plain_conv():
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bcop = small_network("BCOP", "MaxMin")
    plain = small_network("Conv2d", "MaxMin")
    for net in (bcop, plain):
        J = dense_jacobian(net, x, chunk=7)
        assert torch.allclose(J, torch.autograd.functional.jacobian(net, x).reshape(J.shape), atol=1e-14)
        assert torch.allclose(dense_singular_values(J), reference_singular_values(net, x), atol=1e-7)
    assert (reference_singular_values(bcop, x) - 1).abs().max() < 1e-12
    assert (dense_singular_values(dense_jacobian(bcop, x)) - 1).abs().max() < 1e-12
    sigma = reference_singular_values(plain, x)
    assert sigma.max() <= 1 + 1e-12 and sigma.max() - sigma.min() > 0.3


@pytest.mark.parametrize("layer, activation", [("BCOP", "ReLU"), ("Conv2d", "MaxMin"), ("BCOP", "MaxMin")])
def test_lanczos_extremes_lie_inside_the_spectrum_and_reach_it_with_full_steps(layer, activation):
    net = small_network(layer, activation, seed=3)
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigma = reference_singular_values(net, x)
    full = jacobian_spectrum(net, x, 0, x.numel(), torch.Generator().manual_seed(0))
    assert full["method"] == "lanczos"
    assert full["sigma_max"] == pytest.approx(float(sigma.max()), abs=1e-8)
    assert full["sigma_min"] == pytest.approx(float(sigma.min()), abs=1e-6)
    few = jacobian_spectrum(net, x, 0, 8, torch.Generator().manual_seed(0))
    assert sigma.min() - 1e-8 <= few["sigma_min"] <= few["sigma_max"] <= sigma.max() + 1e-8


def test_unit_norm_conv_has_spectral_norm_one_on_its_image_size():
    torch.manual_seed(0)
    conv = stacks.UnitNormConv2d(3, 3, 3, input_size=(5, 5), dtype=torch.float64)
    x = torch.zeros(1, 3, 5, 5, dtype=torch.float64)
    sigma = torch.linalg.svdvals(torch.autograd.functional.jacobian(conv, x).reshape(75, 75))
    assert sigma.max() == pytest.approx(1.0, abs=1e-12) and sigma.min() < 0.9
    with pytest.raises(ValueError, match="normalized for images"):
        conv(torch.zeros(1, 3, 6, 6, dtype=torch.float64))


def test_the_plain_convolution_loads_under_the_installed_name():
    """The registry names the module the stacks were imported as, so it loads from an installed wheel too."""
    assert stacks.LAYERS["Conv2d"][0] == stacks.__name__ == "orthoconv.analysis.experiments.gradient_stacks"
    assert stacks.load_layer("Conv2d") is stacks.UnitNormConv2d


def test_a_missing_layer_is_reported_and_the_rest_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(stacks.LAYERS, "Missing", ("orthoconv.no_such_module", "Missing"))
    args = ["--quick", "--workers", "1", "--depths", "1", "2", "--train-depths", "2", "--steps", "2"]
    assert gn.main([*args, "--layers", "BCOP", "Missing", "--out", str(tmp_path)]) == 1
    assert "cannot import orthoconv.no_such_module" in capsys.readouterr().err
    data = json.loads((tmp_path / "gradient_norm.json").read_text())
    assert data["layers"] == ["BCOP"] and "no_such_module" in data["skipped"]["Missing"]
    with pytest.raises(stacks.LayerUnavailable, match="unknown layer"):
        stacks.load_layer("Nope")


def test_results_reproduce(tmp_path):
    args = ["--quick", "--workers", "1", "--layers", "BCOP", "Conv2d", "--depths", "1", "3", "--train-depths", "3",
            "--steps", "3"]
    runs = []
    for name in ("a", "b"):
        assert gn.main([*args, "--out", str(tmp_path / name)]) == 0
        runs.append(json.loads((tmp_path / name / "gradient_norm.json").read_text())["networks"])
    assert runs[0] == runs[1]


def test_training_does_not_depend_on_the_global_rng():
    """OSSN's training forward draws noise from torch's global RNG: the same seed reproduced every network of
    the experiment but the OSSN ones (a fresh process starts that RNG from a random seed)."""
    import copy

    from torch import nn

    import orthoconv as oc
    from orthoconv.analysis.experiments.gradient_measure import train

    torch.manual_seed(0)
    net = nn.Sequential(oc.OSSN(2, 2, 3, input_size=(4, 4)), oc.MaxMin())
    target = nn.Sequential(oc.BCOP(2, 2, 3))
    runs = []
    for state in (1, 2):
        torch.manual_seed(state)
        runs.append(train(copy.deepcopy(net), target, (2, 4, 4), steps=5, batch=4, lr=1e-2, data_seed=7))
    assert runs[0] == runs[1]
