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
    assert [name for name in models if name != "aoc"] == ["conv", "conv+sn", "lot", "bro"]  # aoc: with orthogonium
    assert models["bro"](torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_a_nonlinear_layer_is_measured_by_its_certified_bound():
    """A residual layer (no spectrum) gets check_model's certified bound, at least its measured slope."""
    import orthoconv as oc

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = oc.BCOP(3, 3, 3, dtype=torch.float64)

        def forward(self, x):
            return 0.5 * (x + torch.relu(self.conv(x)))

    torch.manual_seed(0)
    layer = Residual().eval()
    x, y = torch.randn(2, 1, 3, 5, 5, dtype=torch.float64)
    low, high, exact, method = bench.operator_range(layer, x)
    assert (low, exact, method) == ("", False, "check_model")
    with torch.no_grad():
        slope = float((layer(x) - layer(y)).norm() / (x - y).norm())
    assert slope <= high <= 1 + 1e-12
    assert bench.operator_range(oc.LOT(3, 3, 3, dtype=torch.float64), x)[1:] == pytest.approx((1.0, True, "fft"))
