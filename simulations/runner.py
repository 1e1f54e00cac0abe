"""Run replications (in local processes or on Dask) into results folders, loss-free.

Each replication runs from its own seed stream, so the results do not depend on how many
workers run them, nor where. A finished replication is written at once (atomically:
temporary file, then rename), keyed by a content hash of everything that determines it;
re-running the same command after an interruption reuses every finished replication and
recomputes only the rest. A replication file that is unreadable or has the wrong key is
redone, never used.

Local worker processes (:mod:`simulations.workers`) stop cleanly: on any interruption
every worker is stopped within a few seconds, what an unfinished replication left is
removed (:meth:`Job.drop_unfinished`), and the exception goes on; finished replications
stay stored.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from model import native
from model.atomic import remove_leftovers, write_text_atomic
from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure
from model.errors import InputError, Problem
from model.loader import content_hash
from model.types import SimHours
from simulations.authorities import (
    ShardedReplication,
    authority_list,
    authority_scenario,
    shard_log_path,
    shard_record_path,
    spread_tables,
)
from simulations.collector import collector_paused
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
from simulations.results import MachineKind, RunResult, RunSettings, read_json_object
from simulations.scenario import OVERRIDE_SOURCE, Scenario, overrides_digest
from simulations.scenario_cache import load_scenario_kept, table_machine
from simulations.workers import WorkerDied as WorkerDied  # raised by execute: importable here
from simulations.workers import run_on_workers

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


def replication_key(scenario: Scenario, settings: RunSettings, replication: int,
                    authority: int | None = None) -> str:
    """Content hash of (scenario, procedure, seed, horizon, replication, engine version).

    One authority's shard of the replication has a key of its own (``authority`` added).
    """
    experiment = experiment_of(scenario, settings)
    if authority is not None:
        experiment["authority"] = authority
    return key_for(experiment, replication)


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
                    progress: Callable[[float], None] | None = None,
                    authority: int | None = None) -> dict[str, Any]:
    """Run one replication, store it (event log first, then the record), return the record.

    With ``authority``, run and store only that authority's shard of a scenario split into
    authorities (:mod:`simulations.authorities`); :func:`execute` merges the shards.
    """
    sc = settings.for_scenario(scenario)
    if authority is not None:
        sc = authority_scenario(sc, authority)
    history: tuple[History, ...] = ()
    start_at = 0.0
    if settings.start_from is not None:
        snap = snapshot_for(sc, settings)
        run = sc.spec.run.model_copy(update={"start_date": snap.first_day})
        sc = replace(sc, spec=sc.spec.model_copy(update={"run": run}))
        history = snap.open_cases
        start_at = WorkingCalendar(snap.first_day).to_hours(snap.day)
    with collector_paused():  # on again once the run's objects are freed, not before
        record = _simulate(sc, settings, replication, out, progress, authority, history,
                           start_at)
    key = replication_key(scenario, settings, replication, authority)
    write_text_atomic(_record_path(out, replication, authority),
                      json.dumps({"key": key, "record": record}, sort_keys=True))
    return record


def _simulate(sc: Scenario, settings: RunSettings, replication: int, out: Path,
              progress: Callable[[float], None] | None, authority: int | None,
              history: tuple[History, ...], start_at: SimHours) -> dict[str, Any]:
    """Run one replication (or shard) and close its event log; the record, as JSON.

    Nothing refers to the run once this returns, and the engine ended what still waited at
    the horizon, so reference counting has freed the run by the time
    :func:`run_replication` turns the cycle collector back on: no pass visits it.
    """
    machine, calendar = (table_machine(sc) if settings.machine == "table"
                         else make_machine(sc, settings.machine))
    observers: list[Observer] = [InvariantMonitor(sc.procedure)]
    log = None
    if settings.event_log:
        log = EventLogWriter(_log_path(out, replication, authority), replication,
                             sc.spec.run.start_date)
        observers.append(log)
    tick = None if progress is None else (lambda hours: progress(hours / 24.0))
    engine = Engine(sc, machine, calendar, replication, settings.seed, observers, tick,
                    history, start_at, authority)
    try:
        record = engine.run().to_json()
    except BaseException:
        if log is not None:
            log.abort()
        raise
    if log is not None:
        log.close()
    return record


def _record_path(out: Path, replication: int, authority: int | None) -> Path:
    """Where a replication's record (or one authority's shard of it) is stored."""
    return (rep_path(out, replication) if authority is None
            else shard_record_path(out, replication, authority))


def _log_path(out: Path, replication: int, authority: int | None) -> Path:
    """Where a replication's event log (or one authority's shard of it) is stored."""
    return (event_log_path(out, replication) if authority is None
            else shard_log_path(out, replication, authority))


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
    authority: int | None = None
    """One authority's shard of the replication (a scenario split into authorities)."""

    def scenario(self) -> Scenario:
        """Load the job's scenario (validated as always), refusing a changed file.

        A worker runs many jobs of one scenario (a national run's authorities): it loads
        the scenario once and serves it again while its files are unchanged
        (:func:`simulations.scenario_cache.load_scenario_kept`).

        Raises:
            RuntimeError: the scenario's files changed since the run was set up, so this
                replication would not be the one its key names.
        """
        scenario = load_scenario_kept(self.scenario_path, dict(self.overrides) or None)
        if self.sha256 and scenario.sha256 != self.sha256:
            raise RuntimeError(f"{self.scenario_path} changed while the run was under way; "
                               "start it again")
        return scenario

    def run(self, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        """Run and store the replication (:func:`run_replication`); return its record."""
        return run_replication(self.scenario(), self.settings, self.replication,
                               Path(self.out), progress, self.authority)

    def drop_unfinished(self, pid: int) -> None:
        """Remove what a worker stopped in the middle of this replication may have left.

        That is its temporary record and its partial event log: the temporary files that
        process ``pid`` made for them (:func:`model.atomic.remove_leftovers`). A finished
        replication's files are complete and stay.
        """
        out = Path(self.out)
        remove_leftovers(_record_path(out, self.replication, self.authority), pid)
        remove_leftovers(_log_path(out, self.replication, self.authority), pid)

    def describe(self) -> str:
        """The replication (and authority) and its folder, for an error message."""
        shard = "" if self.authority is None else f"authority {self.authority} of "
        return f"{shard}replication {self.replication} of {self.out}"


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
    path = _record_path(out, job.replication, job.authority)
    loaded = read_replication(path, {replication_key(scenario, job.settings, job.replication,
                                                     job.authority)}, job.replication)
    if loaded.record is None:
        if loaded.fault != "missing" and on_note is not None:
            on_note(f"{path}: {loaded.reason}; running it again")
        return None
    log = _log_path(out, job.replication, job.authority)
    if job.settings.event_log and not log.is_file():
        if on_note is not None:
            on_note(f"{log}: missing; running replication {job.replication} again")
        return None
    return loaded.record


def _run_job_dask(job: Job) -> dict[str, Any]:
    """Dask task: run and store one job, and return its record."""
    return job.run()


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
    known = dict(scenarios)
    split: dict[Job, ShardedReplication] = {}
    parent: dict[Job, Job] = {}
    for job in jobs:
        found = stored(job, scenarios[job], on_note)
        if found is not None:
            records[job] = found
            if on_done is not None:
                on_done(job, True)
            continue
        count = len(authority_list(scenarios[job].spec))
        if not count:
            todo.append(job)
            continue
        if job.settings.start_from is not None:
            raise InputError([Problem(str(scenarios[job].path), None, "authorities",
                                      "a run split into authorities cannot start from a "
                                      "caseload snapshot (whose authority is each case?)")])
        split[job] = ShardedReplication(job.settings.for_scenario(scenarios[job]),
                                        Path(job.out), job.replication, job.settings.event_log)
        for authority in range(count):
            shard = replace(job, authority=authority)
            parent[shard] = job
            known[shard] = scenarios[job]
            todo.append(shard)

    def tick(job: Job, days: float) -> None:
        if progress is None:
            return
        whole = parent.get(job)
        if whole is None or job.authority is None:
            progress(job, days)
            return
        # a split replication advances by its shards' mean
        progress(whole, split[whole].advanced(job.authority, days))

    def finished(job: Job, record: dict[str, Any]) -> None:
        whole = parent.get(job)
        if whole is None or job.authority is None:
            records[job] = record
            if on_done is not None:
                on_done(job, False)
            return
        if split[whole].finished(job.authority, record):
            records[whole] = _store_merged(whole, known[whole], split[whole])
            if on_done is not None:
                on_done(whole, False)

    try:
        waiting: list[Job] = []
        for job in todo:  # a shard of a replication left unfinished may be stored already
            found = stored(job, known[job], on_note) if job in parent else None
            if found is not None:
                finished(job, found)
            else:
                waiting.append(job)
        if waiting:
            _run_jobs(waiting, known, workers, dask, tick, finished)
    except BaseException:
        for sharded in split.values():  # their part-merged event logs
            sharded.abort()
        raise
    return records


def _store_merged(job: Job, scenario: Scenario, sharded: ShardedReplication
                  ) -> dict[str, Any]:
    """Store and return a replication's record merged from its authorities' records.

    The authorities' event logs, merged into the replication's as they finished (case ids
    prefixed by the authority's name), are removed; their records stay, small.
    """
    record = sharded.merged()
    key = replication_key(scenario, job.settings, job.replication)
    write_text_atomic(rep_path(Path(job.out), job.replication),
                      json.dumps({"key": key, "record": record}, sort_keys=True))
    return record


def _run_jobs(todo: Sequence[Job], scenarios: dict[Job, Scenario], workers: int,
              dask: str | None, progress: ProgressFn,
              finished: Callable[[Job, dict[str, Any]], None]) -> None:
    """Run jobs here, on local worker processes or on Dask; hand each record to ``finished``."""
    if dask is not None:
        _execute_dask(todo, dask, finished)
    elif workers <= 1 or len(todo) <= 1:
        for job in todo:
            finished(job, run_replication(scenarios[job], job.settings, job.replication,
                                          Path(job.out), partial(progress, job),
                                          job.authority))
    else:
        def done(job: Job) -> None:
            record = stored(job, scenarios[job])
            assert record is not None, f"{job} finished but was not stored"
            finished(job, record)

        run_on_workers(todo, workers, progress, done)


def _execute_dask(todo: Sequence[Job], address: str,
                  finished: Callable[[Job, dict[str, Any]], None]) -> None:
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
            finished(futures[fut], fut.result())
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
    # which build of the hot modules ran (model.native); the records are the same either way
    out["engine_build"] = "mypyc" if not native.verdict() else "python"
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
    meta = read_json_object(out / "metadata.json")
    if meta is None:
        return  # nothing recorded (or nothing readable): no experiment to differ from
    kind = meta.get("kind", "run")
    if kind != "run":
        raise InputError([Problem(str(out), None, "", f"holds {KIND_NAMES.get(kind, kind)}, "
                                  "not the results of one run; choose another folder")])
    found = recorded_experiment(meta)
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
    if scenario.spec.authorities is not None:
        tables = spread_tables(scenario, [r["replication"] for r in ordered], out, kpis)
        if tables is not None:
            write_text_atomic(out / "authorities.csv", tables[0])
            write_text_atomic(out / "authorities-spread.csv", tables[1])
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
