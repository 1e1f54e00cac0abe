"""Run a scenario's replications (in parallel if asked) into a results folder, loss-free.

Each replication runs from its own seed stream, so the results do not depend on how many
worker processes run them. A finished replication is written at once (atomically: temporary
file, then rename), keyed by a content hash of everything that determines it; re-running
the same command after an interruption reuses every finished replication and recomputes
only the rest. A replication file that is unreadable or has the wrong key is redone.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import platform
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure
from model.loader import content_hash
from simulations.engine import Engine, Machine
from simulations.eventlog import EventLogWriter
from simulations.kpi import Kpi, compute_kpis, kpis_csv, kpis_markdown
from simulations.observers import InvariantMonitor, Observer
from simulations.scenario import Scenario, load_scenario

ENGINE_VERSION = "1"
"""Bumped whenever the engine's behaviour changes, so stored replications are not reused."""

MachineKind = Literal["table", "transitions"]
ProgressFn = Callable[[int, float], None]
"""Called with (replication, simulated days reached)."""


@dataclass(frozen=True)
class RunSettings:
    """Everything besides the scenario file that decides a run's numbers."""

    replications: int
    seed: int
    horizon_days: int
    warm_up_days: int
    machine: MachineKind = "table"
    event_log: bool = True

    def for_scenario(self, scenario: Scenario) -> Scenario:
        """The scenario with this run's horizon and warm-up."""
        run = scenario.spec.run.model_copy(update={
            "horizon_days": self.horizon_days, "warm_up_days": self.warm_up_days,
            "replications": self.replications, "seed": self.seed})
        return replace(scenario, spec=scenario.spec.model_copy(update={"run": run}))


def settings_for(scenario: Scenario, replications: int | None = None, seed: int | None = None,
                 horizon_days: int | None = None, warm_up_days: int | None = None,
                 machine: MachineKind = "table", event_log: bool = True) -> RunSettings:
    """The scenario's own run settings with any command-line overrides."""
    run = scenario.spec.run
    horizon = horizon_days if horizon_days is not None else run.horizon_days
    warm = warm_up_days if warm_up_days is not None else min(run.warm_up_days, horizon // 2)
    return RunSettings(replications if replications is not None else run.replications,
                       seed if seed is not None else run.seed, horizon, warm, machine,
                       event_log)


def replication_key(scenario: Scenario, settings: RunSettings, replication: int) -> str:
    """Content hash of (scenario, procedure, seed, horizon, replication, engine version)."""
    text = json.dumps({
        "scenario": scenario.sha256,
        "procedure": content_hash(scenario.procedure),
        "seed": settings.seed,
        "horizon_days": settings.horizon_days,
        "warm_up_days": settings.warm_up_days,
        "machine": settings.machine,
        "replication": replication,
        "engine": ENGINE_VERSION,
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def make_machine(scenario: Scenario, kind: MachineKind) -> tuple[Machine, WorkingCalendar]:
    """Compile the scenario's procedure with the requested machine."""
    calendar = WorkingCalendar(scenario.spec.run.start_date)
    if kind == "transitions":
        return CompiledProcedure(scenario.procedure, calendar), calendar
    from simulations.table import TableMachine

    return TableMachine(scenario.procedure, calendar), calendar


def write_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _rep_path(out: Path, replication: int) -> Path:
    return out / "replications" / f"rep-{replication:04d}.json"


def load_replication(out: Path, replication: int, key: str) -> dict[str, Any] | None:
    """A stored replication if it is complete and was made from the same inputs."""
    path = _rep_path(out, replication)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or "record" not in data:
        return None
    record = data["record"]
    return record if isinstance(record, dict) else None


def run_replication(scenario: Scenario, settings: RunSettings, replication: int, out: Path,
                    progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run one replication, store it, and return its record."""
    sc = settings.for_scenario(scenario)
    machine, calendar = make_machine(sc, settings.machine)
    observers: list[Observer] = [InvariantMonitor(sc.procedure)]
    log = None
    if settings.event_log:
        log = EventLogWriter(out / "events" / f"rep-{replication:04d}.parquet", replication,
                             sc.spec.run.start_date)
        observers.append(log)
    tick = None if progress is None else (lambda hours: progress(replication, hours / 24.0))
    engine = Engine(sc, machine, calendar, replication, settings.seed, observers, tick)
    try:
        record = engine.run().to_json()
    except BaseException:
        if log is not None:
            log.abort()
        raise
    if log is not None:
        log.close()
    key = replication_key(scenario, settings, replication)
    write_atomic(_rep_path(out, replication),
                 json.dumps({"key": key, "record": record}, sort_keys=True))
    if progress is not None:
        progress(replication, float(settings.horizon_days))
    return record


# -- worker processes ------------------------------------------------------------------------
_QUEUE: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _QUEUE
    _QUEUE = progress_queue


def _worker(scenario_path: str, settings: RunSettings, replication: int, out: str) -> int:
    scenario = load_scenario(scenario_path)

    def report(rep: int, days: float) -> None:
        if _QUEUE is not None:
            _QUEUE.put((rep, days))

    run_replication(scenario, settings, replication, Path(out), report)
    return replication


@dataclass(frozen=True)
class RunResult:
    """What a run produced: where, which replications were reused, and the KPIs."""

    out: Path
    records: tuple[dict[str, Any], ...]
    kpis: tuple[Kpi, ...]
    reused: tuple[int, ...]
    computed: tuple[int, ...]


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
    """Provenance of a run: seed, content hashes of the inputs, versions."""
    return {
        "scenario": scenario.name,
        "scenario_file": str(scenario.path),
        "scenario_sha256": scenario.sha256,
        "scenario_files": [{"file": f, "sha256": h} for f, h in scenario.files],
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
        "versions": versions(),
    }


def run_scenario(scenario: Scenario, settings: RunSettings, out: Path, workers: int = 1,
                 progress: ProgressFn | None = None,
                 on_replication: Callable[[int, bool], None] | None = None) -> RunResult:
    """Run (or finish) every replication, then write metadata and KPI tables.

    Args:
        scenario: The validated scenario.
        settings: Replications, seed, horizon and machine.
        out: The results folder (created; finished replications in it are reused).
        workers: Worker processes (1 runs in this process).
        progress: Called with (replication, simulated days) as replications advance.
        on_replication: Called with (replication, reused) when one is finished.

    Raises:
        KeyboardInterrupt: after stopping the workers; every finished replication is kept.
    """
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "metadata.json",
                 json.dumps(run_metadata(scenario, settings), indent=2, sort_keys=True))
    for file, _sha in scenario.files or ((str(scenario.path), scenario.sha256),):
        source = Path(file)
        write_atomic(out / "inputs" / source.name, source.read_text(encoding="utf-8"))
    records: dict[int, dict[str, Any]] = {}
    reused: list[int] = []
    todo: list[int] = []
    for rep in range(settings.replications):
        found = load_replication(out, rep, replication_key(scenario, settings, rep))
        if found is not None and (not settings.event_log or (
                out / "events" / f"rep-{rep:04d}.parquet").is_file()):
            records[rep] = found
            reused.append(rep)
            if on_replication is not None:
                on_replication(rep, True)
        else:
            todo.append(rep)
    if workers <= 1 or len(todo) <= 1:
        for rep in todo:
            records[rep] = run_replication(scenario, settings, rep, out, progress)
            if on_replication is not None:
                on_replication(rep, False)
    else:
        _run_parallel(scenario, settings, out, todo, workers, records, progress,
                      on_replication)
    ordered = tuple(records[r] for r in sorted(records))
    kpis = compute_kpis(ordered, scenario.procedure)
    write_atomic(out / "kpis.csv", kpis_csv(kpis))
    write_atomic(out / "kpis.md", f"# KPIs: {scenario.name}\n\n" + kpis_markdown(kpis))
    return RunResult(out, ordered, tuple(kpis), tuple(reused), tuple(todo))


def _run_parallel(scenario: Scenario, settings: RunSettings, out: Path, todo: Sequence[int],
                  workers: int, records: dict[int, dict[str, Any]],
                  progress: ProgressFn | None,
                  on_replication: Callable[[int, bool], None] | None) -> None:
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    progress_queue = ctx.Queue()
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                               initializer=_init_worker, initargs=(progress_queue,))
    pending: set[Future[int]] = set()
    try:
        for rep in todo:
            pending.add(pool.submit(_worker, str(scenario.path), settings, rep, str(out)))
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress_queue, progress)
            for fut in done:
                rep = fut.result()
                record = load_replication(out, rep, replication_key(scenario, settings, rep))
                assert record is not None, f"replication {rep} was not stored"
                records[rep] = record
                if on_replication is not None:
                    on_replication(rep, False)
        _drain(progress_queue, progress)
    except BaseException:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        raise
    pool.shutdown()


def _drain(progress_queue: Any, progress: ProgressFn | None) -> None:
    while True:
        try:
            rep, days = progress_queue.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(rep, days)
