"""The story of one simulated case: a dated narrative, written as Markdown and as HTML.

A trainer names a case (or asks for the longest, a breached or an escalated one) and gets its
life told step by step: the weekday and date, what happened in the procedure's own words,
how long it took against any deadline that applied (in the deadline's unit, with its rule
ids), missed deadlines and postponements highlighted, and a small timeline figure.

Nothing is simulated again. The case's rows are read from the run's event log
(``events/rep-NNNN.parquet``) and *replayed* through the compiled procedure machine
(:class:`model.compiler.CompiledProcedure`) on the run's working calendar, so every deadline
clock starts, stops and is judged exactly as it was during the run.

The event log does not hold the case's facts (a parental learning disability, an
interpreter, the coordinator's view of practice...), and some guards and deadlines read them.
They are inferred: the combinations of :data:`model.guards.FACTS` are grouped into classes
that every guard of the procedure treats alike, each class is replayed, and a class is kept
when every logged trigger is allowed and lands in the logged state. Of the classes kept, the
one most common among the scenario's cases (its ``demand.facts`` shares) is told; the story
says when the log could not tell the classes apart, and whether that changes any verdict.

The HTML page is rendered by jinja2 with autoescaping on; no text from the procedure, the
scenario or the log is marked safe. The figure is drawn with matplotlib's object API (no
pyplot) and embedded as a base64 PNG, so ``story-<case>.html`` opens offline on its own.
Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import base64
import difflib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from model.atomic import write_bytes_atomic
from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure, FireResult, IllegalMove, RunningDeadline
from model.errors import InputError, Problem
from model.graph import Config, is_terminal
from model.guards import EXHAUSTIVE_GROUPS, FACTS, GUARDS, GuardContext, evaluate
from model.spec import Deadline, EventRef, Procedure
from model.types import Duration, DurationUnit, GuardId, SimHours
from reports import figures as fg
from reports.report import template_environment
from simulations.eventlog import read_events
from simulations.results import RunResults, read_results

Pick = Literal["longest", "breached", "escalated"]
PICKS: tuple[Pick, ...] = ("longest", "breached", "escalated")

ACRONYMS = {"icpc": "ICPC", "cp": "CP", "cin": "CIN", "caf": "CAF", "gp": "GP", "nfa": "NFA",
            "24h": "24-hour", "s47": "section 47"}
"""Words written in capitals (or spelled out) when a name is turned into plain words."""

REASONS = {
    "agency_absent": "an invited agency could not attend, so the chair moved the meeting "
                     "to get everyone there",
    "no_slot_in_time": "no chair's slot was free in time",
    "family_unavailable": "the family could not come on the booked day, so the chair "
                          "rebooked it",
}
"""Plain words for the postponement reasons the simulator records."""

OutcomeText = Literal["met", "missed", "cancelled", "running", "overdue", "open"]


# -- plain words -----------------------------------------------------------------------------
def humanise(name: str) -> str:
    """A trigger, state or deadline name as plain words.

    >>> humanise("icpc_opens"), humanise("cp_plan.review_conference.session")
    ('ICPC opens', 'CP plan review conference session')
    """
    words = [w for w in re.split(r"[_.]+", name) if w]
    text = " ".join(ACRONYMS.get(w.lower(), w) for w in words)
    return text[:1].upper() + text[1:] if text[:1].islower() else text


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym."""
    first = text.split(" ", 1)[0]
    if not text or (len(first) > 1 and first.isupper()):
        return text
    return text[:1].lower() + text[1:]


def day_text(d: date) -> str:
    """A date with its weekday, as the story writes it.

    >>> day_text(date(2025, 3, 4))
    'Tue 4 March 2025'
    """
    return f"{d:%a} {d.day} {d:%B %Y}"


def state_label(procedure: Procedure, state: str) -> str:
    """A state in words: its own name, with its parent's for a nested state.

    >>> from model.loader import load_procedure
    >>> state_label(load_procedure("west-midlands-2014"), "cp_plan.review_conference.session")
    'review conference session'
    """
    parts = state.split(".")
    parts = parts[-2:] if procedure.states[state].parent is not None else parts[-1:]
    return _lower_first(humanise(".".join(parts)))


def where(procedure: Procedure, config: Config) -> str:
    """Where a case is, in words: each region's state, leaving out a region at rest.

    >>> from model.loader import load_procedure
    >>> where(load_procedure("walsall-2018-resolution"),
    ...       ("icpc.preparation.ready", "resolution.idle"))
    'ICPC preparation ready'
    """
    parts = []
    for leaf in config:
        region = procedure.states[leaf].region
        if region is not None and leaf == procedure.entry_leaf(
                procedure.states[region].initial or region):
            continue
        parts.append(_lower_first(humanise(leaf)))
    return " + ".join(parts)


def unit_words(unit: DurationUnit, value: float) -> str:
    """The unit's name, singular for exactly one.

    >>> unit_words("working_days", 1), unit_words("hours", 2.5)
    ('working day', 'hours')
    """
    label = unit.replace("_", " ")
    return label[:-1] if value == 1 else label


def amount(value: float, unit: DurationUnit) -> str:
    """An elapsed time in its unit: whole days, hours and months to one decimal.

    >>> amount(17, "working_days"), amount(26.25, "hours"), amount(1.0, "days")
    ('17 working days', '26.2 hours', '1 day')
    """
    if unit in ("days", "working_days"):
        n = round(value)
        return f"{n} {unit_words(unit, n)}"
    text = f"{value:.1f}"
    return f"{text} {unit_words(unit, float(text))}"


def limit_text(d: Duration) -> str:
    """A limit as a compound adjective: ``15-working-day``, ``24-hour``, ``3-month``.

    >>> limit_text(Duration("working_days", 15))
    '15-working-day'
    """
    return f"{d.value}-{unit_words(d.unit, 1).replace(' ', '-')}"


def event_phrase(procedure: Procedure, event: EventRef, previous: bool = False) -> str:
    """The event a clock started from, as the object of "after ...".

    Args:
        procedure: The procedure the event belongs to.
        event: The deadline's start event.
        previous: The clock restarts on each occurrence of the event that also stops it
            (e.g. visits every 10 working days): say "the previous ...".

    >>> from model.loader import load_procedure
    >>> p = load_procedure("west-midlands-2014")
    >>> event_phrase(p, EventRef("trigger", "strategy_discussion_held"))
    'the strategy discussion'
    >>> event_phrase(p, EventRef("enter", "referral")), event_phrase(
    ...     p, EventRef("trigger", "statutory_visit"), previous=True)
    ('the referral', 'the previous statutory visit')
    """
    the = "the previous" if previous else "the"
    if event.kind == "trigger":
        words = _lower_first(humanise(event.name)).split(" ")
        if len(words) > 1 and words[-1] in ("held", "opens", "opened", "sits"):
            return f"{the} {' '.join(words[:-1])}"
        if len(words) > 1 and words[0] == "start":
            return f"{the} start of the {' '.join(words[1:])}"
        if len(words) <= 2 and not words[-1].endswith(("ed", "s")):
            return f"{the} {' '.join(words)}"
        return f"{the} step '{' '.join(words)}'"
    label = state_label(procedure, event.name)
    if event.kind == "enter":
        if event.name == procedure.initial or previous:
            return f"{the} {label}"
        return f"entering {label}"
    return f"leaving {label}"


def _instant_text(cal: WorkingCalendar, t: SimHours) -> str:
    when = cal.to_datetime(t)
    return f"{day_text(when.date())} {when:%H:%M}"


def due_text(cal: WorkingCalendar, due: SimHours, unit: DurationUnit) -> str:
    """When a clock was due: the end of a day for day-based limits, else the instant."""
    if unit != "hours" and abs(due - round(due / 24) * 24) < 1e-9:
        return f"by the end of {day_text(cal.date_of(due - 1e-6))}"
    return f"by {_instant_text(cal, due)}"


def earliest_text(cal: WorkingCalendar, earliest: SimHours) -> str:
    """The first instant an "at least" gap allows."""
    return f"not before {_instant_text(cal, earliest)}"


def actor_words(actor: str) -> tuple[str, str, str]:
    """Who acted, who was absent and the postponement reason, from the actor column.

    >>> actor_words("social_worker:12;manager:team_manager;absent:gp|police;reason:x_y")
    ('social worker 12, team manager', 'GP, police', 'x y')
    """
    who: list[str] = []
    absent = ""
    reason = ""
    for part in (p for p in actor.split(";") if p):
        kind, _, value = part.partition(":")
        if kind == "absent":
            absent = ", ".join(_lower_first(humanise(a)) for a in value.split("|") if a)
        elif kind == "reason":
            reason = REASONS.get(value, _lower_first(humanise(value)))
        elif kind == "social_worker":
            who.append(f"social worker {value}" if value else "social worker")
        elif kind == "manager":
            who.append(_lower_first(humanise(value or "manager")))
        elif kind in ("arrival", "case"):
            continue
        elif kind == "agency":
            who.append("the agencies")
        else:
            who.append(_lower_first(humanise(kind)) + (f" {value}" if value else ""))
    return ", ".join(who), absent, reason


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
        facts: The most common combination of the class (the one replayed).
        prior: Share of the scenario's cases with a combination in the class.
        holds: The fact-reading guards that hold for the class, by name.
    """

    facts: Mapping[str, bool]
    prior: float
    holds: tuple[GuardId, ...]


def fact_classes(procedure: Procedure, shares: Mapping[str, float]) -> list[FactClass]:
    """Classes of fact combinations, the most common in the scenario first.

    Args:
        procedure: The procedure run (its transition guards and deadline ``when`` guards).
        shares: The scenario's share of cases with each fact (``demand.facts``).
    """
    used = sorted({g for t in procedure.transitions for g in t.guards}
                  | {d.when for d in procedure.deadlines if d.when is not None})
    names = list(FACTS) + sorted(set(shares) - set(FACTS))
    combos = [dict(zip(names, values, strict=True))
              for values in itertools.product((False, True), repeat=len(names))]
    values = {g: [evaluate(g, GuardContext(facts=c)) for c in combos] for g in used}
    reading = [g for g in used if len(set(values[g])) > 1]
    classes: dict[tuple[bool, ...], list[tuple[float, int]]] = {}
    for i, combo in enumerate(combos):
        prior = math.prod(shares.get(k, 0.0) if v else 1.0 - shares.get(k, 0.0)
                          for k, v in combo.items())
        classes.setdefault(tuple(values[g][i] for g in reading), []).append((prior, i))
    out = []
    for signature, members in classes.items():
        best = max(members, key=lambda m: (m[0], -m[1]))
        out.append(FactClass(combos[best[1]], sum(p for p, _ in members),
                             tuple(g for g, v in zip(reading, signature, strict=True) if v)))
    return sorted(out, key=lambda c: -c.prior)


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


def _sentence(summary: str) -> str:
    return _lower_first(summary.rstrip(". "))


def facts_notes(procedure: Procedure, classes: Sequence[FactClass],
                replays: Sequence[Replay]) -> list[str]:
    """What the story says about the facts it inferred (``replays``: every legal class)."""
    if len(classes) <= 1:
        return [f"No guard or deadline of {procedure.id} reads the case's recorded facts, "
                "so none had to be inferred."]
    chosen = replays[0]
    reading = sorted({g for c in classes for g in c.holds})
    varying = [g for g in reading if len({g in r.fact_class.holds for r in replays}) > 1]
    shown = [g for g in chosen.fact_class.holds if g not in varying]
    assumed = [g for g in chosen.fact_class.holds if g in varying]
    # of a complementary pair (practice_is_good / practice_concern) ask about the first only
    order = list(GUARDS)
    asked = [g for g in varying
             if not any(g in group and min((h for h in group if h in varying),
                                           key=order.index) != g
                        for group in EXHAUSTIVE_GROUPS)]
    notes = []
    if shown:
        notes.append("The path shows that " + "; and that ".join(
            _sentence(GUARDS[g].summary) for g in shown) + ".")
    if asked:
        unknown = "; or whether ".join(_sentence(GUARDS[g].summary) for g in asked)
        if len({r.verdict_key() for r in replays}) == 1:
            notes.append(f"The log cannot show whether {unknown}; it makes no difference to "
                         "any deadline of this case.")
        else:
            notes.append(f"The log cannot show whether {unknown}, and the deadlines differ "
                         f"with it. The story assumes the likelier case in this scenario "
                         f"({chosen.fact_class.prior:.0%} of cases): "
                         + ("; ".join(_sentence(GUARDS[g].summary) for g in assumed)
                            or "none of these holds") + ".")
    return notes


# -- choosing a case ---------------------------------------------------------------------------
def ladder_states(procedure: Procedure) -> list[str]:
    """The rungs of every escalation ladder, lowest first.

    A ladder is declared by a ``monotone`` property (Walsall's resolution stages, Wigan's
    arbitration); failing that, region states named ``stage_N`` count.
    """
    rungs: list[str] = []
    for prop in procedure.properties:
        if prop.pattern == "monotone":
            rungs.extend(s for s in prop.order if s not in rungs)
    if not rungs:
        rungs = [sid for sid, st in procedure.states.items()
                 if st.region is not None and re.fullmatch(r"stage_\d+", st.name)]
    return rungs


@dataclass(frozen=True)
class Choice:
    """The case picked and why."""

    case_id: str
    note: str


def pick_case(pick: Pick, cases: Mapping[str, Sequence[LogRow]], results: RunResults,
              machine: CompiledProcedure, classes: Sequence[FactClass],
              replication: int) -> Choice:
    """Pick the longest, most breached or highest-escalated case of a replication.

    Raises:
        InputError: no case fits (or the procedure has no ladder to climb).
    """
    where = f"replication {replication}"
    if pick == "longest":
        def length(cid: str) -> tuple[int, float, str]:
            rows = cases[cid]
            return (len(rows) - 1, rows[-1].time - rows[0].time, cid)

        best = max(cases, key=lambda cid: (length(cid)[0], length(cid)[1], _neg(cid)))
        steps, hours, _ = length(best)
        return Choice(best, f"Picked as the longest case: the one with the most steps "
                            f"({steps}, over {hours / 24:.0f} days) in {where}; ties go to "
                            f"the longer case, then the lower case id.")
    if pick == "breached":
        counts: dict[str, int] = {}
        for cid, rows in cases.items():
            result = first_replay(machine, cid, rows, classes)
            if isinstance(result, Replay) and result.missed:
                counts[cid] = result.missed
        if not counts:
            raise InputError([Problem(str(results.out), None, "--pick breached",
                                      f"no case in {where} missed a deadline")])
        best = min(counts, key=lambda cid: (-counts[cid], cid))
        tied = sum(1 for c in counts.values() if c == counts[best])
        among = (f"the only case in {where} that missed any" if len(counts) == 1 else
                 f"the most of the {len(counts)} cases in {where} that missed any")
        return Choice(best, f"Picked as the most breached case: {counts[best]} missed "
                            f"deadline{'s' if counts[best] != 1 else ''}, {among}"
                            + (f" ({tied} cases tie; the lowest case id is told)"
                               if tied > 1 else "") + ".")
    procedure = results.scenario.procedure
    rungs = ladder_states(procedure)
    if not rungs:
        raise InputError([Problem(
            str(results.out), None, "--pick escalated",
            f"the procedure of this run ({procedure.id}, scenario "
            f"{results.scenario.name}) has no resolution ladder, so no case can climb one; "
            f"run a scenario with a ladder and tell its story, e.g. `cpsim run walsall "
            f"--out out/walsall` then `cpsim story out/walsall --pick escalated`")])
    rank = {s: i for i, s in enumerate(rungs)}
    scores: dict[str, tuple[int, int]] = {}
    for cid, rows in cases.items():
        top = -1
        moves = 0
        for row in rows:
            reached = [rank[s] for s in row.config if s in rank]
            before = [rank[s] for s in row.from_state.split(" + ") if s in rank]
            if reached:
                top = max(top, *reached)
                if before and max(reached) > max(before):
                    moves += 1
        if top >= 0:
            scores[cid] = (top, moves)
    if not scores:
        raise InputError([Problem(str(results.out), None, "--pick escalated",
                                  f"no case in {where} reached the ladder "
                                  f"({', '.join(rungs)}); try a longer horizon or more "
                                  f"replications")])
    best = min(scores, key=lambda cid: (-scores[cid][1], -scores[cid][0], cid))
    top, moves = scores[best]
    climbed = sum(1 for _, m in scores.values() if m)
    if moves:
        among = (f"the only case in {where} that moved up the ladder" if climbed == 1 else
                 f"the most climbing of the {climbed} cases in {where} that moved up the "
                 f"ladder")
        why = (f"it climbed {moves} rung{'s' if moves != 1 else ''} of the ladder, up to "
               f"{state_label(procedure, rungs[top])}: {among} (of {len(scores)} that "
               f"reached it); ties go to the higher rung, then the lower case id")
    else:
        why = (f"no case in {where} moved up the ladder, so this is the case that started "
               f"highest on it, at {state_label(procedure, rungs[top])} (of {len(scores)} "
               f"that reached it); ties go to the lower case id")
    return Choice(best, f"Picked as the most escalated case: {why}.")


def _neg(case_id: str) -> tuple[int, ...]:
    """A key that sorts case ids in reverse, so ``max`` prefers the lower id on a tie."""
    return tuple(-ord(ch) for ch in case_id)


# -- the story ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClockLine:
    """One deadline clock as the story tells it.

    Attributes:
        outcome: ``met``, ``missed``, ``cancelled``; for clocks open at the end of the log,
            ``running`` (not yet due), ``overdue`` or ``open`` (only a minimum applies).
        text: The sentence, without the rule ids.
        elapsed: Time from start to end in the deadline's unit (to the end of the run for an
            open clock); None when cancelled.
    """

    deadline_id: str
    label: str
    summary: str
    rules: tuple[str, ...]
    outcome: OutcomeText
    text: str
    started: SimHours
    ended: SimHours | None
    due: SimHours | None
    elapsed: float | None
    unit: DurationUnit
    limit: str

    @property
    def rules_text(self) -> str:
        """The rule ids, comma-separated."""
        return ", ".join(self.rules)


@dataclass(frozen=True)
class StoryStep:
    """One line of the story: a logged event with its deadlines.

    Attributes:
        kind: ``arrival``, ``step`` or ``postponement``.
        moved: The step changed where the case is (``now`` says where).
    """

    number: int
    time: SimHours
    day: date
    day_text: str
    clock: str
    kind: Literal["arrival", "step", "postponement"]
    trigger: str
    title: str
    summary: str
    who: str
    absent: str
    reason: str
    rules: tuple[str, ...]
    now: str
    moved: bool
    verdicts: tuple[ClockLine, ...]
    started: tuple[ClockLine, ...]

    @property
    def breaches(self) -> tuple[ClockLine, ...]:
        """The deadlines this step missed."""
        return tuple(v for v in self.verdicts if v.outcome == "missed")


@dataclass(frozen=True)
class Band:
    """A stretch of time the case spent in one stage of one lane (main flow or a region)."""

    lane: str
    state: str
    label: str
    start: SimHours
    end: SimHours
    index: int = 0
    of: int = 1


@dataclass(frozen=True)
class Story:
    """Everything told about one case."""

    case_id: str
    replication: int
    replications: int
    scenario_name: str
    scenario_title: str
    procedure_id: str
    procedure_title: str
    start_date: date
    horizon_hours: SimHours
    warm_up_hours: SimHours
    choice_note: str
    steps: tuple[StoryStep, ...]
    open_clocks: tuple[ClockLine, ...]
    final_state: str
    final_terminal: bool
    facts_notes: tuple[str, ...]
    bands: tuple[Band, ...]
    lanes: tuple[str, ...]
    calendar: WorkingCalendar = field(repr=False)

    @property
    def breaches(self) -> list[tuple[StoryStep, ClockLine]]:
        """Every missed deadline with the step that missed it."""
        return [(s, v) for s in self.steps for v in s.breaches]

    @property
    def postponements(self) -> list[StoryStep]:
        """Every postponement."""
        return [s for s in self.steps if s.kind == "postponement"]

    @property
    def clocks(self) -> list[ClockLine]:
        """Every judged clock (met, missed, cancelled) then those open at the end."""
        return [v for s in self.steps for v in s.verdicts] + list(self.open_clocks)

    @property
    def slug(self) -> str:
        """The file stem: ``story-<case>``, with the replication when it is not the first."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.case_id)
        return f"story-{safe}" + (f"-rep-{self.replication}" if self.replication else "")

    def date_of(self, t: SimHours) -> date:
        """The calendar date of sim time ``t``."""
        return self.calendar.date_of(t)


def _limit_of(d: Deadline) -> Duration:
    limit = d.within or d.at_least
    assert limit is not None
    return limit


def _limit_words(d: Deadline) -> str:
    if d.within is not None and d.at_least is not None:
        return f"{d.at_least.value}–{d.within}"
    if d.within is not None:
        return f"within {d.within}"
    assert d.at_least is not None
    return f"at least {d.at_least}"


def verdict_line(procedure: Procedure, cal: WorkingCalendar, d: Deadline, started: SimHours,
                 ended: SimHours, due: SimHours | None, earliest: SimHours | None,
                 outcome: Literal["met", "missed", "cancelled"],
                 elapsed: float | None) -> ClockLine:
    """A judged clock in words: the time since its start against its limit."""
    unit = _limit_of(d).unit
    previous = d.repeats and d.start == d.end
    since = (f"after {event_phrase(procedure, d.start, previous)} "
             f"({day_text(cal.date_of(started))})")
    label = humanise(d.id)
    if outcome == "cancelled" or elapsed is None:
        text = (f"No longer applies: {_lower_first(label)} ({_limit_words(d)}; started "
                f"{day_text(cal.date_of(started))})")
        return ClockLine(d.id, label, d.summary, d.rules, "cancelled", text, started, ended,
                         due, None, unit, _limit_words(d))
    took = f"{amount(elapsed, unit)} {since}"
    late = due is not None and ended > due
    early = earliest is not None and ended < earliest
    if outcome == "met":
        if d.within is not None and d.at_least is not None:
            text = f"{took}, inside the allowed {d.at_least.value} to {d.within}"
        elif d.within is not None:
            text = f"{took}, within the {limit_text(d.within)} limit"
        else:
            assert d.at_least is not None
            text = f"{took}, meeting the minimum of {d.at_least}"
    elif late:
        assert d.within is not None and due is not None
        over = elapsed - d.within.value
        if amount(over, unit).startswith(("0 ", "0.0 ")) or over <= 0:
            text = (f"{took} — after the {limit_text(d.within)} limit ran out "
                    f"(due {due_text(cal, due, unit)})")
        else:
            text = f"{took} — {amount(over, unit)} over the {limit_text(d.within)} limit"
    elif early:
        assert d.at_least is not None and earliest is not None
        short = d.at_least.value - elapsed
        if amount(short, unit).startswith(("0 ", "0.0 ")) or short <= 0:
            text = (f"{took} — too soon for the minimum of {d.at_least} "
                    f"({earliest_text(cal, earliest)})")
        else:
            text = f"{took} — {amount(short, unit)} short of the minimum of {d.at_least}"
    else:  # pragma: no cover - a missed verdict is always late or early
        text = f"{took} — missed"
    return ClockLine(d.id, label, d.summary, d.rules, outcome, text, started, ended, due,
                     elapsed, unit, _limit_words(d))


def open_line(procedure: Procedure, cal: WorkingCalendar, clock: RunningDeadline,
              end: SimHours) -> ClockLine:
    """A clock still open at the end of the log, judged at the end of the run."""
    d = clock.deadline
    unit = _limit_of(d).unit
    label = humanise(d.id)
    previous = d.repeats and d.start == d.end
    since = (f"after {event_phrase(procedure, d.start, previous)} "
             f"({day_text(cal.date_of(clock.started))})")
    elapsed = cal.elapsed(clock.started, end, unit)
    outcome: OutcomeText
    if clock.due is None:
        outcome = "open"
        text = f"{label}: still open at the end of the run, {amount(elapsed, unit)} {since}"
    elif clock.due < end:
        outcome = "overdue"
        text = (f"{label}: overdue at the end of the run — due "
                f"{due_text(cal, clock.due, unit)}, {since}; "
                f"{amount(elapsed, unit)} had passed when the run ended")
    else:
        outcome = "running"
        text = (f"{label}: still running at the end of the run (due "
                f"{due_text(cal, clock.due, unit)}), {since}")
    return ClockLine(d.id, label, d.summary, d.rules, outcome, text, clock.started, None,
                     clock.due, elapsed, unit, _limit_words(d))


def started_line(procedure: Procedure, cal: WorkingCalendar, d: Deadline,
                 at: SimHours) -> ClockLine:
    """A clock that a step started, with when it is due."""
    unit = _limit_of(d).unit
    label = humanise(d.id)
    parts = []
    if d.at_least is not None:
        parts.append(earliest_text(cal, cal.earliest(at, d.at_least)))
    due = cal.due(at, d.within) if d.within is not None else None
    if due is not None:
        parts.append("due " + due_text(cal, due, unit))
    text = f"{label} ({_limit_words(d)}: {', '.join(parts)})"
    return ClockLine(d.id, label, d.summary, d.rules, "running", text, at, None, due, None,
                     unit, _limit_words(d))


def _bands(procedure: Procedure, rows: Sequence[LogRow], end: SimHours
           ) -> tuple[list[Band], list[str]]:
    """Stretches of time in each main-flow stage and each region state (not the resting one)."""
    lanes = ["stage", *procedure.regions]
    rest = {r: procedure.entry_leaf(procedure.states[r].initial or r)
            for r in procedure.regions}
    order = {"stage": [sid for sid, st in procedure.states.items()
                       if st.parent is None and st.region is None]}
    for r in procedure.regions:
        order[r] = [sid for sid in procedure.states[r].children if sid != rest[r]]

    def band(lane: str, state: str, start: SimHours, end: SimHours) -> Band:
        states = order[lane]
        index = states.index(state) if state in states else len(states)
        return Band(lane, state, state_label(procedure, state), start, end, index,
                    max(len(states), index + 1))

    bands: list[Band] = []
    current: dict[str, tuple[str, SimHours]] = {}
    for row in rows:
        seen: dict[str, str] = {}
        for leaf in row.config:
            region = procedure.states[leaf].region
            if region is None:
                seen["stage"] = procedure.ancestors(leaf)[-1]
            elif leaf != rest[region]:
                seen[region] = leaf
        for lane in lanes:
            state = seen.get(lane)
            open_ = current.get(lane)
            if open_ is not None and open_[0] != state:
                bands.append(band(lane, open_[0], open_[1], row.time))
                del current[lane]
            if state is not None and lane not in current:
                current[lane] = (state, row.time)
    for lane, (state, since) in current.items():
        bands.append(band(lane, state, since, max(end, since)))
    used = [lane for lane in lanes if any(b.lane == lane for b in bands)]
    return bands, used


def build_story(results: RunResults, case_id: str | None = None, pick: Pick | None = None,
                replication: int | None = None) -> Story:
    """Tell one case of a stored run.

    Args:
        results: The stored run (from :func:`simulations.results.read_results`).
        case_id: The case to tell; or None with ``pick``.
        pick: ``longest`` (most steps), ``breached`` (most missed deadlines) or
            ``escalated`` (highest rung of a resolution ladder).
        replication: The replication (default: the first with an event log).

    Raises:
        InputError: no event log, unknown case (the closest ids are suggested), nothing to
            pick, or a log that does not replay on the run's procedure.
    """
    if (case_id is None) == (pick is None):
        raise ValueError("give exactly one of case_id and pick")
    procedure = results.scenario.procedure
    meta = results.metadata
    start = date.fromisoformat(str(meta["start_date"]))
    cal = WorkingCalendar(start)
    machine = CompiledProcedure(procedure, cal)
    classes = fact_classes(procedure, results.scenario.spec.demand.facts)
    replication, path = event_log(results, replication)
    if pick is not None:
        cases = read_all_cases(path)
        if not cases:
            raise InputError([Problem(str(path), None, "", "the event log holds no case")])
        choice = pick_case(pick, cases, results, machine, classes, replication)
        case_id, note = choice.case_id, choice.note
        rows = list(cases[case_id])
    else:
        assert case_id is not None
        rows = read_case(path, case_id)
        note = ""
        if not rows:
            ids = read_events(path, columns=["case_id"]).column("case_id").unique()
            hint = closest_ids(case_id, (str(i) for i in ids.to_pylist()))
            raise InputError([Problem(
                str(path), None, "--case",
                f"no case {case_id!r} in replication {replication}"
                + (f"; the closest ids are {', '.join(hint)}" if hint else ""))])
    replays: list[Replay] = []
    first_error = ""
    for fact_class in classes:
        attempt = replay(machine, case_id, rows, fact_class)
        if isinstance(attempt, Replay):
            replays.append(attempt)
        else:
            first_error = first_error or attempt
    if not replays:
        raise InputError([Problem(
            str(path), None, case_id,
            f"the case's log does not replay on procedure {procedure.id} ({first_error}); "
            f"has the procedure changed since the run?")])
    chosen = replays[0]
    horizon = float(meta["horizon_days"]) * 24.0
    deadlines = {d.id: d for d in procedure.deadlines}
    steps: list[StoryStep] = []
    for i, row in enumerate(rows):
        when = cal.to_datetime(row.time)
        who, absent, reason = actor_words(row.actor)
        if i == 0:
            top = procedure.ancestors(row.config[0])[-1]
            kind: Literal["arrival", "step", "postponement"] = "arrival"
            title = f"Case arrives: {state_label(procedure, top)}"
            summary = procedure.states[top].summary
            started = chosen.started
            verdicts: tuple[ClockLine, ...] = ()
            moved = True
        else:
            fired = chosen.results[i - 1]
            transition = procedure.transition(fired.step.transition_id)
            kind = "postponement" if row.trigger.startswith("postpone") else "step"
            title = humanise(row.trigger)
            summary = transition.summary
            started = fired.started
            verdicts = tuple(
                verdict_line(procedure, cal, deadlines[v.deadline_id], v.started, v.ended,
                             v.due, v.earliest, v.outcome, v.elapsed)
                for v in fired.verdicts)
            moved = fired.step.before != fired.step.after
        steps.append(StoryStep(
            number=i, time=row.time, day=row.day, day_text=day_text(row.day),
            clock=f"{when:%H:%M}", kind=kind, trigger=row.trigger, title=title,
            summary=summary, who=who, absent=absent, reason=reason, rules=row.rules,
            now=where(procedure, row.config), moved=moved,
            verdicts=verdicts,
            started=tuple(started_line(procedure, cal, deadlines[d], row.time)
                          for d in started)))
    open_clocks = tuple(open_line(procedure, cal, c, horizon) for c in chosen.open_clocks)
    final = rows[-1].config
    terminal = is_terminal(procedure, final)
    span_end = horizon
    if terminal:
        span = max(rows[-1].time - rows[0].time, 24.0)
        span_end = min(horizon, rows[-1].time + 0.08 * span)
    bands, lanes = _bands(procedure, rows, span_end)
    return Story(
        case_id=case_id, replication=replication, replications=len(results.records),
        scenario_name=results.scenario.name, scenario_title=results.scenario.spec.title,
        procedure_id=procedure.id, procedure_title=procedure.title, start_date=start,
        horizon_hours=horizon, warm_up_hours=float(meta["warm_up_days"]) * 24.0,
        choice_note=note, steps=tuple(steps), open_clocks=open_clocks,
        final_state=where(procedure, final),
        final_terminal=terminal,
        facts_notes=tuple(facts_notes(procedure, classes, replays)),
        bands=tuple(bands), lanes=tuple(lanes), calendar=cal)


# -- Markdown --------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def md(text: str) -> str:
    r"""Free text made safe for Markdown (its special characters escaped).

    >>> md("a_b <i>")
    'a\\_b \\<i\\>'
    """
    return _MD_SPECIAL.sub(r"\\\1", text)


def overview(story: Story) -> str:
    """The one-paragraph summary: span, breaches, postponements, where the case ended."""
    first, last = story.steps[0], story.steps[-1]
    days = (last.day - first.day).days
    missed = len(story.breaches)
    post = len(story.postponements)
    where = ("it came to rest in" if story.final_terminal
             else "at the end of the run it was still open, in")
    return (f"{len(story.steps)} events from {first.day_text} to {last.day_text} "
            f"({days} day{'s' if days != 1 else ''}); {missed} deadline"
            f"{'s' if missed != 1 else ''} missed, {post} postponement"
            f"{'s' if post != 1 else ''}; {where} {story.final_state}.")


def run_text(story: Story) -> str:
    """Which run and replication the case comes from."""
    end = story.calendar.date_of(story.horizon_hours)
    warm = story.calendar.date_of(story.warm_up_hours)
    return (f"Replication {story.replication} ({story.replications} stored) of a run of "
            f"scenario {story.scenario_name} ({story.scenario_title}) on procedure "
            f"{story.procedure_id} ({story.procedure_title}), simulated from "
            f"{day_text(story.start_date)} to {day_text(end)}. Events before "
            f"{day_text(warm)} fall in the warm-up, which the run's KPIs leave out.")


def method_notes(story: Story) -> list[str]:
    """How the story was worked out, for its last section."""
    return [
        f"The events are the case's rows of events/rep-{story.replication:04d}.parquet, in "
        f"the order the run wrote them. Each was replayed through the compiled procedure "
        f"machine on the England and Wales working calendar from "
        f"{story.start_date.isoformat()}, so every deadline clock started, stopped and was "
        "judged exactly as in the run. Times are in the deadline's own unit: working days "
        "and days count whole days from the day the clock started, hours are exact, months "
        "are whole calendar months plus days / 30.44.",
        *story.facts_notes,
        "Clocks still open when the log ends are judged at the end of the run: overdue when "
        "their due time had passed, otherwise still running.",
    ]


def story_markdown(story: Story) -> str:
    """The story as Markdown: summary, highlights, the dated steps, the clocks, the method."""
    lines = [f"# The story of case {md(story.case_id)}", "", md(run_text(story)), ""]
    if story.choice_note:
        lines += [f"**Why this case:** {md(story.choice_note)}", ""]
    lines += [f"**In short:** {md(overview(story))}", ""]
    if story.breaches or story.postponements:
        lines += ["## Highlights", ""]
        for step, v in story.breaches:
            lines.append(f"- **Missed, {step.day_text}:** {md(step.title)} {md(v.text)} "
                         f"({md(v.rules_text)}).")
        for step in story.postponements:
            lines.append(f"- **Postponed, {step.day_text}:** {md(step.title)}"
                         + (f" — {md(step.reason)}" if step.reason else "") + ".")
        lines.append("")
    lines += ["## What happened", ""]
    for step in story.steps:
        head = f"- **{step.day_text}** {step.clock} — **{md(step.title)}.** {md(step.summary)}"
        if step.kind == "postponement":
            head += (" **Postponed**" + (f": {md(step.reason)}." if step.reason else "."))
        extras = []
        if step.who:
            extras.append(f"by {md(step.who)}")
        if step.absent:
            extras.append(f"not attending: {md(step.absent)}")
        if extras:
            head += f" _({'; '.join(extras)})_"
        if step.rules:
            head += f" Rules: {md(', '.join(step.rules))}."
        lines.append(head)
        for v in step.verdicts:
            if v.outcome == "missed":
                lines.append(f"  - **Missed** ({md(_lower_first(v.label))}): {md(v.text)} "
                             f"({md(v.rules_text)}).")
            elif v.outcome == "met":
                lines.append(f"  - Met ({md(_lower_first(v.label))}): {md(v.text)} "
                             f"({md(v.rules_text)}).")
            else:
                lines.append(f"  - {md(v.text)} ({md(v.rules_text)}).")
        if step.started:
            lines.append("  - Clock starts: " + "; ".join(
                f"{md(c.text)} ({md(c.rules_text)})" for c in step.started) + ".")
        if step.moved and step.kind != "arrival":
            lines.append(f"  - Now: {md(step.now)}.")
    lines.append("")
    if story.open_clocks:
        lines += ["## Clocks open at the end of the run", ""]
        lines += [f"- {md(c.text)} ({md(c.rules_text)})." for c in story.open_clocks]
        lines.append("")
    judged = [v for s in story.steps for v in s.verdicts]
    if judged:
        lines += ["## Deadlines", "",
                  "| deadline | started | ended | time taken | limit | outcome | rules |",
                  "|---|---|---|---|---|---|---|"]
        for v in judged:
            took = "–" if v.elapsed is None else amount(v.elapsed, v.unit)
            ended = "–" if v.ended is None else day_text(story.date_of(v.ended))
            lines.append(f"| {md(v.label)} | {day_text(story.date_of(v.started))} | {ended} "
                         f"| {took} | {md(v.limit)} | {v.outcome} | {md(v.rules_text)} |")
        lines.append("")
    lines += ["## How this story was worked out", ""]
    lines += [f"- {md(n)}" for n in method_notes(story)]
    lines += ["", "The timeline figure is in the HTML page written beside this file "
              f"(stories/{story.slug}.html in the results folder).", ""]
    return "\n".join(lines)


# -- the figure ----------------------------------------------------------------------------------
def _num(story: Story, t: SimHours) -> float:
    return float(date2num(story.calendar.to_datetime(t)))  # type: ignore[no-untyped-call]


STAGE_COLOURS = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#b7791f", "#319795", "#d53f8c",
                 "#718096", "#63b3ed", "#68d391", "#f6ad55", "#b794f4")
"""Main-flow stage colours, by the stage's declared position (no red: red marks breaches)."""


def band_colour(b: Band) -> str:
    """A band's colour: the main flow by stage, a region's ladder from light to dark purple.

    >>> band_colour(Band("stage", "referral", "referral", 0, 1, 0, 11))
    '#2b6cb0'
    """
    if b.lane == "stage":
        return STAGE_COLOURS[b.index % len(STAGE_COLOURS)]
    shade = 0.3 + 0.65 * (b.index / max(b.of - 1, 1))
    return str(to_hex(colormaps["Purples"](min(shade, 1.0))))


def timeline_figure(story: Story) -> Figure:
    """The case over time: stages as coloured bands, milestones marked, breaches in red.

    One lane per part of the procedure the case used (the main flow, then each region), a
    lane of events below them: every step is a small grey tick, steps that met a deadline
    are dark dots, postponements orange triangles, and each missed deadline a red cross with
    a red line across the lanes.
    """
    lanes = list(story.lanes)
    states = list(dict.fromkeys(b.state for b in story.bands))
    colours = {b.state: band_colour(b) for b in story.bands}
    height = 1.6 + 0.55 * (len(lanes) + 1) + 0.25 * math.ceil(len(states) / 4)
    fig = fg.new_figure(10.0, height)
    ax = fig.add_subplot()
    rows = {lane: len(lanes) - i for i, lane in enumerate(lanes)}
    for b in story.bands:
        left, right = _num(story, b.start), _num(story, b.end)
        ax.barh(rows[b.lane], right - left, left=left, height=0.7, color=colours[b.state],
                alpha=0.85, edgecolor="white", linewidth=0.6)
    first = _num(story, story.steps[0].time)
    last = max([_num(story, b.end) for b in story.bands] + [_num(story, story.steps[-1].time)])
    span = max(last - first, 1.0)
    for step in story.steps:
        x = _num(story, step.time)
        if step.breaches:
            ax.axvline(x, color=fg.RED, linewidth=1.0, alpha=0.6, zorder=1)
            ax.plot([x], [0], marker="X", color=fg.RED, markersize=9, zorder=4)
        elif step.kind == "postponement":
            ax.plot([x], [0], marker="v", color=fg.ORANGE, markersize=8, zorder=3)
        elif any(v.outcome == "met" for v in step.verdicts) or step.kind == "arrival":
            ax.plot([x], [0], marker="o", color=fg.INK, markersize=5, zorder=3)
        else:
            ax.plot([x], [0], marker="|", color=fg.GREY, markersize=9, zorder=2)
    if not story.final_terminal:
        end = _num(story, story.horizon_hours)
        ax.axvline(end, color=fg.MUTED, linestyle="--", linewidth=1.0)
        ax.annotate("end of run", (end, len(lanes) + 0.45), ha="right", va="bottom",
                    fontsize=8, color=fg.MUTED)
    ax.set_yticks([*rows.values(), 0], [*(humanise(lane) for lane in lanes), "Events"])
    ax.set_ylim(-0.7, len(lanes) + 0.8)
    ax.set_xlim(first - 0.02 * span, last + 0.02 * span)
    fg.date_axis(ax)
    fg.style_axes(ax, "x")
    ax.set_title(f"Case {story.case_id}: stages over time", fontsize=11, loc="left",
                 color=fg.INK)
    labels = {b.state: b.label for b in story.bands}
    handles: list[Patch | Line2D] = [Patch(color=colours[s], label=labels[s]) for s in states]
    handles += [Line2D([], [], marker="o", color=fg.INK, linestyle="", label="deadline met"),
                Line2D([], [], marker="X", color=fg.RED, linestyle="", label="deadline missed"),
                Line2D([], [], marker="v", color=fg.ORANGE, linestyle="", label="postponed"),
                Line2D([], [], marker="|", color=fg.GREY, linestyle="", label="other step")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return fig


# -- HTML and files --------------------------------------------------------------------------------
def render_story_html(story: Story, png: bytes) -> str:
    """The story page as HTML (autoescaped jinja2 template ``story.html``)."""
    context = {
        "story": story,
        "run_text": run_text(story),
        "overview": overview(story),
        "method_notes": method_notes(story),
        "figure": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "amount": amount,
        "day_of": lambda t: day_text(story.date_of(t)),
    }
    return template_environment().get_template("story.html").render(**context)


@dataclass(frozen=True)
class StoryFiles:
    """What :func:`write_story` wrote, and the Markdown text."""

    story: Story
    markdown: str
    html_path: Path
    md_path: Path


def write_story(results_dir: Path, case_id: str | None = None, pick: Pick | None = None,
                replication: int | None = None,
                progress: Callable[[str], None] | None = None) -> StoryFiles:
    """Tell one case of a results folder; write ``stories/story-<case>.html`` and ``.md``.

    Args:
        results_dir: A results folder written by ``cpsim run``.
        case_id: The case to tell, or None with ``pick``.
        pick: ``longest``, ``breached`` or ``escalated``.
        replication: The replication (default: the first with an event log).
        progress: Told what is being done, for slow steps (replaying every case).

    Raises:
        InputError: not a results folder, no event log, a damaged event log, unknown
            case, nothing to pick (nothing is written).
    """
    results = read_results(Path(results_dir))
    if progress is not None and pick == "breached":
        progress("replaying every case of the replication to find the most breached ...")
    story = build_story(results, case_id, pick, replication)
    text = story_markdown(story)
    png = fg.png_bytes(timeline_figure(story))
    html = render_story_html(story, png)
    folder = Path(results_dir) / "stories"
    html_path = folder / f"{story.slug}.html"
    md_path = folder / f"{story.slug}.md"
    write_bytes_atomic(md_path, text.encode("utf-8"))
    write_bytes_atomic(html_path, html.encode("utf-8"))
    return StoryFiles(story, text, html_path, md_path)


__all__ = [
    "PICKS", "Band", "ClockLine", "FactClass", "LogRow", "Replay", "Story", "StoryFiles",
    "StoryStep", "build_story", "closest_ids", "fact_classes",
    "first_replay", "ladder_states", "read_all_cases", "read_case", "replay",
    "story_markdown", "timeline_figure", "write_story",
]
