"""Run replications (in local processes or on Dask) into results folders, loss-free.

Each replication runs from its own seed stream, so the results do not depend on how many
workers run them, nor where. A finished replication is written at once (atomically:
temporary file, then rename), keyed by a content hash of everything that determines it;
re-running the same command after an interruption reuses every finished replication and
recomputes only the rest. A replication file that is unreadable or has the wrong key is
redone, never used.

Local worker processes are this module's own (not a pool): each ignores Ctrl-C (the parent
decides what it stops), drops its unfinished files and exits on SIGTERM, and exits by
itself when its parent is gone (a watchdog thread), so a killed run leaves no orphans. On
any interruption the parent stops every worker within a few seconds, removes what an
unfinished replication left, and re-raises; finished replications stay stored.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
import os
import platform
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_any
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from model.atomic import remove_leftovers, write_text_atomic
from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure
from model.errors import InputError, Problem
from model.loader import content_hash
from simulations.conform import Snapshot, load_snapshot
from simulations.engine import Engine, History, Machine
from simulations.eventlog import EventLogWriter
from simulations.kpi import Kpi, compute_kpis, kpis_csv, kpis_markdown
from simulations.observers import InvariantMonitor, Observer
from simulations.record import (
    KIND_NAMES,
    RESULTS_FORMAT,
    RESULTS_MARKER,
    event_log_path,
    experiment_differences,
    key_for,
    read_replication,
    recorded_experiment,
    rep_path,
)
from simulations.results import MachineKind, RunResult, RunSettings
from simulations.scenario import OVERRIDE_SOURCE, Scenario, load_scenario, overrides_digest

ENGINE_VERSION = "4"
"""Bumped whenever the engine's behaviour changes, so stored replications are not reused."""

ProgressFn = Callable[["Job", float], None]
"""Called with (job, simulated days reached)."""


def settings_for(scenario: Scenario, replications: int | None = None, seed: int | None = None,
                 horizon_days: int | None = None, warm_up_days: int | None = None,
                 machine: MachineKind = "table", event_log: bool = True) -> RunSettings:
    """The scenario's own run settings with any command-line overrides.

    A horizon shortened on the command line without a warm-up keeps the scenario's warm-up
    only up to half the new horizon; the scenario's own horizon keeps its own warm-up.
    """
    run = scenario.spec.run
    horizon = horizon_days if horizon_days is not None else run.horizon_days
    if warm_up_days is not None:
        warm = warm_up_days
    elif horizon_days is None:
        warm = run.warm_up_days
    else:
        warm = min(run.warm_up_days, horizon // 2)
    return RunSettings(
        replications=replications if replications is not None else run.replications,
        seed=seed if seed is not None else run.seed, horizon_days=horizon,
        warm_up_days=warm, machine=machine, event_log=event_log)


def experiment_of(scenario: Scenario, settings: RunSettings) -> dict[str, Any]:
    """What decides every replication's numbers besides its number: the experiment.

    Content hashes of the scenario and procedure, seed, horizon, warm-up, machine, event
    log, engine version and any starting caseload. Not the number of replications: a run
    may be extended (or shortened) and stays the same experiment.
    """
    return {
        "scenario": scenario.sha256,
        "procedure": content_hash(scenario.procedure),
        "seed": settings.seed,
        "horizon_days": settings.horizon_days,
        "warm_up_days": settings.warm_up_days,
        "machine": settings.machine,
        "event_log": settings.event_log,
        "engine": ENGINE_VERSION,
        "start_from": settings.start_from_sha256 or None,
        "as_of": settings.as_of,
    }


def replication_key(scenario: Scenario, settings: RunSettings, replication: int) -> str:
    """Content hash of (scenario, procedure, seed, horizon, replication, engine version)."""
    return key_for(experiment_of(scenario, settings), replication)


def make_machine(scenario: Scenario, kind: MachineKind) -> tuple[Machine, WorkingCalendar]:
    """Compile the scenario's procedure with the requested machine."""
    calendar = WorkingCalendar(scenario.spec.run.start_date)
    if kind == "transitions":
        return CompiledProcedure(scenario.procedure, calendar), calendar
    from simulations.table import TableMachine

    return TableMachine(scenario.procedure, calendar), calendar


def load_replication(out: Path, replication: int, key: str) -> dict[str, Any] | None:
    """A stored replication if it is complete, valid and was made from the same inputs."""
    return read_replication(rep_path(out, replication), {key}, replication).record


def run_replication(scenario: Scenario, settings: RunSettings, replication: int, out: Path,
                    progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run one replication, store it (event log first, then the record), return the record."""
    sc = settings.for_scenario(scenario)
    history: tuple[History, ...] = ()
    start_at = 0.0
    if settings.start_from is not None:
        snap = snapshot_for(sc, settings)
        run = sc.spec.run.model_copy(update={"start_date": snap.first_day})
        sc = replace(sc, spec=sc.spec.model_copy(update={"run": run}))
        history = snap.open_cases
        start_at = WorkingCalendar(snap.first_day).to_hours(snap.day)
    machine, calendar = make_machine(sc, settings.machine)
    observers: list[Observer] = [InvariantMonitor(sc.procedure)]
    log = None
    if settings.event_log:
        log = EventLogWriter(event_log_path(out, replication), replication,
                             sc.spec.run.start_date)
        observers.append(log)
    tick = None if progress is None else (lambda hours: progress(hours / 24.0))
    engine = Engine(sc, machine, calendar, replication, settings.seed, observers, tick,
                    history, start_at)
    try:
        record = engine.run().to_json()
    except BaseException:
        if log is not None:
            log.abort()
        raise
    if log is not None:
        log.close()
    key = replication_key(scenario, settings, replication)
    write_text_atomic(rep_path(out, replication),
                      json.dumps({"key": key, "record": record}, sort_keys=True))
    return record


def snapshot_for(scenario: Scenario, settings: RunSettings) -> Snapshot:
    """The caseload snapshot a run starts from (``settings.start_from``)."""
    from datetime import date

    assert settings.start_from is not None
    return load_snapshot(Path(settings.start_from), scenario.procedure,
                         settings.data_format,  # type: ignore[arg-type]
                         date.fromisoformat(settings.as_of) if settings.as_of else None)


# -- jobs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One replication of one scenario (with command-line overrides) into one folder.

    Plain, picklable data: a worker process or a Dask worker rebuilds the scenario from it.
    """

    scenario_path: str
    overrides: tuple[tuple[str, Any], ...]
    settings: RunSettings
    replication: int
    out: str
    sha256: str = ""

    def scenario(self) -> Scenario:
        """Load the job's scenario (validated as always), refusing a changed file.

        Raises:
            RuntimeError: the scenario's files changed since the run was set up, so this
                replication would not be the one its key names.
        """
        scenario = load_scenario(self.scenario_path, dict(self.overrides) or None)
        if self.sha256 and scenario.sha256 != self.sha256:
            raise RuntimeError(f"{self.scenario_path} changed while the run was under way; "
                               "start it again")
        return scenario


def jobs_for(scenario: Scenario, settings: RunSettings, out: Path) -> list[Job]:
    """The jobs of every replication of ``scenario`` into ``out``."""
    overrides = tuple(sorted(scenario.overrides.items()))
    return [Job(str(scenario.path), overrides, settings, rep, str(out), scenario.sha256)
            for rep in range(settings.replications)]


def stored(job: Job, scenario: Scenario,
           on_note: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The job's stored record, when complete, valid and made from the same inputs.

    A stored file that cannot be used (damaged, or made by another experiment), or a
    record without its event log, is said to ``on_note`` (it will be run again); a
    replication not stored yet is not.
    """
    out = Path(job.out)
    path = rep_path(out, job.replication)
    loaded = read_replication(path, {replication_key(scenario, job.settings,
                                                     job.replication)}, job.replication)
    if loaded.record is None:
        if loaded.fault != "missing" and on_note is not None:
            on_note(f"{path}: {loaded.reason}; running it again")
        return None
    log = event_log_path(out, job.replication)
    if job.settings.event_log and not log.is_file():
        if on_note is not None:
            on_note(f"{log}: missing; running replication {job.replication} again")
        return None
    return loaded.record


def _run_job_dask(job: Job) -> dict[str, Any]:
    """Dask task: run and store one job, and return its record."""
    return run_replication(job.scenario(), job.settings, job.replication, Path(job.out))


def execute(jobs: Sequence[Job], scenarios: dict[Job, Scenario], workers: int = 1,
            dask: str | None = None, progress: ProgressFn | None = None,
            on_done: Callable[[Job, bool], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> dict[Job, dict[str, Any]]:
    """Run every job not already stored; return every job's record.

    Args:
        jobs: The replications to have.
        scenarios: Each job's loaded scenario (to check what is stored).
        workers: Local worker processes (1 runs here, in this process).
        dask: A Dask scheduler address, or ``local`` to start a local cluster; None for
            local processes.
        progress: Called with (job, simulated days reached).
        on_done: Called with (job, reused) as each job is finished or found stored.
        on_note: Told of each stored replication that cannot be used and is run again.

    Raises:
        KeyboardInterrupt: after stopping the workers and removing what unfinished jobs
            left; every finished job stays stored (so for any other exception).
        WorkerDied: a local worker process ended (was killed) in the middle of a job.
    """
    records: dict[Job, dict[str, Any]] = {}
    todo: list[Job] = []
    for job in jobs:
        found = stored(job, scenarios[job], on_note)
        if found is not None:
            records[job] = found
            if on_done is not None:
                on_done(job, True)
        else:
            todo.append(job)
    if not todo:
        return records
    if dask is not None:
        _execute_dask(todo, dask, records, on_done)
    elif workers <= 1 or len(todo) <= 1:
        for job in todo:
            tick = None if progress is None else (lambda days, j=job: progress(j, days))
            records[job] = run_replication(scenarios[job], job.settings, job.replication,
                                           Path(job.out), tick)
            if on_done is not None:
                on_done(job, False)
    else:
        _execute_local(todo, scenarios, workers, records, progress, on_done)
    return records


# -- local worker processes ------------------------------------------------------------------
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
class _Worker:
    """A worker process, the parent's end of its pipe, and the job it is running."""

    process: BaseProcess
    conn: Connection
    job: Job | None = None


class _Stop:
    """In a worker: whether SIGTERM asked it to stop, and whether it is between jobs."""

    requested = False
    idle = True


def _worker_main(conn: Connection, parent_pid: int, mask: set[signal.Signals] | None,
                 inherited: Sequence[Connection]) -> None:
    """A worker process: run the jobs the parent sends, one at a time, until sent None.

    Reports ``("progress", days)`` as the replication advances, then ``("done", None)``
    once it is stored, or ``("error", exception, traceback)``, and then exits. Ctrl-C is
    ignored (the terminal sends it to every process; the parent decides). SIGTERM, or
    SIGHUP (its terminal closed; unless started ignoring it, as under ``nohup``), stops
    the worker: between jobs at once, during one at its next progress report, through the
    replication's own clean-up (the unfinished event log is dropped). A watchdog thread
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
            job: Job | None = conn.recv()
        except EOFError:
            return
        finally:
            _Stop.idle = False
        if job is None:
            return
        try:
            run_replication(job.scenario(), job.settings, job.replication, Path(job.out),
                            report)
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


def _execute_local(todo: Sequence[Job], scenarios: dict[Job, Scenario], workers: int,
                   records: dict[Job, dict[str, Any]], progress: ProgressFn | None,
                   on_done: Callable[[Job, bool], None] | None) -> None:
    """Run jobs on local worker processes, one job per worker at a time.

    On any exception (KeyboardInterrupt included) every worker is stopped and its
    unfinished files removed before the exception goes on.
    """
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    waiting = deque(todo)
    pool: list[_Worker] = []
    try:
        _start_workers(ctx, min(workers, len(todo)), pool)
        for worker in pool:
            _give(worker, waiting)
        while busy := [w for w in pool if w.job is not None]:
            wait_for_any([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                _serve(worker, waiting, scenarios, records, progress, on_done)
        for worker in pool:  # each was sent None and is exiting
            worker.process.join(STOP_GRACE_SECONDS)
    finally:
        _stop_workers(pool)


def _start_workers(ctx: Any, count: int, pool: list[_Worker]) -> None:
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


def _give(worker: _Worker, waiting: deque[Job]) -> None:
    """Send the worker the next job, or None (no more: it exits)."""
    worker.job = waiting.popleft() if waiting else None
    try:
        worker.conn.send(worker.job)
    except OSError:
        if worker.job is not None:
            raise _died(worker, worker.job) from None


def _serve(worker: _Worker, waiting: deque[Job], scenarios: dict[Job, Scenario],
           records: dict[Job, dict[str, Any]], progress: ProgressFn | None,
           on_done: Callable[[Job, bool], None] | None) -> None:
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
            record = stored(job, scenarios[job])
            assert record is not None, f"{job} finished but was not stored"
            records[job] = record
            if on_done is not None:
                on_done(job, False)
            _give(worker, waiting)
        else:
            raise payload from _RemoteTraceback(tb[0])


def _died(worker: _Worker, job: Job) -> WorkerDied:
    worker.process.join(1.0)
    return WorkerDied(f"the worker process for replication {job.replication} of {job.out} "
                      f"ended unexpectedly (exit code {worker.process.exitcode})")


def _stop_workers(pool: list[_Worker]) -> None:
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
            _drop_unfinished(worker.job, worker.process.pid)
        worker.process.close()
    pool.clear()


def _drop_unfinished(job: Job, pid: int) -> None:
    """Remove what a stopped worker may have left of ``job``.

    That is its temporary record and its partial event log: the temporary files that
    process ``pid`` made for them (:func:`model.atomic.remove_leftovers`). A finished
    replication's files are complete and stay.
    """
    out = Path(job.out)
    remove_leftovers(rep_path(out, job.replication), pid)
    remove_leftovers(event_log_path(out, job.replication), pid)


def _execute_dask(todo: Sequence[Job], address: str, records: dict[Job, dict[str, Any]],
                  on_done: Callable[[Job, bool], None] | None) -> None:
    try:
        # imported by name: Dask is an optional extra (and untyped)
        distributed: Any = importlib.import_module("dask.distributed")
    except ImportError:
        from model.errors import InputError, Problem

        raise InputError([Problem("--dask", None, "", "Dask is not installed: install the "
                                  "optional extra, pip install 'cp-procedure-sim[dask]'")]
                         ) from None
    cluster = None
    if address == "local":
        cluster = distributed.LocalCluster(n_workers=min(2, os.cpu_count() or 1),
                                           threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
    else:
        client = distributed.Client(address)
    try:
        futures = {client.submit(_run_job_dask, job, pure=False): job for job in todo}
        for fut in distributed.as_completed(futures):
            job = futures[fut]
            records[job] = fut.result()
            if on_done is not None:
                on_done(job, False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- one scenario ----------------------------------------------------------------------------
def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers."""
    out = {"python": platform.python_version()}
    for name in ("cp-procedure-sim", "simpy", "numpy", "transitions", "networkx", "holidays",
                 "pyarrow", "scipy", "pydantic"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_metadata(scenario: Scenario, settings: RunSettings) -> dict[str, Any]:
    """Provenance of a run: seed, content hashes of the inputs, versions.

    ``cpsim_results`` marks the folder as cpsim's (its format version) and ``experiment``
    records what every replication's key is made from (:func:`experiment_of`).
    """
    return {
        RESULTS_MARKER: RESULTS_FORMAT,
        "kind": "run",
        "experiment": experiment_of(scenario, settings),
        "event_log": settings.event_log,
        "scenario": scenario.name,
        "scenario_file": str(scenario.path),
        "scenario_sha256": scenario.sha256,
        "scenario_files": [{"file": f, "sha256": h} for f, h in scenario.files],
        "overrides": json.loads(overrides_digest(scenario.overrides)),
        "procedure": scenario.procedure.id,
        "procedure_sha256": content_hash(scenario.procedure),
        "procedure_files": [{"file": f, "sha256": h} for f, h in scenario.procedure.files],
        "root_seed": settings.seed,
        "replications": settings.replications,
        "horizon_days": settings.horizon_days,
        "warm_up_days": settings.warm_up_days,
        "start_date": scenario.spec.run.start_date.isoformat(),
        "machine": settings.machine,
        "engine_version": ENGINE_VERSION,
        "start_from": None if settings.start_from is None else {
            "file": settings.start_from, "sha256": settings.start_from_sha256,
            "format": settings.data_format, "as_of": settings.as_of},
        "versions": versions(),
    }


def check_folder(scenario: Scenario, settings: RunSettings, out: Path) -> None:
    """Refuse a results folder whose metadata records a different experiment.

    Its replications would all be run again over the old ones; the command line moves
    such a folder aside first, with ``--force`` (:mod:`simulations.folders`).

    Raises:
        InputError: ``out`` holds the results of a different experiment, naming the
            differences.
    """
    try:
        metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(metadata, dict):
        return
    kind = metadata.get("kind", "run")
    if kind != "run":
        raise InputError([Problem(str(out), None, "", f"holds {KIND_NAMES.get(kind, kind)}, "
                                  "not the results of one run; choose another folder")])
    found = recorded_experiment(metadata)
    if found is None:
        return
    differences = experiment_differences(found, experiment_of(scenario, settings))
    if differences:
        raise InputError([Problem(str(out), None, "", "holds the results of a different "
                                  "experiment: " + "; ".join(differences)
                                  + "; choose another folder")])


def prepare_folder(scenario: Scenario, settings: RunSettings, out: Path) -> None:
    """Write a results folder's metadata and input copies (before any replication).

    Raises:
        InputError: ``out`` holds the results of a different experiment
            (:func:`check_folder`); nothing is written.
    """
    check_folder(scenario, settings, out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "metadata.json",
                      json.dumps(run_metadata(scenario, settings), indent=2, sort_keys=True))
    for file, _sha in scenario.files or ((str(scenario.path), scenario.sha256),):
        if file == OVERRIDE_SOURCE:
            continue
        source = Path(file)
        write_text_atomic(out / "inputs" / source.name, source.read_text(encoding="utf-8"))


def finish_folder(scenario: Scenario, records: Iterable[dict[str, Any]], out: Path,
                  ) -> tuple[tuple[dict[str, Any], ...], list[Kpi]]:
    """Compute the KPIs of a folder's records and write its tables."""
    ordered = tuple(sorted(records, key=lambda r: r["replication"]))
    kpis = compute_kpis(ordered, scenario.procedure)
    write_text_atomic(out / "kpis.csv", kpis_csv(kpis))
    write_text_atomic(out / "kpis.md", f"# KPIs: {scenario.name}\n\n" + kpis_markdown(kpis))
    return ordered, kpis


def run_scenario(scenario: Scenario, settings: RunSettings, out: Path, workers: int = 1,
                 progress: Callable[[int, float], None] | None = None,
                 on_replication: Callable[[int, bool], None] | None = None,
                 dask: str | None = None,
                 on_note: Callable[[str], None] | None = None) -> RunResult:
    """Run (or finish) every replication, then write metadata and KPI tables.

    Args:
        scenario: The validated scenario.
        settings: Replications, seed, horizon and machine.
        out: The results folder (created; finished replications in it are reused).
        workers: Worker processes (1 runs in this process).
        progress: Called with (replication, simulated days) as replications advance.
        on_replication: Called with (replication, reused) when one is finished.
        dask: A Dask scheduler address or ``local`` (default: local processes).
        on_note: Told of each stored replication that cannot be used and is run again.

    Raises:
        KeyboardInterrupt: after stopping the workers; every finished replication is kept.
        InputError: ``out`` holds the results of a different experiment.
    """
    prepare_folder(scenario, settings, out)
    jobs = jobs_for(scenario, settings, out)
    reused: list[int] = []

    def done(job: Job, was_reused: bool) -> None:
        if was_reused:
            reused.append(job.replication)
        if on_replication is not None:
            on_replication(job.replication, was_reused)

    tick = None if progress is None else (lambda job, days: progress(job.replication, days))
    records = execute(jobs, dict.fromkeys(jobs, scenario), workers, dask, tick, done, on_note)
    ordered, kpis = finish_folder(scenario, records.values(), out)
    computed = tuple(j.replication for j in jobs if j.replication not in reused)
    return RunResult(out, ordered, tuple(kpis), tuple(sorted(reused)), computed)
