"""The installed layout: every package is listed, and analysis/proofs install under the orthoconv namespace."""

import importlib
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "orthoconv").rglob("__init__.py")}
    assert folders <= listed
    assert config["package-dir"] == {"orthoconv.analysis": "analysis", "orthoconv.proofs": "proofs"}
    assert {"orthoconv.analysis", "orthoconv.proofs"} <= listed


def test_experiments_run_beside_a_users_own_analysis_module(tmp_path):
    """A user's analysis.py / proofs.py in the working folder must not shadow orthoconv's."""
    (tmp_path / "analysis.py").write_text("raise RuntimeError('the user module was imported')\n")
    (tmp_path / "proofs.py").write_text("raise RuntimeError('the user module was imported')\n")
    code = "from orthoconv.cli import main; raise SystemExit(main(['experiment', 'census', '--help']))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "orthoconv experiment census" in done.stdout


def test_public_names_stay_importable():
    import orthoconv as oc

    for module in ("spectral", "blocks", "orthogonal", "invariants", "gram", "conv"):
        assert importlib.import_module(f"orthoconv.{module}") is getattr(oc, module)
    assert oc.spectral.conv_singular_values is oc.conv_singular_values
    assert oc.verify.check_orthogonal is oc.check_orthogonal
    assert importlib.import_module("orthoconv.analysis.common.harness").__name__ == "orthoconv.analysis.common.harness"
    assert importlib.import_module("orthoconv.proofs").THEOREMS
