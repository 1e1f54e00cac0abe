"""Hold real case records against the procedure: conformance, deadlines, and a KPI table.

Every child's recorded events are replayed through the compiled procedure. Real records
hold milestones, not every step, so a recorded event is reached by the shortest path of
*unrecorded* steps followed by a step that makes that event; a step that would make an event
of a kind this data set records (an ICPC, say) cannot be passed silently. An event no such
path reaches is impossible or out of order: it is reported with the rules it breaks, and the
replay carries on from the last good state. Deadlines are judged on the recorded dates by
the same machine the simulator uses, into the same KPI table.

Bad rows (missing or unparseable values, dates in the future or outside the working-day
calendar, unknown event types) are reported by row number and left out; the counts of rows
read, conformant, non-conformant and rejected always add up to the input. Children are named
only by pseudonym.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from model.calendar import WorkingCalendar
from model.compiler import Case, IllegalMove, Step
from model.errors import InputError, Problem, did_you_mean
from model.graph import Config, ProcedureGraph, build_graph, events_of, initial_events
from model.guards import evaluate
from model.spec import CIN_EVENT_TYPES, EventRef, Procedure, Transition
from model.timescales import CALENDAR_FIRST, CALENDAR_LAST
from simulations.casedata import CIN_COLUMNS, CinMapping, Pseudonymiser, cin_mapping
from simulations.engine import History
from simulations.kpi import Kpi, compute_kpis
from simulations.record import RunRecord
from simulations.table import TableMachine

DataFormat = Literal["cin-flat", "csv", "xes"]
NOON = 12.0
"""Recorded events carry dates only; they are placed at midday."""


@dataclass(frozen=True)
class DataRow:
    """One accepted input row."""

    number: int
    child: str
    day: date
    event_type: str


@dataclass(frozen=True)
class Rejected:
    """A row left out, with why."""

    number: int
    reason: str


@dataclass(frozen=True)
class Finding:
    """A recorded event the procedure does not allow where it happened."""

    number: int
    child: str
    day: date
    event_type: str
    state: str
    message: str
    rules: tuple[str, ...]


@dataclass
class ConformResult:
    """Everything a conformance check found."""

    rows_read: int
    rejected: list[Rejected] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    conformant_rows: int = 0
    children: int = 0
    conformant_children: int = 0
    kpis: list[Kpi] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    measured: tuple[str, ...] = ()
    observable: frozenset[EventRef] = frozenset()
    steps: dict[str, list[Step]] = field(default_factory=dict)
    starts: dict[str, float] = field(default_factory=dict)
    conformant: set[str] = field(default_factory=set)
    first_day: date | None = None
    last_day: date | None = None

    @property
    def nonconformant_rows(self) -> int:
        """Rows whose event the procedure does not allow there."""
        return len(self.findings)

    def adds_up(self) -> bool:
        """Read = conformant + non-conformant + rejected."""
        return self.rows_read == (self.conformant_rows + self.nonconformant_rows
                                  + len(self.rejected))


# -- reading ---------------------------------------------------------------------------------
def _parse_date(text: str) -> date | None:
    text = text.strip()
    for parse in (date.fromisoformat,):
        try:
            return parse(text[:10])
        except ValueError:
            pass
    parts = text.split("/")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        try:
            return date(int(parts[2]), int(parts[1]), int(parts[0]))
        except ValueError:
            return None
    return None


def read_rows(path: Path, fmt: DataFormat, as_of: date, mapping: CinMapping,
              ) -> tuple[int, list[DataRow], list[Rejected]]:
    """Read and check every row; return (rows read, accepted rows, rejected rows).

    CSV and XES rows name steps by activity (a trigger); ``mapping`` (the procedure's)
    says which CIN event type each activity stands for.

    Raises:
        InputError: the file cannot be read or lacks the columns the format needs.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(str(path), None, "", f"cannot read the data: {exc}")]
                         ) from None
    if fmt == "xes":
        raw = _xes_rows(text, str(path))
        child_col, date_col, type_col = "case", "date", "activity"
    else:
        reader = csv.DictReader(io.StringIO(text))
        child_col, date_col, type_col = (("child_id", "event_date", "event_type")
                                         if fmt == "cin-flat"
                                         else ("case_id", "timestamp", "activity"))
        missing = [c for c in (child_col, date_col, type_col)
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError([Problem(str(path), 1, "header",
                                      f"missing column(s) {', '.join(missing)} (the {fmt} "
                                      f"format has: {', '.join(CIN_COLUMNS)})"
                                      if fmt == "cin-flat" else
                                      f"missing column(s) {', '.join(missing)}")])
        raw = [(i + 2, row) for i, row in enumerate(reader)]
    accepted: list[DataRow] = []
    rejected: list[Rejected] = []
    for number, row in raw:
        child = (row.get(child_col) or "").strip()
        day_text = (row.get(date_col) or "").strip()
        kind = (row.get(type_col) or "").strip()
        if fmt != "cin-flat":
            kind = mapping.activity_type(kind)
        if not child:
            rejected.append(Rejected(number, f"missing {child_col}"))
            continue
        if not day_text:
            rejected.append(Rejected(number, f"missing {date_col}"))
            continue
        day = _parse_date(day_text)
        if day is None:
            rejected.append(Rejected(number, f"cannot read {date_col} {day_text!r} as a date "
                                             "(YYYY-MM-DD)"))
            continue
        if day > as_of:
            rejected.append(Rejected(number, f"{date_col} {day.isoformat()} is in the future "
                                             f"(data as of {as_of.isoformat()})"))
            continue
        if not CALENDAR_FIRST <= day <= CALENDAR_LAST:
            rejected.append(Rejected(number, f"{date_col} {day.isoformat()} is outside the "
                                             "working-day calendar "
                                             f"({CALENDAR_FIRST.isoformat()} to "
                                             f"{CALENDAR_LAST.isoformat()}), so no deadline "
                                             "can be judged on it"))
            continue
        if kind not in CIN_EVENT_TYPES:
            hint = did_you_mean(kind, CIN_EVENT_TYPES)
            rejected.append(Rejected(number, f"unknown {type_col} {kind!r}"
                                             + (f"; did you mean {hint!r}?" if hint else "")))
            continue
        accepted.append(DataRow(number, child, day, kind))
    return len(raw), accepted, rejected


def _xes_rows(text: str, file: str) -> list[tuple[int, dict[str, str]]]:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)  # noqa: S314 - the standard library parser; no DTDs
    except ET.ParseError as exc:
        raise InputError([Problem(file, exc.position[0], "", f"not valid XES: {exc}")]
                         ) from None
    ns = "{http://www.xes-standard.org/}"
    rows = []
    number = 0
    for trace in root.iter(f"{ns}trace"):
        case = ""
        for attr in trace.findall(f"{ns}string"):
            if attr.get("key") == "concept:name":
                case = attr.get("value", "")
        for event in trace.iter(f"{ns}event"):
            number += 1
            values = {a.get("key", ""): a.get("value", "") for a in event}
            rows.append((number, {"case": case, "activity": values.get("concept:name", ""),
                                  "date": values.get("time:timestamp", "")}))
    return rows


# -- replaying -------------------------------------------------------------------------------
class _Replayer:
    """Finds, for a recorded event, the silent path and the step that makes it."""

    def __init__(self, procedure: Procedure, mapping: CinMapping,
                 recorded: frozenset[str]) -> None:
        self.procedure = procedure
        self.mapping = mapping
        self.graph: ProcedureGraph = build_graph(procedure)
        self.recorded = recorded
        self.first = initial_events(procedure)
        self._types: dict[tuple[Config, str, Config], frozenset[str]] = {}

    def types(self, u: Config, t: Transition, v: Config) -> frozenset[str]:
        key = (u, t.id, v)
        found = self._types.get(key)
        if found is None:
            found = frozenset(self.mapping.types_of(events_of(self.procedure, u, v, t)))
            self._types[key] = found
        return found

    def path_to(self, start: Config, wanted: str, case: Case, silent: bool = True,
                same_day: Sequence[str] = (),
                ) -> list[tuple[Config, Transition, Config]] | None:
        """Shortest path from ``start`` whose last step makes ``wanted``.

        With ``silent``, the steps before it may not make any event this data set records
        (they would have been recorded); without, they may (used to explain and resume
        after an event that does not conform). Where several last steps are equally near,
        the one whose other recorded events are the rows recorded next on the same day wins
        (the assessment that ends in a child in need plan, not in closure, when the plan's
        start is recorded next that day; not the one that ends in early help when a strategy
        discussion is recorded next and early help only after it). ``same_day`` lists the
        event types of the rows after this one on the same day, in order.
        """
        ctx = case.guard_context()
        seen = {start}
        frontier: list[tuple[Config, list[tuple[Config, Transition, Config]]]] = [(start, [])]
        while frontier:
            finals: list[tuple[tuple[int, int, int], list[tuple[Config, Transition, Config]]]]
            finals = []
            following: list[tuple[Config, list[tuple[Config, Transition, Config]]]] = []
            for node, path in frontier:
                for _, v, key in sorted(self.graph.graph.out_edges(node, keys=True),
                                        key=lambda e: e[2]):
                    t: Transition = self.graph.graph.edges[node, v, key]["transition"]
                    if not all(evaluate(g, ctx) for g in t.guards):
                        continue
                    kinds = self.types(node, t, v)
                    if wanted in kinds:
                        extra = (kinds & self.recorded) - {wanted}
                        after = frozenset(same_day[:len(extra)])  # the step's other rows
                        score = (len(extra - after), -len(extra & after), len(finals))
                        finals.append((score, [*path, (node, t, v)]))
                        continue
                    if (silent and kinds & self.recorded) or v in seen:
                        continue
                    seen.add(v)
                    following.append((v, [*path, (node, t, v)]))
            if finals:
                return min(finals, key=lambda f: f[0])[1]
            frontier = following
        return None

    def skipped(self, path: Sequence[tuple[Config, Transition, Config]]) -> list[str]:
        """Recorded event types a path passes through before its last step."""
        kinds: list[str] = []
        for u, t, v in path[:-1]:
            kinds += sorted(self.types(u, t, v) & self.recorded)
        return list(dict.fromkeys(kinds))

    def observable(self) -> frozenset[EventRef]:
        """Events the data dates exactly: every step that makes them makes a recorded event."""
        seen: dict[EventRef, bool] = {}
        for u, v, t in self.graph.edges():
            recorded = bool(self.types(u, t, v) & self.recorded)
            for e in events_of(self.procedure, u, v, t):
                seen[e] = seen.get(e, True) and recorded
        first_ok = bool(set(self.mapping.types_of(self.first)) & self.recorded)
        for e in self.first:
            seen[e] = seen.get(e, True) and first_ok
        return frozenset(e for e, ok in seen.items() if ok)

    def rules_for(self, wanted: str) -> tuple[str, ...]:
        """Rule ids of the steps that can make ``wanted`` (what the event breaks)."""
        refs = set(self.mapping.events.get(wanted, ()))
        rules: set[str] = set()
        for u, v, t in self.graph.edges():
            if refs & set(events_of(self.procedure, u, v, t)):
                rules.update(t.rules)
        return tuple(sorted(rules))


def _empty_record(procedure: Procedure) -> RunRecord:
    record = RunRecord(0, 0.0, 0.0)
    for d in procedure.deadlines:
        limit = d.within or d.at_least
        assert limit is not None
        record.deadlines[d.id] = {
            "met": 0, "missed": 0, "cancelled": 0, "open_overdue": 0, "open_not_due": 0,
            "elapsed": [], "unit": limit.unit, "limit": limit.value,
            "kind": "within" if d.within else "at_least"}
    return record


def conform(path: Path, procedure: Procedure, pseudonym: Pseudonymiser,
            fmt: DataFormat = "cin-flat", as_of: date | None = None,
            keep_steps: bool = False) -> ConformResult:
    """Replay every child in the data through ``procedure``; report what does not conform.

    Deadlines are judged only between recorded events (a clock started or stopped by an
    unrecorded step is placed at the next recorded date), so the KPI table speaks only for
    what the data can show.

    Raises:
        InputError: unreadable data, or a procedure with no CIN-flat mapping.
    """
    mapping = cin_mapping(procedure)
    today = as_of or date.today()
    read, rows, rejected = read_rows(path, fmt, today, mapping)
    result = ConformResult(read, rejected)
    if not rows:
        return result
    name = pseudonym
    by_child: dict[str, list[DataRow]] = {}
    for row in rows:
        by_child.setdefault(row.child, []).append(row)
    first_day = min(r.day for r in rows)
    last_day = max(r.day for r in rows)
    calendar = WorkingCalendar(first_day)
    machine = TableMachine(procedure, calendar)
    replay = _Replayer(procedure, mapping, frozenset(r.event_type for r in rows))
    record = _empty_record(procedure)
    record.horizon_hours = calendar.to_hours(last_day) + 24.0
    plans: dict[str, float] = {}
    for child in sorted(by_child, key=name):
        events = sorted(by_child[child], key=lambda r: (r.day, r.number))
        result.children += 1
        steps: list[Step] | None = [] if keep_steps else None
        ok = _replay_child(child, events, machine, replay, record, result, name, plans, steps)
        result.conformant_children += ok
        if steps is not None:
            result.steps[name(child)] = steps
            result.starts[name(child)] = calendar.to_hours(events[0].day) + NOON
            if ok:
                result.conformant.add(name(child))
    record.plan_lengths_days = list(plans.values())
    observable = replay.observable()
    result.observable = observable
    result.first_day, result.last_day = first_day, last_day
    result.measured = tuple(d.id for d in procedure.deadlines
                            if d.start in observable and d.end in observable)
    for d in procedure.deadlines:
        if d.id not in result.measured:  # the data cannot date both ends of this clock
            record.deadlines[d.id].update(met=0, missed=0, cancelled=0, open_overdue=0,
                                          open_not_due=0, elapsed=[])
    data = record.to_json()
    result.record = data
    result.kpis = compute_kpis([data], procedure)
    return result


def _replay_child(child: str, events: Sequence[DataRow], machine: TableMachine,
                  replay: _Replayer, record: RunRecord, result: ConformResult,
                  name: Pseudonymiser, plans: dict[str, float],
                  steps: list[Step] | None = None) -> bool:
    calendar = machine.calendar
    start = calendar.to_hours(events[0].day) + NOON
    case, _ = machine.new_case(name(child), {}, start)
    pending: Counter[str] = Counter(replay.mapping.types_of(replay.first))
    ok = True
    plan_started: float | None = None
    for index, row in enumerate(events):
        if pending[row.event_type] and row.event_type in pending:
            pending[row.event_type] -= 1  # made by the step that made an earlier row
            result.conformant_rows += 1
            continue
        at = max(calendar.to_hours(row.day) + NOON, start)
        config = machine.configuration(case)
        same_day = tuple(r.event_type for r in events[index + 1:] if r.day == row.day)
        path = replay.path_to(config, row.event_type, case, same_day=same_day)
        conforms = path is not None
        if path is None:
            # Not reachable without passing recorded events: report it, then resume from
            # where the event leaves the case (if it can happen at all from here).
            path = replay.path_to(config, row.event_type, case, silent=False,
                                  same_day=same_day)
            missing = replay.skipped(path) if path else []
            why = (f"needs {', '.join(missing)} first" if missing
                   else "cannot happen from here")
            result.findings.append(Finding(row.number, name(child), row.day, row.event_type,
                                           " + ".join(config), why,
                                           replay.rules_for(row.event_type)))
            ok = False
            if path is None:
                continue
        pending = Counter()
        for u, t, _v in path:
            try:
                fired = machine.fire(case, t.trigger, at)
                if steps is not None:
                    steps.append(fired.step)
            except IllegalMove as exc:  # pragma: no cover - path search respects guards
                result.findings.append(Finding(row.number, name(child), row.day,
                                               row.event_type, " + ".join(u), str(exc),
                                               t.rules))
                ok = False
                break
            for verdict in fired.verdicts:
                slot = record.deadlines[verdict.deadline_id]
                slot[verdict.outcome] += 1
                if verdict.elapsed is not None:
                    slot["elapsed"].append(verdict.elapsed)
            for sid in (e.name for e in fired.step.events if e.kind == "enter"):
                record.entries[sid] += 1
            if replay.mapping.makes(fired.step.events, "cp_plan_start"):
                record.plans_started += 1
                plan_started = at
            if replay.mapping.makes(fired.step.events, "cp_plan_end") and \
                    plan_started is not None:
                record.plans_ended += 1
                plans[f"{child}:{at}"] = (at - plan_started) / 24.0
                plan_started = None
        else:
            result.conformant_rows += conforms
            last = path[-1]
            pending = Counter(replay.types(*last) - {row.event_type})
    horizon = record.horizon_hours
    for did, clock in case.clocks.items():
        key = "open_overdue" if clock.due is not None and clock.due < horizon else \
            "open_not_due"
        record.deadlines[did][key] += 1
    return ok


def findings_csv(result: ConformResult) -> str:
    """Non-conformant and rejected rows, by row number (children by pseudonym only)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "outcome", "child", "date", "event_type", "state", "reason", "rules"])
    items: list[tuple[int, list[str]]] = []
    for f in result.findings:
        items.append((f.number, [str(f.number), "non-conformant", f.child, f.day.isoformat(),
                                 f.event_type, f.state, f.message, " ".join(f.rules)]))
    for r in result.rejected:
        items.append((r.number, [str(r.number), "rejected", "", "", "", "", r.reason, ""]))
    for _, row in sorted(items):
        w.writerow(row)
    return buf.getvalue()


def summary_lines(result: ConformResult) -> list[str]:
    """The counts, which always add up."""
    return [
        f"rows read {result.rows_read} = conformant {result.conformant_rows} + "
        f"non-conformant {result.nonconformant_rows} + rejected {len(result.rejected)}",
        f"children {result.children}: {result.conformant_children} conformant, "
        f"{result.children - result.conformant_children} with at least one impossible "
        "or out-of-order event",
        "deadlines the data can date at both ends (judged): "
        + (", ".join(result.measured) or "none"),
    ]


def pseudonymiser_from(key: bytes | None) -> Pseudonymiser:
    """A pseudonymiser with the given key, or a fresh random one.

    Without a key, pseudonyms differ between runs (nothing can be linked back).
    """
    import secrets

    return Pseudonymiser(key if key else secrets.token_bytes(32))



@dataclass(frozen=True)
class Snapshot:
    """Today's caseload from real data, ready to start a simulation from.

    Attributes:
        first_day: The earliest recorded date (the simulation calendar starts here).
        day: The snapshot date: the simulation starts at its midnight.
        open_cases: Every open case whose history conforms, with the steps it implies.
        unreachable: Children whose recorded history the procedure cannot reach, with why
            (listed, never dropped silently).
        closed: Children whose case has ended by the snapshot (not started).
    """

    first_day: date
    day: date
    open_cases: tuple[History, ...]
    unreachable: tuple[tuple[str, str], ...]
    closed: int

    def by_state(self, procedure: Procedure) -> Counter[str]:
        """Open cases by top-level stage (from the last step of each history)."""
        del procedure
        return Counter(h.final for h in self.open_cases)


def load_snapshot(path: Path, procedure: Procedure, fmt: DataFormat = "cin-flat",
                  as_of: date | None = None) -> Snapshot:
    """Conform the data and keep every case still open at the snapshot.

    The snapshot is ``as_of`` (default: the day after the last recorded event).
    Pseudonyms are keyed by the data's own hash: stable from run to run (so results are
    reproducible) and meaningless without the data.

    Raises:
        InputError: unreadable data, or no accepted row.
    """
    import hashlib

    key = hashlib.sha256(path.read_bytes()).hexdigest().encode()
    result = conform(path, procedure, Pseudonymiser(key), fmt, as_of, keep_steps=True)
    if result.first_day is None or result.last_day is None:
        raise InputError([Problem(str(path), None, "", "no usable row in the data")])
    day = as_of or date.fromordinal(result.last_day.toordinal() + 1)
    graph = build_graph(procedure)
    reasons: dict[str, str] = {}
    for f in result.findings:
        reasons.setdefault(f.child, f"row {f.number}: {f.event_type} {f.message}")
    open_cases: list[History] = []
    unreachable: list[tuple[str, str]] = []
    closed = 0
    for child, steps in sorted(result.steps.items()):
        if child not in result.conformant:
            unreachable.append((child, reasons.get(child, "history does not conform")))
            continue
        config = steps[-1].after if steps else graph.initial
        if config in graph.terminal:
            closed += 1
            continue
        open_cases.append(History(child, result.starts[child],
                                  tuple((s.time, s.trigger) for s in steps),
                                  " + ".join(config)))
    return Snapshot(result.first_day, day, tuple(open_cases), tuple(unreachable), closed)
