"""Step through a procedure by hand: the pure session behind ``cpsim walk``.

A :class:`WalkSession` holds one case on the compiled machine, the trainer's clock and the
history needed to undo. Each :class:`Move` (an action, a clock move, a change of facts, a
question) goes to :meth:`WalkSession.apply`, which returns a
:class:`~model.session_view.Result`: what happened, an explanation when the choice was
illegal, and the new screen. Reading typed commands and printing screens belong to the
command line (``cpsim/walk_commands.py``, ``cpsim/walk_render.py``); nothing here reads the
terminal or writes files.

The session records its moves in the walk transcript format (version 1), which
``cpsim walk --replay`` reads back and ``cpsim paths`` writes::

    # comments start with '#'
    cpsim-walk: 1
    procedure: west-midlands-2014
    start-date: 2025-04-01
    facts: interpreter_needed=true
    > decide_strategy_discussion
    > advance 3 hours
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from model.calendar import WorkingCalendar, parse_duration_text
from model.compiler import Case, CompiledProcedure, DeadlineVerdict, FireResult, IllegalMove
from model.errors import did_you_mean
from model.graph import Config, active_states, describe, is_terminal
from model.guards import FACTS, GUARDS
from model.session_view import (
    ActionView,
    BlockedView,
    ClockView,
    Coverage,
    Explanation,
    Note,
    Result,
    Screen,
    Status,
    format_due,
    format_facts,
    format_time,
    rule_view,
)
from model.spec import Procedure, Transition
from model.timescales import CALENDAR_FIRST, CALENDAR_LAST
from model.types import RuleId, SimHours, StateId, TriggerId

DEFAULT_START = date(2025, 4, 1)
"""The trainer's clock starts here unless told otherwise (never today: walks must replay)."""

DAY_START_HOUR = 9
"""The clock starts at 09:00 on the start date."""

TRANSCRIPT_VERSION = 1
"""The transcript format this module writes and reads."""

Verb = Literal[
    "look", "quit", "undo", "history", "facts", "set", "why", "advance", "save", "pick", "act",
]


@dataclass(frozen=True, slots=True)
class Move:
    """One thing the trainer asks of the session, already read from what they typed.

    Attributes:
        verb: What to do.
        text: The command as typed (trimmed), echoed in the result.
        name: The action (``act``, ``why``), the file (``save``) or empty.
        number: The action number for ``pick`` (or ``why N``).
        facts: The facts to set for ``set``.
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

    @staticmethod
    def act(trigger: TriggerId) -> Move:
        """Take the action called ``trigger``."""
        return Move("act", trigger, name=trigger)

    @staticmethod
    def advance(amount: str) -> Move:
        """Move the clock on by ``amount`` (e.g. ``3 working days``)."""
        return Move("advance", f"advance {amount}", duration=amount)


def past_the_calendar(amount: str) -> str:
    """Why a clock move is refused: it would leave the calendar.

    >>> past_the_calendar("99999 days")
    'cannot advance 99999 days: the calendar (its bank holidays) covers 2000-01-01 to 2050-12-31'
    """
    return (f"cannot advance {amount}: the calendar (its bank holidays) covers "
            f"{CALENDAR_FIRST.isoformat()} to {CALENDAR_LAST.isoformat()}")


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
        >>> walk.apply(Move.act("decide_strategy_discussion")).status
        'ok'
        >>> walk.apply(Move.act("plan_agreed")).status
        'illegal'
        >>> walk.apply(Move("undo", "undo")).screen.configuration
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
                                 f"clock moved to {format_time(self._dt(self.now))}")
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
    def apply(self, move: Move) -> Result:
        """Carry out one move and return what happened.

        An illegal action or an impossible clock move is an answer (status ``illegal`` or
        ``invalid``), not an exception; the case is then unchanged.
        """
        handler = getattr(self, f"_do_{move.verb}")
        result: Result = handler(move)
        return result

    def refuse(self, text: str, reason: str) -> Result:
        """The answer to a command that could not be read: nothing changes."""
        return self._result(text, "invalid", [Note(reason, "alert")])

    def answer(self, text: str, reply: str) -> Result:
        """An answer that is only text (such as help), with the screen unchanged."""
        return self._result(text, "ok", text=reply)

    def _result(self, command: str, status: Status, notes: Iterable[Note] = (),
                **kwargs: object) -> Result:
        return Result(command.strip(), status, self.screen(), tuple(notes),
                      **kwargs)  # type: ignore[arg-type]

    def _do_look(self, move: Move) -> Result:
        return self._result(move.text, "ok", changed=True)

    def _do_quit(self, move: Move) -> Result:
        return self._result(move.text, "quit")

    def _do_history(self, move: Move) -> Result:
        return self._result(move.text, "ok", text=self.history_text())

    def _do_facts(self, move: Move) -> Result:
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
        return self._result(move.text, "ok", text=text)

    def _do_set(self, move: Move) -> Result:
        changes = tuple((k, v) for k, v in move.facts
                        if bool(self.case.facts.get(k)) != v)
        if not changes:
            return self._result(move.text, "ok",
                                [Note("the facts are already so; nothing changed")])
        self._effects.append(_Effect("set", facts=changes))
        entry = self._perform(self._effects[-1])
        self.commands.append("set " + ", ".join(f"{k}={'true' if v else 'false'}"
                                                for k, v in move.facts))
        return self._result(move.text, "ok", [Note(entry.text)], changed=True)

    def _do_undo(self, move: Move) -> Result:
        if not self._effects:
            return self._result(move.text, "ok", [Note("nothing to undo")])
        undone = self.history[-1]
        self._effects.pop()
        self._rebuild()
        self.commands.append("undo")
        what = {"fire": f"undid {undone.text}", "advance": "undid the clock move",
                "set": f"undid {undone.text}"}[undone.kind]
        return self._result(move.text, "ok",
                            [Note(f"{what}; back to {describe(self.configuration)} at "
                                  f"{format_time(self._dt(self.now))}")], changed=True)

    def _do_why(self, move: Move) -> Result:
        if move.number is not None:
            allowed = self.allowed()
            if not 1 <= move.number <= len(allowed):
                return self._result(move.text, "invalid",
                                    [Note(f"there is no action {move.number} now", "alert")])
            name = allowed[move.number - 1]
        elif move.name:
            name = move.name
        else:
            self.commands.append("why")
            return self._result(move.text, "ok", text=self._why_all())
        self.commands.append(f"why {name}")
        return self._result(move.text, "ok", explanation=self.explain(name))

    def _do_advance(self, move: Move) -> Result:
        if move.until is not None:
            until = self.calendar.to_hours(move.until)
            if until <= self.now:
                return self._result(move.text, "invalid", [Note(
                    f"the clock is already at {format_time(self._dt(self.now))}; it only "
                    "moves forward (use undo to go back)", "alert")])
        else:
            assert move.duration is not None
            try:
                until = self._after(self.now, move.duration)
                beyond = self._dt(until).date() > CALENDAR_LAST
            except (OverflowError, ValueError):  # past the year 9999
                beyond = True
            if beyond:
                return self._result(move.text, "invalid", [Note(
                    past_the_calendar(move.duration) + f"; the clock is at "
                    f"{format_time(self._dt(self.now))}", "alert")])
        before = self.now
        self._effects.append(_Effect("advance", until=until))
        self._perform(self._effects[-1])
        self.commands.append(_normal_advance(move))
        notes = [Note(f"clock moved from {format_time(self._dt(before))} to "
                      f"{format_time(self._dt(self.now))}")]
        for clock in sorted(self.case.clocks.values(), key=lambda c: c.deadline.id):
            if clock.due is not None and before <= clock.due < self.now:
                notes.append(Note(
                    f"MISSED: {clock.deadline.id} was due {format_due(self._dt(clock.due))} "
                    f"and is now overdue [{', '.join(clock.deadline.rules)}]: "
                    f"{clock.deadline.summary}", "alert"))
        return self._result(move.text, "ok", notes, changed=True)

    def _after(self, t: SimHours, text: str) -> SimHours:
        duration = parse_duration_text(text)
        if duration.unit == "working_days":
            when = self._dt(t)
            target = self.calendar.add_working_days(when.date(), duration.value)
            return self.calendar.to_hours(datetime.combine(target, when.time()))
        return self.calendar.earliest(t, duration)

    def _do_save(self, move: Move) -> Result:
        return self._result(move.text, "ok", save=(move.name, self.transcript()))

    def _do_pick(self, move: Move) -> Result:
        allowed = self.allowed()
        assert move.number is not None
        if not 1 <= move.number <= len(allowed):
            span = f"1 to {len(allowed)}" if allowed else "none: nothing is allowed now"
            return self._result(move.text, "invalid", [
                Note(f"there is no action {move.number} now (numbers: {span})", "alert")])
        return self._fire(move.text, allowed[move.number - 1])

    def _do_act(self, move: Move) -> Result:
        return self._fire(move.text, move.name)

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
            when = format_time(self._dt(entry.time))
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


def _normal_advance(move: Move) -> str:
    if move.until is not None:
        return f"advance to {move.until:%Y-%m-%d %H:%M}"
    return f"advance {move.duration}"


def _fire_notes(session: WalkSession, fired: FireResult) -> list[Note]:
    step = fired.step
    notes = [Note(f"{step.trigger}: {describe(step.before)} -> {describe(step.after)} "
                  f"[{', '.join(step.rules)}]")]
    notes.extend(_verdict_note(session, v) for v in fired.verdicts)
    for deadline_id in fired.started:
        clock = session.case.clocks.get(deadline_id)
        if clock is None:
            continue
        due = (f"due {format_due(session.calendar.to_datetime(clock.due))}"
               if clock.due is not None else "")
        earliest = (f"not before {format_time(session.calendar.to_datetime(clock.earliest))}"
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
        why = f"it was due {format_due(cal.to_datetime(v.due))}"
    elif v.earliest is not None:
        why = f"too early: not before {format_time(cal.to_datetime(v.earliest))}"
    else:
        why = "out of time"
    return Note(f"deadline MISSED: {v.deadline_id}{rules}: {why}", "alert")


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

