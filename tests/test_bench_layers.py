"""The layer comparison (``orthoconv bench layers``): every registered layer gets a row, its spectrum is the
exact one of its operator, 'keeps' is read off that spectrum, and the CPU memory column counts what autograd
saves (checked on an ``nn.Conv2d`` whose saved tensors are known)."""

import json

import pytest
import torch
from torch import nn

from orthoconv.analysis.bench import layers as bench
from orthoconv.networks import CONV_LAYERS


def test_cpu_memory_is_the_bytes_saved_for_the_backward():
    conv = nn.Conv2d(3, 5, 3, padding="same")
    x = torch.randn(4, 3, 6, 7)
    expected = x.nbytes + conv.weight.nbytes + 4 * 5 * 6 * 7 * 4  # input and weight (conv), output (square)
    assert bench.step_memory(conv, x) == pytest.approx(expected / 2**20)


def test_off_promise_reads_the_spectrum():
    assert bench.off_promise("orthogonal", 1 - 3e-7, 1 + 1e-7) == pytest.approx(3e-7)
    assert bench.off_promise("1-Lipschitz", 0.0, 0.5) == pytest.approx(-0.5)


def test_every_registered_layer_is_a_row_and_the_exact_layers_keep_their_promise(tmp_path):
    names = ["bcop", "lot", "bro", "conv"]
    argv = ["--quick", "--layers", *names, "--channels", "4", "--size", "5", "--batch", "2", "--max-repeats", "1",
            "--max-seconds", "1", "--json", str(tmp_path / "b.json")]
    assert bench.main(argv) == 0
    rows = {row["layer"]: row for row in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert list(rows) == names
    for name in ("bcop", "lot", "bro"):
        assert rows[name]["keeps"] == "yes" and rows[name]["exact"] and float(rows[name]["off_promise"]) < 1e-5
    assert rows["conv"]["keeps"] == "n/a"
    assert all(row["train_ratio"] > 0 and row["memory_MB"] > 0 for row in rows.values())
    assert set(CONV_LAYERS) >= {"lot", "bro"}


def test_network_benchmark_takes_any_registered_layer():
    from orthoconv.analysis.bench import networks as bench_networks

    models = bench_networks.variants("small", 1, 8, ("lot", "bro"))
    assert list(models) == ["conv", "conv+sn", "lot", "bro"]
    assert models["bro"](torch.rand(2, 1, 8, 8)).shape == (2, 10)
