"""Nothing lost, nothing hangs (issue 11): Ctrl-C, SIGTERM and SIGKILL of a running command.

Each command runs in a pseudo-terminal, in its own session (as a shell would start it),
with two local worker processes. A Ctrl-C is SIGINT to the whole process group, as a
terminal sends it. Timeouts are generous: they only tell a hang from a slow machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from simulations.runner import Job, WorkerDied, execute, jobs_for, settings_for
from simulations.scenario import Scenario, load_scenario

pytestmark = pytest.mark.slow  # long runs or real processes: `make test-fast` skips them

CPSIM = str(Path(sys.executable).parent / "cpsim")
HANG = 60.0
"""Seconds after a signal by which the command must have exited (it takes well under 5)."""
START = 300.0
"""Seconds to wait for the first replication on a loaded machine."""

SMALL = ["-r", "8", "-w", "2", "--horizon-days", "400", "--warm-up-days", "50", "--no-report"]


class Terminal:
    """A command running in a pseudo-terminal of its own session; its output is collected."""

    def __init__(self, args: list[str], cwd: Path, controlling: bool = True) -> None:
        """Start ``cpsim ARGS``, by default with the pseudo-terminal as its controlling one.

        Without ``controlling``, the command's death does not hang up its process group
        (the kernel's SIGHUP would end the workers and hide an orphan), as when a shell
        that stays open runs it.
        """
        master, slave = os.openpty()

        def in_the_child() -> None:  # after setsid()
            # as from an interactive shell: a test run started in the background (where
            # the shell ignores SIGINT, and the child would inherit that) still sees Ctrl-C
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if controlling:
                import fcntl
                import termios

                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([CPSIM, *args], stdin=slave, stdout=slave, stderr=slave,
                                     cwd=cwd, start_new_session=True, preexec_fn=in_the_child)
        os.close(slave)
        self.master = master
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.workers: list[psutil.Process] = []

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every holder of the terminal has gone
                return
            if not data:
                return
            self.chunks.append(data)

    @property
    def output(self) -> str:
        """Everything the command wrote to the terminal so far."""
        return b"".join(self.chunks).decode("utf-8", "replace")

    def wait_for(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()`` (the command must still be running), noting its workers."""
        deadline = time.monotonic() + START
        while not ready():
            assert self.proc.poll() is None, f"exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"never got going:\n{self.output}"
            time.sleep(0.05)
        self.workers = psutil.Process(self.proc.pid).children(recursive=True)
        assert len(self.workers) >= 2, "expected two worker processes"

    def ctrl_c(self) -> None:
        """SIGINT to the command's whole process group, as a terminal sends it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)

    def type_ctrl_c(self) -> None:
        """Type ^C into the terminal: its line discipline signals the foreground group."""
        os.write(self.master, b"\x03")

    def finish(self) -> tuple[int, float]:
        """Wait (a hang fails the test) and return the exit code and seconds taken."""
        start = time.monotonic()
        try:
            code = self.proc.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {HANG:.0f} s after the signal (hung):\n{self.output}")
        took = time.monotonic() - start
        self.reader.join(timeout=5)
        return code, took

    def close(self) -> None:
        """Kill whatever is left (so a failing test leaves nothing running)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for worker in self.workers:
            with contextlib.suppress(psutil.Error):
                worker.kill()
        self.reader.join(timeout=5)
        os.close(self.master)


@pytest.fixture()
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """Start commands in pseudo-terminals; kill them all at the end of the test."""
    started: list[Terminal] = []

    def start(args: list[str], controlling: bool = True) -> Terminal:
        term = Terminal(args, tmp_path, controlling)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still running (a zombie has finished)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(procs: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Wait up to ``seconds`` for the processes to end; return those still running."""
    deadline = time.monotonic() + seconds
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(procs)


def replications(out: Path) -> list[Path]:
    """Every finished replication file under ``out``."""
    return sorted(out.rglob("replications/rep-*.json"))


def leftovers(out: Path) -> list[Path]:
    """Temporary files (a record being written, a partial event log) under ``out``."""
    return [p for p in out.rglob(".*") if p.is_file()]


def assert_nothing_lost(out: Path, total: int) -> list[Path]:
    """Finished replications are whole; no temporary or partial file is left."""
    kept = replications(out)
    assert 1 <= len(kept) < total, "the signal should have come mid-run"
    for path in kept:
        data = json.loads(path.read_text())
        assert set(data) == {"key", "record"}
        assert (path.parent.parent / "events" / path.name.replace(".json", ".parquet")
                ).is_file()
    assert not leftovers(out), f"temporary files left behind: {leftovers(out)}"
    return kept


def assert_interrupted(term: Terminal, out: Path, total: int, code: int = 130) -> float:
    """Exit ``code`` without a traceback, workers gone, finished work whole."""
    status, took = term.finish()
    assert status == code, term.output
    assert "Traceback" not in term.output, term.output
    assert "every finished replication is kept" in term.output, term.output
    assert not alive(term.workers), f"workers left running: {alive(term.workers)}"
    assert_nothing_lost(out, total)
    return took


def started(terminal: Callable[..., Terminal], args: list[str], out: Path,
            controlling: bool = True) -> Terminal:
    """``cpsim ARGS`` (small, into ``out``) once its first replication is written."""
    term = terminal([*args, *SMALL, "--out", str(out)], controlling)
    term.wait_for(lambda: bool(replications(out)))
    return term


def sigterm(term: Terminal) -> None:
    """`kill PID`: SIGTERM to the parent only, which must stop its own workers."""
    os.kill(term.proc.pid, signal.SIGTERM)


def test_ctrl_c_stops_a_run_with_its_workers_and_keeps_finished_replications(
        tmp_path, terminal):
    out = tmp_path / "res"
    term = started(terminal, ["run", "baseline"], out)
    term.ctrl_c()
    assert_interrupted(term, out, 8)
    again = subprocess.run([CPSIM, "run", "baseline", *SMALL, "--out", str(out)],
                           capture_output=True, text=True, cwd=tmp_path, check=False)
    assert again.returncode == 0, again.stderr
    assert "reused" in again.stdout and len(replications(out)) == 8


@pytest.mark.parametrize(("args", "stop", "total", "code", "said"), [
    pytest.param(["run", "baseline"], Terminal.type_ctrl_c, 8, 130, "",
                 id="ctrl-c-typed-into-the-terminal-stops-a-run"),
    pytest.param(["compare", "baseline", "baseline"], Terminal.ctrl_c, 16, 130, "",
                 id="ctrl-c-stops-a-compare"),
    pytest.param(["sweep", "baseline", "--vary", "demand.referrals_per_year=3000,4100"],
                 Terminal.ctrl_c, 16, 130, "", id="ctrl-c-stops-a-sweep"),
    pytest.param(["run", "baseline"], sigterm, 8, 143, "terminated",
                 id="sigterm-stops-a-run-like-ctrl-c-with-exit-code-143"),
])
def test_a_stop_signal_ends_the_command_keeping_finished_work(
        tmp_path, terminal, args, stop, total, code, said):
    """Each way of stopping a command: its exit code, workers gone, finished work whole."""
    out = tmp_path / "out"
    term = started(terminal, args, out)
    stop(term)
    assert_interrupted(term, out, total, code=code)
    assert said in term.output


def test_a_second_ctrl_c_while_stopping_exits_at_once(tmp_path, terminal):
    out = tmp_path / "res"
    term = started(terminal, ["run", "baseline"], out)
    term.ctrl_c()
    time.sleep(0.05)  # usually while the workers are being stopped (it takes ~0.1-0.6 s)
    term.ctrl_c()
    status, _ = term.finish()
    assert status == 130, term.output
    assert "Traceback" not in term.output and "Exception ignored" not in term.output, \
        term.output
    assert not wait_gone(term.workers, 20), "workers left running"
    assert not leftovers(out), f"temporary files left behind: {leftovers(out)}"


def test_a_killed_run_leaves_no_orphan_workers(tmp_path, terminal):
    out = tmp_path / "res"
    term = started(terminal, ["run", "baseline"], out, controlling=False)
    os.kill(term.proc.pid, signal.SIGKILL)  # the parent only, as an OOM killer would
    term.proc.wait(timeout=HANG)
    left = wait_gone(term.workers, 20)
    assert not left, f"orphaned workers still running: {left}"
    for path in replications(out):
        json.loads(path.read_text())
    assert not leftovers(out), f"temporary files left behind: {leftovers(out)}"


# -- the same, inside the library --------------------------------------------------------------
def short_jobs(out: Path, count: int = 4) -> tuple[list[Job], dict[Job, Scenario]]:
    """Jobs of ``count`` short baseline replications into ``out``, and their scenario."""
    sc = load_scenario("baseline")
    jobs = jobs_for(sc, settings_for(sc, count, horizon_days=200), out)
    return jobs, dict.fromkeys(jobs, sc)


def test_an_error_on_a_worker_stops_the_others_and_is_raised(tmp_path):
    _, scenarios = short_jobs(tmp_path)
    changed = {replace(j, sha256="0" * 64): sc  # "the scenario file changed meanwhile"
               for j, sc in scenarios.items()}
    # children of earlier tests (a local Dask cluster winding down) are not this run's
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(RuntimeError, match="changed while the run was under way"):
        execute(list(changed), changed, workers=2)
    assert not alive([p for p in psutil.Process().children(recursive=True)
                      if p.pid not in before])
    assert not leftovers(tmp_path)


def test_a_worker_killed_mid_replication_fails_the_run_rather_than_hanging(tmp_path):
    jobs, scenarios = short_jobs(tmp_path)
    killed: list[int] = []
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # not this run's

    def progress(job: object, days: float) -> None:
        if not killed and days > 20:
            victim = next(p for p in psutil.Process().children() if p.pid not in before)
            killed.append(victim.pid)
            victim.kill()

    with pytest.raises(WorkerDied, match="ended unexpectedly"):
        execute(jobs, scenarios, workers=2, progress=progress)
    assert killed
    assert not alive([p for p in psutil.Process().children(recursive=True)
                      if p.pid not in before])
    assert not leftovers(tmp_path)
