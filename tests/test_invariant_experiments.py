"""Smoke tests of the component experiments: each ``--quick`` run writes JSON holding its key facts."""

import json

import pytest
import torch

import orthoconv
from orthoconv.analysis.experiments import census, components, fit, homotopy


def run(module, tmp_path, *extra):
    """Run ``module --quick`` and check that its JSON records every argument, the versions and the device."""
    assert module.main(["--quick", "--out", str(tmp_path), "--workers", "1", *extra]) == 0
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    record = data["run"]
    assert record["arguments"]["quick"] is True and record["arguments"]["workers"] == 1
    assert record["arguments"]["seed"] == 0 and record["arguments"]["out"] == str(tmp_path)
    assert record["torch"] == torch.__version__ and record["orthoconv"] == orthoconv.__version__
    assert record["device"].startswith("cpu")
    return data


def test_census_counts_classes_and_half_ranks_see_one_degree(tmp_path, capsys):
    data = run(census, tmp_path, "--samples", "20")
    assert "\r" not in capsys.readouterr().err  # no progress bar drawn into a stderr that is not a terminal
    assert data["run"]["arguments"]["samples"] == 20
    rows = {(r["n"], r["k"]): r for r in data["summary"]}
    assert len(rows) == 12
    assert all(r["mismatches"] == 0 for r in rows.values())
    assert all(r["seen (random)"] <= r["classes 2((k-1)n+1)^2"] for r in rows.values())
    assert rows[(2, 3)]["classes 2((k-1)n+1)^2"] == 50
    assert all(len(r["half degrees"].split(";")) == 1 for r in rows.values())


@pytest.mark.slow
def test_components_match_one_per_invariant_triple(tmp_path):
    data = run(components, tmp_path)
    for setting in data["settings"]:
        assert setting["meet"]["components"] == setting["predicted_components"]
        assert setting["meet"]["mixed_components"] == 0
        assert setting["meet"]["controls_met"] == 0
        assert setting["invariant_mismatches"] == 0
    assert data["settings"][0]["predicted_components"] == 10
    assert (tmp_path / "meet_1d.graphml").exists() and (tmp_path / "meet_2d.graphml").exists()


def test_fit_embedding_is_exact_and_half_rank_stalls_at_gap_two(tmp_path):
    data = run(fit, tmp_path, "--seeds", "1")
    by_method = {r["method"]: r for r in data["results"]}
    assert by_method["embed_start"]["start_error"] < 1e-12
    assert by_method["matched"]["error"] < 1e-8
    assert by_method["embed"]["error"] < 1e-8
    assert by_method["half"]["error"] > 0.5
    assert by_method["half"]["operator_gap"] == pytest.approx(2.0, abs=1e-3)


@pytest.mark.slow
def test_homotopy_projection_degree_jumps(tmp_path):
    data = run(homotopy, tmp_path)
    profile = data["profile"]
    assert max(r["defect"] for r in profile) > 0.5
    assert all(isinstance(v, int) for r in profile for v in r["nearest (s,a,b)"])
    assert {j["path"] for j in data["jumps"]} == {r["path"] for r in profile}
    for jump in data["jumps"]:
        assert jump["from"] != jump["to"]
