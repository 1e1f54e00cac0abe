"""Nothing lost, nothing hangs (issue 11): one atomic writer, and errors instead of tracebacks.

Every file is written through :mod:`model.atomic` (a unique temporary name beside the
target, fsync, rename; the temporary file removed on any failure). A folder that cannot be
written, a walk advanced past the calendar, or a damaged event log gives one plain line and
exit code 2, never a traceback. ``--precision`` keeps ``--start-from``; exports carry
England's own clock offset.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpsim.cli import main
from simulations.runner import run_scenario, settings_for
from simulations.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "cin-flat-sample.csv"
TINY = ["--horizon-days", "60", "--warm-up-days", "0", "-r", "1", "-w", "1"]


def hidden(folder: Path) -> list[str]:
    """Names of hidden files (temporary or partial) anywhere under ``folder``."""
    return sorted(p.name for p in folder.rglob(".*") if p.is_file())


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def assert_one_line_error(result, *needles: str) -> None:
    """Exit 2, no traceback, and an ``error:`` line that names every needle."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], result.output


# -- one helper for atomic writes -------------------------------------------------------------
def test_two_writers_of_one_file_both_succeed_and_one_whole_content_wins(tmp_path):
    """Two threads writing the same target at once never share a temporary file."""
    from model.atomic import write_bytes_atomic, write_text_atomic

    target = tmp_path / "shared.txt"
    contents = {"a": "A" * 200_000, "b": "B" * 300_000}
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(key: str) -> None:
        barrier.wait()
        try:
            for i in range(40):
                if i % 2:
                    write_text_atomic(target, contents[key])
                else:
                    write_bytes_atomic(target, contents[key].encode())
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert target.read_text() in contents.values()
    assert hidden(tmp_path) == []


def test_two_open_streams_to_one_file_both_commit(tmp_path):
    """Interleaved streaming writers: each completes, the last to close wins whole."""
    from model.atomic import open_atomic

    target = tmp_path / "log.csv"
    with open_atomic(target) as first, open_atomic(target) as second:
        first.write("first\n" * 1000)
        second.write("second\n" * 1000)
        assert len(hidden(tmp_path)) == 2
    assert target.read_text() == "first\n" * 1000  # the outer one closed last
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failing_stream_leaves_the_old_file_and_no_temporary(tmp_path, failure):
    from model.atomic import open_atomic

    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(type(failure)), open_atomic(target) as fh:
        fh.write("half a new report")
        raise failure
    assert target.read_text() == "old"
    assert hidden(tmp_path) == []


def test_a_failing_rename_or_write_leaves_no_temporary(tmp_path):
    from model.atomic import write_bytes_atomic, write_text_atomic

    (tmp_path / "folder.txt").mkdir()  # a rename cannot replace a folder with a file
    with pytest.raises(OSError):
        write_text_atomic(tmp_path / "folder.txt", "text")
    with pytest.raises(TypeError):
        write_bytes_atomic(tmp_path / "b.bin", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(tmp_path / "c.txt", "\udcff", encoding="ascii")
    assert hidden(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.txt"]


def test_a_pending_file_is_synced_renamed_and_readable_like_any_file(tmp_path, monkeypatch):
    """fsync of the file before the rename and of its folder after; the umask is kept."""
    from model import atomic

    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    target = tmp_path / "sub" / "kpis.csv"
    atomic.write_text_atomic(target, "id\n")
    assert target.read_text() == "id\n"
    assert synced == ["file", "dir"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_the_event_log_partial_is_unique_and_dropped_for_a_stopped_worker(tmp_path):
    """Two writers of one replication's log do not collide; the runner finds what one left."""
    from datetime import date

    from simulations.eventlog import EventLogWriter
    from simulations.runner import Job

    out = tmp_path / "run"
    path = out / "events" / "rep-0003.parquet"
    a = EventLogWriter(path, 3, date(2025, 4, 1))
    b = EventLogWriter(path, 3, date(2025, 4, 1))
    assert a.partial != b.partial and a.partial.name.endswith(".partial")
    a.close()
    assert path.is_file()
    b.abort()
    assert hidden(out) == []
    left = EventLogWriter(path, 3, date(2025, 4, 1))  # a worker stopped mid-replication
    settings = settings_for(load_scenario("baseline"), 1, 1, 10, 0)
    Job("baseline", (), settings, 3, str(out)).drop_unfinished(os.getpid())
    assert not left.partial.exists()
    assert hidden(out) == []


def test_library_code_has_one_atomic_writer():
    """No module renames files itself: everything goes through model/atomic.py."""
    needles = ("os.replace(", "os.rename(", ".rename(", "mkstemp(", "NamedTemporaryFile(",
               'with_name(f".', ".tmp\"")
    bad = [f"{path.relative_to(ROOT)}: {needle}"
           for package in ("model", "simulations", "reports", "cpsim")
           for path in sorted((ROOT / package).rglob("*.py"))
           if path.name != "atomic.py"
           for needle in needles if needle in path.read_text()]
    assert bad == []


# -- errors instead of tracebacks -------------------------------------------------------------
@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nothing can be written into: read-only, or (as root) under a regular file."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    os.chmod(folder, 0o500)
    probe = folder / "probe"
    try:
        probe.write_text("x")
    except PermissionError:
        yield folder
    else:  # root ignores the mode: a path under a regular file fails for anyone
        probe.unlink()
        (tmp_path / "a-file").write_text("not a folder")
        yield tmp_path / "a-file" / "out"
    os.chmod(folder, 0o700)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("errors") / "run"
    sc = load_scenario("baseline")
    run_scenario(sc, settings_for(sc, 1, 5, 60, 0), out)
    return out


@pytest.mark.parametrize("command", ["run", "conform", "diagram-svg", "diagram-mermaid",
                                     "export", "explore", "trace"])
def test_an_unwritable_out_folder_is_one_line_and_exit_2(command, unwritable, run_dir):
    args = {
        "run": ["run", "baseline", *TINY, "--no-report", "--out", str(unwritable)],
        "conform": ["conform", str(SAMPLE), "--procedure", "west-midlands-2014",
                    "--as-of", "2030-01-01", "--out", str(unwritable)],
        "diagram-svg": ["diagram", "west-midlands-2014", "--format", "svg",
                        "--out", str(unwritable / "wm.svg")],
        "diagram-mermaid": ["diagram", "west-midlands-2014", "--out",
                            str(unwritable / "wm.mmd")],
        "export": ["export", str(run_dir), "--format", "csv",
                   "--out", str(unwritable / "events.csv")],
        "explore": ["explore", "west-midlands-2014", "--out", str(unwritable / "wm.html")],
        "trace": ["trace", "west-midlands-2014", "--out", str(unwritable / "trace.md")],
    }[command]
    result = invoke(*args)
    assert_one_line_error(result, str(unwritable))
    reason = result.output.lower()
    assert "permission denied" in reason or "not a directory" in reason


@pytest.mark.parametrize("command", [
    "advance 99999999 days", "advance 99999999 working days", "advance 99999999 hours",
    "advance 99999999 months", "+20000 days", "advance 10000 days", "advance to 2051-01-01"])
def test_walk_refuses_to_advance_past_the_calendar(command):
    """Inside the walk: the command is refused, the clock stays, the session goes on."""
    began = time.monotonic()
    result = invoke("walk", "west-midlands-2014", input=f"{command}\nadvance 1 day\n")
    assert time.monotonic() - began < 30
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and result.exception is None
    assert "2050" in result.output
    assert "clock moved from Tue 01 Apr 2025 09:00 to Wed 02 Apr 2025 09:00" in result.output


def test_walk_session_refuses_an_advance_past_2050_and_keeps_its_clock():
    from cpsim.walk_commands import run_command
    from model.loader import load_procedure
    from model.session import Move, WalkSession

    session = WalkSession(load_procedure("west-midlands-2014"))
    before = session.now
    for command in ("advance 99999999 days", "advance 9500 days"):
        result = run_command(session, command)
        assert result.status == "invalid"
        assert "2050-12-31" in result.notes[0].text
        assert session.now == before
    # The session itself refuses, whatever the command line let through.
    assert session.apply(Move.advance("99999999 days")).status == "invalid"
    assert session.now == before
    assert run_command(session, "advance 9000 days").status == "ok"  # still 2049


@pytest.fixture
def truncated_run(run_dir, tmp_path) -> Path:
    """A copy of the run whose event log was cut off half-way (a crash while copying)."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    log = out / "events" / "rep-0000.parquet"
    data = log.read_bytes()
    log.write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize("args", [
    ["story", "--pick", "longest"], ["story", "--case", "C0000001"],
    ["export", "--format", "xes"], ["export", "--format", "cin-flat"]])
def test_a_truncated_event_log_is_named_with_exit_2(truncated_run, args):
    result = invoke(args[0], str(truncated_run), *args[1:])
    assert_one_line_error(result, str(truncated_run / "events" / "rep-0000.parquet"))
    assert "damaged" in result.output
    assert hidden(truncated_run) == []
    assert not (truncated_run / "export").exists() or not any(
        (truncated_run / "export").iterdir())


# -- --precision keeps --start-from -----------------------------------------------------------
def test_precision_keeps_the_start_from_snapshot(tmp_path):
    out = tmp_path / "res"
    result = invoke("run", "baseline", "--start-from", str(SAMPLE), "--as-of", "2025-12-01",
                    "-r", "1", "-w", "1", "--horizon-days", "30", "--no-report",
                    "--precision", "0.5", "--max-replications", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["start_from"] is not None and meta["start_from"]["as_of"] == "2025-12-01"
    assert meta["start_date"] < "2025-12-01"
    import pyarrow.parquet as pq

    for log in sorted((out / "events").glob("rep-*.parquet")):
        actors = set(pq.read_table(log, columns=["actor"]).column("actor").to_pylist())
        assert "history" in actors, log


# -- exports in England's own time ------------------------------------------------------------
@pytest.fixture(scope="module")
def summer_to_winter(tmp_path_factory) -> Path:
    """A run from mid-July 2025 into late January 2026 (summer time, then Greenwich time)."""
    out = tmp_path_factory.mktemp("times") / "run"
    sc = load_scenario("baseline", {"run.start_date": "2025-07-14"})
    run_scenario(sc, settings_for(sc, 1, 5, 200, 0), out)
    return out


def test_exports_carry_the_england_offset_of_their_season(summer_to_winter, tmp_path):
    offsets: dict[str, set[str]] = {"07": set(), "01": set()}
    for fmt in ("csv", "xes", "ocel"):
        target = tmp_path / f"events.{fmt}"
        result = invoke("export", str(summer_to_winter), "--format", fmt, "--out", str(target))
        assert result.exit_code == 0, result.output
        text = target.read_text()
        if fmt == "csv":
            stamps = [r["timestamp"] for r in csv.DictReader(text.splitlines())]
        elif fmt == "xes":
            stamps = [line.split('value="')[1].split('"')[0] for line in text.splitlines()
                      if 'key="time:timestamp"' in line]
        else:
            stamps = [e["time"] for e in json.loads(text)["events"]]
        assert stamps
        assert not any(s.endswith("Z") for s in stamps)
        for s in stamps:
            if s[5:7] in offsets:
                offsets[s[5:7]].add(s[-6:])
        july = next(s for s in stamps if s[5:7] == "07")
        january = next(s for s in stamps if s[5:7] == "01")
        assert july.endswith("+01:00"), july
        assert january.endswith("+00:00"), january
    assert offsets == {"07": {"+01:00"}, "01": {"+00:00"}}


def test_an_export_across_the_clock_change_reads_back_through_pm4py(summer_to_winter,
                                                                     tmp_path):
    """pm4py reads the mixed offsets as the same instants the file states."""
    from datetime import UTC, datetime

    import pandas as pd
    import pm4py

    target = tmp_path / "log.xes"
    invoke("export", str(summer_to_winter), "--format", "xes", "--out", str(target))
    written = sorted(datetime.fromisoformat(line.split('value="')[1].split('"')[0])
                     .astimezone(UTC).replace(tzinfo=None)
                     for line in target.read_text().splitlines()
                     if 'key="time:timestamp"' in line)
    log = pm4py.read_xes(str(target))
    read = sorted(pd.to_datetime(log["time:timestamp"], utc=True).dt.tz_localize(None)
                  .dt.to_pydatetime())
    assert len(read) == len(written) > 0
    assert read == written
