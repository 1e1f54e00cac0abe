"""The story's wording: names, times, actors and deadline clocks as plain English sentences.

Everything here turns something the procedure, the calendar or the event log holds into words
(no reading of files, no layout), so the Markdown and the HTML page say exactly the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from model.calendar import WorkingCalendar
from model.compiler import RunningDeadline
from model.graph import Config
from model.guards import EXHAUSTIVE_GROUPS, GUARDS
from model.spec import Deadline, EventRef, Procedure
from model.types import Duration, DurationUnit, SimHours
from reports.story_read import FactClass, Replay

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


def lower_first(text: str) -> str:
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
    return lower_first(humanise(".".join(parts)))


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
        parts.append(lower_first(humanise(leaf)))
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
        words = lower_first(humanise(event.name)).split(" ")
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
            absent = ", ".join(lower_first(humanise(a)) for a in value.split("|") if a)
        elif kind == "reason":
            reason = REASONS.get(value, lower_first(humanise(value)))
        elif kind == "social_worker":
            who.append(f"social worker {value}" if value else "social worker")
        elif kind == "manager":
            who.append(lower_first(humanise(value or "manager")))
        elif kind in ("arrival", "case"):
            continue
        elif kind == "agency":
            who.append("the agencies")
        else:
            who.append(lower_first(humanise(kind)) + (f" {value}" if value else ""))
    return ", ".join(who), absent, reason


# -- deadline clocks -------------------------------------------------------------------------
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
        text = (f"No longer applies: {lower_first(label)} ({_limit_words(d)}; started "
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



# -- the inferred facts ---------------------------------------------------------------------
def _sentence(summary: str) -> str:
    return lower_first(summary.rstrip(". "))


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
