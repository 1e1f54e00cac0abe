"""Runtime monitors: check a procedure's declared properties on one case as it moves.

The checker in :mod:`model.check` proves the properties over every path of the graph; these
monitors check them again on each real (simulated or walked) case, step by step, so an
engine bug or an unsound abstraction cannot hide. Safety properties are checked on every
step; liveness properties (existence, response) whenever the case comes to rest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from model.compiler import Step
from model.graph import ActiveStates, ByIdentity, Config, initial_events, is_terminal
from model.spec import EventRef, Procedure, Property


@dataclass(frozen=True, slots=True)
class Violation:
    """A declared property that one case broke, with the steps that led there."""

    case_id: str
    property_id: str
    rules: tuple[str, ...]
    message: str
    trace: tuple[Step, ...]


class _CaseTrack:
    """What the monitor remembers of one case.

    A plain class with its own ``__init__``: compiled, building one is a C call, where a
    dataclass's generated ``__init__`` would be a Python frame (one per case started).
    """

    __slots__ = ("pending", "scope_records", "seen", "trace")

    def __init__(self) -> None:
        """Nothing seen yet."""
        # the events it has had that a property asks about, by number (PropertyMonitor._number)
        self.seen: set[int] = set()
        self.scope_records: dict[str, set[str]] = {}
        self.pending: dict[str, Step] = {}
        self.trace: deque[Step] = deque(maxlen=TRACE_STEPS)


TRACE_STEPS = 200
"""Steps kept per case for a violation's trace (the most recent; the event log has all)."""

@dataclass(frozen=True, slots=True)
class _Quick:
    """What one step asks of the safety properties whose answer depends on the case.

    Worked out once per step shape (events, configurations and records): the properties
    that can only say one thing about such a step (absence, co-recorded, monotone,
    final) are answered then, and a step they break takes the full check; of the others,
    only those the step can concern at all are kept, to be answered per case by
    :meth:`PropertyMonitor._answer`.

    Attributes:
        before: The configuration the step leaves.
        after: The configuration it enters.
        records: What it records.
        held: The numbers of its events that a property asks whether a case has seen
            (:meth:`PropertyMonitor._numbered`).
        before_active: The states active before the step.
        after_active: The states active after it.
        full: Some property answered in advance breaks: check everything.
        checks: Each property left, in declared order, with what the step's events hold
            of it (as :meth:`PropertyMonitor._events` gives), and for a
            ``never_ends_without`` property whether its scope was active before the step
            and is after it (else None): such a check goes straight to
            :meth:`PropertyMonitor._scope`, the others through :meth:`PropertyMonitor._answer`.
    """

    before: Config
    after: Config
    records: tuple[str, ...]
    held: frozenset[int]
    before_active: frozenset[str]
    after_active: frozenset[str]
    full: bool
    checks: tuple[tuple[Property, tuple[bool, ...], tuple[bool, bool] | None], ...]


class PropertyMonitor:
    """Watches many cases of one procedure; report violations, never print.

    Args:
        procedure: The procedure whose properties to monitor.
        keep_trace: Keep each case's steps so a violation can show them (memory grows
            with the case's length; the simulator keeps only open cases).
    """

    def __init__(self, procedure: Procedure, keep_trace: bool = True) -> None:
        """Index the properties by pattern."""
        self.procedure = procedure
        self.keep_trace = keep_trace
        self._cases: dict[str, _CaseTrack] = {}
        self._active = ActiveStates(procedure)
        self._initial_events = frozenset(initial_events(procedure))
        # per never_ends_without property, its groups of records as sets
        self._groups = {p.id: tuple(frozenset(g) for g in p.records_any)
                        for p in procedure.properties if p.pattern == "never_ends_without"}
        self._rank = {
            p.id: {s: i for i, s in enumerate(p.order)} for p in procedure.properties
            if p.pattern == "monotone"
        }
        # what a step is checked against, worked out once: the safety properties in declared
        # order (liveness waits for the case to rest), and each scope's entry event
        self._safety = tuple(p for p in procedure.properties
                             if p.pattern not in ("existence",))
        self._scope_entry = {p.id: EventRef("enter", p.scope) for p in procedure.properties
                             if p.pattern == "never_ends_without" and p.scope is not None}
        self._tests = tuple(self._tested(p) for p in self._safety)
        # a step's events, with which tested events they hold, per events tuple (by identity:
        # the table machine reuses one tuple per move, so a run asks about a few hundred)
        self._seen_events: ByIdentity[tuple[frozenset[int],
                                             tuple[tuple[Property, tuple[bool, ...]], ...]]] = (
            ByIdentity())
        self._quick: ByIdentity[_Quick] = ByIdentity()
        # What a case has seen matters only for the events a property asks about later (what
        # a precedence requires, what an existence needs), so only those are kept, as
        # numbers: adding a step's events to what the case has seen, or asking whether it
        # has seen one, then hashes ints, not EventRefs (whose dataclass hash is a Python
        # call each time), and most steps add nothing.
        self._numbers: dict[EventRef, int] = {}
        self._watched = frozenset(
            e for p in procedure.properties for e in (
                p.requires if p.pattern == "precedence" else None,
                p.of if p.pattern == "existence" else None) if e is not None)
        self._initial_numbers = self._numbered(self._initial_events)
        # the numbers the seen checks ask about: each existence's event, each precedence's
        # requirement (the watched events, and only those)
        self._of_number = {p.id: self._number(p.of) for p in procedure.properties
                           if p.pattern == "existence" and p.of is not None}
        self._requires_number = {p.id: self._number(p.requires) for p in procedure.properties
                                 if p.pattern == "precedence" and p.requires is not None}
        # what starting a case checks, the same for every case: the absence properties its
        # initial events break, and the scopes they enter
        self._absent_at_start = tuple(p for p in procedure.properties
                                      if p.pattern == "absence" and p.of in self._initial_events)
        self._scopes_at_start = tuple(
            pid for pid, entry in self._scope_entry.items() if entry in self._initial_events)

    def _numbered(self, events: Iterable[EventRef]) -> frozenset[int]:
        """The numbers of those of ``events`` that a property asks whether a case has seen."""
        return frozenset(self._number(e) for e in events if e in self._watched)

    def _number(self, event: EventRef) -> int:
        """The event's number in this monitor (given on first sight)."""
        found = self._numbers.get(event)
        if found is None:
            found = self._numbers[event] = len(self._numbers)
        return found

    def _tested(self, p: Property) -> tuple[EventRef | None, ...]:
        """The events whose presence in a step a safety property looks at, in use order."""
        if p.pattern == "absence":
            return (p.of,)
        if p.pattern == "precedence":
            return (p.of, p.requires)
        if p.pattern == "never_ends_without":
            return (self._scope_entry.get(p.id),)
        if p.pattern == "final":
            return (None if p.state is None else EventRef("exit", p.state),)
        if p.pattern == "response":
            return (p.then, p.of)
        return ()

    def _events(self, events: tuple[EventRef, ...]
                ) -> tuple[frozenset[int], tuple[tuple[Property, tuple[bool, ...]], ...]]:
        """The step's events as a set of numbers, and the safety properties it may concern.

        Each comes with which of its tested events the step holds. A property that only
        looks at events (absence, precedence, response) is left out when none is held.
        """
        found = self._seen_events.get(events)
        if found is not None:
            return found
        held = frozenset(events)
        numbers = self._numbered(events)
        checks = []
        for p, tests in zip(self._safety, self._tests, strict=True):
            hit = tuple(e in held for e in tests)
            if p.pattern not in ("absence", "precedence", "response") or any(hit):
                checks.append((p, hit))
        found = (numbers, tuple(checks))
        self._seen_events.put(events, found)
        return found

    def start(self, case_id: str) -> list[Violation]:
        """Begin watching a new case at the procedure's initial configuration."""
        track = _CaseTrack()
        self._cases[case_id] = track
        track.seen.update(self._initial_numbers)
        out = [self._violation(case_id, p, f"{p.of} at the start")
               for p in self._absent_at_start]
        for scope in self._scopes_at_start:
            track.scope_records[scope] = set()
        return out

    def finish(self, case_id: str) -> None:
        """Stop watching a case (it has left the simulation)."""
        self._cases.pop(case_id, None)

    def _violation(self, case_id: str, p: Property, message: str) -> Violation:
        track = self._cases.get(case_id)
        trace = tuple(track.trace) if track else ()
        return Violation(case_id, p.id, p.rules, message, trace)

    def _quick_for(self, step: Step) -> _Quick:
        """The step's :class:`_Quick`, remembered by its events tuple's identity.

        :meth:`observe` reuses it for a step with that very tuple, configurations and
        records.
        """
        held, checks = self._events(step.events)
        before_active = self._active(step.before)
        after_active = self._active(step.after)
        full = False
        quick: list[tuple[Property, tuple[bool, ...], tuple[bool, bool] | None]] = []
        for p, hit in checks:
            if p.pattern in ("absence", "co_recorded", "monotone", "final"):
                # the same answer for every case: find out now whether it is a violation
                out: list[Violation] = []
                self._answer(step, p, hit, before_active, after_active, _CaseTrack(), out)
                full = full or bool(out)
            elif p.pattern == "never_ends_without":
                assert p.scope is not None
                was_in, now_in = p.scope in before_active, p.scope in after_active
                if was_in or now_in:
                    quick.append((p, hit, (was_in, now_in)))
            elif (p.pattern == "precedence" and hit[0]) or (
                    p.pattern == "response" and (hit[0] or hit[1])):
                quick.append((p, hit, None))  # the step's events concern it
        found = _Quick(step.before, step.after, step.records, held, before_active,
                       after_active, full, tuple(quick))
        self._quick.put(step.events, found)
        return found

    def observe(self, step: Step) -> list[Violation]:
        """Check one step of one case against every safety property."""
        track = self._cases.get(step.case_id)
        if track is None:
            track = self._cases[step.case_id] = _CaseTrack()
        if self.keep_trace:
            track.trace.append(step)
        quick = self._quick.get(step.events)
        if quick is None or quick.before is not step.before or quick.after is not step.after \
                or quick.records is not step.records:
            quick = self._quick_for(step)
        if quick.full:
            return self._observe_all(step, track)
        out: list[Violation] = []
        for p, hit, scope in quick.checks:
            if scope is not None:
                self._scope(step, p, track, out, hit[0], scope[0], scope[1])
            else:
                self._answer(step, p, hit, quick.before_active, quick.after_active, track, out)
        if quick.held:
            track.seen |= quick.held
        return out

    def _observe_all(self, step: Step, track: _CaseTrack) -> list[Violation]:
        """:meth:`observe` property by property, in declared order."""
        events, checks = self._events(step.events)
        before_active = self._active(step.before)
        after_active = self._active(step.after)
        out: list[Violation] = []
        for p, hit in checks:
            self._answer(step, p, hit, before_active, after_active, track, out)
        track.seen |= events
        return out

    def _answer(self, step: Step, p: Property, hit: tuple[bool, ...],
                before_active: frozenset[str], after_active: frozenset[str],
                track: _CaseTrack, out: list[Violation]) -> None:
        """Check one safety property on one step; what the step's events hold is ``hit``."""
        if p.pattern == "absence" and hit[0]:
            out.append(self._violation(step.case_id, p, f"{p.of} happened"))
        elif p.pattern == "precedence":
            assert p.of is not None and p.requires is not None
            if hit[0] and self._requires_number[p.id] not in track.seen and not hit[1]:
                out.append(self._violation(step.case_id, p,
                                           f"{p.of} before {p.requires}"))
        elif p.pattern == "never_ends_without":
            assert p.scope is not None
            was_in, now_in = p.scope in before_active, p.scope in after_active
            if was_in or now_in:  # else the step is nowhere near the scope
                self._scope(step, p, track, out, hit[0], was_in, now_in)
        elif p.pattern == "co_recorded":
            if p.if_records in step.records and not set(p.also) <= set(step.records):
                out.append(self._violation(step.case_id, p,
                                           f"{step.trigger} records {p.if_records} "
                                           f"without {', '.join(p.also)}"))
        elif p.pattern == "monotone":
            self._monotone(step, p, out)
        elif p.pattern == "final":
            assert p.state is not None
            left = p.state not in after_active or hit[0]
            if p.state in before_active and left:
                out.append(self._violation(step.case_id, p,
                                           f"{step.trigger} moved on from final {p.state}"))
        elif p.pattern == "response":
            assert p.of is not None and p.then is not None
            if hit[0]:
                track.pending.pop(p.id, None)
            elif hit[1]:
                track.pending.setdefault(p.id, step)

    def _scope(self, step: Step, p: Property, track: _CaseTrack, out: list[Violation],
               reentered: bool, was_in: bool, now_in: bool) -> None:
        pid = p.id  # read once: a Property's fields are Python lookups
        scopes = track.scope_records
        if was_in:
            recorded = scopes.get(pid)
            if recorded is None:
                recorded = scopes[pid] = set()
            recorded.update(step.records)  # each case's own set: updated in place
            if not now_in or reentered:
                if not any(g <= recorded for g in self._groups[pid]):
                    assert p.scope is not None
                    need = " or ".join("+".join(g) for g in p.records_any)
                    out.append(self._violation(step.case_id, p,
                                               f"left {p.scope} by {step.trigger} without "
                                               f"recording {need}"))
                del scopes[pid]
        if now_in and (not was_in or reentered):
            scopes[pid] = set(step.records)

    def _monotone(self, step: Step, p: Property, out: list[Violation]) -> None:
        rank = self._rank[p.id]
        proc = self.procedure
        for before, after in zip(step.before, step.after, strict=True):
            if before == after:
                continue
            low = next((s for s in proc.ancestors(before) if s in rank), None)
            high = next((s for s in proc.ancestors(after) if s in rank), None)
            if low is None:
                continue
            if high is not None and high != low and rank[high] < rank[low]:
                out.append(self._violation(step.case_id, p, f"went down from {low} to {high}"))
            if high is None and p.exits and not any(
                e in proc.ancestors(after) for e in p.exits
            ):
                out.append(self._violation(step.case_id, p,
                                           f"left the ladder at {low} for {after}"))

    def at_rest(self, case_id: str, config: Config) -> list[Violation]:
        """Check liveness properties when a case may end here (a terminal configuration)."""
        if not is_terminal(self.procedure, config):
            return []
        track = self._cases.get(case_id)
        if track is None:
            return []
        out = []
        for p in self.procedure.properties:
            if p.pattern == "existence" and self._of_number[p.id] not in track.seen:
                out.append(self._violation(case_id, p, f"came to rest without {p.of}"))
            if p.pattern == "response" and p.id in track.pending:
                out.append(self._violation(case_id, p,
                                           f"came to rest after {p.of} without {p.then}"))
        return out
