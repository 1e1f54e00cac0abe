"""An installed wheel works on its own: scenarios, templates and procedures travel with it.

The wheel is built from this checkout without build isolation (the dev extra brings a
setuptools new enough for the SPDX licence field), installed without dependencies into a
fresh virtual environment that borrows this environment's third-party packages through a
path file, and run from a folder outside the checkout, so nothing can come from the source
tree by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # long runs or real processes: `make test-fast` skips them

ROOT = Path(__file__).resolve().parents[1]


def _build_wheel(into: Path) -> tuple[Path, str]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
         "-w", str(into), str(ROOT)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return next(into.glob("cp_procedure_sim-*.whl")), result.stdout + result.stderr


def test_the_wheel_carries_scenarios_templates_and_procedures_without_warnings(tmp_path):
    wheel, log = _build_wheel(tmp_path / "dist")
    for warning in ("SetuptoolsDeprecationWarning", "is not in the packages list",
                    "Package would be ignored", "License classifiers are deprecated"):
        assert warning not in log
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"scenarios/{p.name}" for p in (ROOT / "scenarios").glob("*.yaml")}
    assert shipped and shipped <= names
    assert {f"reports/templates/{p.name}" for p in (ROOT / "reports/templates").glob("*.html")
            } <= names
    assert {f"model/procedures/{p.name}" for p in (ROOT / "model/procedures").glob("*.yaml")
            } <= names
    assert "model/rules.yaml" in names


def test_an_installed_wheel_runs_the_baseline_outside_the_checkout(tmp_path):
    wheel, _ = _build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # third-party packages from this environment (a plain path: its own .pth files, such as
    # the editable install of this checkout, are not processed)
    Path(purelib, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import simulations, scenarios; "
                            "print(simulations.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), where
    out = tmp_path / "out"
    run = subprocess.run([str(venv / "bin" / "cpsim"), "run", "baseline", "-r", "1",
                          "--horizon-days", "60", "--warm-up-days", "0", "-w", "1",
                          "--out", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (out / "report.html").is_file() and (out / "kpis.csv").is_file()
