"""check_model on networks built with orthogonium and deel-torchlip as their users build them (the
``peers`` extra; skipped without it): per-layer exact spectra, 1-Lipschitz-by-construction networks
certified at 1, and never below the dense truth (the Jacobian of the model's own trace in float64, from
copies of the folded float32 weights). Before the trace of what runs, each of them was refused."""

import pytest
import torch

from orthoconv.cli import main
from orthoconv.verify import check_model

import peer_models as pm

pytest.importorskip("orthogonium")
pytest.importorskip("deel.torchlip")

BY_CONSTRUCTION = {"aoc": (pm.orthogonium_aoc, 4), "aol": (pm.orthogonium_aol, 3), "sll": (pm.orthogonium_sll, 4)}


@pytest.mark.parametrize("name", sorted(BY_CONSTRUCTION))
def test_one_lipschitz_networks_are_certified_at_one_and_above_the_truth(name):
    build, channels = BY_CONSTRUCTION[name]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(1, channels, 8, 8)
    report = check_model(model, x, lower_steps=0)
    assert report.lipschitz_upper <= 1 + 1e-4
    assert report.layers and all(layer.exact for layer in report.layers if layer.linear)
    for seed in range(1):
        point = torch.randn(1, channels, 8, 8, generator=torch.Generator().manual_seed(seed))
        assert pm.folded_jacobian_norm(model, point) <= report.lipschitz_upper * (1 + 1e-9)


def test_sll_blocks_are_certified_by_the_residual_rule_not_composed():
    torch.manual_seed(1)
    report = check_model(pm.orthogonium_sll(depth=2).eval(), torch.randn(1, 4, 8, 8), lower_steps=0)
    certificates = [layer for layer in report.layers if layer.type == "ResidualCertificate"]
    assert len(certificates) == 2 and all(c.sigma_max == 1.0 for c in certificates)


def test_torchlip_network_and_its_export_are_the_product_of_exact_layer_norms():
    torch.manual_seed(2)
    model = pm.torchlip_net().eval()
    x = torch.randn(1, 3, 8, 8)
    for candidate in (model, model.vanilla_export()):
        report = check_model(candidate, x, lower_steps=0)
        norms = [layer.sigma_max for layer in report.layers if layer.linear]
        assert len(norms) == 3
        assert report.lipschitz_upper == pytest.approx(torch.tensor(norms, dtype=torch.float64).prod().item(),
                                                       rel=1e-6)
        assert pm.folded_jacobian_norm(candidate, x) <= report.lipschitz_upper * (1 + 1e-9)


def test_the_command_needs_and_uses_the_model_of_a_parametrized_state_dict(tmp_path, capsys, monkeypatch):
    torch.manual_seed(3)
    path = tmp_path / "aoc.pt"
    torch.save(pm.orthogonium_aoc().state_dict(), path)
    assert main(["verify", str(path), "--input-size", "8", "8"]) == 2
    assert "parametrized" in capsys.readouterr().err.strip().splitlines()[-1]
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(pm.__file__).parent))
    code = main(["verify", str(path), "--model", "peer_models:orthogonium_aoc", "--input-shape", "4", "8", "8",
                 "--lower-steps", "0"])
    out = capsys.readouterr().out
    assert code == 0 and "(certified)]" in out and "1 (certified)" in out


@pytest.mark.parametrize("build", [pm.orthogonium_wrappers, pm.TorchlipResidual], ids=["orthogonium", "torchlip"])
def test_residual_wrappers_and_centering_layers_are_certified_at_one(build):
    """ConcatResidual (disjoint channel halves), LayerCentering2D (a projection), AdditiveResidual and
    LipResidual (a convex combination, alpha read from the weights), BatchCentering2D in eval (a shift)."""
    torch.manual_seed(4)
    model = build().eval()
    x = torch.randn(1, 4, 6, 6)
    report = check_model(model, x, lower_steps=0)
    assert report.lipschitz_upper <= 1 + 1e-4
    assert pm.folded_jacobian_norm(model, x) <= report.lipschitz_upper * (1 + 1e-9)


def _activations():
    import orthogonium.layers as ol
    from deel import torchlip as tl

    return {"orthogonium HouseHolder": (lambda: ol.HouseHolder(6), 1 / 2**0.5),
            "torchlip HouseHolder": (lambda: tl.HouseHolder(6, theta_initializer="normal"), 1.0),
            "orthogonium MaxMin": (ol.MaxMin, 1.0), "torchlip MaxMin": (tl.MaxMin, 1.0),
            "torchlip GroupSort2": (tl.GroupSort2, 1.0), "torchlip GroupSort(3)": (lambda: tl.GroupSort(3), 1.0),
            "torchlip FullSort": (tl.FullSort, 1.0), "torchlip GroupSort(6)": (lambda: tl.GroupSort(6), 1.0),
            "torchlip ScaledL2NormPool2d": (lambda: tl.ScaledL2NormPool2d(2), 1.0),
            "torchlip ScaledAdaptativeL2NormPool2d": (lambda: tl.ScaledAdaptativeL2NormPool2d((1, 1)), 1.0),
            "torch LPPool2d(2) export": (lambda: tl.ScaledL2NormPool2d(2).vanilla_export(), 1.0)}


@pytest.mark.parametrize("name", sorted(_activations()))
def test_activations_and_l2_pools_of_both_libraries_are_certified_at_their_exact_constant(name):
    """HouseHolder (orthogonium's carries its 1/sqrt(2)), MaxMin, GroupSort, FullSort, L2-norm pools: the
    certificate equals the dense Jacobian's norm at a generic point (attained); HouseHolder and the L2 pools
    were refused before (a step function; no rule for aten.pow)."""
    build, constant = _activations()[name]
    torch.manual_seed(5)
    model = build().eval()
    x = torch.randn(1, 6, 4, 4)
    report = check_model(model, x, lower_steps=0)
    assert report.lipschitz_upper == pytest.approx(constant, rel=1e-6)
    assert pm.folded_jacobian_norm(model, x) == pytest.approx(report.lipschitz_upper, rel=1e-6)


def test_orthogonium_l2_norm_residual_is_certified_at_one():
    from orthogonium.layers import AdaptiveOrthoConv2d
    from orthogonium.layers.residual import L2NormResidual

    torch.manual_seed(6)
    model = L2NormResidual(AdaptiveOrthoConv2d(4, 4, 3, padding=1)).eval()
    x = torch.randn(1, 4, 5, 5)
    report = check_model(model, x, lower_steps=0)
    assert "L2NormCertificate" in [layer.type for layer in report.layers]
    assert report.lipschitz_upper <= 1 + 1e-4
    assert pm.folded_jacobian_norm(model, x) <= report.lipschitz_upper * (1 + 1e-9)


@pytest.mark.parametrize("library", ["orthogonium", "torchlip"])
def test_centering_layers_are_projections_or_shifts_certified_at_one(library):
    """LayerCentering subtracts each channel's spatial mean (a projection, norm 1, attained); BatchCentering
    in eval subtracts its running mean (a shift, 1)."""
    if library == "orthogonium":
        from orthogonium.layers import BatchCentering2D as Batch
        from orthogonium.layers import LayerCentering2D as Layer
    else:
        from deel.torchlip import BatchCentering as Batch
        from deel.torchlip import LayerCentering as Layer
    torch.manual_seed(7)
    x = torch.randn(1, 4, 5, 5)
    for model in (Layer(4).eval(), Batch(4).eval()):
        report = check_model(model, x, lower_steps=0)
        assert report.lipschitz_upper == 1.0
        assert pm.folded_jacobian_norm(model, x) == pytest.approx(1.0, rel=1e-6)
