"""Reading a case from a run's event log and replaying it through the compiled procedure.

The log holds what happened but not the case's facts, which some guards and deadlines read:
they are inferred here by replaying the case with each class of facts the procedure's guards
tell apart (:func:`model.guards.fact_classes`) and keeping the classes the log allows.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from model.compiler import CompiledProcedure, FireResult, IllegalMove, RunningDeadline
from model.errors import InputError, Problem
from model.graph import Config
from model.guards import fact_classes as guard_fact_classes
from model.spec import Procedure
from model.types import GuardId, SimHours
from simulations.eventlog import read_events
from simulations.results import RunResults


# -- the event log -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogRow:
    """One row of a case's event log (an arrival has an empty trigger)."""

    time: SimHours
    day: date
    from_state: str
    trigger: str
    to_state: str
    rules: tuple[str, ...]
    actor: str

    @property
    def config(self) -> Config:
        """The configuration the row leaves the case in."""
        return tuple(self.to_state.split(" + "))


def _row(raw: Mapping[str, object]) -> LogRow:
    return LogRow(float(raw["time_hours"]), raw["date"],  # type: ignore[arg-type]
                  str(raw["from_state"] or ""), str(raw["trigger"] or ""),
                  str(raw["to_state"] or ""), tuple(str(raw["rules"] or "").split()),
                  str(raw["actor"] or ""))


def event_log(results: RunResults, replication: int | None) -> tuple[int, Path]:
    """The replication told and its event log file.

    Raises:
        InputError: the run stored no event logs, or none for that replication.
    """
    logs = {int(p.stem.split("-")[-1]): p for p in results.event_logs()}
    if not logs:
        raise InputError([Problem(str(results.out), None, "events",
                                  "this run stored no event log (was it run with "
                                  "--no-event-log?); run it again without that option")])
    if replication is None:
        replication = min(logs)
    if replication not in logs:
        raise InputError([Problem(str(results.out), None, "--replication",
                                  f"no event log for replication {replication}; stored: "
                                  + ", ".join(str(r) for r in sorted(logs)))])
    return replication, logs[replication]


def read_case(path: Path, case_id: str) -> list[LogRow]:
    """The rows of one case, in the order the run wrote them.

    Raises:
        InputError: the event log is cut short or damaged.
    """
    table = read_events(path, filters=[("case_id", "=", case_id)])
    return [_row(r) for r in table.to_pylist()]


def read_all_cases(path: Path) -> dict[str, list[LogRow]]:
    """Every case's rows, by case id, each in the order the run wrote them.

    Raises:
        InputError: the event log is cut short or damaged.
    """
    out: dict[str, list[LogRow]] = {}
    for raw in read_events(path).to_pylist():
        out.setdefault(str(raw["case_id"]), []).append(_row(raw))
    return out


def closest_ids(case_id: str, ids: Iterable[str], n: int = 5) -> list[str]:
    """Case ids that look like ``case_id``: by spelling, and by number when it has one.

    >>> closest_ids("C00012", ["C0000011", "C0000012", "C0000120"])[:2]
    ['C0000012', 'C0000011']
    """
    ids = sorted(ids)
    found: list[str] = []
    digits = re.sub(r"\D", "", case_id)
    if digits:
        target = int(digits)
        numbered = [(abs(int(re.sub(r"\D", "", i) or -1) - target), i) for i in ids]
        found.extend(i for _, i in sorted(numbered)[:n])
    for match in difflib.get_close_matches(case_id, ids, n=n, cutoff=0.5):
        if match not in found:
            found.append(match)
    return found[:n]


# -- replaying a case --------------------------------------------------------------------------
@dataclass(frozen=True)
class FactClass:
    """Fact combinations that every guard of the procedure treats alike.

    Attributes:
        facts: The most common member of the class, over the facts the guards read (the
            one replayed).
        prior: Share of the scenario's cases with a combination in the class.
        holds: The fact-reading guards that hold for the class, by name.
    """

    facts: Mapping[str, bool]
    prior: float
    holds: tuple[GuardId, ...]


def fact_classes(procedure: Procedure, shares: Mapping[str, float]) -> list[FactClass]:
    """Classes of fact combinations, the most common in the scenario first.

    The classes are those of :func:`model.guards.fact_classes` for every guard the procedure
    names; facts no guard reads do not split them. A class's prior adds up its members'
    shares, and the member replayed is the most common one.

    Args:
        procedure: The procedure run (its transition guards and deadline ``when`` guards).
        shares: The scenario's share of cases with each fact (``demand.facts``).
    """
    used = sorted({g for t in procedure.transitions for g in t.guards}
                  | {d.when for d in procedure.deadlines if d.when is not None})
    classes = guard_fact_classes(used)
    # a guard that holds in every class, or in none, tells nothing about the facts
    reading = [g for g in used if 0 < sum(g in c.holds for c in classes) < len(classes)]
    out = []
    # Members in itertools.product order (False before True, the first fact slowest): the
    # priors add up in a fixed order, a tie for most common goes to the member listed first
    # and a tie between classes to the class whose first member comes first.
    ordered = [(sorted(c.members, key=lambda m: tuple(m.values())), c.holds) for c in classes]
    for members, holds in sorted(ordered, key=lambda mh: tuple(mh[0][0].values())):
        priors = [_share(member, shares) for member in members]
        best = max(range(len(members)), key=lambda i: (priors[i], -i))
        out.append(FactClass(members[best], sum(priors),
                             tuple(g for g in reading if g in holds)))
    return sorted(out, key=lambda c: -c.prior)


def _share(facts: Mapping[str, bool], shares: Mapping[str, float]) -> float:
    """The share of the scenario's cases whose facts (those named) are exactly ``facts``."""
    return math.prod((shares.get(k, 0.0) if v else 1.0 - shares.get(k, 0.0)
                      for k, v in facts.items()), start=1.0)


@dataclass(frozen=True)
class Replay:
    """A case's log replayed through the compiled procedure.

    Attributes:
        fact_class: The facts it was replayed with.
        started: Clocks the arrival started.
        results: One result per logged step after the arrival.
        open_clocks: Clocks still running after the last step.
    """

    fact_class: FactClass
    started: tuple[str, ...]
    results: tuple[FireResult, ...]
    open_clocks: tuple[RunningDeadline, ...]

    def verdict_key(self) -> tuple[tuple[str, str, float, float], ...]:
        """What the replay judged, to compare replays with different facts."""
        judged: list[tuple[str, str, float, float]] = [
            (v.deadline_id, v.outcome, v.started, v.ended)
                  for r in self.results for v in r.verdicts]
        opened = [(c.deadline.id, "open", c.started, -1.0) for c in self.open_clocks]
        return tuple(judged + opened)

    @property
    def missed(self) -> int:
        """How many deadlines the case missed."""
        return sum(v.outcome == "missed" for r in self.results for v in r.verdicts)


def replay(machine: CompiledProcedure, case_id: str, rows: Sequence[LogRow],
           fact_class: FactClass) -> Replay | str:
    """Replay a case's rows; the replay, or why the log does not fit these facts."""
    if not rows or rows[0].trigger:
        return "the log does not start with the case's arrival"
    case, started = machine.new_case(case_id, dict(fact_class.facts), rows[0].time)
    try:
        if machine.configuration(case) != rows[0].config:
            return f"a new case starts in {' + '.join(machine.configuration(case))}"
        results = []
        for row in rows[1:]:
            try:
                result = machine.fire(case, row.trigger, row.time)
            except IllegalMove as exc:
                return str(exc)
            if result.step.after != row.config:
                return (f"{row.trigger!r} leads to {' + '.join(result.step.after)}, but the "
                        f"log shows {row.to_state}")
            results.append(result)
        return Replay(fact_class, started, tuple(results), tuple(case.clocks.values()))
    finally:
        machine.release(case)


def first_replay(machine: CompiledProcedure, case_id: str, rows: Sequence[LogRow],
                 classes: Sequence[FactClass]) -> Replay | str:
    """The replay with the most common facts the log allows (or the first class's refusal)."""
    first_error = ""
    for fact_class in classes:
        result = replay(machine, case_id, rows, fact_class)
        if isinstance(result, Replay):
            return result
        first_error = first_error or result
    return first_error
