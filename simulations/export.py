"""Export simulated event logs: XES and OCEL 2.0 (process mining), plain CSV, CIN-flat.

Reads the Parquet event logs of a results folder (never re-runs anything). Case ids are
made unique across replications as ``R<replication>-<case>``. Times become calendar
instants from the run's start date: the simulator's clock is England's wall clock, so every
timestamp carries England's offset from universal time on that day (``+01:00`` in summer
time, ``+00:00`` otherwise). A wall-clock time that does not exist (the hour skipped in
March) or happens twice (the hour repeated in October) takes the offset in force before
the change. Every file is written atomically (:func:`model.atomic.open_atomic`).
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import quoteattr
from zoneinfo import ZoneInfo

from model.atomic import open_atomic
from model.graph import apply, candidates, events_of
from model.spec import EventRef, Procedure
from simulations.casedata import ARRIVAL_ACTIVITY, CIN_COLUMNS, KEY_DATES, cin_mapping
from simulations.eventlog import read_events
from simulations.results import RunResults

ExportFormat = Literal["xes", "ocel", "csv", "cin-flat"]
FORMATS: tuple[ExportFormat, ...] = ("xes", "ocel", "csv", "cin-flat")
SUFFIX = {"xes": ".xes", "ocel": ".jsonocel", "csv": ".csv", "cin-flat": ".cin.csv"}

Row = dict[str, Any]

ENGLAND = "Europe/London"
"""The time zone of the simulator's clock (its naive times are England's wall clock)."""


@functools.cache
def _england() -> ZoneInfo:
    """England's time zone (looked up when first needed: it needs the time zone database)."""
    return ZoneInfo(ENGLAND)


def _rows(results: RunResults) -> Iterator[Row]:
    """Every event row of every replication, grouped by case (time order within a case)."""
    for path in results.event_logs():
        table = read_events(path).sort_by([("case_id", "ascending"),
                                             ("time_hours", "ascending")])
        for batch in table.to_batches(max_chunksize=100_000):
            yield from batch.to_pylist()


def _case_key(row: Row) -> str:
    return f"R{row['replication']}-{row['case_id']}"


def _instant(start: datetime, hours: float) -> datetime:
    return start + timedelta(hours=hours)


def _iso(moment: datetime) -> str:
    """England's wall-clock ``moment`` with its offset that day, e.g. ``...T09:00:00+01:00``.

    >>> _iso(datetime(2025, 7, 1, 9)), _iso(datetime(2025, 1, 6, 9))
    ('2025-07-01T09:00:00+01:00', '2025-01-06T09:00:00+00:00')
    """
    return moment.replace(tzinfo=_england(), microsecond=0).isoformat()


def _xes_time(moment: datetime) -> str:
    """``_iso`` with milliseconds, as XES writers usually give it (``...T09:00:00.000+01:00``).

    >>> _xes_time(datetime(2025, 12, 1, 9, 30))
    '2025-12-01T09:30:00.000+00:00'
    """
    return moment.replace(tzinfo=_england(), microsecond=0).isoformat(timespec="milliseconds")


def _activity(row: Row) -> str:
    return row["trigger"] or ARRIVAL_ACTIVITY


def _by_case(results: RunResults) -> Iterator[tuple[str, list[Row]]]:
    current: str | None = None
    rows: list[Row] = []
    for row in _rows(results):
        key = _case_key(row)
        if key != current and rows:
            assert current is not None
            yield current, rows
            rows = []
        current = key
        rows.append(row)
    if rows and current is not None:
        yield current, rows


def export_results(results: RunResults, fmt: ExportFormat, out: Path) -> int:
    """Write the run's event logs to ``out`` in ``fmt``; return the number of rows written.

    Raises:
        InputError: an event log is cut short or damaged, or CIN-flat is asked of a
            procedure with no CIN-flat mapping (``out`` is left as it was).
        model.atomic.WriteFailed: ``out`` cannot be written.
    """
    if fmt == "cin-flat":
        cin_mapping(results.scenario.procedure)  # no mapping: say so before writing
    start = datetime.fromisoformat(results.metadata["start_date"])
    writer = {"xes": _write_xes, "ocel": _write_ocel, "csv": _write_csv,
              "cin-flat": _write_cin}[fmt]
    with open_atomic(out, newline="") as fh:
        return writer(results, start, fh)


def _write_csv(results: RunResults, start: datetime, fh: Any) -> int:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(["case_id", "activity", "timestamp", "replication", "from_state", "to_state",
                "rules", "actor"])
    n = 0
    for case, rows in _by_case(results):
        for r in rows:
            w.writerow([case, _activity(r), _iso(_instant(start, r["time_hours"])),
                        r["replication"], r["from_state"], r["to_state"], r["rules"],
                        r["actor"]])
            n += 1
    return n


def _write_xes(results: RunResults, start: datetime, fh: Any) -> int:
    fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    fh.write('<log xes.version="1.0" xes.features="nested-attributes" '
             'xmlns="http://www.xes-standard.org/">\n')
    fh.write('  <extension name="Concept" prefix="concept" '
             'uri="http://www.xes-standard.org/concept.xesext"/>\n')
    fh.write('  <extension name="Time" prefix="time" '
             'uri="http://www.xes-standard.org/time.xesext"/>\n')
    fh.write('  <extension name="Lifecycle" prefix="lifecycle" '
             'uri="http://www.xes-standard.org/lifecycle.xesext"/>\n')
    fh.write(f'  <string key="concept:name" value={quoteattr(results.scenario.name)}/>\n')
    n = 0
    for case, rows in _by_case(results):
        fh.write(f'  <trace>\n    <string key="concept:name" value={quoteattr(case)}/>\n')
        for r in rows:
            when = _instant(start, r["time_hours"])
            fh.write("    <event>\n"
                     f'      <string key="concept:name" value={quoteattr(_activity(r))}/>\n'
                     f'      <date key="time:timestamp" value="{_xes_time(when)}"/>\n'
                     '      <string key="lifecycle:transition" value="complete"/>\n'
                     f'      <string key="to_state" value={quoteattr(r["to_state"])}/>\n'
                     f'      <string key="rules" value={quoteattr(r["rules"])}/>\n'
                     f'      <string key="org:resource" value={quoteattr(r["actor"])}/>\n'
                     "    </event>\n")
            n += 1
        fh.write("  </trace>\n")
    fh.write("</log>\n")
    return n


def _write_ocel(results: RunResults, start: datetime, fh: Any) -> int:
    activities: set[str] = set()
    objects: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for case, rows in _by_case(results):
        objects.append({"id": case, "type": "case", "attributes": []})
        for r in rows:
            activity = _activity(r)
            activities.add(activity)
            events.append({
                "id": f"e{len(events) + 1}",
                "type": activity,
                "time": _iso(_instant(start, r["time_hours"])),
                "attributes": [{"name": "rules", "value": r["rules"]},
                               {"name": "to_state", "value": r["to_state"]},
                               {"name": "actor", "value": r["actor"]}],
                "relationships": [{"objectId": case, "qualifier": "case"}],
            })
    doc = {
        "objectTypes": [{"name": "case", "attributes": []}],
        "eventTypes": [{"name": a, "attributes": [
            {"name": "rules", "type": "string"}, {"name": "to_state", "type": "string"},
            {"name": "actor", "type": "string"}]} for a in sorted(activities)],
        "objects": objects,
        "events": events,
    }
    json.dump(doc, fh)
    return len(events)


class _Events:
    """The procedure events of a logged step, from the same graph semantics the machine uses."""

    def __init__(self, procedure: Procedure) -> None:
        self.procedure = procedure
        self._cache: dict[tuple[str, str, str], tuple[EventRef, ...]] = {}

    def of(self, before: str, trigger: str, after: str) -> tuple[EventRef, ...]:
        key = (before, trigger, after)
        found = self._cache.get(key)
        if found is None:
            b, a = tuple(before.split(" + ")), tuple(after.split(" + "))
            found = ()
            for t in candidates(self.procedure, b):
                if t.trigger == trigger and apply(self.procedure, b, t) == a:
                    found = events_of(self.procedure, b, a, t)
                    break
            self._cache[key] = found
        return found


def _known_plans(arrival: Row) -> int:
    """Plans a child had before the run (``previous_plans=N`` on its arrival row)."""
    for item in str(arrival.get("facts") or "").split(","):
        name, _, value = item.partition("=")
        if name == "previous_plans" and value.isdigit():
            return int(value)
    return 0


def cin_rows(results: RunResults) -> Iterator[tuple[int, list[str | int]]]:
    """Every CIN-flat row of every replication, with its replication, child by child.

    Raises:
        InputError: the run's procedure has no CIN-flat mapping (on the first row asked for).
    """
    from model.graph import initial_events

    mapping = cin_mapping(results.scenario.procedure)
    events = _Events(results.scenario.procedure)
    first = initial_events(results.scenario.procedure)
    start = datetime.fromisoformat(results.metadata["start_date"])
    for case, rows in _by_case(results):
        dates: dict[str, str] = {}
        previous_plans = _known_plans(rows[0])
        for r in rows:
            step_events = first if not r["trigger"] else events.of(
                r["from_state"], r["trigger"], r["to_state"])
            day = _instant(start, r["time_hours"]).date().isoformat()
            for kind in mapping.types_of(step_events):
                if kind == "referral":
                    dates = {}
                if kind in KEY_DATES:
                    dates[KEY_DATES[kind]] = day
                yield int(r["replication"]), [
                    case, day, kind, dates.get("referral_date", ""),
                    dates.get("s47_start_date", ""), dates.get("icpc_date", ""),
                    dates.get("plan_start_date", ""), dates.get("plan_end_date", ""),
                    "", previous_plans]
                if kind == "cp_plan_end":
                    previous_plans += 1
                    for k in ("plan_start_date", "plan_end_date", "icpc_date"):
                        dates.pop(k, None)


def _write_cin(results: RunResults, start: datetime, fh: Any) -> int:
    del start  # the rows carry their own dates
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(CIN_COLUMNS)
    n = 0
    for _, row in cin_rows(results):
        w.writerow(row)
        n += 1
    return n
