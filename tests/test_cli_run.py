"""`cpsim run` and `cpsim report` as a user meets them: progress, summary, results folder,
interruption without loss, resuming without recomputing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from cpsim.cli import main

CPSIM = str(Path(sys.executable).parent / "cpsim")


def test_run_prints_summary_and_writes_the_results_folder(tmp_path):
    out = tmp_path / "res"
    result = CliRunner().invoke(main, ["run", "baseline", "-r", "2", "-w", "1",
                                       "--horizon-days", "90", "--warm-up-days", "20",
                                       "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "icpc_held: share met (within 15 working days)" in result.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["root_seed"] == 20251125 and len(meta["scenario_sha256"]) == 64
    assert len(meta["procedure_sha256"]) == 64 and "simpy" in meta["versions"]
    assert sorted(p.name for p in (out / "replications").iterdir()) == [
        "rep-0000.json", "rep-0001.json"]
    assert (out / "kpis.csv").read_text().startswith("id,group,label")
    assert len(list((out / "events").glob("*.parquet"))) == 2


def test_rerun_reuses_finished_replications_and_redoes_a_corrupt_one(tmp_path):
    out = tmp_path / "res"
    args = ["run", "baseline", "-r", "2", "-w", "1", "--horizon-days", "60",
            "--warm-up-days", "10", "--out", str(out), "--no-report"]
    assert CliRunner().invoke(main, args).exit_code == 0
    first = (out / "kpis.csv").read_bytes()
    (out / "replications" / "rep-0001.json").write_text('{"key": "x", "rec')
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    assert "reused 1 stored" in result.output
    assert (out / "kpis.csv").read_bytes() == first


def test_ctrl_c_keeps_every_finished_replication(tmp_path):
    """SIGINT mid-run: exit 130, finished replications on disk, re-run finishes the rest."""
    out = tmp_path / "res"
    cmd = [CPSIM, "run", "baseline", "-r", "4", "-w", "1", "--horizon-days", "400",
           "--warm-up-days", "50", "--out", str(out), "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path,  # Ctrl-C as from an interactive shell, even when
                            # the tests run in the background (where SIGINT is ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = out / "replications" / "rep-0000.json"
    deadline = time.monotonic() + 300
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert first.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    kept = sorted((out / "replications").glob("rep-*.json"))
    assert 1 <= len(kept) < 4
    for path in kept:
        json.loads(path.read_text())
    assert not list((out / "replications").glob(".*tmp"))
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False,
                           env={**os.environ})
    assert again.returncode == 0, again.stderr
    assert f"reused {len(kept)} stored" in again.stdout
    assert len(list((out / "replications").glob("rep-*.json"))) == 4


def test_progress_off_a_terminal_is_a_line_per_tenth_of_the_jobs_not_a_redrawn_bar():
    """Piped or logged output (`| tee log`, CI) gets plain lines, never carriage returns."""
    import io

    from cpsim.running import Progress

    stream = io.StringIO()
    with Progress(100, 30, "baseline", stream=stream) as bar:
        for job in range(100):
            for day in range(0, 31, 3):
                bar.days(job, day)
            bar.done(job, reused=False)
        bar.done(99, reused=False)  # a job reported twice is counted once
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("baseline: 10/100 jobs finished (10%")
    assert lines[-1].startswith("baseline: 100/100 jobs finished (100%")


def test_off_a_terminal_a_single_long_job_reports_each_tenth_of_its_days():
    # one national replication (153 authority shards, merged) is one job: a line at its end
    # alone would leave a CI log silent for the whole run
    import io

    from cpsim.running import Progress

    stream = io.StringIO()
    with Progress(1, 365, "england", stream=stream) as bar:
        for day in range(0, 366, 5):
            bar.days(0, day)
        bar.done(0, reused=False)
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        *(f"england: {10 * k}% of the simulated days" for k in range(1, 10)),
        "england: 1/1 jobs finished"]


def test_a_piped_run_writes_one_progress_line_per_replication(tmp_path):
    out = tmp_path / "piped"
    proc = subprocess.run(
        [sys.executable, "-m", "cpsim", "run", "baseline", "--horizon-days", "40",
         "--replications", "2", "--workers", "1", "--no-report", "--no-event-log",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    progress = [line for line in proc.stderr.splitlines() if "jobs finished" in line]
    assert [line.split(" (")[0] for line in progress] == [
        "baseline: 1/2 jobs finished", "baseline: 2/2 jobs finished"]
