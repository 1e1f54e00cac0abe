"""The mypyc build of the hot modules: used only while fresh, and identical in its results.

The slow test builds the compiled modules in a copy of the project (where a C compiler and
mypyc are present; skipped with the reason where not) and checks two things there:

- the same runs give the same records, field by field, with ``CPSIM_NATIVE=1`` (compiled)
  and ``CPSIM_NATIVE=0`` (pure Python);
- the golden outputs of all shipped scenarios (``tests/test_golden.py``, written from pure
  Python) come out byte for byte from the compiled build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from model import native

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_verdict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A scratch build folder, and the verdict worked out again."""
    monkeypatch.setattr(native, "BUILD", tmp_path / "native")
    monkeypatch.setattr(native, "STAMP", tmp_path / "native" / "stamp.json")
    monkeypatch.setattr(native, "_verdict", None)
    monkeypatch.delenv("CPSIM_NATIVE", raising=False)
    return tmp_path / "native"


def test_no_build_means_pure_python(fresh_verdict: Path) -> None:
    assert native.verdict() == "not built"
    path = ["/src/simulations"]
    assert native.attach("simulations", path) == path


def test_a_fresh_build_is_put_first_on_the_package_path(fresh_verdict: Path) -> None:
    fresh_verdict.mkdir()
    native.STAMP.write_text(json.dumps(native.stamp()))
    assert native.verdict() == ""
    path = native.attach("simulations", ["/src/simulations"])
    assert path == [str(fresh_verdict / "simulations"), "/src/simulations"]


def test_an_edited_source_makes_the_whole_build_stale(
        fresh_verdict: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh_verdict.mkdir()
    recorded = native.stamp()
    recorded["sources"] = {**recorded["sources"],  # type: ignore[dict-item]
                           "model/monitor.py": "0" * 64}
    native.STAMP.write_text(json.dumps(recorded))
    assert native.verdict() == "stale: model/monitor.py changed since it was built"
    assert native.attach("simulations", ["/src"]) == ["/src"]  # not even the unchanged ones
    assert "running pure Python" in capsys.readouterr().err


def test_a_build_for_another_python_is_not_used(fresh_verdict: Path) -> None:
    fresh_verdict.mkdir()
    native.STAMP.write_text(json.dumps({**native.stamp(), "cache_tag": "cpython-27"}))
    assert native.verdict() == "built for another Python"


def test_native_0_asks_for_pure_python_whatever_is_built(
        fresh_verdict: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_verdict.mkdir()
    native.STAMP.write_text(json.dumps(native.stamp()))
    monkeypatch.setenv("CPSIM_NATIVE", "0")
    assert native.verdict() == "CPSIM_NATIVE=0"


def test_native_1_without_a_build_is_an_error_not_a_quiet_fallback(
        fresh_verdict: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CPSIM_NATIVE", "1")
    with pytest.raises(SystemExit) as stop:
        native.verdict()
    assert stop.value.code == 2
    assert "not built; run `make native`" in capsys.readouterr().err


def test_native_1_without_a_build_stops_cpsim_with_a_message_not_a_traceback(
        tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "cpsim", "--help"], cwd=tmp_path,
                         env={**os.environ, "CPSIM_NATIVE": "1",
                              "PYTHONPATH": str(_scratch_copy(tmp_path))},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "make native" in run.stderr


def _compiler_missing() -> str:
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy, in the dev extra)"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc}) to build the compiled modules with"
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        return "the Python headers (Python.h) are not installed"
    return ""


def _scratch_copy(tmp_path: Path) -> Path:
    """The packages copied to ``tmp_path/project``, with no compiled build beside them."""
    copy = tmp_path / "project"
    skip = shutil.ignore_patterns("__pycache__", "*.so", ".hypothesis", ".pytest_cache")
    for part in ("model", "simulations", "reports", "cpsim", "scenarios", "data", "tools",
                 "bench", "tests"):
        shutil.copytree(ROOT / part, copy / part, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", copy)
    return copy


RECORDS = """
import json, sys
from model import native
from simulations.runner import make_machine, settings_for
from simulations.engine import Engine
from simulations.observers import InvariantMonitor
from simulations.scenario import load_scenario
out = {"compiled": native.in_use()}
for name in sys.argv[1:]:
    sc = load_scenario(name)
    settings = settings_for(sc, 1, 7, 200, 30)
    sc = settings.for_scenario(sc)
    machine, calendar = make_machine(sc, "table")
    record = Engine(sc, machine, calendar, 0, settings.seed,
                    [InvariantMonitor(sc.procedure)]).run()
    out[name] = record.to_json()
print(json.dumps(out, sort_keys=True, default=str))
"""


@pytest.mark.slow
def test_the_compiled_build_gives_the_same_records_and_golden_outputs(tmp_path: Path) -> None:
    missing = _compiler_missing()
    if missing:
        pytest.skip(missing)
    copy = _scratch_copy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop("CPSIM_NATIVE", None)
    built = subprocess.run([sys.executable, "tools/build_native.py"], cwd=copy, env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]

    def records(mode: str) -> dict[str, object]:
        run = subprocess.run(
            [sys.executable, "-c", RECORDS, "baseline", "newcastle", "walsall", "wigan"],
            cwd=copy, env={**env, "CPSIM_NATIVE": mode}, capture_output=True, text=True,
            timeout=600, check=True)
        found: dict[str, object] = json.loads(run.stdout)
        return found

    compiled, pure = records("1"), records("0")
    assert compiled.pop("compiled") is True and pure.pop("compiled") is False
    assert compiled == pure
    golden = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/test_golden.py"], cwd=copy, env={**env, "CPSIM_NATIVE": "1"},
        capture_output=True, text=True, timeout=900)
    assert golden.returncode == 0, golden.stdout[-3000:]
