"""`orthoconv verify FILE` on the checkpoints orthoconv itself writes (faults a fresh-eyes review found: a
default StridedBCOP rebuilt without its bias, every network checkpoint aborted on its OrthogonalLinear, a
fresh OSSN aborting the whole file, depthwise weights unflagged) and certified radii of half logits."""

import math

import pytest
import torch
from torch import nn

import orthoconv as oc
from orthoconv.certify import certified_radii
from orthoconv.networks import build

from dense_reference import forward_matrix
from test_cli import verify_json


def test_a_default_strided_bcop_is_rebuilt_with_its_bias(tmp_path, capsys):
    torch.manual_seed(0)  # a float32 kernel's deviation (about 1e-6) depends on the draw: fixed, not test order
    layer = oc.StridedBCOP(2, 8, 3)
    torch.save(layer.state_dict(), tmp_path / "strided.pt")
    rows, _, _ = verify_json(capsys, tmp_path / "strided.pt", "--input-size", 6, 6, status=0)
    (row,) = rows.values()
    sigma = torch.linalg.svdvals(forward_matrix(layer.double(), 2, 6, 6))  # the layer's own forward, float64
    assert row["verdict"] == "orthogonal"
    assert row["sigma_min"] == pytest.approx(float(sigma.min()), abs=1e-6)
    assert row["sigma_max"] == pytest.approx(float(sigma.max()), abs=1e-6)


def test_a_network_checkpoint_checks_its_linear_layers_and_passes(tmp_path, capsys):
    net = build("small", "bcop", 1, 28, 10)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    rows, _, _ = verify_json(capsys, tmp_path / "net.pt", "--input-size", 28, 28, status=0)
    linear = {name: row for name, row in rows.items() if row["type"] == "OrthogonalLinear"}
    assert len(linear) == 2
    for name, row in linear.items():
        module = net.get_submodule(name)
        sigma = torch.linalg.svdvals(module.kernel().detach().double())
        assert row["sigma_max"] == pytest.approx(float(sigma.max()), abs=1e-7)
        assert row["verdict"] == "co-isometry"
    assert not any(note.startswith("FLAG") for row in rows.values() for note in row["notes"])


def test_a_layer_that_cannot_be_checked_is_an_error_row_not_an_abort(tmp_path, capsys):
    state = {"fresh": oc.OSSN(2, 2, 3).state_dict(), "plain": nn.Conv2d(2, 2, 3).state_dict()}
    torch.save(state, tmp_path / "mixed.pt")
    rows, _, _ = verify_json(capsys, tmp_path / "mixed.pt", "--input-size", 6, 6, status=1)
    assert rows["fresh/OSSN"]["verdict"] == "error"
    assert any("changes its own state" in note for note in rows["fresh/OSSN"]["notes"])
    assert "plain/weight" in rows


def test_a_depthwise_weight_is_flagged(tmp_path, capsys):
    weights = {"stem.weight": torch.eye(3).reshape(3, 3, 1, 1), "out.weight": torch.ones(1, 3, 1, 1) / math.sqrt(3)}
    depthwise = torch.zeros(3, 1, 3, 3)
    depthwise[:, 0, 1, 1] = 1 / math.sqrt(3)
    torch.save({"stem.weight": weights["stem.weight"], "dw.weight": depthwise, "out.weight": weights["out.weight"]},
               tmp_path / "depthwise.pt")
    rows, _, _ = verify_json(capsys, tmp_path / "depthwise.pt", "--input-size", 4, 4, status=1)
    assert rows["dw.weight"]["notes"][0].startswith("FLAG: c_in 1 after a layer with 3 outputs")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_radii_of_low_precision_logits_use_the_exact_margin(dtype):
    logits = torch.tensor([[1.0, -0.0006], [0.3, 0.7]]).to(dtype)
    labels = torch.tensor([0, 1])
    exact = logits.double()
    margins = torch.stack([exact[0, 0] - exact[0, 1], exact[1, 1] - exact[1, 0]])
    radii = certified_radii(logits, labels, 1.0)
    assert radii.dtype == torch.float64
    assert torch.equal(radii, margins / math.sqrt(2))
