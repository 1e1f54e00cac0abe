"""Loaded scenarios (and their transition tables) kept in a process, for many jobs of one.

A national run split into authorities is one job per (replication, authority), and each job
rebuilds its scenario from the file (:meth:`simulations.runner.Job.scenario`): reading,
parsing and validating the scenario and its procedure cost about as much as a shard's
two simulated months. A worker process keeps what it loaded here and serves it again while
every file that went into it still has the same content: each lookup reads and hashes those
files (small; well under a millisecond), so an edited scenario or procedure is loaded (and
validated, and refused by the job) afresh, exactly as without the cache.

A served scenario is the very object loaded before: scenarios are frozen, and the runner
derives each job's own scenario from it without changing it (as one process running every
job from one loaded scenario always has). Likewise each job's transition table
(:func:`table_machine`): built once per procedure and start date, since a table keeps
nothing of the cases it runs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from model.calendar import WorkingCalendar
from model.spec import Procedure
from simulations.scenario import (
    OVERRIDE_SOURCE,
    Scenario,
    load_scenario,
    overrides_digest,
    resolve_scenario_path,
)
from simulations.table import TableMachine

KEEP = 4
"""Scenarios kept per process (the most recently used): a sweep's grid points take turns."""

_kept: OrderedDict[tuple[str, str], Scenario] = OrderedDict()

_tables: OrderedDict[tuple[int, date], tuple[Procedure, TableMachine, WorkingCalendar]] = (
    OrderedDict())


def unchanged(scenario: Scenario) -> bool:
    """Whether every file the scenario was built from (its procedure's too) is as it was.

    Each file's content is hashed again and compared with the hash recorded when it was
    read. A procedure changed by the scenario's ``procedure_overrides`` records the
    scenario's combined hash under the scenario's file: the scenario's own record of that
    file is the one compared.
    """
    recorded = dict(scenario.procedure.files)
    recorded.update(scenario.files)
    recorded.pop(OVERRIDE_SOURCE, None)
    return all(_file_hash(name) == sha for name, sha in recorded.items())


def _file_hash(name: str) -> str | None:
    try:
        return hashlib.sha256(Path(name).read_bytes()).hexdigest()
    except OSError:
        return None


def load_scenario_kept(name_or_path: str | Path,
                       overrides: Mapping[str, Any] | None = None) -> Scenario:
    """:func:`simulations.scenario.load_scenario`, served from this process when unchanged.

    Keyed by the scenario file and the overrides; served only while every file that went
    into the kept scenario has the content it had then (:func:`unchanged`).

    Raises:
        InputError: as :func:`~simulations.scenario.load_scenario` (nothing is kept).
    """
    key = (str(resolve_scenario_path(name_or_path)), overrides_digest(overrides or {}))
    found = _kept.get(key)
    if found is not None and found.overrides == dict(overrides or {}) and unchanged(found):
        _kept.move_to_end(key)
        return found
    scenario = load_scenario(name_or_path, overrides)
    _kept[key] = scenario
    _kept.move_to_end(key)
    while len(_kept) > KEEP:
        _kept.popitem(last=False)
    return scenario


def table_machine(scenario: Scenario) -> tuple[TableMachine, WorkingCalendar]:
    """The scenario's procedure compiled to a transition table, with its calendar.

    Built once per procedure (the very object: a kept scenario's, or the one scenario a
    process runs every job of) and start date. A table keeps no reference to its cases,
    and running cases does not change it, so one serves every job in turn.
    """
    procedure, start = scenario.procedure, scenario.spec.run.start_date
    key = (id(procedure), start)
    found = _tables.get(key)
    if found is not None and found[0] is procedure:
        _tables.move_to_end(key)
        return found[1], found[2]
    calendar = WorkingCalendar(start)
    machine = TableMachine(procedure, calendar)
    _tables[key] = (procedure, machine, calendar)  # holding the procedure keeps its id
    _tables.move_to_end(key)
    while len(_tables) > KEEP:
        _tables.popitem(last=False)
    return machine, calendar


def forget() -> None:
    """Drop every kept scenario and table (tests; or to free their memory)."""
    _kept.clear()
    _tables.clear()
