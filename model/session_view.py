"""What a walk session hands back: screens, notes, explanations, results and coverage.

These are plain frozen records. :class:`model.session.WalkSession` builds them; the
command line (``cpsim/walk_render.py``) turns them into text. The few formatting helpers
here (times, due dates, facts) are shared by the session's notes and the renderer, so a
date reads the same wherever it appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from model.graph import Config
from model.guards import FACTS
from model.rules import load_rules
from model.types import RuleId, StateId, TriggerId

Status = Literal["ok", "illegal", "invalid", "quit"]
Level = Literal["info", "good", "alert"]
ExplanationKind = Literal["allowed", "blocked", "not_here", "unknown"]


@dataclass(frozen=True, slots=True)
class Note:
    """One line of news: ``alert`` lines (missed deadlines, refusals) are shown in red."""

    text: str
    level: Level = "info"


@dataclass(frozen=True, slots=True)
class RuleView:
    """A rule id with where it comes from and what it says (from ``model/rules.yaml``)."""

    id: RuleId
    document: str
    clause: str
    summary: str


@dataclass(frozen=True, slots=True)
class ClockView:
    """A running deadline clock as the trainer sees it.

    Attributes:
        overdue: The clock is past its due time: the deadline is already missed.
        too_early: A minimum gap applies and has not yet passed.
        working_days_left: Working days from today to the due date (None without one).
    """

    deadline_id: str
    summary: str
    rules: tuple[RuleId, ...]
    started: datetime
    due: datetime | None
    earliest: datetime | None
    overdue: bool
    too_early: bool
    working_days_left: int | None


@dataclass(frozen=True, slots=True)
class ActionView:
    """An action allowed now, with its number on the screen and the rules behind it."""

    number: int
    trigger: TriggerId
    summary: str
    dest: StateId
    rules: tuple[RuleView, ...]


@dataclass(frozen=True, slots=True)
class BlockedView:
    """An action offered here that this case cannot take now, and why."""

    trigger: TriggerId
    reason: str


@dataclass(frozen=True, slots=True)
class Screen:
    """Everything ``cpsim walk`` shows between commands."""

    procedure: str
    configuration: Config
    where: tuple[tuple[StateId, str, tuple[RuleId, ...]], ...]
    now: datetime
    day_kind: str
    steps: int
    facts: Mapping[str, bool]
    clocks: tuple[ClockView, ...]
    actions: tuple[ActionView, ...]
    blocked: tuple[BlockedView, ...]
    terminal: bool

    @property
    def stuck(self) -> bool:
        """Nothing can be done now and the case may not end here."""
        return not self.actions and not self.terminal


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an action can or cannot be taken now.

    Attributes:
        kind: ``allowed``; ``blocked`` (offered here, but a guard fails or another region
            is not ready); ``not_here`` (not offered from this state); ``unknown`` (no such
            action in the procedure).
        where: The states the case is in, with their summaries.
        reasons: Plain-English sentences.
        guards: The failing guards with their registry summaries.
        offered_from: For ``not_here``, the states the action is offered from.
        rules: The rules behind the action, with document, clause and summary.
        allowed_now: The actions allowed now.
        hint: For ``unknown``, the closest action name.
    """

    trigger: str
    kind: ExplanationKind
    configuration: Config
    where: tuple[tuple[StateId, str], ...]
    reasons: tuple[str, ...]
    guards: tuple[tuple[str, str], ...] = ()
    offered_from: tuple[StateId, ...] = ()
    rules: tuple[RuleView, ...] = ()
    allowed_now: tuple[TriggerId, ...] = ()
    hint: str | None = None


@dataclass(frozen=True)
class Result:
    """What one command did.

    Attributes:
        status: ``ok``; ``illegal`` (the action is not allowed: see ``explanation``);
            ``invalid`` (the command could not be carried out as typed); ``quit``.
        notes: What happened, line by line.
        explanation: For ``why`` and illegal actions.
        screen: The screen after the command.
        changed: The case or the clock changed (the screen is worth showing again).
        save: For ``save``: the file named and the transcript text to write there.
        text: Extra text to show as is (help, history, facts).
    """

    command: str
    status: Status
    screen: Screen
    notes: tuple[Note, ...] = ()
    explanation: Explanation | None = None
    changed: bool = False
    save: tuple[str, str] | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a walk has exercised so far.

    Attributes:
        states: Every state the case has been in (compound states included).
        transitions: Every transition fired.
        deadlines: Every deadline whose clock both started and ended (met or missed).
        rules: Every rule cited by those states, transitions and deadlines.
    """

    states: frozenset[StateId]
    transitions: frozenset[str]
    deadlines: frozenset[str]
    rules: frozenset[RuleId]

    def of(self, kind: str) -> frozenset[str]:
        """The covered items of one kind (``states``, ``transitions``, ...)."""
        items: frozenset[str] = getattr(self, kind)
        return items


def rule_view(rule_id: RuleId) -> RuleView:
    """A rule's document, clause and summary from the registry (marked when missing)."""
    rule = load_rules().get(rule_id)
    if rule is None:
        return RuleView(rule_id, "(not in the rule registry)", "", "")
    return RuleView(rule.id, rule.document, rule.clause, rule.summary)



def format_time(dt: datetime) -> str:
    """An instant as the walk shows it.

    >>> format_time(datetime(2025, 4, 1, 9, 0))
    'Tue 01 Apr 2025 09:00'
    """
    return dt.strftime("%a %d %b %Y %H:%M")


def format_due(dt: datetime) -> str:
    """A due instant; midnight reads as the end of the day before.

    >>> format_due(datetime(2025, 4, 3, 0, 0))
    'end of Wed 02 Apr 2025'
    """
    if dt.time() == time(0, 0):
        return "end of " + (dt - timedelta(days=1)).strftime("%a %d %b %Y")
    return format_time(dt)


def format_facts(facts: Mapping[str, bool], *, only_true: bool = False) -> str:
    """Facts as ``k=v`` text in registry order (``none`` when empty).

    >>> format_facts({"interpreter_needed": True}, only_true=True)
    'interpreter_needed=true'
    """
    items = [
        f"{k}={'true' if facts.get(k) else 'false'}"
        for k in FACTS
        if (facts.get(k) if only_true else True)
    ]
    return ", ".join(items) if items else "none"

