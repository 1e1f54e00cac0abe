"""Frozen description of a procedure: states, transitions, deadlines and declared properties.

Every element carries the rule ids it encodes (or the basis it rests on where no source states
it) and where it was written (file and line), so a finding can point back to both the source
document and the procedure file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from model.types import Duration, GuardId, RuleId, StateId, TriggerId

# Each tuple of allowed values is read off its Literal type, so the two cannot drift apart.
Role = Literal[
    "social_worker",
    "conference_chair",
    "minute_taker",
    "manager",
    "agency",
    "interpreter",
    "coordinator",
    "lead_professional",
]
ROLES: tuple[Role, ...] = get_args(Role)

ManagerLevel = Literal[
    "team_manager",
    "group_manager",
    "head_of_service",
    "assistant_director",
    "director",
    "line_manager",
    "service_manager",
    "executive_group",
]
MANAGER_LEVELS: tuple[ManagerLevel, ...] = get_args(ManagerLevel)

BasisKind = Literal["assumption", "local-standard"]
BASIS_KINDS: tuple[BasisKind, ...] = get_args(BasisKind)

EventKind = Literal["trigger", "enter", "exit"]
Pattern = Literal[
    "absence",
    "existence",
    "precedence",
    "response",
    "never_ends_without",
    "co_recorded",
    "monotone",
    "final",
]
PATTERNS: tuple[Pattern, ...] = get_args(Pattern)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an element was written: the file and 1-based line of its key."""

    file: str
    line: int

    def __str__(self) -> str:
        """Return ``file:line``."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Basis:
    """Why an element (or a number in it) is there when no source states it.

    Attributes:
        kind: ``local-standard`` for a common local practice (the note names the ``CAL-T``
            row or the practice); ``assumption`` for the project's own modelling choice (the
            note says why).
        note: One sentence.
    """

    kind: BasisKind
    note: str


@dataclass(frozen=True, slots=True)
class EventRef:
    """Something that happens to a case: a trigger fires, or the case enters or leaves a state.

    Entering (leaving) a compound state counts when the case moves into (out of) it from
    outside, or a transition targets the state itself.
    """

    kind: EventKind
    name: str

    def __str__(self) -> str:
        """Return ``trigger:NAME``, ``enter:STATE`` or ``exit:STATE``."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class ResourceNeed:
    """A role a step needs: who does the work or must be there.

    Attributes:
        role: The kind of person or body.
        level: For managers, the management level (e.g. ``head_of_service``).
        agencies: For ``agency``, the agencies to invite or involve.
        when: A guard; the role is needed only when it holds (e.g. an interpreter).
    """

    role: Role
    level: ManagerLevel | None = None
    agencies: tuple[str, ...] = ()
    when: GuardId | None = None


@dataclass(frozen=True, slots=True)
class State:
    """A stage a case can be in; compound when it has child states.

    Attributes:
        id: Dotted path, unique in the procedure (``icpc.session``).
        parent: The enclosing state's id, or None at the top of a region.
        children: Child state ids in the order written; empty for a leaf.
        initial: For a compound state, the child entered first.
        terminal: A case may rest (end) here.
        region: The orthogonal region this state belongs to; None for the main flow.
        exhaustive: Guards the procedure declares to cover every case at this decision point.
        basis: Where no source states the stage (or something about it): why it is there.
    """

    id: StateId
    rules: tuple[RuleId, ...]
    summary: str
    origin: Origin
    parent: StateId | None = None
    children: tuple[StateId, ...] = ()
    initial: StateId | None = None
    terminal: bool = False
    region: str | None = None
    exhaustive: tuple[GuardId, ...] = ()
    included_from: str | None = None
    basis: Basis | None = None

    @property
    def is_compound(self) -> bool:
        """True when the state has child states."""
        return bool(self.children)

    @property
    def name(self) -> str:
        """The last segment of the dotted path."""
        return self.id.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class Transition:
    """A permitted move: firing ``trigger`` in any of ``sources`` leads to ``dest``.

    A compound source means "from any state inside it". ``guards`` must all hold;
    ``when_in`` names states of other regions, one of which the case must be in. An
    ``internal`` transition records something without leaving the state (``dest`` is then
    the first source, kept only to name the region).
    """

    id: str
    trigger: TriggerId
    sources: tuple[StateId, ...]
    dest: StateId
    rules: tuple[RuleId, ...]
    summary: str
    origin: Origin
    guards: tuple[GuardId, ...] = ()
    when_in: tuple[StateId, ...] = ()
    resources: tuple[ResourceNeed, ...] = ()
    records: tuple[str, ...] = ()
    internal: bool = False
    basis: Basis | None = None


@dataclass(frozen=True, slots=True)
class Deadline:
    """A timescale: ``end`` must follow ``start`` within ``within`` and/or after ``at_least``.

    Attributes:
        start: The event that starts the clock.
        end: The event that stops it (met if in time).
        within: The latest allowed gap; None when only a minimum applies.
        at_least: The earliest allowed gap (e.g. reports at least 3 days before).
        when: A guard on the case's facts; the deadline applies only when it holds.
        repeats: The clock restarts every time ``start`` happens again (e.g. core groups).
        cancelled_by: Events that make the clock void without a verdict.
    """

    id: str
    start: EventRef
    end: EventRef
    rules: tuple[RuleId, ...]
    summary: str
    origin: Origin
    within: Duration | None = None
    at_least: Duration | None = None
    when: GuardId | None = None
    repeats: bool = False
    cancelled_by: tuple[EventRef, ...] = ()
    basis: Basis | None = None


@dataclass(frozen=True, slots=True)
class Property:
    """A declared property checked over every path of the procedure graph.

    Which fields apply depends on ``pattern`` (see the README's format reference).
    """

    id: str
    pattern: Pattern
    rules: tuple[RuleId, ...]
    summary: str
    origin: Origin
    of: EventRef | None = None
    requires: EventRef | None = None
    then: EventRef | None = None
    scope: StateId | None = None
    records_any: tuple[tuple[str, ...], ...] = ()
    if_records: str | None = None
    also: tuple[str, ...] = ()
    order: tuple[StateId, ...] = ()
    exits: tuple[StateId, ...] = ()
    state: StateId | None = None
    basis: Basis | None = None


CinEventType = Literal[
    "referral",
    "early_help",
    "assessment_start",
    "assessment_end",
    "strategy_discussion",
    "s47_start",
    "s47_no_conference",
    "icpc",
    "cp_plan_start",
    "review",
    "cp_plan_end",
    "cin_plan_start",
    "closure",
]
CIN_EVENT_TYPES: tuple[CinEventType, ...] = get_args(CinEventType)
"""The event types of the CIN-flat table (a CIN-census-like format), in the table's order."""


@dataclass(frozen=True, slots=True)
class CinEvent:
    """How one CIN-flat event type shows in this procedure (its ``cin_flat`` block).

    The CIN-flat vocabulary is fixed by the data format; which states and triggers make
    each type is the procedure's to say, so real data maps onto any procedure without code.

    Attributes:
        type: The CIN-flat event type.
        events: The procedure events that make it (any one of them).
        activities: Triggers that stand for it where data names steps by trigger (CSV, XES).
        origin: Where the type's entry was written.
    """

    type: CinEventType
    events: tuple[EventRef, ...]
    activities: tuple[TriggerId, ...]
    origin: Origin


@dataclass(frozen=True)
class Procedure:
    """A whole procedure, validated and frozen.

    Attributes:
        id: The procedure's name (the file stem), e.g. ``west-midlands-2014``.
        initial: The main flow's first state.
        regions: Names of orthogonal regions that run beside the main flow.
        states: Every state by id, in the order written (main flow first, then regions).
        extends: The chain of procedures this one is built on, nearest first.
        files: Every file that contributed, with its SHA-256, for provenance.
        sources: The source codes (``model.rules.SOURCE_TITLES``) the procedure draws on, as
            declared (with those of included procedures added); empty when the file declares
            none, in which case every source it cites counts as used
            (:func:`model.trace.used_sources`).
        not_encoded: Rules of its sources the procedure deliberately leaves out, each with
            the reason.
        cin_flat: How CIN-flat event types map onto its events, in the table's order; None
            when the procedure declares no mapping (it cannot be held against case data).
    """

    id: str
    title: str
    description: str
    initial: StateId
    states: Mapping[StateId, State]
    transitions: tuple[Transition, ...]
    deadlines: tuple[Deadline, ...]
    properties: tuple[Property, ...]
    regions: tuple[str, ...] = ()
    extends: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = field(default=())
    sources: tuple[str, ...] = ()
    not_encoded: Mapping[RuleId, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    cin_flat: tuple[CinEvent, ...] | None = None

    @property
    def triggers(self) -> tuple[TriggerId, ...]:
        """Every trigger name, sorted."""
        return tuple(sorted({t.trigger for t in self.transitions}))

    def leaves(self) -> tuple[StateId, ...]:
        """Every leaf (non-compound) state, in declared order."""
        return tuple(s.id for s in self.states.values() if not s.is_compound)

    def entry_leaf(self, state: StateId) -> StateId:
        """The leaf a case lands in when it enters ``state`` (following initial children)."""
        current = self.states[state]
        while current.is_compound:
            assert current.initial is not None
            current = self.states[current.initial]
        return current.id

    def ancestors(self, state: StateId) -> tuple[StateId, ...]:
        """``state`` and every state enclosing it, innermost first."""
        out: list[StateId] = []
        current: StateId | None = state
        while current is not None:
            out.append(current)
            current = self.states[current].parent
        return tuple(out)

    def region_of(self, state: StateId) -> str | None:
        """The region a state belongs to (None for the main flow)."""
        return self.states[state].region

    def transition(self, transition_id: str) -> Transition:
        """Look up a transition by its id."""
        for t in self.transitions:
            if t.id == transition_id:
                return t
        raise KeyError(transition_id)

    def rule_ids(self) -> tuple[RuleId, ...]:
        """Every rule id cited anywhere in the procedure, sorted."""
        cited: set[RuleId] = set()
        for s in self.states.values():
            cited.update(s.rules)
        for t in self.transitions:
            cited.update(t.rules)
        for d in self.deadlines:
            cited.update(d.rules)
        for p in self.properties:
            cited.update(p.rules)
        return tuple(sorted(cited))
