"""check_model on a zoo of networks built with orthogonium and deel-torchlip (``tests/peer_zoo.py``, the
``peers`` extra; skipped without it): every network gets a report whose certified upper bound is never
below the dense truth (the float64 Jacobian of the model's own trace at a point), networks 1-Lipschitz by
construction are certified at most ``1 + 1e-4`` in float32, and models without a global Lipschitz bound get
one clear error naming the ATen operation (the command: one line, exit 2)."""

import pytest
import torch

from orthoconv.cli import main
from orthoconv.verify import check_model

import peer_models as pm
import peer_zoo as zoo

pytest.importorskip("orthogonium")
pytest.importorskip("deel.torchlip")

SLOW = {"orthogonium AOC stride 2 groups 2/4, HouseHolder, MaxMin, Abs",
        "orthogonium SLL blocks (kernel 5, groups 2), SLL dense",
        "orthogonium L2Norm/Prescaled/Concat/Additive residuals"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in zoo.ZOO])
def test_zoo_networks_are_certified_above_the_truth_and_at_one_by_construction(name):
    build, shape, one_lipschitz = zoo.ZOO[name]
    torch.manual_seed(0)
    model = build().eval()
    x = zoo.one_sample(shape)
    report = check_model(model, x, lower_steps=0)
    assert report.layers and all(layer.exact for layer in report.layers if layer.linear)
    assert pm.folded_jacobian_norm(model, x) <= report.lipschitz_upper * (1 + 1e-9)
    if one_lipschitz:
        assert report.lipschitz_upper <= 1 + 1e-4


@pytest.mark.parametrize("name", sorted(zoo.REFUSED))
def test_models_without_a_global_bound_get_one_error_naming_the_operation(name, tmp_path, capsys, monkeypatch):
    build, shape, message = zoo.REFUSED[name]
    torch.manual_seed(0)
    model = build().eval()
    with pytest.raises(TypeError, match=message):
        check_model(model, zoo.one_sample(shape), lower_steps=0)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(zoo.__file__).parent))
    factory = next(k for k, v in vars(zoo).items() if v is build)
    code = main(["verify", str(path), "--model", f"peer_zoo:{factory}", "--input-shape", *map(str, shape),
                 "--lower-steps", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "aten." in err[0]
