"""The device check's training step (analysis.bench.train_step): it passes where the library is right and its checks
are the measured facts (a check that cannot fail is no check)."""

import json

import pytest

from orthoconv.analysis.bench import train_step as ts


def test_a_float32_step_passes_every_check(device):
    row = ts.train_step("float32", device)
    assert row["passed"] and all(row["checks"].values())
    assert row["kernel_max_deviation"] < ts.FLOAT32_TOL and row["logits_dtype"] == "float32"


def test_the_autocast_step_reports_what_it_measured(tmp_path):
    row = ts.train_step("bf16-autocast", "cpu")
    assert row["logits_dtype"] == "bfloat16" and row["checks"]["loss_finite"] and row["checks"]["grads_finite"]
    assert row["checks"]["kernels_orthogonal"] == (row["kernel_max_deviation"] < ts.FLOAT32_TOL)
    assert row["passed"] == all(row["checks"].values())


def test_a_kernel_built_in_low_precision_fails_the_check(monkeypatch):
    """Rounding the kernels to bfloat16 (what building them under autocast does) must fail the orthogonality check."""
    used = ts._kernels_used
    monkeypatch.setattr(ts, "_kernels_used", lambda net, context: [(k.bfloat16(), s) for k, s in used(net, context)])
    row = ts.train_step("float32", "cpu")
    assert not row["checks"]["kernels_orthogonal"] and not row["passed"] and row["kernel_max_deviation"] > 1e-3


def test_main_writes_json_and_sets_the_exit_status(tmp_path, monkeypatch):
    path = tmp_path / "step.json"
    assert ts.main(["--modes", "float32", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["run"]["arguments"]["modes"] == ["float32"] and data["rows"][0]["passed"]
    monkeypatch.setattr(ts, "FLOAT32_TOL", 0.0)
    assert ts.main(["--modes", "float32"]) == 1
    with pytest.raises(ValueError, match="mode"):
        ts.train_step("float16", "cpu")
