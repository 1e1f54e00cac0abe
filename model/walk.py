"""Step through a procedure by hand: the pure session behind ``cpsim walk``.

A :class:`WalkSession` holds one case on the compiled machine, the trainer's clock and the
history needed to undo. Each typed command goes to :meth:`WalkSession.apply`, which returns
a :class:`Result`: what happened, an :class:`Explanation` when the choice was illegal, and
the new :class:`Screen`. :func:`render_screen` and :func:`render_result` turn those into
text (with ANSI colour only when asked). Nothing here reads the terminal or writes files:
``save`` hands back the transcript text for the caller to write.

A session is saved as a transcript, a plain text file (format version 1)::

    # comments start with '#'
    cpsim-walk: 1
    procedure: west-midlands-2014
    start-date: 2025-04-01
    facts: interpreter_needed=true
    > decide_strategy_discussion
    > advance 3 hours

:func:`parse_walk_file` also reads the output of ``cpsim check``: each counterexample in
it becomes a :class:`Counterexample` that :func:`replay_counterexample` steps through.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from model.calendar import WorkingCalendar, parse_duration_text
from model.compiler import Case, CompiledProcedure, DeadlineVerdict, FireResult, IllegalMove
from model.errors import InputError, Problem, did_you_mean
from model.graph import Config, active_states, describe, is_terminal
from model.guards import FACTS, GUARDS
from model.rules import load_rules
from model.spec import Procedure, Transition
from model.timescales import CALENDAR_FIRST, CALENDAR_LAST
from model.types import RuleId, SimHours, StateId, TriggerId

DEFAULT_START = date(2025, 4, 1)
"""The trainer's clock starts here unless told otherwise (never today: walks must replay)."""

DAY_START_HOUR = 9
"""The clock starts at 09:00 on the start date."""

TRANSCRIPT_VERSION = 1
"""The transcript format this module writes and reads."""

Status = Literal["ok", "illegal", "invalid", "quit"]
Level = Literal["info", "good", "alert"]
ExplanationKind = Literal["allowed", "blocked", "not_here", "unknown"]

_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):\s*(.*?)\s*$")
_VERSION = re.compile(r"^cpsim-walk:\s*(\S*)\s*$")
_STEP = re.compile(
    r"^\s*(\d+)\.\s+(\S.*?)\s+--(\S+)\s+\[([^\]]*)\]-->\s+(\S.*?)\s*$"
)
_STUCK = re.compile(r"^\s*stuck:\s+nothing leads on from\s+(\S.*?)\s*$")
_AT = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}):(\d{2}))?$")

_CALENDAR_DAYS = (CALENDAR_LAST - CALENDAR_FIRST).days + 1
_LONGEST_ADVANCE = {"hours": 24 * _CALENDAR_DAYS, "days": _CALENDAR_DAYS,
                    "working_days": _CALENDAR_DAYS,
                    "months": 12 * (CALENDAR_LAST.year - CALENDAR_FIRST.year + 1)}
"""No clock move may be longer than the whole calendar (bank holidays 2000 to 2050)."""

HELP = """\
Commands (type one and press Enter):
  N or NAME              take action number N, or the action called NAME
  why NAME | why         why can't I? explain why an action is not allowed now (or all of them)
  advance 3 working days move the clock on (also: '24 hours', '2 days', '1 month';
  +2 days                '+2 days' is short for 'advance 2 days')
  advance to 2025-04-10 [14:00]   move the clock to a date (and time)
  undo                   go back one step (an action, a clock move or a change of facts)
  facts                  show the case facts; 'set interpreter_needed=true' changes one
  history                what has happened so far
  save FILE              save this walk as a transcript (replay it with --replay FILE)
  look                   show the screen again
  help                   this list
  quit                   leave (Ctrl-D also works)"""


# -- commands ------------------------------------------------------------------------------
class CommandError(ValueError):
    """A typed command that cannot be read (not an illegal move: a typo or a bad value)."""


Verb = Literal[
    "look", "help", "quit", "undo", "history", "facts", "set", "why", "advance", "save",
    "pick", "act",
]


@dataclass(frozen=True, slots=True)
class Command:
    """One command as read from the prompt or a transcript line.

    Attributes:
        verb: What to do.
        text: The command as typed (trimmed).
        name: The action (``act``, ``why``), the file (``save``) or empty.
        number: The action number for ``pick`` (or ``why N``).
        facts: The facts to set for ``set`` (and ``facts k=v``).
        duration: The clock move for ``advance`` as text (``3 working days``), or None.
        until: The instant for ``advance to``, or None.
    """

    verb: Verb
    text: str
    name: str = ""
    number: int | None = None
    facts: tuple[tuple[str, bool], ...] = ()
    duration: str | None = None
    until: datetime | None = None


_ALIASES: Mapping[str, Verb] = {
    "look": "look", "show": "look", "l": "look", "screen": "look",
    "help": "help", "?": "help", "h": "help",
    "quit": "quit", "exit": "quit", "q": "quit",
    "undo": "undo", "back": "undo", "u": "undo",
    "history": "history",
    "facts": "facts", "fact": "facts",
    "set": "set",
    "why": "why",
    "advance": "advance", "wait": "advance",
    "save": "save",
    "do": "act",
}


def parse_facts(text: str) -> dict[str, bool]:
    """Read ``k=v`` pairs (comma or space separated) naming registered case facts.

    >>> parse_facts("interpreter_needed=true, caf_completed=no")
    {'interpreter_needed': True, 'caf_completed': False}

    Raises:
        ValueError: an unknown fact or a value that is not true/false, with a hint.
    """
    out: dict[str, bool] = {}
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{item!r}: write facts as name=true or name=false")
        if key not in FACTS:
            hint = did_you_mean(key, FACTS)
            raise ValueError(
                f"{key!r} is not a case fact"
                + (f"; did you mean {hint!r}?" if hint else "")
                + f" (facts: {', '.join(FACTS)})"
            )
        lowered = value.strip().lower()
        if lowered in _TRUE:
            out[key] = True
        elif lowered in _FALSE:
            out[key] = False
        else:
            raise ValueError(f"{item!r}: the value must be true or false")
    return out


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


def _parse_advance(text: str, rest: str) -> Command:
    rest = rest.strip()
    if rest.startswith("+"):
        rest = rest[1:].strip()
    if not rest:
        raise CommandError("advance by how much? e.g. 'advance 3 working days'")
    if rest.lower().startswith("to "):
        target = rest[3:].strip()
        match = _AT.match(target)
        if not match:
            raise CommandError(f"cannot read {target!r} as a date, e.g. 2025-04-10 or "
                               "2025-04-10 14:00")
        try:
            day = date.fromisoformat(match.group(1))
            hour = int(match.group(2) or DAY_START_HOUR)
            minute = int(match.group(3) or 0)
            until = datetime.combine(day, time(hour, minute))
        except ValueError as exc:
            raise CommandError(f"cannot read {target!r} as a date: {exc}") from None
        if day > CALENDAR_LAST:
            raise CommandError(_past_the_calendar(f"to {target}"))
        return Command("advance", text, until=until)
    try:
        duration = parse_duration_text(rest)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if duration.value <= 0:
        raise CommandError("advance by a positive amount")
    amount = " ".join(rest.lower().split())
    if duration.value > _LONGEST_ADVANCE[duration.unit]:
        raise CommandError(_past_the_calendar(amount))
    return Command("advance", text, duration=amount)


def _past_the_calendar(amount: str) -> str:
    """Why a clock move is refused: it would leave the calendar.

    >>> _past_the_calendar("99999 days")
    'cannot advance 99999 days: the calendar (its bank holidays) covers 2000-01-01 to 2050-12-31'
    """
    return (f"cannot advance {amount}: the calendar (its bank holidays) covers "
            f"{CALENDAR_FIRST.isoformat()} to {CALENDAR_LAST.isoformat()}")


def parse_command(text: str) -> Command:
    """Read one command (see :data:`HELP`); does not check it against any case.

    >>> parse_command("advance 3 working days").duration
    '3 working days'
    >>> parse_command("2").number
    2

    Raises:
        CommandError: when the text is not a command.
    """
    text = text.strip()
    if text.startswith(">"):
        text = text[1:].strip()
    if not text:
        return Command("look", "")
    if text.startswith("+"):
        return _parse_advance(text, text)
    word, _, rest = text.partition(" ")
    verb = _ALIASES.get(word.lower())
    rest = rest.strip()
    if verb is None:
        if word.isdigit() and not rest:
            return Command("pick", text, number=int(word))
        name = text.lower()
        if _NAME.match(name):
            return Command("act", text, name=name)
        raise CommandError(f"{text!r} is not a command or an action name; type 'help'")
    if verb in ("look", "help", "quit", "undo", "history"):
        if rest:
            raise CommandError(f"'{word}' takes nothing after it")
        return Command(verb, text)
    if verb in ("facts", "set"):
        if not rest:
            if verb == "set":
                raise CommandError("set what? e.g. 'set interpreter_needed=true'")
            return Command("facts", text)
        try:
            facts = parse_facts(rest)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return Command("set", text, facts=tuple(facts.items()))
    if verb == "why":
        if not rest:
            return Command("why", text)
        if rest.isdigit():
            return Command("why", text, number=int(rest))
        if not _NAME.match(rest.lower()):
            raise CommandError(f"why what? {rest!r} is not an action name")
        return Command("why", text, name=rest.lower())
    if verb == "advance":
        return _parse_advance(text, rest)
    if verb == "save":
        if not rest:
            raise CommandError("save to which file? e.g. 'save my-walk.txt'")
        return Command("save", text, name=rest)
    # "do NAME"
    if not _NAME.match(rest.lower()):
        raise CommandError(f"do what? {rest!r} is not an action name")
    return Command("act", text, name=rest.lower())


# -- what the trainer sees -------------------------------------------------------------------
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


# -- the session ------------------------------------------------------------------------------
EffectKind = Literal["fire", "advance", "set"]


@dataclass(frozen=True, slots=True)
class _Effect:
    kind: EffectKind
    trigger: TriggerId = ""
    until: SimHours = 0.0
    facts: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change to the case: an action fired, the clock moved, or facts set."""

    time: SimHours
    kind: EffectKind
    text: str
    fired: FireResult | None = None


@dataclass
class WalkSession:
    """One trainer's walk through a procedure: a case, a clock, and what can be undone.

    Example:
        >>> from model.loader import load_procedure
        >>> walk = WalkSession(load_procedure("west-midlands-2014"))
        >>> walk.configuration
        ('referral',)
        >>> walk.apply("decide_strategy_discussion").status
        'ok'
        >>> walk.apply("plan_agreed").status
        'illegal'
        >>> walk.apply("undo").screen.configuration
        ('referral',)
    """

    procedure: Procedure
    start_date: date = DEFAULT_START
    facts: Mapping[str, bool] = field(default_factory=dict)
    machine: CompiledProcedure = field(init=False)
    case: Case = field(init=False)
    now: SimHours = field(init=False)
    history: list[HistoryEntry] = field(init=False, default_factory=list)
    commands: list[str] = field(init=False, default_factory=list)
    _effects: list[_Effect] = field(init=False, default_factory=list)
    _case_count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        """Compile the procedure and open a new case at 09:00 on the start date."""
        self.facts = dict(self.facts)
        self.machine = CompiledProcedure(self.procedure, WorkingCalendar(self.start_date))
        self._new_case()

    # -- state ------------------------------------------------------------------------------
    @property
    def calendar(self) -> WorkingCalendar:
        """The working-day calendar the clock runs on."""
        return self.machine.calendar

    @property
    def configuration(self) -> Config:
        """Where the case is: one leaf per region."""
        return self.machine.configuration(self.case)

    @property
    def start_time(self) -> SimHours:
        """The clock's starting instant (09:00 on the start date)."""
        return float(DAY_START_HOUR)

    def _new_case(self) -> None:
        if getattr(self, "case", None) is not None:
            self.machine.release(self.case)
        self._case_count += 1
        self.now = self.start_time
        self.case, _ = self.machine.new_case(f"walk-{self._case_count}", dict(self.facts),
                                             self.now)
        self.history = []

    def _rebuild(self) -> None:
        effects = list(self._effects)
        self._new_case()
        for effect in effects:
            self._perform(effect)

    def _perform(self, effect: _Effect) -> HistoryEntry:
        if effect.kind == "fire":
            fired = self.machine.fire(self.case, effect.trigger, self.now)
            entry = HistoryEntry(self.now, "fire", effect.trigger, fired)
        elif effect.kind == "advance":
            before = self.now
            self.now = effect.until
            entry = HistoryEntry(before, "advance",
                                 f"clock moved to {_fmt_time(self._dt(self.now))}")
        else:
            self.case.facts.update(dict(effect.facts))
            entry = HistoryEntry(self.now, "set", "facts set: " + ", ".join(
                f"{k}={'true' if v else 'false'}" for k, v in effect.facts))
        self.history.append(entry)
        return entry

    def _dt(self, t: SimHours) -> datetime:
        return self.calendar.to_datetime(t)

    @property
    def current_facts(self) -> dict[str, bool]:
        """The case facts now (every registered fact, false when unset)."""
        return {k: bool(self.case.facts.get(k)) for k in FACTS}

    def coverage(self) -> Coverage:
        """What this walk has exercised so far (after any undo)."""
        proc = self.procedure
        configs: list[Config] = [self.machine.initial]
        fired: set[str] = set()
        ended: set[str] = set()
        for entry in self.history:
            if entry.fired is not None:
                configs.append(entry.fired.step.after)
                fired.add(entry.fired.step.transition_id)
                ended.update(v.deadline_id for v in entry.fired.verdicts
                             if v.outcome != "cancelled")
        states: set[StateId] = set()
        for config in configs:
            states |= active_states(proc, config)
        rules: set[RuleId] = set()
        for s in states:
            rules.update(proc.states[s].rules)
        for t in proc.transitions:
            if t.id in fired:
                rules.update(t.rules)
        for d in proc.deadlines:
            if d.id in ended:
                rules.update(d.rules)
        return Coverage(frozenset(states), frozenset(fired), frozenset(ended),
                        frozenset(rules))

    # -- the screen -------------------------------------------------------------------------
    def _enabled(self) -> list[Transition]:
        seen: set[str] = set()
        out: list[Transition] = []
        for option in self.machine.options(self.case):
            t = option.transition
            if option.enabled and t.trigger not in seen:
                seen.add(t.trigger)
                out.append(t)
        return out

    def allowed(self) -> tuple[TriggerId, ...]:
        """The actions allowed now, in the order the screen numbers them."""
        return tuple(t.trigger for t in self._enabled())

    def screen(self) -> Screen:
        """The screen as it stands: where, when, clocks running, actions allowed."""
        proc = self.procedure
        config = self.configuration
        now_dt = self._dt(self.now)
        clocks = []
        for clock in sorted(self.case.clocks.values(),
                            key=lambda c: (c.due is None, c.due or 0.0, c.deadline.id)):
            due = self._dt(clock.due) if clock.due is not None else None
            left = None
            if due is not None:
                due_day = (due - timedelta(seconds=1)).date()
                left = self.calendar.working_days_between(now_dt.date(), due_day)
            clocks.append(ClockView(
                clock.deadline.id, clock.deadline.summary, clock.deadline.rules,
                self._dt(clock.started), due,
                self._dt(clock.earliest) if clock.earliest is not None else None,
                clock.due is not None and self.now > clock.due,
                clock.earliest is not None and self.now < clock.earliest,
                left,
            ))
        actions = tuple(
            ActionView(i, t.trigger, t.summary, t.dest, tuple(rule_view(r) for r in t.rules))
            for i, t in enumerate(self._enabled(), 1)
        )
        allowed = {a.trigger for a in actions}
        blocked: list[BlockedView] = []
        for option in self.machine.options(self.case):
            trig = option.transition.trigger
            if option.enabled or trig in allowed or any(b.trigger == trig for b in blocked):
                continue
            blocked.append(BlockedView(trig, _blocked_reason(option.blocked_by,
                                                             option.waiting_for)))
        d = now_dt.date()
        if self.calendar.is_working_day(d):
            day_kind = "working day"
        elif d.weekday() >= 5:
            day_kind = "weekend"
        else:
            day_kind = "bank holiday"
        return Screen(
            procedure=proc.id,
            configuration=config,
            where=tuple((leaf, proc.states[leaf].summary, proc.states[leaf].rules)
                        for leaf in config),
            now=now_dt,
            day_kind=day_kind,
            steps=sum(1 for e in self.history if e.kind == "fire"),
            facts=self.current_facts,
            clocks=tuple(clocks),
            actions=actions,
            blocked=tuple(blocked),
            terminal=is_terminal(proc, config),
        )

    # -- explanations -----------------------------------------------------------------------
    def explain(self, trigger: str) -> Explanation:
        """Why ``trigger`` can or cannot be taken now, citing guards and rules."""
        proc = self.procedure
        config = self.configuration
        where = tuple((leaf, proc.states[leaf].summary) for leaf in config)
        allowed = self.allowed()
        if trigger not in proc.triggers:
            hint = did_you_mean(trigger, proc.triggers)
            return Explanation(
                trigger, "unknown", config, where,
                (f"{proc.id} has no action called {trigger!r}.",),
                allowed_now=allowed, hint=hint)
        options = [o for o in self.machine.options(self.case)
                   if o.transition.trigger == trigger]
        enabled = [o for o in options if o.enabled]
        if enabled:
            t = enabled[0].transition
            return Explanation(
                trigger, "allowed", config, where,
                (f"{trigger} is allowed now: {t.summary}",),
                rules=tuple(rule_view(r) for r in t.rules), allowed_now=allowed)
        if options:
            option = options[0]
            t = option.transition
            reasons = [f"{trigger} is offered from {describe(config)}, but not for this "
                       "case now."]
            guards = tuple((g, GUARDS[g].summary if g in GUARDS else "(unregistered guard)")
                           for g in option.blocked_by)
            for g, summary in guards:
                reasons.append(f"Guard {g} does not hold. It needs: {summary}")
            if option.waiting_for:
                reasons.append("It waits for the case to be in "
                               + " or ".join(option.waiting_for) + " as well.")
            return Explanation(
                trigger, "blocked", config, where, tuple(reasons), guards=guards,
                rules=tuple(rule_view(r) for r in t.rules), allowed_now=allowed)
        sources: list[StateId] = []
        rules: list[RuleId] = []
        for t in proc.transitions:
            if t.trigger != trigger:
                continue
            for s in t.sources:
                if s not in sources:
                    sources.append(s)
            for r in t.rules:
                if r not in rules:
                    rules.append(r)
        return Explanation(
            trigger, "not_here", config, where,
            (f"{trigger} is not offered from {describe(config)}; it is offered from "
             f"{' or '.join(sources)}.",),
            offered_from=tuple(sources), rules=tuple(rule_view(r) for r in rules),
            allowed_now=allowed)

    def _why_all(self) -> str:
        proc = self.procedure
        config = self.configuration
        lines = [f"The case is in {describe(config)}."]
        allowed = self.allowed()
        if allowed:
            lines.append("Allowed now: " + ", ".join(allowed) + ".")
        for option in self.machine.options(self.case):
            if option.enabled or option.transition.trigger in allowed:
                continue
            lines.append(f"Not now: {option.transition.trigger}: "
                         + _blocked_reason(option.blocked_by, option.waiting_for) + ".")
        others = len(proc.triggers) - len(
            {o.transition.trigger for o in self.machine.options(self.case)})
        lines.append(f"The other {others} actions of {proc.id} are not offered from here; "
                     "'why NAME' says where each one is.")
        return "\n".join(lines)

    # -- commands ---------------------------------------------------------------------------
    def apply(self, text: str) -> Result:
        """Carry out one typed command and return what happened (never raises on input)."""
        try:
            command = parse_command(text)
        except CommandError as exc:
            return self._result(text, "invalid", [Note(str(exc), "alert")])
        handler = getattr(self, f"_do_{command.verb}")
        result: Result = handler(command)
        return result

    def _result(self, command: str, status: Status, notes: Iterable[Note] = (),
                **kwargs: object) -> Result:
        return Result(command.strip(), status, self.screen(), tuple(notes),
                      **kwargs)  # type: ignore[arg-type]

    def _do_look(self, command: Command) -> Result:
        return self._result(command.text, "ok", changed=True)

    def _do_help(self, command: Command) -> Result:
        return self._result(command.text, "ok", text=HELP)

    def _do_quit(self, command: Command) -> Result:
        return self._result(command.text, "quit")

    def _do_history(self, command: Command) -> Result:
        return self._result(command.text, "ok", text=self.history_text())

    def _do_facts(self, command: Command) -> Result:
        text = "Case facts (the guards read these; change one with 'set NAME=true'):\n"
        text += "\n".join(f"  {k} = {'true' if v else 'false'}"
                          for k, v in self.current_facts.items())
        used = sorted({g for t in self.procedure.transitions for g in t.guards}
                      | {d.when for d in self.procedure.deadlines if d.when})
        if used:
            ctx = self.case.guard_context()
            text += "\nGuards in this procedure, for this case now:\n"
            text += "\n".join(
                f"  {g}: {'holds' if GUARDS[g].fn(ctx) else 'does not hold'} "
                f"({GUARDS[g].summary})" for g in used if g in GUARDS)
        return self._result(command.text, "ok", text=text)

    def _do_set(self, command: Command) -> Result:
        changes = tuple((k, v) for k, v in command.facts
                        if bool(self.case.facts.get(k)) != v)
        if not changes:
            return self._result(command.text, "ok",
                                [Note("the facts are already so; nothing changed")])
        self._effects.append(_Effect("set", facts=changes))
        entry = self._perform(self._effects[-1])
        self.commands.append("set " + ", ".join(f"{k}={'true' if v else 'false'}"
                                                for k, v in command.facts))
        return self._result(command.text, "ok", [Note(entry.text)], changed=True)

    def _do_undo(self, command: Command) -> Result:
        if not self._effects:
            return self._result(command.text, "ok", [Note("nothing to undo")])
        undone = self.history[-1]
        self._effects.pop()
        self._rebuild()
        self.commands.append("undo")
        what = {"fire": f"undid {undone.text}", "advance": "undid the clock move",
                "set": f"undid {undone.text}"}[undone.kind]
        return self._result(command.text, "ok",
                            [Note(f"{what}; back to {describe(self.configuration)} at "
                                  f"{_fmt_time(self._dt(self.now))}")], changed=True)

    def _do_why(self, command: Command) -> Result:
        if command.number is not None:
            allowed = self.allowed()
            if not 1 <= command.number <= len(allowed):
                return self._result(command.text, "invalid",
                                    [Note(f"there is no action {command.number} now", "alert")])
            name = allowed[command.number - 1]
        elif command.name:
            name = command.name
        else:
            self.commands.append("why")
            return self._result(command.text, "ok", text=self._why_all())
        self.commands.append(f"why {name}")
        return self._result(command.text, "ok", explanation=self.explain(name))

    def _do_advance(self, command: Command) -> Result:
        if command.until is not None:
            until = self.calendar.to_hours(command.until)
            if until <= self.now:
                return self._result(command.text, "invalid", [Note(
                    f"the clock is already at {_fmt_time(self._dt(self.now))}; it only "
                    "moves forward (use undo to go back)", "alert")])
        else:
            assert command.duration is not None
            try:
                until = self._after(self.now, command.duration)
                beyond = self._dt(until).date() > CALENDAR_LAST
            except (OverflowError, ValueError):  # past the year 9999
                beyond = True
            if beyond:
                return self._result(command.text, "invalid", [Note(
                    _past_the_calendar(command.duration) + f"; the clock is at "
                    f"{_fmt_time(self._dt(self.now))}", "alert")])
        before = self.now
        self._effects.append(_Effect("advance", until=until))
        self._perform(self._effects[-1])
        self.commands.append(_normal_advance(command))
        notes = [Note(f"clock moved from {_fmt_time(self._dt(before))} to "
                      f"{_fmt_time(self._dt(self.now))}")]
        for clock in sorted(self.case.clocks.values(), key=lambda c: c.deadline.id):
            if clock.due is not None and before <= clock.due < self.now:
                notes.append(Note(
                    f"MISSED: {clock.deadline.id} was due {_fmt_due(self._dt(clock.due))} "
                    f"and is now overdue [{', '.join(clock.deadline.rules)}]: "
                    f"{clock.deadline.summary}", "alert"))
        return self._result(command.text, "ok", notes, changed=True)

    def _after(self, t: SimHours, text: str) -> SimHours:
        duration = parse_duration_text(text)
        if duration.unit == "working_days":
            when = self._dt(t)
            target = self.calendar.add_working_days(when.date(), duration.value)
            return self.calendar.to_hours(datetime.combine(target, when.time()))
        return self.calendar.earliest(t, duration)

    def _do_save(self, command: Command) -> Result:
        return self._result(command.text, "ok", save=(command.name, self.transcript()))

    def _do_pick(self, command: Command) -> Result:
        allowed = self.allowed()
        assert command.number is not None
        if not 1 <= command.number <= len(allowed):
            span = f"1 to {len(allowed)}" if allowed else "none: nothing is allowed now"
            return self._result(command.text, "invalid", [
                Note(f"there is no action {command.number} now (numbers: {span})", "alert")])
        return self._fire(command.text, allowed[command.number - 1])

    def _do_act(self, command: Command) -> Result:
        return self._fire(command.text, command.name)

    def _fire(self, typed: str, trigger: TriggerId) -> Result:
        effect = _Effect("fire", trigger=trigger)
        try:
            entry = self._perform(effect)
        except IllegalMove:
            # Recorded as 'why' so a saved walk replays the same explanation, legally.
            self.commands.append(f"why {trigger}")
            return self._result(typed, "illegal",
                                [Note(f"{trigger} is not allowed now", "alert")],
                                explanation=self.explain(trigger))
        self._effects.append(effect)
        self.commands.append(trigger)
        assert entry.fired is not None
        return self._result(typed, "ok", _fire_notes(self, entry.fired), changed=True)

    # -- history and transcripts ------------------------------------------------------------
    def history_text(self) -> str:
        """What has happened so far, one line per change."""
        if not self.history:
            return "Nothing has happened yet: the case has just been referred."
        lines = []
        for i, entry in enumerate(self.history, 1):
            when = _fmt_time(self._dt(entry.time))
            if entry.fired is not None:
                step = entry.fired.step
                verdicts = "".join(f"; {v.deadline_id} {v.outcome}"
                                   for v in entry.fired.verdicts)
                lines.append(f"{i:3}. {when}  {step.trigger}: {describe(step.before)} -> "
                             f"{describe(step.after)} [{', '.join(step.rules)}]{verdicts}")
            else:
                lines.append(f"{i:3}. {when}  {entry.text}")
        return "\n".join(lines)

    def transcript(self, comments: Sequence[str] = ()) -> str:
        """This walk as a transcript (format version 1) that ``--replay`` runs again."""
        return format_transcript(self.procedure.id, self.start_date, self.facts,
                                 self.commands, comments)


def _blocked_reason(guards: Sequence[str], waiting: Sequence[str]) -> str:
    parts = [f"guard {g} does not hold" for g in guards]
    if waiting:
        parts.append("waits for " + " or ".join(waiting))
    return "; ".join(parts) or "not available"


def _normal_advance(command: Command) -> str:
    if command.until is not None:
        return f"advance to {command.until:%Y-%m-%d %H:%M}"
    return f"advance {command.duration}"


def _fire_notes(session: WalkSession, fired: FireResult) -> list[Note]:
    step = fired.step
    notes = [Note(f"{step.trigger}: {describe(step.before)} -> {describe(step.after)} "
                  f"[{', '.join(step.rules)}]")]
    notes.extend(_verdict_note(session, v) for v in fired.verdicts)
    for deadline_id in fired.started:
        clock = session.case.clocks.get(deadline_id)
        if clock is None:
            continue
        due = (f"due {_fmt_due(session.calendar.to_datetime(clock.due))}"
               if clock.due is not None else "")
        earliest = (f"not before {_fmt_time(session.calendar.to_datetime(clock.earliest))}"
                    if clock.earliest is not None else "")
        notes.append(Note(f"clock started: {deadline_id} "
                          f"({'; '.join(x for x in (due, earliest) if x)})"))
    return notes


def _verdict_note(session: WalkSession, v: DeadlineVerdict) -> Note:
    rules = f" [{', '.join(v.rules)}]"
    if v.outcome == "met":
        return Note(f"deadline met: {v.deadline_id}{rules}", "good")
    if v.outcome == "cancelled":
        return Note(f"deadline cancelled (no longer applies): {v.deadline_id}{rules}")
    cal = session.calendar
    if v.due is not None and v.ended > v.due:
        why = f"it was due {_fmt_due(cal.to_datetime(v.due))}"
    elif v.earliest is not None:
        why = f"too early: not before {_fmt_time(cal.to_datetime(v.earliest))}"
    else:
        why = "out of time"
    return Note(f"deadline MISSED: {v.deadline_id}{rules}: {why}", "alert")


def _fmt_time(dt: datetime) -> str:
    return dt.strftime("%a %d %b %Y %H:%M")


def _fmt_due(dt: datetime) -> str:
    if dt.time() == time(0, 0):
        return "end of " + (dt - timedelta(days=1)).strftime("%a %d %b %Y")
    return _fmt_time(dt)


# -- rendering --------------------------------------------------------------------------------
_RED = "\x1b[31;1m"
_GREEN = "\x1b[32m"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"


def _paint(text: str, code: str, colour: bool) -> str:
    return f"{code}{text}{_RESET}" if colour else text


def _rule_line(rule: RuleView) -> str:
    clause = f", {rule.clause}" if rule.clause else ""
    summary = f" {rule.summary}" if rule.summary else ""
    return f"{rule.id}:{summary} ({rule.document}{clause})"


def render_screen(screen: Screen, colour: bool = False) -> str:
    """The screen as text; overdue clocks say MISSED (and are red when ``colour``)."""
    lines = [_paint(f"== {screen.procedure} | step {screen.steps} | "
                    f"{_fmt_time(screen.now)} ({screen.day_kind}) ==", _BOLD, colour)]
    lines.append("Where the case is:")
    for leaf, summary, rules in screen.where:
        lines.append(f"  {leaf}: {summary} [{', '.join(rules)}]")
    true_facts = {k: v for k, v in screen.facts.items() if v}
    lines.append(f"Case facts: {format_facts(true_facts, only_true=True)}")
    if screen.clocks:
        lines.append("Deadlines running:")
        for c in screen.clocks:
            cited = f"[{', '.join(c.rules)}]"
            parts = []
            if c.due is not None:
                if c.overdue:
                    parts.append(_paint(f"MISSED: overdue, was due {_fmt_due(c.due)}", _RED,
                                        colour))
                else:
                    left = c.working_days_left
                    extra = "" if left is None else (
                        " (today)" if left == 0 else
                        f" ({left} working day{'s' if left != 1 else ''} left)")
                    parts.append(f"due {_fmt_due(c.due)}{extra}")
            if c.earliest is not None:
                note = " (too early to end it now)" if c.too_early else ""
                parts.append(f"not before {_fmt_time(c.earliest)}{note}")
            lines.append(f"  {c.deadline_id}: {'; '.join(parts)} {cited}")
            lines.append(f"      {c.summary}")
    else:
        lines.append("Deadlines running: none")
    if screen.actions:
        lines.append("Actions allowed now:")
        for a in screen.actions:
            lines.append(f"  {a.number}. {a.trigger}: {a.summary}")
            for r in a.rules:
                lines.append(f"       {_rule_line(r)}")
    if screen.blocked:
        lines.append("Offered here but not for this case now (type 'why NAME'):")
        for b in screen.blocked:
            lines.append(f"  - {b.trigger}: {b.reason}")
    if screen.stuck:
        lines.append(_paint(f"stuck: nothing leads on from {describe(screen.configuration)}, "
                            "and the case may not end there", _RED, colour))
    elif screen.terminal:
        lines.append("The case may end here (it rests in a final state).")
    return "\n".join(lines)


def render_explanation(e: Explanation, colour: bool = False) -> str:
    """An explanation as text: where the case is, what blocks the action, which rules."""
    title = {"allowed": f"{e.trigger} is allowed now.",
             "blocked": f"Why not {e.trigger}? A condition blocks it.",
             "not_here": f"Why not {e.trigger}? It is not offered from here.",
             "unknown": f"Why not {e.trigger}? There is no such action."}[e.kind]
    lines = [_paint(title, _RED if e.kind != "allowed" else _BOLD, colour)]
    lines.append("  The case is in " + "; ".join(f"{s} ({summary})" for s, summary in e.where))
    lines.extend(f"  {r}" for r in e.reasons)
    if e.hint:
        lines.append(f"  Did you mean {e.hint!r}?")
    if e.rules:
        lines.append("  The rules behind it:")
        lines.extend(f"    {_rule_line(r)}" for r in e.rules)
    if e.kind != "allowed":
        lines.append("  Allowed now: " + (", ".join(e.allowed_now) if e.allowed_now
                                           else "nothing"))
    return "\n".join(lines)


def render_result(result: Result, colour: bool = False, screen: bool = True) -> str:
    """What a command did, as text; the screen follows when the case or clock changed."""
    parts: list[str] = []
    for note in result.notes:
        code = {"alert": _RED, "good": _GREEN, "info": ""}[note.level]
        parts.append(_paint(note.text, code, colour) if code else note.text)
    if result.explanation is not None:
        parts.append(render_explanation(result.explanation, colour))
    if result.text:
        parts.append(result.text)
    if screen and result.changed:
        parts.append(render_screen(result.screen, colour))
    return "\n".join(parts)


# -- transcripts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transcript:
    """A saved walk: where it starts, the case facts, and each command with its line."""

    procedure: str | None
    start_date: date | None
    facts: Mapping[str, bool]
    commands: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class CounterexampleStep:
    """One numbered line of a ``cpsim check`` counterexample."""

    line: int
    before: Config
    trigger: TriggerId
    rules: tuple[RuleId, ...]
    after: Config


@dataclass(frozen=True)
class Counterexample:
    """A run printed by ``cpsim check``: the finding, its steps, and where it is stuck."""

    title: str
    line: int
    steps: tuple[CounterexampleStep, ...]
    stuck: Config | None = None
    also: tuple[str, ...] = ()


WalkFile = Transcript | tuple[Counterexample, ...]


def format_transcript(procedure: str, start_date: date, facts: Mapping[str, bool],
                      commands: Iterable[str], comments: Sequence[str] = ()) -> str:
    """A transcript's text (format version 1).

    >>> print(format_transcript("west-midlands-2014", date(2025, 4, 1), {}, ["1"]))
    # cpsim walk transcript: replay with  cpsim walk west-midlands-2014 --replay FILE
    cpsim-walk: 1
    procedure: west-midlands-2014
    start-date: 2025-04-01
    facts: none
    > 1
    <BLANKLINE>
    """
    lines = [f"# cpsim walk transcript: replay with  cpsim walk {procedure} --replay FILE"]
    lines.extend(f"# {c}" if c else "#" for c in comments)
    lines += [
        f"cpsim-walk: {TRANSCRIPT_VERSION}",
        f"procedure: {procedure}",
        f"start-date: {start_date.isoformat()}",
        f"facts: {format_facts({k: v for k, v in facts.items() if v}, only_true=True)}",
    ]
    lines.extend(f"> {c}" for c in commands)
    return "\n".join(lines) + "\n"


def _config(text: str) -> Config:
    return tuple(part.strip() for part in text.split(" + "))


def parse_walk_file(text: str, name: str) -> WalkFile:
    """Read a transcript, or the counterexamples in saved ``cpsim check`` output.

    Raises:
        InputError: every problem, each with the file name and line number.
    """
    lines = text.splitlines()
    for raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if _VERSION.match(stripped):
            return _parse_transcript(lines, name)
        break
    if any(_STEP.match(raw) or _STUCK.match(raw) for raw in lines):
        return _parse_counterexamples(lines, name)
    first = next((i for i, raw in enumerate(lines, 1)
                  if raw.strip() and not raw.strip().startswith("#")), None)
    raise InputError([Problem(
        name, first, "",
        f"not a walk transcript (its first line should be 'cpsim-walk: {TRANSCRIPT_VERSION}')"
        " nor `cpsim check` output with a counterexample")])


_HEADER_KEYS = ("procedure", "start-date", "facts")


def _parse_transcript(lines: list[str], name: str) -> Transcript:
    problems: list[Problem] = []
    header: dict[str, str] = {}
    commands: list[tuple[int, str]] = []
    seen_version = False
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        version = _VERSION.match(stripped)
        if version and not seen_version:
            seen_version = True
            if version.group(1) != str(TRANSCRIPT_VERSION):
                problems.append(Problem(
                    name, number, "cpsim-walk",
                    f"transcript format version {version.group(1) or '(none)'} is not one "
                    f"this cpsim reads (it reads version {TRANSCRIPT_VERSION})"))
            continue
        header_match = _HEADER.match(stripped)
        if not commands and not stripped.startswith(">") and header_match:
            key, value = header_match.group(1), header_match.group(2)
            if key not in _HEADER_KEYS:
                problems.append(Problem(name, number, key, "not a transcript header",
                                        hint=did_you_mean(key, _HEADER_KEYS)))
            elif key in header:
                problems.append(Problem(name, number, key, "given twice"))
            else:
                header[key] = value
                if key == "start-date":
                    try:
                        date.fromisoformat(value)
                    except ValueError:
                        problems.append(Problem(name, number, key,
                                                "not a date (write YYYY-MM-DD)", value))
                elif key == "facts" and value.lower() not in ("", "none"):
                    try:
                        parse_facts(value)
                    except ValueError as exc:
                        problems.append(Problem(name, number, key, str(exc)))
            continue
        command = stripped[1:].strip() if stripped.startswith(">") else stripped
        try:
            parse_command(command)
        except CommandError as exc:
            problems.append(Problem(name, number, "command", str(exc), command))
            continue
        commands.append((number, command))
    if problems:
        raise InputError(problems)
    facts_text = header.get("facts", "")
    facts = {} if facts_text.lower() in ("", "none") else parse_facts(facts_text)
    start = header.get("start-date")
    return Transcript(header.get("procedure"), date.fromisoformat(start) if start else None,
                      facts, tuple(commands))


@dataclass
class _Group:
    title: str
    line: int
    steps: list[CounterexampleStep] = field(default_factory=list)
    stuck: Config | None = None


def _parse_counterexamples(lines: list[str], name: str) -> tuple[Counterexample, ...]:
    problems: list[Problem] = []
    groups: list[_Group] = []
    previous = ""
    current: _Group | None = None
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if stripped == "counterexample:":
            current = _Group(previous, number)
            groups.append(current)
            continue
        step = _STEP.match(raw)
        stuck = _STUCK.match(raw)
        if (step or stuck) and (current is None or current.stuck is not None):
            current = _Group(previous or "counterexample", number)
            groups.append(current)
        if step and current is not None:
            expected = len(current.steps) + 1
            if int(step.group(1)) != expected:
                problems.append(Problem(name, number, "counterexample",
                                        f"step {step.group(1)} where step {expected} was "
                                        "expected"))
            before, after = _config(step.group(2)), _config(step.group(5))
            if current.steps and current.steps[-1].after != before:
                problems.append(Problem(
                    name, number, "counterexample",
                    f"this step starts in {describe(before)} but the step before it ended "
                    f"in {describe(current.steps[-1].after)}"))
            rules = tuple(r.strip() for r in step.group(4).split(",") if r.strip())
            current.steps.append(CounterexampleStep(number, before, step.group(3), rules,
                                                    after))
        elif stuck and current is not None:
            current.stuck = _config(stuck.group(1))
        elif stripped:
            previous = stripped
            if current is not None and (current.steps or current.stuck):
                current = None
    if problems:
        raise InputError(problems)
    out: list[Counterexample] = []
    for g in groups:
        steps = tuple(g.steps)
        if not steps and g.stuck is None:
            continue
        for i, existing in enumerate(out):
            if _same_run(existing.steps, steps) and existing.stuck == g.stuck:
                out[i] = Counterexample(existing.title, existing.line, existing.steps,
                                        existing.stuck, (*existing.also, g.title))
                break
        else:
            out.append(Counterexample(g.title, g.line, steps, g.stuck))
    if not out:
        raise InputError([Problem(name, None, "", "no counterexample steps found")])
    return tuple(out)


def _same_run(a: Sequence[CounterexampleStep], b: Sequence[CounterexampleStep]) -> bool:
    return [(s.before, s.trigger, s.after) for s in a] == [(s.before, s.trigger, s.after)
                                                          for s in b]


# -- replay ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayStep:
    """One command of a replay, with its result and any checks made along the way."""

    command: str
    line: int | None
    result: Result
    notes: tuple[Note, ...] = ()


@dataclass
class Replay:
    """A replayed walk: the opening screen, each step, and whether it all went as written.

    Attributes:
        ok: Every command was legal (and, for a counterexample, every configuration
            matched the printed one).
        failure: Why the replay stopped, when it did.
    """

    title: str
    session: WalkSession
    start: Screen
    intro: tuple[Note, ...] = ()
    steps: list[ReplayStep] = field(default_factory=list)
    ok: bool = True
    failure: str | None = None
    outro: tuple[Note, ...] = ()


def replay_transcript(procedure: Procedure, transcript: Transcript,
                      start_date: date | None = None,
                      facts: Mapping[str, bool] | None = None) -> Replay:
    """Run a transcript's commands on a new walk; stop at the first illegal one.

    ``start_date`` and ``facts`` (when given) override the transcript's own.
    """
    merged = dict(transcript.facts)
    merged.update(facts or {})
    session = WalkSession(procedure, start_date or transcript.start_date or DEFAULT_START,
                          merged)
    intro: list[Note] = []
    if transcript.procedure and transcript.procedure != procedure.id:
        intro.append(Note(f"note: this transcript was recorded on {transcript.procedure}; "
                          f"replaying it on {procedure.id}"))
    replay = Replay(f"replay of a walk through {procedure.id}", session, session.screen(),
                    tuple(intro))
    for line, command in transcript.commands:
        result = session.apply(command)
        replay.steps.append(ReplayStep(command, line, result))
        if result.status in ("illegal", "invalid"):
            replay.ok = False
            replay.failure = (f"line {line}: {command!r} "
                              + ("is not allowed at this point" if result.status == "illegal"
                                 else "could not be carried out"))
            break
        if result.status == "quit":
            break
    return replay


def choose_facts(procedure: Procedure, triggers: Sequence[TriggerId]) -> dict[str, bool]:
    """The simplest case facts under which ``triggers`` can all fire in order.

    Tries every combination of the registered facts, fewest true first; falls back to no
    facts when none works (the replay then shows where the run is blocked).
    """
    combos = sorted(itertools.product((False, True), repeat=len(FACTS)),
                    key=lambda c: (sum(c), [not x for x in c]))
    for combo in combos:
        facts: dict[str, bool] = {k: v for k, v in zip(FACTS, combo, strict=True) if v}
        walk = WalkSession(procedure, DEFAULT_START, facts)
        try:
            for trigger in triggers:
                walk.machine.fire(walk.case, trigger, walk.now)
        except IllegalMove:
            continue
        return facts
    return {}


def replay_counterexample(procedure: Procedure, cx: Counterexample,
                          start_date: date | None = None,
                          facts: Mapping[str, bool] | None = None) -> Replay:
    """Step through a ``cpsim check`` counterexample, checking each configuration.

    Without ``facts``, picks the simplest facts under which every step's guards hold (the
    checker treats guards as open). The replay fails (``ok`` false) when a step is illegal
    here, when the case is not where the counterexample says, or when the counterexample
    says the case is stuck but something still leads on.
    """
    chosen = dict(facts) if facts is not None else choose_facts(
        procedure, [s.trigger for s in cx.steps])
    session = WalkSession(procedure, start_date or DEFAULT_START, chosen)
    intro = [Note(f"counterexample (line {cx.line}): {cx.title}")]
    intro.extend(Note(f"  the same run is the counterexample of: {t}") for t in cx.also)
    if facts is None and chosen:
        intro.append(Note(f"facts chosen so the run's guards hold: "
                          f"{format_facts(chosen, only_true=True)}"))
    intro.append(Note("every step is taken at the same moment on the clock; the checker's "
                      "runs have no times"))
    replay = Replay(f"counterexample: {cx.title}", session, session.screen(), tuple(intro))

    def fail(message: str, line: int) -> Replay:
        replay.ok = False
        replay.failure = f"line {line}: {message}"
        return replay

    for step in cx.steps:
        here = session.configuration
        if here != step.before:
            return fail(f"the counterexample has the case in {describe(step.before)}, but "
                        f"here it is in {describe(here)}", step.line)
        result = session.apply(step.trigger)
        checks: list[Note] = []
        if result.status == "ok" and session.configuration != step.after:
            checks.append(Note(f"expected {describe(step.after)} as the counterexample "
                               f"says, but the case is in {describe(session.configuration)}",
                               "alert"))
        elif result.status == "ok":
            checks.append(Note(f"as the counterexample says: now in {describe(step.after)}"))
        replay.steps.append(ReplayStep(step.trigger, step.line, result, tuple(checks)))
        if result.status != "ok":
            return fail(f"{step.trigger} is not allowed at this point", step.line)
        if checks and checks[0].level == "alert":
            return fail(checks[0].text, step.line)
    if cx.stuck is not None:
        screen = session.screen()
        line = cx.steps[-1].line + 1 if cx.steps else cx.line
        if session.configuration != cx.stuck:
            return fail(f"the counterexample says the case is stuck in {describe(cx.stuck)},"
                        f" but it is in {describe(session.configuration)}", line)
        if screen.actions:
            return fail(f"the counterexample says nothing leads on from {describe(cx.stuck)},"
                        " but here the case can still: "
                        + ", ".join(a.trigger for a in screen.actions), line)
        replay.outro = (Note(f"stuck: nothing leads on from {describe(cx.stuck)}, as the "
                             "counterexample says; this is how the procedure goes wrong",
                             "alert"),)
    else:
        replay.outro = (Note(f"the counterexample ends here: {cx.title}"),)
    return replay


def render_replay(replay: Replay, colour: bool = False) -> str:
    """A replay as text: the opening screen, then each command and what it did."""
    parts = [_paint(f"### {replay.title}", _BOLD, colour)]
    parts.extend(n.text for n in replay.intro)
    parts.append(render_screen(replay.start, colour))
    for step in replay.steps:
        where = f"  (line {step.line})" if step.line is not None else ""
        parts.append(f"\nwalk> {step.command}{where}")
        body = render_result(step.result, colour, screen=False)
        if step.result.save is not None:
            body = (body + "\n" if body else "") + "(save skipped during a replay)"
        if body:
            parts.append(body)
        parts.extend(_paint(n.text, _RED, colour) if n.level == "alert" else n.text
                     for n in step.notes)
        if step.result.changed:
            parts.append(render_screen(step.result.screen, colour))
    parts.extend(_paint(n.text, _RED, colour) if n.level == "alert" else n.text
                 for n in replay.outro)
    if replay.ok:
        parts.append(f"replay finished: {len(replay.steps)} command"
                     f"{'s' if len(replay.steps) != 1 else ''}, all legal")
    else:
        parts.append(_paint(f"replay stopped: {replay.failure}", _RED, colour))
    return "\n".join(parts)

