"""The paper-table experiment's recipes, run folders, collection and refusals (no training here): the
collection runs on fake finished runs (``metrics.json`` and a cached row, as a finished run leaves them)."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.experiments import paper_table as pt
from analysis.experiments import paper_table_report as report
from orthoconv.cli import main
from orthoconv.networks import CONV_LAYERS


@pytest.mark.parametrize("epochs", [1, 20, 50, 200])
def test_ce_schedule_ends_at_one_hundredth_of_the_learning_rate(epochs):
    settings = pt.recipe_config("ce", epochs, 1.58)
    assert settings["epochs"] == epochs and settings["train_eps"] == 1.58
    assert settings["gamma"] ** epochs == pytest.approx(0.01, rel=0.15)


def test_default_ce_recipe_is_lr_3e3_gamma_0891_40_epochs_temperature_025():
    assert pt.recipe_config("ce") == {"loss": "ce", "temperature": 0.25, "lr": 3e-3, "batch_size": 128, "epochs": 40,
                                      "train_eps": 1.58, "gamma": 0.891}


def test_paper_recipe_is_the_2019_run_configuration():
    settings = pt.recipe_config("paper", None, 1.58)
    assert settings == {"loss": "hinge", "train_eps": 1.5, "lr": 1e-3, "gamma": 0.96235, "batch_size": 128,
                        "epochs": 200}
    assert pt.recipe_config("paper", 30, 1.58)["gamma"] == 0.96235  # fewer epochs: the paper's decay, cut short


def test_given_settings_replace_the_recipes():
    settings = pt.recipe_config("ce", 120, 1.3, lr=1e-3, gamma=0.977, temperature=0.5)
    assert (settings["lr"], settings["gamma"], settings["temperature"], settings["epochs"]) == (1e-3, 0.977, 0.5, 120)
    paper = pt.recipe_config("paper", lr=2e-3, gamma=0.99)
    assert (paper["lr"], paper["gamma"], paper["loss"]) == (2e-3, 0.99, "hinge")


def test_run_names_say_arch_layer_loss_radius_and_seed():
    assert pt.run_name("small", "bcop", pt.recipe_config("ce", None, 1.58), 0) == "small-bcop-ce1.58-seed0"
    assert pt.run_name("large", "rko", pt.recipe_config("paper", None, 1.58), 3) == "large-rko-hinge1.5-seed3"


def test_run_names_carry_the_settings_that_differ_from_the_recipes():
    ce = pt.recipe_config
    assert pt.run_name("small", "bcop", ce("ce", 120, 1.3, gamma=0.977), 0) == "small-bcop-ce1.3-g977-seed0"
    assert pt.run_name("small", "bcop", ce("ce", lr=1e-3), 1) == "small-bcop-ce1.58-lr0.001-seed1"
    assert pt.run_name("small", "bcop", ce("ce", temperature=0.5), 0) == "small-bcop-ce1.58-t0.5-seed0"
    assert (pt.run_name("small", "sll", ce("ce", lr=1e-3, gamma=1.0, temperature=0.125), 0)
            == "small-sll-ce1.58-lr0.001-g1.0-t0.125-seed0")
    assert pt.run_name("small", "bcop", ce("paper", gamma=0.99), 0) == "small-bcop-hinge1.5-g99-seed0"
    # the recipe's own values, given explicitly, name the same run as the defaults
    assert pt.run_name("small", "bcop", ce("ce", lr=3e-3, gamma=0.891, temperature=0.25), 0) == "small-bcop-ce1.58-seed0"
    assert pt.run_name("small", "bcop", ce("paper", lr=1e-3, gamma=0.96235), 0) == "small-bcop-hinge1.5-seed0"


settings_draw = st.tuples(st.sampled_from([None, 1e-3, 3e-3, 1e-4, 2.5e-3]),
                          st.sampled_from([None, 0.891, 0.9, 0.09, 0.977, 0.0977, 1.0, 0.96235]),
                          st.sampled_from([None, 0.25, 0.5, 0.05, 2.0]))


@given(settings_draw, settings_draw)
def test_runs_with_different_settings_never_share_a_folder(first, second):
    a, b = (pt.recipe_config("ce", None, 1.58, lr=lr, gamma=g, temperature=t) for lr, g, t in (first, second))
    same = all(a[k] == b[k] for k in ("lr", "gamma", "temperature"))
    assert (pt.run_name("small", "bcop", a, 0) == pt.run_name("small", "bcop", b, 0)) == same


def test_every_constrained_layer_of_the_networks_is_a_row():
    assert set(report.LAYERS) == set(CONV_LAYERS) - {"conv"} and report.LAYERS[:4] == report.PAPER_LAYERS
    assert {"aol", "cpl", "sll", "lot", "bro", "sandwich"} <= set(report.LAYERS)


@pytest.mark.parametrize("argv, argument", [
    (["--recipe", "paper", "--temperature", "0.5"], "--temperature"),
    (["--gamma", "1.5"], "--gamma"),
    (["--gamma", "0"], "--gamma"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--temperature", "-1"], "--temperature"),
    (["--layers", "conv"], "--layers"),
])
def test_argument_errors_are_one_line_naming_the_argument(tmp_path, capsys, argv, argument):
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "paper-table", "--root", str(tmp_path / "runs"), *argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and f"argument {argument}" in err
    assert not (tmp_path / "runs").exists()


def test_without_the_full_mnist_it_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path))
    assert main(["experiment", "paper-table", "--root", str(tmp_path / "runs"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "orthoconv data get mnist" in err
    assert not (tmp_path / "runs").exists()


ATTACK = {"attack_limit": 1000, "pgd_steps": 50, "fmn_steps": 50}


def fake_run(root, layer="bcop", seed=0, arch="small", clean=95.0, cert=45.0, L=1.0, violations=0, minutes=30.0,
             epochs=40, finished=True, **settings):
    """A finished run as ``orthoconv train`` and a collection leave it: metrics.json and the cached row."""
    recipe = pt.recipe_config(settings.pop("recipe", "ce"), epochs, 1.58, **settings)
    config = {**recipe, "arch": arch, "layer": layer, "seed": seed, "val_fraction": 0.1, "split_seed": 0,
              "temperature": recipe.get("temperature", 0.25)}
    folder = root / pt.run_name(arch, layer, recipe, seed)
    folder.mkdir(parents=True)
    history = [{"seconds": 60 * minutes / epochs - 1, "eval_seconds": 1.0, "load_average": [4.0, 4.0, 4.0]}] * epochs
    metrics = {"config": config, "history": history, "selected": {"epoch": epochs - 3}}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "test": {"clean": clean / 100}} if finished else
                                                    {"history": history[:2]}))
    row = {"layer": layer, "seed": seed, "arch": arch, "run": str(folder), "selected_epoch": epochs - 3,
           "clean": clean, "cert_0.5": 90.0, "cert_1.0": 70.0, "cert_1.58": cert, "L": L, "attacked_images": 1000,
           "pgd_1.58": 70.0, "violations": violations, "train_seconds": 60 * minutes, "train_load_average": 4.0}
    key = {**ATTACK, "attack": True, "selected_epoch": epochs - 3, "epochs": epochs}
    (folder / pt.ROW).write_text(json.dumps({"key": key, "row": row}))
    return folder


def collect(tmp_path, capsys, *extra):
    status = main(["experiment", "paper-table", "--collect-only", "--root", str(tmp_path / "runs"), "--out",
                   str(tmp_path / "out"), "--workers", "1", "--attack-limit", "1000", *extra])
    return status, capsys.readouterr().out


def test_collection_tabulates_every_finished_run_a_line_per_layer_and_recipe(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path / "no-data"))  # every row is cached: no data needed
    root = tmp_path / "runs"
    fake_run(root, seed=0, clean=94.0, cert=44.0, minutes=30.0)
    fake_run(root, seed=1, clean=96.0, cert=46.0, L=1.0000001, minutes=40.0)
    fake_run(root, seed=0, clean=97.0, cert=50.0, gamma=0.977, epochs=120, minutes=90.0)
    fake_run(root, layer="sll", seed=0, clean=95.5, cert=48.0, temperature=0.5)
    fake_run(root, layer="rko", seed=0, recipe="paper", clean=93.0, cert=28.0, epochs=60)
    fake_run(root, layer="bcop", seed=0, arch="large", cert=60.0)  # another architecture: not in this table
    fake_run(root, layer="ossn", seed=0, cert=61.0)  # not among --layers
    fake_run(root, layer="lot", seed=0, finished=False, cert=70.0)  # may be training in another process
    (root / "quick").mkdir()  # not a run

    status, out = collect(tmp_path, capsys, "--layers", "bcop", "rko", "sll", "lot", "--json")
    document = json.loads(out)
    assert status == 0 and len(document["rows"]) == 5
    lines = {(line["layer"], line["recipe"]): line for line in document["summary"]}
    assert set(lines) == {("rko", "hinge 1.5, lr 0.001, gamma 0.96235, 60 ep"),
                          ("bcop", "ce 1.58, lr 0.003, gamma 0.891, T 0.25, 40 ep"),
                          ("bcop", "ce 1.58, lr 0.003, gamma 0.977, T 0.25, 120 ep"),
                          ("sll", "ce 1.58, lr 0.003, gamma 0.891, T 0.5, 40 ep")}
    assert [line["layer"] for line in document["summary"]] == ["rko", "bcop", "bcop", "sll"]  # the paper's order
    two = lines[("bcop", "ce 1.58, lr 0.003, gamma 0.891, T 0.25, 40 ep")]
    assert (two["seeds"], two["clean"], two["cert_1.58"], two["train_min"]) == (2, 95.0, 45.0, 35.0)
    assert two["clean_per_seed"] == [94.0, 96.0] and two["cert_1.58_per_seed"] == [44.0, 46.0]
    assert (two["paper_clean"], two["paper_cert_1.58"], two["L"], two["violations"]) == (97.54, 45.84, 1.0000001, 0)
    assert lines[("sll", "ce 1.58, lr 0.003, gamma 0.891, T 0.5, 40 ep")]["paper_cert_1.58"] is None
    row = next(r for r in document["rows"] if r["layer"] == "rko")
    assert (row["loss"], row["train_eps"], row["lr"], row["gamma"], row["epochs"], row["temperature"]) == (
        "hinge", 1.5, 1e-3, 0.96235, 60, None)
    assert document["best"] == {"cert_1.58": 50.0, "layer": "bcop", "arch": "small", "seeds": 1, "gap": 50.0 - 62.8,
                                "recipe": "ce 1.58, lr 0.003, gamma 0.977, T 0.25, 120 ep", "gloro_cert_1.58": 62.8}
    assert document["not_finished"] == ["small-lot-ce1.58-seed0"]
    assert document["figure"] is None or (tmp_path / "out" / "paper_table.png").stat().st_size > 0


def test_collection_prints_the_table_the_best_line_and_fails_on_a_violation(tmp_path, capsys):
    root = tmp_path / "runs"
    fake_run(root, seed=0, cert=44.57, L=1.0)
    fake_run(root, layer="aol", seed=0, cert=30.0, violations=2)
    status, out = collect(tmp_path, capsys, "--layers", "bcop", "aol")
    assert status == 1
    assert "best certified at 1.58 of any orthoconv layer: 44.57 (bcop, small, ce 1.58" in out
    assert "against GloRo's 62.8" in out and "-18.23 points" in out
    assert "1.000000000" in out and "ce 1.58, lr 0.003, gamma 0.891, T 0.25, 40 ep" in out


def test_collection_of_nothing_says_so(tmp_path, capsys):
    status, out = collect(tmp_path, capsys)
    assert status == 0 and "no finished run under" in out
    fake_run(tmp_path / "runs", finished=False)
    status, out = collect(tmp_path, capsys, "--json")
    assert status == 0 and json.loads(out)["not_finished"] == ["small-bcop-ce1.58-seed0"]


def test_collect_only_never_trains_an_unfinished_run(tmp_path):
    """A run without its test result may be training in another process: collect-only leaves it alone."""
    folder = tmp_path / pt.run_name("small", "bcop", pt.recipe_config("ce", None, 1.58), 0)
    folder.mkdir()
    (folder / "metrics.json").write_text('{"history": []}')
    row = pt.run_task(str(folder), 10, 1, 1, 1, train={"arch": "small"}, collect_only=True)
    assert row is None and sorted(p.name for p in folder.iterdir()) == ["metrics.json"]


def test_an_existing_run_with_other_settings_is_an_error_not_a_row(tmp_path):
    """The folder of the asked settings holds a 40-epoch run with gamma 0.891; asking gamma 0.962 there must
    not return the old run as if it were the new one."""
    folder = fake_run(tmp_path)
    asked = pt.recipe_config("ce", 120, 1.58, gamma=0.962)
    assert pt.run_name("small", "bcop", asked, 0) == folder.name  # 0.962 is the ce decay for 120 epochs
    with pytest.raises(ValueError, match=r"other settings: gamma 0.891 \(asked 0.962\)"):
        pt.train_run(folder, "small", "bcop", 0, asked, 120, ("loss", "train_eps", "lr", "gamma"))
    same = pt.recipe_config("ce", None, 1.58)
    assert pt.train_run(folder, "small", "bcop", 0, same, None, ("loss", "train_eps", "lr", "gamma"))["test"]


def test_recipes_that_differ_in_any_setting_are_separate_lines():
    base = {"loss": "ce", "train_eps": 1.58, "lr": 3e-3, "gamma": 0.891, "temperature": 0.25, "batch_size": 128}
    variants = [base, {**base, "lr": 0.0030000000000000001 + 1e-12}, {**base, "gamma": 0.8910001},
                {**base, "temperature": 0.5}, {**base, "train_eps": 1.5800001}, {**base, "batch_size": 256}]
    rows = [{"layer": "bcop", "seed": 0, "clean": 95.0, "cert_1.58": 45.0, "cert_0.5": 90.0, "cert_1.0": 70.0,
             "pgd_1.58": None, "violations": 0, "attacked_images": 100, "L": 1.0, "train_seconds": 60.0,
             **pt.recipe_fields(config, 40)} for config in variants]
    rows.append({**rows[0], "seed": 1, "clean": 97.0})
    lines = report.summarize(rows, "small")
    assert len(lines) == len(variants) and [line["seeds"] for line in lines].count(2) == 1
    assert next(line for line in lines if line["seeds"] == 2)["clean_per_seed"] == [95.0, 97.0]


def test_given_settings_reach_the_training_and_a_resumed_run_keeps_its_own(tmp_path, monkeypatch):
    from orthoconv import training

    calls = []
    monkeypatch.setattr(training, "train", lambda config, resume, log: calls.append((config, resume)) or {})
    asked = pt.recipe_config("ce", 120, 1.3, lr=1e-3, gamma=0.977, temperature=0.5)
    fresh = tmp_path / pt.run_name("small", "sll", asked, 2)
    pt.train_run(fresh, "small", "sll", 2, asked, 120, ("loss", "train_eps", "lr", "gamma", "temperature"))
    config, resume = calls.pop()
    assert not resume and (config.dataset, config.arch, config.layer, config.seed, config.out) == (
        "mnist", "small", "sll", 2, str(fresh))
    assert (config.loss, config.train_eps, config.lr, config.gamma, config.temperature, config.epochs,
            config.batch_size) == ("ce", 1.3, 1e-3, 0.977, 0.5, 120, 128)

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint.pt").write_bytes(b"")
    saved = {**config.to_dict(), "epochs": 60, "out": "elsewhere"}
    monkeypatch.setattr(pt, "_saved_config", lambda folder: saved)
    pt.train_run(resumed, "small", "sll", 2, asked, None, ("loss", "train_eps", "lr", "gamma", "temperature"))
    config, resume = calls.pop()
    assert resume and (config.epochs, config.out, config.gamma) == (60, str(resumed), 0.977)
    with pytest.raises(ValueError, match=r"temperature 0.5 \(asked 0.25\)"):
        pt.train_run(resumed, "small", "sll", 2, pt.recipe_config("ce", 120, 1.3, lr=1e-3, gamma=0.977), None,
                     ("loss", "train_eps", "lr", "gamma", "temperature"))
    assert not calls


def test_the_command_line_settings_name_the_runs_it_trains(tmp_path, monkeypatch, capsys):
    jobs = []
    monkeypatch.setattr("orthoconv.data.verify_mnist_folder", lambda folder: None)
    monkeypatch.setattr(pt, "run_sweep", lambda task, todo, pool, label: jobs.extend(todo) or [])
    argv = ["--root", str(tmp_path), "--layers", "bcop", "--seeds", "2", "--workers", "1", "--out", str(tmp_path)]
    assert pt.main([*argv, "--epochs", "120", "--gamma", "0.977", "--train-eps", "1.3"]) == 0
    assert [job["folder"] for job in jobs] == [str(tmp_path / f"small-bcop-ce1.3-g977-seed{s}") for s in (0, 1)]
    assert jobs[0]["train"]["settings"]["gamma"] == 0.977 and "gamma" in jobs[0]["train"]["checked"]
    jobs.clear()
    assert pt.main([*argv, "--epochs", "120"]) == 0  # the ce decay derived from the epochs: not checked
    assert jobs[0]["train"]["settings"]["gamma"] == 0.962 and "gamma" not in jobs[0]["train"]["checked"]
    assert "no finished run under" in capsys.readouterr().out
