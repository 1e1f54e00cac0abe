"""Nothing lost, nothing hangs (issue 11): output folders are safe, results are read exactly.

``--out`` refuses a non-empty folder that is not a results folder of ours, or one that holds
a different experiment (another scenario, seed, horizon, ...), naming the difference, unless
``--force``, which moves the old contents aside and never deletes them. The same folder
and experiment resumes. Results are read replication by replication as ``metadata.json``
lists them, each checked for its key and its shape; a missing, damaged or foreign file is
named with exit code 2, and a re-run recomputes it, saying so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cpsim.cli import main
from simulations.results import read_results

ROOT = Path(__file__).resolve().parents[1]
ENGLAND = ROOT / "data" / "published" / "england.csv"
TINY = ["--horizon-days", "60", "--warm-up-days", "0", "-w", "1", "--no-report"]
FOREIGN = {"report.html": "<p>my own report</p>\n", "kpis.csv": "mine,1\n",
           "metadata.json": '{"title": "my notes"}\n', "notes.txt": "keep me\n"}


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def run(out: Path, *extra: object) -> Result:
    return invoke("run", "baseline", *TINY, *extra, "--out", out)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path: content)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def aside(folder: Path) -> list[Path]:
    """The folders the old contents were moved to."""
    return sorted(p for p in folder.iterdir() if p.name.startswith(".replaced-"))


def assert_refused(result: Result, *words: str) -> None:
    """Exit 2, no traceback, and every word in the message."""
    assert result.exit_code == 2, result.output
    assert result.exc_info is None or result.exc_info[0] is SystemExit, result.exc_info
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)


def foreign_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in FOREIGN.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: 2 replications, seed 1."""
    out = tmp_path_factory.mktemp("seeded") / "res"
    result = run(out, "-r", "2", "--seed", "1")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def copy(seeded: Path, tmp_path: Path) -> Path:
    """A copy of the finished run to damage."""
    return Path(shutil.copytree(seeded, tmp_path / "res"))


# -- A. output folders are safe --------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "compare", "sweep", "validate", "fit"])
def test_a_folder_that_is_not_ours_is_refused_and_left_as_it_was(command, tmp_path):
    folder = foreign_folder(tmp_path)
    before = snapshot(folder)
    args = {
        "run": ["run", "baseline"],
        "compare": ["compare", "baseline", "wigan"],
        "sweep": ["sweep", "baseline", "--vary", "staffing.social_workers=30,40"],
        "validate": ["validate", "baseline", "--against", ENGLAND],
        "fit": ["fit", "baseline", "--against", ENGLAND, "--free",
                "staffing.family_unavailable=0:0.5", "--rows", "icpc_within_15_working_days",
                "--max-evaluations", "2"],
    }[command]
    result = invoke(*args, *TINY, "-r", "1", "--out", folder)
    assert_refused(result, str(folder), "not a results folder", "--force")
    assert snapshot(folder) == before


def test_force_moves_a_folder_that_is_not_ours_aside_and_writes_the_results(tmp_path):
    folder = foreign_folder(tmp_path)
    result = run(folder, "-r", "1", "--force")
    assert result.exit_code == 0, result.output
    [old] = aside(folder)
    assert snapshot(old) == {k: v.encode() for k, v in FOREIGN.items()}
    assert str(old) in result.output
    assert json.loads((folder / "metadata.json").read_text())["cpsim_results"] == 1
    assert len(read_results(folder).records) == 1


@pytest.mark.parametrize(("change", "words"), [
    (["--seed", "2"], ["seed", "1", "2"]),
    (["--horizon-days", "90"], ["horizon", "60", "90"]),
    (["--machine", "transitions"], ["machine", "table", "transitions"]),
])
def test_a_results_folder_of_another_experiment_is_refused_naming_the_difference(
        copy, change, words):
    before = snapshot(copy)
    result = run(copy, "-r", "2", "--seed", "1", *change)
    assert_refused(result, str(copy), "different experiment", "--force", *words)
    assert snapshot(copy) == before


def test_a_results_folder_of_another_scenario_is_refused_naming_it(copy, tmp_path):
    other = tmp_path / "busier.yaml"
    other.write_text("scenario: busier\nextends: baseline\ntitle: Busier\n"
                     "demand:\n  referrals_per_year: 5000\n")
    before = snapshot(copy)
    result = invoke("run", other, *TINY, "-r", "2", "--seed", "1", "--out", copy)
    assert_refused(result, "different experiment", "scenario", "--force")
    assert snapshot(copy) == before


def test_force_moves_another_experiment_aside_and_runs_the_new_one(copy):
    before = snapshot(copy)
    result = run(copy, "-r", "1", "--seed", "2", "--force")
    assert result.exit_code == 0, result.output
    [old] = aside(copy)
    assert snapshot(old) == before
    assert json.loads((copy / "metadata.json").read_text())["root_seed"] == 2
    assert json.loads((old / "metadata.json").read_text())["root_seed"] == 1
    again = run(copy, "-r", "1", "--seed", "2")  # the moved-aside folder is no obstacle
    assert again.exit_code == 0 and "reused 1 stored" in again.output


def test_the_same_experiment_resumes_even_from_a_folder_without_the_marker(copy):
    """A folder written before the marker (the old metadata shape) is still ours."""
    meta = json.loads((copy / "metadata.json").read_text())
    for key in ("cpsim_results", "kind", "experiment"):
        meta.pop(key, None)
    (copy / "metadata.json").write_text(json.dumps(meta))
    result = run(copy, "-r", "2", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "reused 2 stored" in result.output
    assert aside(copy) == []


def test_an_empty_folder_is_used_as_it_is(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    result = run(folder, "-r", "1")
    assert result.exit_code == 0, result.output
    assert aside(folder) == []


@pytest.mark.parametrize("where", ["current", "root"])
def test_force_never_moves_the_current_folder_or_the_root(where, tmp_path, monkeypatch):
    import simulations.folders as folders

    def never(*args: object) -> None:
        raise AssertionError("tried to move the contents aside")

    monkeypatch.setattr(folders, "move_aside", never)
    folder = foreign_folder(tmp_path)
    monkeypatch.chdir(folder)
    before = snapshot(folder)
    result = run(Path("." if where == "current" else "/"), "-r", "1", "--force")
    assert_refused(result, "choose")
    assert snapshot(folder) == before


def test_compare_refuses_a_comparison_of_another_seed_and_run_refuses_a_comparison(tmp_path):
    out = tmp_path / "cmp"
    first = invoke("compare", "baseline", "wigan", *TINY, "-r", "1", "--seed", "1",
                   "--out", out)
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    result = invoke("compare", "baseline", "wigan", *TINY, "-r", "1", "--seed", "2",
                    "--out", out)
    assert_refused(result, "different experiment", "seed", "--force")
    assert_refused(run(out, "-r", "1"), "comparison", "--force")
    assert_refused(invoke("report", out), "comparison", str(out / "a"))
    assert snapshot(out) == before
    again = invoke("compare", "baseline", "wigan", *TINY, "-r", "1", "--seed", "1",
                   "--out", out)
    assert again.exit_code == 0 and "reused 2 stored" in again.output


def test_sweep_refuses_another_grid(tmp_path):
    out = tmp_path / "sweep"
    first = invoke("sweep", "baseline", "--vary", "staffing.social_workers=30,40", *TINY,
                   "-r", "1", "--out", out)
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    result = invoke("sweep", "baseline", "--vary", "staffing.social_workers=30,50", *TINY,
                    "-r", "1", "--out", out)
    assert_refused(result, "different experiment", "staffing.social_workers", "--force")
    assert snapshot(out) == before


# -- B. results read exactly ------------------------------------------------------------------
def _rep(folder: Path, n: int = 1) -> Path:
    return folder / "replications" / f"rep-{n:04d}.json"


def _edit(folder: Path, change) -> None:
    path = _rep(folder)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _first_deadline(data: dict) -> dict:
    return next(row for row in data["record"]["deadlines"].values() if row["hist"])


DAMAGE = {
    "truncated": lambda f: _rep(f).write_text(_rep(f).read_text()[:500]),
    "string in a histogram": lambda f: _edit(f, lambda d: _first_deadline(d)["hist"]
                                             .__setitem__(0, "many")),
    "negative count": lambda f: _edit(f, lambda d: d["record"].__setitem__("cases_created",
                                                                           -5)),
    "foreign": lambda f: _edit(f, lambda d: d.__setitem__("key", "0" * 64)),
    "missing": lambda f: _rep(f).unlink(),
}


def test_a_report_reads_only_the_replications_the_metadata_lists(tmp_path):
    out = tmp_path / "res"
    assert run(out, "-r", "3", "--seed", "1").exit_code == 0
    assert run(out, "-r", "2", "--seed", "1").exit_code == 0
    results = read_results(out)
    assert [r["replication"] for r in results.records] == [0, 1]
    assert all(k.values == () or len(k.values) == 2 for k in results.kpis)
    assert [p.name for p in results.event_logs()] == ["rep-0000.parquet", "rep-0001.parquet"]
    assert _rep(out, 2).is_file()  # kept, not read


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_replication_is_named_by_report_with_exit_2(damage, copy):
    DAMAGE[damage](copy)
    result = invoke("report", copy)
    assert_refused(result, "rep-0001.json")
    assert not (copy / "report.html").exists()


@pytest.mark.parametrize("command", ["story", "export", "validate"])
def test_a_truncated_replication_is_named_by_every_reader(command, copy):
    DAMAGE["truncated"](copy)
    args = {"story": ["story", copy, "--pick", "longest"],
            "export": ["export", copy, "--format", "csv"],
            "validate": ["validate", copy, "--against", ENGLAND]}[command]
    result = invoke(*args)
    assert_refused(result, "rep-0001.json")
    assert not (copy / "export").exists() and not (copy / "stories").exists()
    assert not (copy / "validation.csv").exists()


@pytest.mark.parametrize("damage", ["truncated", "string in a histogram", "negative count",
                                    "foreign"])
def test_a_rerun_recomputes_a_damaged_replication_and_says_so(damage, copy, seeded):
    DAMAGE[damage](copy)
    result = run(copy, "-r", "2", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "rep-0001.json" in result.output and "running it again" in result.output
    assert "reused 1 stored" in result.output
    assert (copy / "kpis.csv").read_bytes() == (seeded / "kpis.csv").read_bytes()
    assert len(read_results(copy).records) == 2
