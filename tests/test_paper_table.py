"""The paper-table experiment's recipes, run folders, summary and refusal without the data (no training here)."""

import pytest

from analysis.experiments import paper_table as pt
from orthoconv.cli import main


@pytest.mark.parametrize("epochs", [1, 20, 50, 200])
def test_ce_schedule_ends_at_one_hundredth_of_the_learning_rate(epochs):
    settings = pt.recipe_config("ce", epochs, 1.58)
    assert settings["epochs"] == epochs and settings["train_eps"] == 1.58
    assert settings["gamma"] ** epochs == pytest.approx(0.01, rel=0.15)


def test_paper_recipe_is_the_2019_run_configuration():
    settings = pt.recipe_config("paper", None, 1.58)
    assert settings == {"loss": "hinge", "train_eps": 1.5, "lr": 1e-3, "gamma": 0.96235, "batch_size": 128,
                        "epochs": 200}
    assert pt.recipe_config("paper", 30, 1.58)["gamma"] == 0.96235  # fewer epochs: the paper's decay, cut short


def test_run_names_say_arch_layer_loss_radius_and_seed():
    assert pt.run_name("small", "bcop", pt.recipe_config("ce", None, 1.58), 0) == "small-bcop-ce1.58-seed0"
    assert pt.run_name("large", "rko", pt.recipe_config("paper", None, 1.58), 3) == "large-rko-hinge1.5-seed3"


def test_summary_averages_seeds_and_sets_the_paper_beside():
    rows = [{"layer": "bcop", "clean": c, "cert_0.5": 90.0, "cert_1.0": 70.0, "cert_1.58": k, "pgd_1.58": None,
             "violations": 0, "L": L, "epochs": 50, "train_seconds": 600.0}
            for c, k, L in ((97.0, 50.0, 1.0), (98.0, 52.0, 1.000002))]
    (line,) = pt.summarize(rows, "small")
    assert (line["clean"], line["cert_1.58"], line["seeds"]) == (97.5, 51.0, 2)
    assert (line["paper_clean"], line["paper_cert_1.58"]) == (97.54, 45.84)
    assert line["L"] == 1.000002 and line["violations"] == 0 and line["pgd_1.58"] is None


def test_without_the_full_mnist_it_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path))
    assert main(["experiment", "paper-table", "--root", str(tmp_path / "runs"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "orthoconv data get mnist" in err
    assert not (tmp_path / "runs").exists()


def test_collect_only_never_trains_an_unfinished_run(tmp_path):
    """A run without its test result may be training in another process: collect-only leaves it alone."""
    folder = tmp_path / pt.run_name("small", "bcop", pt.recipe_config("ce", None, 1.58), 0)
    folder.mkdir()
    (folder / "metrics.json").write_text('{"history": []}')
    row = pt.run_task("small", "bcop", 0, "ce", None, 1.58, str(tmp_path), 10, 1, 1, 1, True, collect_only=True)
    assert row is None and sorted(p.name for p in folder.iterdir()) == ["metrics.json"]
