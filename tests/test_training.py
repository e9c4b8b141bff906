"""Training: the losses against their formulas, determinism, exact resumption, model selection on
validation only, and the command line."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from orthoconv.cli import main
from orthoconv.data import Dataset, Split, load
from orthoconv.networks import load as load_network
from orthoconv.training import TrainConfig, batch_order, margin_hinge_loss, offset_cross_entropy, train

from test_data import write_mnist


@given(n=st.integers(1, 5), classes=st.integers(2, 6), margin=st.floats(0, 3), seed=st.integers(0, 99))
def test_hinge_loss_is_the_multiclass_margin_formula(n, classes, margin, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    expected = sum(max(0.0, margin - float(logits[i, labels[i]] - logits[i, j]))
                   for i in range(n) for j in range(classes) if j != labels[i]) / classes
    assert math.isclose(float(margin_hinge_loss(logits, labels, margin)), expected, rel_tol=1e-12, abs_tol=1e-12)


@given(n=st.integers(1, 5), classes=st.integers(2, 6), offset=st.floats(0, 3), t=st.floats(0.05, 2),
       seed=st.integers(0, 99))
def test_offset_cross_entropy_is_its_formula(n, classes, offset, t, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    expected = 0.0
    for i in range(n):
        z = logits[i].clone()
        z[labels[i]] -= offset
        expected += t * float(torch.logsumexp(z / t, 0) - z[labels[i]] / t)
    assert math.isclose(float(offset_cross_entropy(logits, labels, offset, t)), expected, rel_tol=1e-10, abs_tol=1e-10)


def test_hinge_is_zero_exactly_when_every_margin_is_met():
    logits = torch.tensor([[3.0, 0.0, 0.5], [0.0, 2.0, 1.0]])
    labels = torch.tensor([0, 1])
    assert float(margin_hinge_loss(logits, labels, 1.0)) == 0.0
    assert float(margin_hinge_loss(logits, labels, 1.5)) > 0.0  # the second margin is 1.0


def test_batch_order_depends_on_seed_and_epoch_only():
    assert torch.equal(batch_order(50, 3, 7), batch_order(50, 3, 7))
    assert not torch.equal(batch_order(50, 3, 7), batch_order(50, 3, 8))
    assert sorted(batch_order(50, 1, 0).tolist()) == list(range(50))


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    write_mnist(folder, n_train=60, n_test=20)
    return str(folder)


def tiny_config(folder, out, **changes) -> TrainConfig:
    values = dict(dataset="mnist", data_dir=folder, val_fraction=0.2, arch="small", layer="bcop", epochs=2,
                  batch_size=16, out=str(out))
    return TrainConfig(**{**values, **changes})


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)


def comparable(history):
    return [{k: v for k, v in h.items() if k not in ("seconds", "eval_seconds", "load_average")} for h in history]


@pytest.mark.parametrize("layer", ["bcop", "ossn", "conv"])
def test_resume_reproduces_the_uninterrupted_run(tiny_mnist, tmp_path, layer):
    whole = train(tiny_config(tiny_mnist, tmp_path / "whole", layer=layer, epochs=3), log=lambda _: None)
    train(tiny_config(tiny_mnist, tmp_path / "parts", layer=layer, epochs=1), log=lambda _: None)
    resumed = train(tiny_config(tiny_mnist, tmp_path / "parts", layer=layer, epochs=3), resume=True, log=lambda _: None)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)
    assert states_equal(a["state_dict"], b["state_dict"])
    assert comparable(whole["history"]) == comparable(resumed["history"])
    assert whole["test"] == resumed["test"]


def test_same_seed_same_weights_other_seed_other_weights(tiny_mnist, tmp_path):
    runs = [train(tiny_config(tiny_mnist, tmp_path / name, epochs=1, seed=seed), log=lambda _: None) and
            torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["state_dict"]
            for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    assert states_equal(runs[0], runs[1])
    assert not states_equal(runs[0], runs[2])


def test_resume_refuses_other_settings_and_fresh_runs_refuse_to_overwrite(tiny_mnist, tmp_path):
    train(tiny_config(tiny_mnist, tmp_path, epochs=1), log=lambda _: None)
    with pytest.raises(ValueError, match="lr"):
        train(tiny_config(tiny_mnist, tmp_path, epochs=2, lr=0.01), resume=True, log=lambda _: None)
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_config(tiny_mnist, tmp_path, epochs=1), log=lambda _: None)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny_config(tiny_mnist, tmp_path / "other"), resume=True, log=lambda _: None)


def test_selection_reads_validation_never_test(tiny_mnist, tmp_path):
    """The selected epoch is the best validation score, and garbling the test labels changes nothing
    but the final test numbers."""
    data = load("mnist", tiny_mnist, val_fraction=0.2)
    garbled = Dataset(data.name, data.train, data.val, Split(data.test.images, (data.test.labels + 1) % 10),
                      data.num_classes, data.mean, data.std)
    config = dict(epochs=4, select="clean", lr=0.01)
    clean = train(tiny_config(tiny_mnist, tmp_path / "a", **config), data=data, log=lambda _: None)
    other = train(tiny_config(tiny_mnist, tmp_path / "b", **config), data=garbled, log=lambda _: None)
    scores = [h["val_clean"] for h in clean["history"]]
    assert clean["selected"]["epoch"] == scores.index(max(scores)) + 1
    assert comparable(clean["history"]) == comparable(other["history"])
    assert clean["selected"]["epoch"] == other["selected"]["epoch"]
    assert load_network(tmp_path / "a" / "model.pt").spec == load_network(tmp_path / "b" / "model.pt").spec


def test_margin_follows_the_measured_constant(tiny_mnist, tmp_path):
    """The hinge margin of each epoch is sqrt(2) eps L with L measured before it (spectral-normalized
    nn.Conv2d is not 1-Lipschitz, so L > 1 shows up in the margin)."""
    summary = train(tiny_config(tiny_mnist, tmp_path, layer="conv", train_eps=0.5), log=lambda _: None)
    first, second = summary["history"]
    assert second["margin"] == pytest.approx(math.sqrt(2) * 0.5 * first["lipschitz"], rel=1e-12)
    assert first["lipschitz"] > 1.0


def test_cli_train_writes_checkpoint_model_metrics_and_curves(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--data-dir", tiny_mnist, "--epochs", "1", "--batch-size", "16",
                 "--out", str(out), "--json", "--threads", "1"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["test"]["certified"]) == {"0.5", "1.0", "1.58"}
    for name in ("checkpoint.pt", "model.pt", "metrics.json", "curves.png"):
        assert (out / name).is_file()
    assert load_network(out / "model.pt")(torch.rand(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "positive integer"),
    (["train", "--layer", "eco"], "invalid choice"),
    (["train", "--dataset", "mnist", "--out", "{out}"], "data_dir"),
    (["train", "--train-eps", "-1", "--out", "{out}"], "train_eps"),
])
def test_cli_train_bad_input_is_one_line(tmp_path, capsys, argv, message):
    argv = [a.format(out=tmp_path / "x") for a in argv]
    with pytest.raises(SystemExit) if "positive" in message or "choice" in message else _no_exit():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_training_runs_on_each_device(tiny_mnist, tmp_path, device):
    """On CUDA: bf16 autocast in training, fp32/fp64 evaluation; the saved network loads on the CPU."""
    summary = train(tiny_config(tiny_mnist, tmp_path, epochs=1, device=device), log=lambda _: None)
    assert 0 <= summary["test"]["clean"] <= 1
    assert abs(summary["test"]["lipschitz"] - 1) < 1e-4  # orthogonal Small: exactly 1 up to float32 kernels
    assert load_network(tmp_path / "model.pt")(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("argv", [["train", "--help"], ["certify", "--help"], ["bench", "networks", "--help"]])
def test_help_of_the_new_commands(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: orthoconv {' '.join(argv[:-1])}" in out and "--" in out


@pytest.mark.slow
def test_network_benchmark_quick_run(tmp_path):
    from orthoconv.analysis.bench import networks as bench_networks

    assert bench_networks.main(["--quick", "--threads", "1", "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert {r["network"] for r in rows} >= {"conv", "conv+sn", "bcop"}
    assert [r["ratio_to_conv"] for r in rows if r["network"] == "conv"] == [1.0]


def test_a_non_finite_loss_stops_the_run_with_one_line(tiny_mnist, tmp_path, monkeypatch):
    import orthoconv.training.loop as loop

    monkeypatch.setattr(loop, "summed_loss", lambda *args: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(ValueError, match="not finite; lower --lr"):
        train(tiny_config(tiny_mnist, tmp_path, epochs=1), log=lambda _: None)


def test_projected_layers_are_projected_after_every_step(tiny_mnist, tmp_path, monkeypatch):
    """SVCM is trained by projected gradient descent: without the projection its norm grows without
    bound (measured: L = 22,546 after 40 epochs on MNIST-5k)."""
    from orthoconv.nn import SVCM

    calls = []
    original = SVCM.project_
    monkeypatch.setattr(SVCM, "project_", lambda self, rounds=None: calls.append(1) or original(self, rounds))
    summary = train(tiny_config(tiny_mnist, tmp_path, layer="svcm", epochs=1, lr=0.05), log=lambda _: None)
    steps = math.ceil(50 / 16)
    built = 2 * 2  # each build (the run's, then model.pt's for the test) projects its two SVCM layers once
    assert len(calls) == built + 2 * steps
    assert summary["history"][-1]["lipschitz"] < 1.2


def test_cli_resume_takes_the_checkpoints_settings_and_refuses_a_changed_one(tiny_mnist, tmp_path, capsys):
    """``orthoconv train --out DIR --resume`` alone continues the run with its own settings (the documented
    example); a setting given on the command line that differs from the checkpoint's is refused by name."""

    out = str(tmp_path / "run")
    first = ["train", "--dataset", "mnist", "--data-dir", tiny_mnist, "--batch-size", "16", "--lr", "0.01",
             "--gamma", "0.5", "--train-eps", "0.3", "--epochs", "1", "--out", out]
    assert main(first) == 0
    assert main(["train", "--out", out, "--resume", "--epochs", "2"]) == 0
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["lr"] == pytest.approx(0.01 * 0.5)
    capsys.readouterr()
    assert main(["train", "--out", out, "--resume", "--epochs", "3", "--lr", "0.02"]) == 2
    err = capsys.readouterr().err
    assert "lr" in err and len(err.strip().splitlines()) == 1
