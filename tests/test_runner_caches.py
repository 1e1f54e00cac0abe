"""What a worker keeps between jobs, and a split replication's log merged as shards finish."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_procedure, write_scenario

from simulations import scenario_cache
from simulations.authorities import LogMerger, merge_event_logs
from simulations.engine import Engine
from simulations.eventlog import SCHEMA
from simulations.record import event_log_path
from simulations.runner import (
    execute,
    jobs_for,
    prepare_folder,
    run_replication,
    run_scenario,
    settings_for,
)
from simulations.scenario import load_scenario
from simulations.scenario_cache import load_scenario_kept, table_machine, unchanged
from simulations.workers import run_on_workers


@pytest.fixture(autouse=True)
def _nothing_kept() -> Iterator[None]:
    scenario_cache.forget()
    yield
    scenario_cache.forget()


def _own_procedure(folder: Path) -> Path:
    """A scenario on a procedure file of its own (beside it), so both can be changed."""
    write_procedure(folder, "local-proc", "west-midlands-2014", "")
    return write_scenario(folder, "procedure: local-proc\n", "kept")


# -- scenarios kept in a process ------------------------------------------------------------
def test_a_second_job_in_a_worker_reuses_the_loaded_scenario(tmp_path: Path) -> None:
    sc = load_scenario(_own_procedure(tmp_path))
    first, second = jobs_for(sc, settings_for(sc, replications=2, horizon_days=10), tmp_path)
    kept = first.scenario()
    assert kept.sha256 == sc.sha256 and kept is not sc
    assert second.scenario() is kept
    assert replace(second, authority=3).scenario() is kept


def test_a_changed_scenario_file_is_loaded_again_and_the_job_refused(tmp_path: Path) -> None:
    path = _own_procedure(tmp_path)
    sc = load_scenario(path)
    job = jobs_for(sc, settings_for(sc, replications=1, horizon_days=10), tmp_path)[0]
    kept = job.scenario()
    path.write_text(path.read_text() + "# edited while the run was under way\n")
    assert not unchanged(kept)
    with pytest.raises(RuntimeError, match="changed while the run was under way"):
        job.scenario()
    again = load_scenario_kept(path)
    assert again is not kept and again.sha256 != kept.sha256


def test_a_changed_procedure_file_is_not_served_from_the_cache(tmp_path: Path) -> None:
    path = _own_procedure(tmp_path)
    kept = load_scenario_kept(path)
    assert load_scenario_kept(path) is kept
    procedure = tmp_path / "local-proc.yaml"
    procedure.write_text(procedure.read_text() + "# a comment changes its hash\n")
    again = load_scenario_kept(path)
    assert again is not kept
    assert again.procedure.files != kept.procedure.files
    assert load_scenario_kept(path) is again


def test_overrides_and_a_gone_file_are_kept_apart(tmp_path: Path) -> None:
    path = _own_procedure(tmp_path)
    plain = load_scenario_kept(path)
    more = load_scenario_kept(path, {"demand.referrals_per_year": 5000})
    assert more is not plain and more.spec.demand.referrals_per_year == 5000
    assert load_scenario_kept(path) is plain
    assert load_scenario_kept(path, {"demand.referrals_per_year": 5000}) is more
    (tmp_path / "local-proc.yaml").unlink()
    assert not unchanged(plain)


def test_a_table_is_built_once_per_procedure_and_start_date(tmp_path: Path) -> None:
    sc = load_scenario_kept(_own_procedure(tmp_path))
    machine, calendar = table_machine(sc)
    assert table_machine(sc) == (machine, calendar)
    run = sc.spec.run.model_copy(update={"start_date": date(2026, 4, 1)})
    later = replace(sc, spec=sc.spec.model_copy(update={"run": run}))
    assert table_machine(later)[0] is not machine
    other = load_scenario(tmp_path / "kept.yaml")  # the same files, another procedure object
    assert table_machine(other)[0] is not machine
    assert table_machine(other)[0].procedure is other.procedure


# -- event logs merged as authorities finish ------------------------------------------------
def _shard_log(path: Path, cases: int, seed: int) -> Path:
    """An event log of ``cases`` one-row cases, in two row groups."""
    rows: dict[str, list[object]] = {name: [] for name in SCHEMA.names}
    for c in range(cases):
        for name, value in (("replication", 0), ("case_id", f"c{c + 1}"),
                            ("time_hours", float(seed * 100 + c)),
                            ("date", date(2025, 4, 1 + c % 28)), ("from_state", ""),
                            ("trigger", f"t{seed}"), ("to_state", "s"), ("rules", ""),
                            ("actor", ""), ("facts", "")):
            rows[name].append(value)
    table = pa.Table.from_pydict(rows, schema=SCHEMA)
    pq.write_table(table, path, row_group_size=max(1, cases // 2))
    return path


def test_a_log_merged_as_authorities_finish_is_the_log_merged_at_the_end(
        tmp_path: Path) -> None:
    shards = [_shard_log(tmp_path / f"a{k}.parquet", 3 + k, k) for k in range(4)]
    names = ["a001", "a002", "a003", "a004"]
    merge_event_logs(shards, names, tmp_path / "at-once.parquet")
    merger = LogMerger(shards, names, tmp_path / "as-they-come.parquet")
    for authority in (2, 1, 3):
        merger.ready(authority)
    assert not merger.complete and not (tmp_path / "as-they-come.parquet").exists()
    with pytest.raises(ValueError, match="authority 0"):
        merger.commit()
    merger.ready(0)
    merger.commit()
    assert (tmp_path / "as-they-come.parquet").read_bytes() == \
        (tmp_path / "at-once.parquet").read_bytes()
    log = pq.read_table(tmp_path / "at-once.parquet")
    assert log.column("case_id").to_pylist()[:4] == ["a001/c1", "a001/c2", "a001/c3",
                                                     "a002/c1"]


def test_merging_authorities_logs_does_not_import_pandas(tmp_path: Path) -> None:
    """A str or ``pa.scalar`` handed to pyarrow imports pandas: 0.4 s of a sharded run."""
    shards = [_shard_log(tmp_path / f"a{k}.parquet", 2, k) for k in range(2)]
    script = f"""
import sys
from pathlib import Path
from simulations.authorities import LogMerger
merger = LogMerger([Path(p) for p in {[str(p) for p in shards]!r}], ["a001", "a002"],
                   Path({str(tmp_path / "merged.parquet")!r}))
merger.ready(0)
merger.ready(1)
merger.commit()
print("pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[1])
    assert done.stdout.strip() == "False"
    merged = pq.read_table(tmp_path / "merged.parquet").column("case_id").to_pylist()
    assert merged == ["a001/c1", "a001/c2", "a002/c1", "a002/c2"]


def test_an_aborted_merge_leaves_no_file(tmp_path: Path) -> None:
    shards = [_shard_log(tmp_path / f"a{k}.parquet", 2, k) for k in range(2)]
    merger = LogMerger(shards, ["x", "y"], tmp_path / "events" / "rep.parquet")
    merger.ready(0)
    assert list((tmp_path / "events").iterdir())  # the partial file, being written
    merger.abort()
    assert not list((tmp_path / "events").iterdir())


# -- the worker pool ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Touch:
    """A job that leaves a file saying it started."""

    folder: str
    number: int

    def run(self, progress: Callable[[float], None] | None = None) -> object:
        (Path(self.folder) / f"started-{self.number}").write_text(str(os.getpid()))
        return None

    def drop_unfinished(self, pid: int) -> None:
        """Nothing to drop."""

    def describe(self) -> str:
        return f"job {self.number}"


def test_a_worker_has_its_next_job_before_the_finished_one_is_taken_in(
        tmp_path: Path) -> None:
    jobs = [_Touch(str(tmp_path), k) for k in range(3)]
    seen: list[int] = []

    def finished(job: _Touch) -> None:
        # the parent takes in a finished job (merging, storing) while the worker runs on
        if job.number < 2:
            deadline = time.monotonic() + 20
            while not (tmp_path / f"started-{job.number + 1}").exists():
                assert time.monotonic() < deadline, "the worker waited for the parent"
                time.sleep(0.01)
        seen.append(job.number)

    run_on_workers(jobs, 1, None, finished)
    assert seen == [0, 1, 2]


# -- a split run stopped part way --------------------------------------------------------
def test_a_split_run_stopped_part_way_leaves_no_part_merged_log_and_resumes_the_same(
        tmp_path: Path) -> None:
    sc = load_scenario(write_scenario(tmp_path, "authorities: 3\n", "split"))
    settings = settings_for(sc, replications=1, seed=3, horizon_days=30, warm_up_days=5)
    whole = run_scenario(sc, settings, tmp_path / "whole")

    def stop(job: object, days: float) -> None:
        if days >= 12:  # the replication's mean: the first authority is done, the second runs
            raise KeyboardInterrupt

    out = tmp_path / "stopped"
    prepare_folder(sc, settings, out)
    jobs = jobs_for(sc, settings, out)
    with pytest.raises(KeyboardInterrupt):
        execute(jobs, dict.fromkeys(jobs, sc), progress=stop)
    assert [p.name for p in out.rglob("*.parquet")] == ["rep-0000-a0000.parquet"]
    assert not [p for p in out.rglob(".*") if p.is_file()], "a temporary file was left"
    again = run_scenario(sc, settings, out)
    assert again.records == whole.records
    for name in ("events/rep-0000.parquet", "kpis.csv", "authorities.csv"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_a_job_keeps_the_collector_off_until_its_run_is_freed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turned back on while the engine lived, the collector visited every object the run
    made, two or three times over as they were promoted, while the log was closed; and the
    cases still open at the horizon held the engine in a cycle only it could free. Now
    reference counting frees the run as the job ends, and no pass visits it."""
    scenario = load_scenario("baseline")
    settings = settings_for(scenario, 1, 3, 120, 30)
    engines: weakref.WeakSet[Engine] = weakref.WeakSet()
    built = Engine.__init__

    def remember(self: Engine, *args: Any, **kwargs: Any) -> None:
        built(self, *args, **kwargs)
        engines.add(self)

    monkeypatch.setattr(Engine, "__init__", remember)
    passes: list[int] = []  # live engines at each pass of the collector

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(len(engines))

    prepare_folder(scenario, settings, tmp_path)
    gc.collect()
    gc.callbacks.append(count)
    try:
        record = run_replication(scenario, settings, 0, tmp_path)
    finally:
        gc.callbacks.remove(count)
    assert record["transitions"] > 1000
    assert event_log_path(tmp_path, 0).exists()
    assert gc.isenabled()
    assert len(engines) == 0  # freed without the collector
    assert passes.count(0) == len(passes)  # before: a pass every few hundred rows
