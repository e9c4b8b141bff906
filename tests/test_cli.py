"""The console command: report, verify (exit codes and errors), help, dispatch."""

import json
import pickle

import numpy as np
import pytest
import torch

from orthoconv import BCOP, SOC, GroupSort, MaxMin, gradient_norm_ratio
from orthoconv.cli import main
from orthoconv.cli.run import EXPERIMENTS
from orthoconv.verify import check_model, check_orthogonal


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


def verify_json(capsys, *argv, status=None):
    code = main(["verify", *map(str, argv), "--json"])
    out = json.loads(capsys.readouterr().out)
    if status is not None:
        assert code == status
    return {row["name"]: row for row in out.get("rows", [])}, out, code


def test_verify_reports_each_kernel_and_fails_on_the_plain_conv(checkpoint, capsys):
    path, model = checkpoint
    rows, _, _ = verify_json(capsys, path, "--input-size", 8, 8, status=1)
    assert set(rows) == {"state_dict/0", "state_dict/2.weight"}
    assert rows["state_dict/0"]["passed"] and rows["state_dict/0"]["kind"] == "isometry"
    assert rows["state_dict/0"]["max_deviation"] < 1e-12
    assert not rows["state_dict/2.weight"]["passed"]
    torch.save({"only": model[0].state_dict()}, path)
    assert main(["verify", str(path), "--input-size", "5", "3"]) == 0
    assert "isometry" in capsys.readouterr().out


def test_verify_reads_npy_npz_and_safetensors(tmp_path, capsys):
    from safetensors.torch import save_file

    kernel = BCOP(3, 3, 2, dtype=torch.float64).kernel().detach()
    np.save(tmp_path / "kernel.npy", kernel.numpy())
    assert main(["verify", str(tmp_path / "kernel.npy"), "--input-size", "4", "4", "--tol", "1e-12"]) == 0
    np.save(tmp_path / "ones.npy", np.ones((2, 2, 1, 1)))
    assert main(["verify", str(tmp_path / "ones.npy"), "--input-size", "4", "4"]) == 1
    capsys.readouterr()
    np.savez(tmp_path / "w.npz", k=kernel.numpy(), m=np.eye(3)[:2], k1=np.eye(3)[::-1, :, None])
    rows, _, _ = verify_json(capsys, tmp_path / "w.npz", "--input-size", 5, 4, status=0)
    assert rows["m"]["type"] == "Linear weight" and rows["m"]["kind"] == "co-isometry"
    assert rows["k1"]["type"] == "Conv1d weight"
    save_file({"conv.weight": kernel.contiguous(), "pos_embed": torch.randn(1, 3, 4, 4, dtype=torch.float64)},
              str(tmp_path / "w.safetensors"))
    rows, out, _ = verify_json(capsys, tmp_path / "w.safetensors", "--input-size", 4, 4, status=0)
    assert set(rows) == {"conv.weight"} and out["skipped"] == ["pos_embed"]


def test_verify_checks_every_model_of_a_gan_and_skips_the_optimizer(tmp_path, capsys):
    torch.manual_seed(0)
    generator, discriminator = BCOP(4, 8, 3), torch.nn.Conv2d(8, 8, 3)
    optimizer = torch.optim.Adam(discriminator.parameters())
    discriminator(torch.randn(1, 8, 4, 4)).sum().backward()
    optimizer.step()
    path = tmp_path / "gan.pth.tar"
    torch.save({"generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
                "opt_d": optimizer.state_dict(), "step": 10}, path)
    rows, out, _ = verify_json(capsys, path, "--input-size", 8, 8, status=1)
    assert set(rows) == {"generator/BCOP", "discriminator/weight"}
    assert rows["generator/BCOP"]["verdict"] == "isometry"
    assert out["skipped_entries"] == ["opt_d: optimizer state"]


def test_verify_zero_padded_bcop_is_not_orthogonal_and_soc_is(tmp_path, capsys):
    """The issue's truth column: BCOP with zero padding has sigma_min ~0.002; SOC is orthogonal through
    kernel() (exp of a skew convolution), not through its raw weight."""
    torch.manual_seed(0)
    path = tmp_path / "bcop.pt"
    torch.save(BCOP(8, 8, 3, padding_mode="zeros").state_dict(), path)
    rows, _, _ = verify_json(capsys, path, "--input-size", 8, 8, status=1)
    assert rows["BCOP"]["verdict"] == "NOT orthogonal" and rows["BCOP"]["sigma_min"] < 0.01
    torch.save(SOC(8, 8, 3, terms=12).state_dict(), path)
    rows, _, _ = verify_json(capsys, path, "--input-size", 8, 8, status=0)
    assert rows["SOC"]["verdict"] == "orthogonal" and rows["SOC"]["max_deviation"] < 1e-5


@pytest.mark.parametrize("dtype, bound", [(torch.float16, 3.3e-4), (torch.bfloat16, 2.4e-3)])
def test_verify_half_precision_bcop_passes_at_its_dtype_tolerance(tmp_path, capsys, dtype, bound):
    torch.manual_seed(0)
    layer = BCOP(4, 4, 3)
    path = tmp_path / "half.pt"
    torch.save({k: v.to(dtype) if torch.is_tensor(v) else v for k, v in layer.state_dict().items()}, path)
    rows, _, _ = verify_json(capsys, path, "--input-size", 8, 8, status=0)
    assert rows["BCOP"]["dtype"] == str(dtype).split(".")[-1] and rows["BCOP"]["verdict"] == "orthogonal"
    kernel = layer.kernel().detach().to(dtype)
    report = check_orthogonal(kernel, (8, 8))
    assert report.passed and report.max_deviation < 2 * bound < report.tol


def test_verify_transposed_and_grouped_weights_say_what_is_assumed(tmp_path, capsys):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, groups=4),
                                torch.nn.ConvTranspose2d(8, 16, 2, stride=2))
    state = {"enc.weight": model[0].weight, "grouped.weight": model[1].weight, "deconv.weight": model[2].weight}
    path = tmp_path / "w.pt"
    torch.save(state, path)
    rows, _, _ = verify_json(capsys, path, "--input-size", 8, 8, status=1)
    assert rows["deconv.weight"]["kind"] == "isometry" and rows["deconv.weight"]["type"] == "ConvTranspose2d weight"
    assert rows["grouped.weight"]["notes"][0].startswith("FLAG: c_in 2")
    assert not rows["grouped.weight"]["passed"]
    torch.save({"weight": model[2].weight}, path)
    rows, _, _ = verify_json(capsys, path, "--input-size", 8, 8, status=1)
    assert rows["weight"]["kind"] == "co-isometry"
    assert any("a transposed weight maps 8->16: isometry" in note for note in rows["weight"]["notes"])


def test_verify_non_finite_weights_are_a_row_and_exit_1(tmp_path, capsys):
    path = tmp_path / "nan.pt"
    weight = torch.zeros(2, 2, 3, 3)
    weight[0, 0, 0, 0] = float("inf")
    torch.save({"conv.weight": weight, "ok.weight": torch.eye(2)[:, :, None, None]}, path)
    rows, _, code = verify_json(capsys, path, "--input-size", 4, 4, status=1)
    assert rows["conv.weight"]["verdict"] == "non-finite" and rows["ok.weight"]["passed"]
    assert main(["verify", str(path), "--input-size", "4", "4"]) == 1
    assert "non-finite" in capsys.readouterr().out


def write_model_module(tmp_path, monkeypatch):
    (tmp_path / "zoo_for_test.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, stride=2, padding=1), torch.nn.ReLU(),\n"
        "                               torch.nn.Conv2d(4, 4, 3, padding=1, groups=2), torch.nn.Flatten(),\n"
        "                               torch.nn.Linear(64, 3))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import zoo_for_test

    return zoo_for_test.build


def test_verify_with_model_checks_the_real_configuration(tmp_path, capsys, monkeypatch):
    build = write_model_module(tmp_path, monkeypatch)
    torch.manual_seed(0)
    model = build()
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": model.state_dict(), "optimizer_states": [{"state": {}, "param_groups": []}]}, path)
    _, out, code = verify_json(capsys, path, "--model", "zoo_for_test:build", "--input-shape", 2, 8, 8)
    (result,) = out["models"]
    layers = {layer["name"]: layer for layer in result["layers"]}
    assert layers["0"]["config"]["stride"] == [2, 2] and layers["2"]["config"]["groups"] == 2
    assert layers["2"]["input_shape"] == [4, 4, 4]
    report = check_model(model, torch.randn(1, 2, 8, 8), lower_steps=0)
    assert result["lipschitz_upper"] == pytest.approx(report.lipschitz_upper, rel=1e-9)
    assert result["lipschitz_lower"] <= result["lipschitz_upper"] and code == 1
    assert main(["verify", str(path), "--model", "zoo_for_test:build", "--input-shape", "2", "8", "8"]) == 1
    assert "certified" in capsys.readouterr().out


class NotAStateDict:
    pass


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.pt", None, "no such file"),
        ("list.pt", "list", "holds no state_dict"),
        ("object.pt", "object", "not a state_dict or checkpoint"),
        ("module.pth", "module", "pickled nn.Module, which cannot be loaded safely"),
        ("empty.bin", "empty", "is empty"),
        ("truncated.pt", "truncated", "truncated or damaged"),
        ("notes.ckpt", "text", "a text file"),
        ("vector.npy", "vector", "no convolution, linear or orthoconv layer weight"),
        ("strings.npy", "strings", "not weights"),
        ("kernel.txt", "text", "expected one of .pth.tar"),
        ("flat.pt", "flat", "no convolution, linear or orthoconv layer weight"),
        ("bad.safetensors", "text", "not a readable .safetensors"),
    ],
)
def test_verify_bad_files_exit_2_with_one_line(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content == "list":
        torch.save([1, 2, 3], path)
    elif content == "object":
        path.write_bytes(pickle.dumps(NotAStateDict()))
    elif content == "module":
        torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)), path)
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "truncated":
        torch.save({"w.weight": torch.randn(4, 4, 3, 3)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif content == "vector":
        np.save(path, np.ones(3))
    elif content == "strings":
        np.save(path, np.array(["a", "b"]))
    elif content == "text":
        path.write_text("hello")
    elif content == "flat":
        torch.save({"w": torch.ones(3, 3)}, path)
    assert main(["verify", str(path), "--input-size", "4", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_verify_rejects_bad_arguments(checkpoint, capsys):
    path, _ = checkpoint
    for argv in (["verify", str(path), "--input-size", "0", "4"],
                 ["verify", str(path), "--input-size", "4", "4", "--tol", "-1"],
                 ["verify", str(path), "--input-size", "4", "4", "--device", "nonsense"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert main(["verify", str(path)]) == 2
    assert "--input-size is required" in capsys.readouterr().err
    assert main(["verify", str(path), "--model", "nocolon", "--input-shape", "6", "4", "4"]) == 2
    assert "MODULE:FACTORY" in capsys.readouterr().err


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


def test_output_and_input_kinds_are_named_and_a_failed_resume_leaves_nothing(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    for argv, message in ((["train", "--epochs", "1", "--out", str(tmp_path / "afile")], "--out"),
                          (["certify", str(tmp_path)], "is a folder; expected a file")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("argv", [["report", "--seed", "99999999999999999999999"], ["report", "--seed", "-1"],
                                  ["experiment", "svcm-rounds", "--seed", str(2**40)]])
def test_a_seed_out_of_range_is_one_line_naming_it(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err
