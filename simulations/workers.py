"""Local worker processes for replications: one job each at a time, stopped cleanly.

The pool is this module's own (not :mod:`multiprocessing.pool`), so that stopping is ours
to decide: each worker ignores Ctrl-C (the terminal sends it to every process; the parent
decides what it stops), drops its unfinished files and exits on SIGTERM (or SIGHUP), and
exits by itself when its parent is gone (a watchdog thread), so a killed run leaves no
orphans. On any interruption the parent stops every worker within a few seconds, removes
what an unfinished job left, and re-raises; finished jobs stay stored. A job is anything
picklable that can run itself and clear up after itself (:class:`WorkerJob`); what a
replication is, and where it is stored, is :mod:`simulations.runner`'s.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_any
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Generic, Protocol, TypeVar


class WorkerJob(Hashable, Protocol):
    """One job for a worker process: plain picklable data that runs itself."""

    def run(self, progress: Callable[[float], None] | None = None) -> object:
        """Run the job and store what it makes, reporting simulated days to ``progress``."""

    def drop_unfinished(self, pid: int) -> None:
        """Remove what process ``pid`` left of this job when stopped in the middle of it."""

    def describe(self) -> str:
        """The job in a few words, for an error message (``replication 3 of out/x``)."""


J = TypeVar("J", bound=WorkerJob)


STOP_GRACE_SECONDS = 5.0
"""How long a stopped worker has to drop its unfinished files before it is killed."""

PARENT_POLL_SECONDS = 0.5
"""How often a worker checks that its parent is still there."""

_STOP_SIGNALS = {signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())
"""Signals that stop a worker cleanly: SIGTERM, and SIGHUP when its terminal goes away."""


class _RemoteTraceback(Exception):
    """Where a worker's exception was raised (its traceback, as text)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class WorkerDied(RuntimeError):
    """A worker process ended without finishing (or reporting the failure of) its job."""


@dataclass
class _Worker(Generic[J]):
    """A worker process, the parent's end of its pipe, and the job it is running."""

    process: BaseProcess
    conn: Connection
    job: J | None = None


class _Stop:
    """In a worker: whether SIGTERM asked it to stop, and whether it is between jobs."""

    requested = False
    idle = True


def _worker_main(conn: Connection, parent_pid: int, mask: set[signal.Signals] | None,
                 inherited: Sequence[Connection]) -> None:
    """A worker process: run the jobs the parent sends, one at a time, until sent None.

    Reports ``("progress", days)`` as the job advances, then ``("done", None)``
    once it is stored, or ``("error", exception, traceback)``, and then exits. Ctrl-C is
    ignored (the terminal sends it to every process; the parent decides). SIGTERM, or
    SIGHUP (its terminal closed; unless started ignoring it, as under ``nohup``), stops
    the worker: between jobs at once, during one at its next progress report, through the
    job's own clean-up (a replication drops its unfinished event log). A watchdog thread
    sends that SIGTERM when ``parent_pid`` is no longer the parent. ``inherited`` are the
    parent's ends of pipes that a forked worker holds copies of: closed, so a worker
    writing to a dead parent gets an error rather than waiting for ever.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in _STOP_SIGNALS:
        if sig == signal.SIGTERM or signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _stop_worker)
    if mask is not None:  # the parent blocked them while it started this process
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for other in inherited:
        other.close()
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog",
                     daemon=True).start()

    def report(days: float) -> None:
        if _Stop.requested:  # a safe place to unwind: the engine's own progress call
            raise SystemExit(128 + signal.SIGTERM)
        _send(conn, ("progress", days))

    while not _Stop.requested:
        try:
            job: WorkerJob | None = conn.recv()
        except EOFError:
            return
        finally:
            _Stop.idle = False
        if job is None:
            return
        try:
            job.run(report)
        except Exception as exc:
            tb = traceback.format_exc()
            try:
                _send(conn, ("error", exc, tb))
            except Exception:  # an exception that cannot be pickled
                _send(conn, ("error", RuntimeError(f"{type(exc).__name__}: {exc}"), tb))
            return
        _Stop.idle = True
        _send(conn, ("done", None))


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    """Send the parent a message; exit quietly if the parent is gone (a broken pipe)."""
    try:
        conn.send(message)
    except OSError:
        raise SystemExit(1) from None


def _stop_worker(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (SIGHUP) in a worker: exit now if between jobs, else at the next report.

    Raising here in the middle of a replication could land in a finaliser (a generator
    being closed, say), which would swallow it; the progress report is a safe place.
    """
    _Stop.requested = True
    if _Stop.idle:
        raise SystemExit(128 + signum)


def _watch_parent(parent_pid: int) -> None:
    """Stop this worker once its parent is gone (killed, even with SIGKILL)."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_GRACE_SECONDS)
    os._exit(1)  # the main thread did not stop in time


def run_on_workers(todo: Sequence[J], workers: int,
                   progress: Callable[[J, float], None] | None,
                   finished: Callable[[J], None]) -> None:
    """Run jobs on local worker processes, one job per worker at a time.

    Args:
        todo: The jobs, each run once, in order as workers come free.
        workers: How many worker processes (at most one per job).
        progress: Called here with (job, simulated days reached) as a worker reports.
        finished: Called here with each job its worker has finished (and stored).

    Raises:
        WorkerDied: a worker process ended in the middle of a job.
        KeyboardInterrupt: as any exception, after every worker is stopped and its
            unfinished job's files removed (an error a job raised is raised here, with
            the worker's traceback as its cause).
    """
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    waiting = deque(todo)
    pool: list[_Worker[J]] = []
    try:
        _start_workers(ctx, min(workers, len(todo)), pool)
        for worker in pool:
            _give(worker, waiting)
        while busy := [w for w in pool if w.job is not None]:
            wait_for_any([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                _serve(worker, waiting, progress, finished)
        for worker in pool:  # each was sent None and is exiting
            worker.process.join(STOP_GRACE_SECONDS)
    finally:
        _stop_workers(pool)


def _start_workers(ctx: Any, count: int, pool: list[_Worker[J]]) -> None:
    """Start ``count`` workers into ``pool``.

    Ctrl-C, SIGTERM and SIGHUP stay blocked in a new process until it has set its handlers
    (a signal between fork and set-up would print a traceback).
    """
    mask = (signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *_STOP_SIGNALS})
            if hasattr(signal, "pthread_sigmask") else None)
    forked = ctx.get_start_method() == "fork"
    try:
        for i in range(count):
            mine, theirs = ctx.Pipe()
            inherited = [*(w.conn for w in pool), mine] if forked else []
            process = ctx.Process(target=_worker_main,
                                  args=(theirs, os.getpid(), mask, inherited),
                                  name=f"cpsim-worker-{i}", daemon=True)
            process.start()
            theirs.close()
            pool.append(_Worker(process, mine))
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _give(worker: _Worker[J], waiting: deque[J]) -> None:
    """Send the worker the next job, or None (no more: it exits)."""
    worker.job = waiting.popleft() if waiting else None
    try:
        worker.conn.send(worker.job)
    except OSError:
        if worker.job is not None:
            raise _died(worker, worker.job) from None


def _serve(worker: _Worker[J], waiting: deque[J], progress: Callable[[J, float], None] | None,
           finished: Callable[[J], None]) -> None:
    """Handle what a busy worker has sent; raise its error, or say if it died."""
    while (job := worker.job) is not None:
        dead = not worker.process.is_alive()  # then all it sent can be read now
        try:
            if not worker.conn.poll():
                if dead:
                    raise _died(worker, job)
                return
            kind, payload, *tb = worker.conn.recv()
        except (EOFError, OSError):  # its end is closed: it has exited
            raise _died(worker, job) from None
        if kind == "progress":
            if progress is not None:
                progress(job, payload)
        elif kind == "done":
            _give(worker, waiting)  # first: the worker runs while the job is taken in here
            finished(job)
        else:
            raise payload from _RemoteTraceback(tb[0])


def _died(worker: _Worker[J], job: J) -> WorkerDied:
    worker.process.join(1.0)
    return WorkerDied(f"the worker process for {job.describe()} ended unexpectedly (exit code "
                      f"{worker.process.exitcode})")


def _stop_workers(pool: list[_Worker[J]]) -> None:
    """Stop every worker (SIGTERM, then SIGKILL after a grace period) and wait for it.

    What the workers still send is read and dropped meanwhile (so none waits on a full
    pipe); then the files of any replication left unfinished are removed.
    """
    for worker in pool:
        if worker.process.exitcode is None:
            worker.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    reading = {w.conn for w in pool if not w.conn.closed}
    while (running := [w.process for w in pool if w.process.exitcode is None]) and (
            left := deadline - time.monotonic()) > 0:
        ready = wait_for_any([*reading, *(p.sentinel for p in running)], left)
        for conn in [c for c in reading if c in ready]:
            try:
                conn.recv_bytes()
            except (EOFError, OSError):
                reading.discard(conn)
    for worker in pool:
        if worker.process.exitcode is None:
            worker.process.kill()
        worker.process.join()
        worker.conn.close()
        if worker.job is not None and worker.process.pid is not None:
            worker.job.drop_unfinished(worker.process.pid)
        worker.process.close()
    pool.clear()
