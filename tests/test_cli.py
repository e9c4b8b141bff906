"""The console command: report, verify (exit codes and errors), help, dispatch."""

import json
import pickle

import numpy as np
import pytest
import torch

from orthoconv import BCOP, GroupSort, MaxMin, gradient_norm_ratio
from orthoconv.cli import main
from orthoconv.cli.run import EXPERIMENTS


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("report", "verify", "experiment", "bench", "prove"):
        assert command in out


def test_report_writes_json_and_passes(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["report", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 24 and all(row["max_deviation"] < 1e-12 for row in rows)
    assert "max_deviation" in capsys.readouterr().out


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(BCOP(4, 6, 3, dtype=torch.float64), MaxMin(), torch.nn.Conv2d(6, 6, 3, padding=1))
    path = tmp_path / "model.pt"
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)
    return path, model


def test_verify_reports_each_kernel_and_fails_on_the_plain_conv(checkpoint, capsys):
    path, model = checkpoint
    assert main(["verify", str(path), "--input-size", "8", "8", "--json"]) == 1
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"0.kernel()", "2.weight"}
    assert rows["0.kernel()"]["passed"] and rows["0.kernel()"]["kind"] == "isometry"
    assert rows["0.kernel()"]["max_deviation"] < 1e-12
    assert not rows["2.weight"]["passed"]
    torch.save({"only": model[0].state_dict()}, path)
    assert main(["verify", str(path), "--input-size", "5", "3"]) == 0
    assert "isometry" in capsys.readouterr().out


def test_verify_reads_npy_kernels(tmp_path, capsys):
    path = tmp_path / "kernel.npy"
    np.save(path, BCOP(3, 3, 2, dtype=torch.float64).kernel().detach().numpy())
    assert main(["verify", str(path), "--input-size", "4", "4", "--tol", "1e-12"]) == 0
    np.save(path, np.ones((2, 2, 1, 1)))
    assert main(["verify", str(path), "--input-size", "4", "4"]) == 1


class NotAStateDict:
    pass


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.pt", None, "no such file"),
        ("list.pt", "list", "no state_dict"),
        ("object.pt", "object", "not a state_dict or checkpoint"),
        ("vector.npy", "vector", "4-D float kernel"),
        ("kernel.txt", "text", "expected a .pt, .pth or .npy"),
        ("flat.pt", "flat", "no 4-D convolution kernel"),
    ],
)
def test_verify_bad_files_exit_2_with_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content == "list":
        torch.save([1, 2, 3], path)
    elif content == "object":
        path.write_bytes(pickle.dumps(NotAStateDict()))
    elif content == "vector":
        np.save(path, np.ones(3))
    elif content == "text":
        path.write_text("hello")
    elif content == "flat":
        torch.save({"w": torch.ones(3, 3)}, path)
    assert main(["verify", str(path), "--input-size", "4", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_verify_rejects_bad_arguments(checkpoint, capsys):
    path, _ = checkpoint
    for argv in (["verify", str(path)], ["verify", str(path), "--input-size", "0", "4"],
                 ["verify", str(path), "--input-size", "4", "4", "--tol", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


@pytest.mark.parametrize("activation", [MaxMin(), GroupSort(4), GroupSort(1)])
def test_groupsort_preserves_gradient_norm(activation):
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64)
    assert torch.allclose(gradient_norm_ratio(activation, x), torch.ones(3, dtype=torch.float64), atol=1e-14)
    y = activation(x)
    assert torch.equal(y.sort(dim=1).values, x.sort(dim=1).values)


def test_maxmin_orders_each_pair():
    x = torch.tensor([[1.0, 2.0, 5.0, -1.0]])
    assert torch.equal(MaxMin()(x), torch.tensor([[2.0, 1.0, 5.0, -1.0]]))
    with pytest.raises(ValueError, match="not a multiple of group_size=2"):
        MaxMin()(torch.ones(1, 3))
    with pytest.raises(ValueError, match="group_size must be a positive integer"):
        GroupSort(0)


@pytest.mark.parametrize(
    "argv",
    [["prove", "--help"], ["bench", "core", "--help"], ["bench", "bounds", "--help"]]
    + [["experiment", name, "--help"] for name in EXPERIMENTS],
)
def test_subcommands_dispatch_to_their_modules(argv, capsys):
    """Each subcommand reaches its module's own parser, which prints its options under the command's name."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    prog = " ".join(["orthoconv", *argv[:-1]])
    assert f"usage: {prog} " in out and "--" in out.split("usage:", 1)[1]
