"""Compile a procedure into one strict ``transitions`` machine that serves many cases.

The machine is hierarchical (nested states) and, when the procedure has orthogonal regions,
parallel. It never creates automatic ``to_<state>`` triggers and never ignores an invalid
trigger. Deadlines run on the case's own clock (simulation or trainer time, in hours from
the calendar's start date); the thread-based timeout states of ``transitions`` are not used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from transitions import MachineError
from transitions.extensions import HierarchicalMachine
from transitions.extensions.nesting import NestedState

from model.calendar import WorkingCalendar
from model.graph import (
    Config,
    active_states,
    apply,
    candidates,
    events_of,
    initial_configuration,
    initial_events,
    matched_source,
    when_in_holds,
)
from model.guards import evaluate
from model.records import Case as Case
from model.records import DeadlineVerdict as DeadlineVerdict
from model.records import FireResult as FireResult
from model.records import Outcome as Outcome
from model.records import RunningDeadline as RunningDeadline
from model.records import Step as Step
from model.spec import Deadline, EventRef, Procedure, Transition
from model.types import GuardId, RuleId, SimHours, StateId, TriggerId

_ROOT = "_case"
_MAIN = "_main"
_SEP = "."


class _State(NestedState):
    separator = _SEP


class _Machine(HierarchicalMachine):
    state_cls = _State


class IllegalMove(Exception):
    """A trigger that the procedure does not allow for this case now.

    Attributes:
        case_id: The case.
        configuration: Where the case is.
        trigger: What was asked for.
        allowed: The triggers allowed now (guards included).
        reason: Plain-English explanation.
        rules: Rule ids that explain the refusal, when a guard or rule blocks it.
    """

    def __init__(
        self,
        case_id: str,
        configuration: Config,
        trigger: str,
        allowed: tuple[TriggerId, ...],
        reason: str,
        rules: tuple[RuleId, ...] = (),
    ) -> None:
        """Build the message: case, state, trigger, and what is allowed there."""
        self.case_id = case_id
        self.configuration = configuration
        self.trigger = trigger
        self.allowed = allowed
        self.reason = reason
        self.rules = rules
        allowed_text = ", ".join(allowed) if allowed else "nothing (the case is at rest)"
        super().__init__(
            f"case {case_id} in {' + '.join(configuration)}: cannot {trigger!r}: {reason}. "
            f"Allowed now: {allowed_text}"
        )


class UnknownTrigger(IllegalMove):
    """The trigger is not part of the procedure at all."""


class NotAllowedHere(IllegalMove):
    """The trigger exists, but not from the case's current state."""


class GuardBlocked(IllegalMove):
    """The trigger exists here, but a guard or a state of another region blocks it.

    Attributes:
        guards: The guards that do not hold for this case.
    """

    def __init__(self, *args: Any, guards: tuple[GuardId, ...] = (), **kwargs: Any) -> None:
        """Keep the failing guards alongside the usual fields."""
        self.guards = guards
        super().__init__(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class Option:
    """A move the procedure offers from the case's current state.

    Attributes:
        enabled: True when it can be taken now for this case.
        blocked_by: Guards that do not hold (empty when enabled).
        waiting_for: ``when_in`` states of other regions, none of which is active.
    """

    transition: Transition
    enabled: bool
    blocked_by: tuple[GuardId, ...] = ()
    waiting_for: tuple[StateId, ...] = ()


class _MachineCase(Case):
    """A case the ``transitions`` machine moves: it sets its own methods on each one.

    A compiled :class:`Case` has no instance dict to hold them, so the machine gets this
    subclass, which has one; to everyone else it is a :class:`Case`.
    """


class CompiledProcedure:
    """A procedure compiled to a strict hierarchical ``transitions`` machine.

    Example:
        >>> from datetime import date
        >>> from model.loader import load_procedure
        >>> from model.calendar import WorkingCalendar
        >>> machine = CompiledProcedure(load_procedure("west-midlands-2014"),
        ...                             WorkingCalendar(date(2025, 4, 1)))
        >>> case, _ = machine.new_case("c1")
        >>> machine.configuration(case)
        ('referral',)
    """

    def __init__(self, procedure: Procedure, calendar: WorkingCalendar) -> None:
        """Build the machine from the procedure; nothing here reads files or the clock."""
        self.procedure = procedure
        self.calendar = calendar
        self._parallel = bool(procedure.regions)
        self._to_hsm: dict[StateId, str] = {sid: self._hsm_name(sid) for sid in procedure.states}
        self._from_hsm: dict[str, StateId] = {v: k for k, v in self._to_hsm.items()}
        self._deadlines_by_event: dict[EventRef, list[Deadline]] = {}
        for d in procedure.deadlines:
            self._deadlines_by_event.setdefault(d.start, []).append(d)
        self._triggers = frozenset(procedure.triggers)
        self._tops = top_level_states(procedure)
        self._machine = _Machine(
            model=None,
            states=self._hsm_states(),
            initial=_ROOT if self._parallel else self._to_hsm[procedure.initial],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=True,
        )
        for t in procedure.transitions:
            conditions = self._conditions(t)
            for source in t.sources:
                self._machine.add_transition(
                    t.trigger,
                    self._to_hsm[source],
                    None if t.internal else self._to_hsm[t.dest],
                    conditions=conditions,
                )

    # -- building ---------------------------------------------------------------------------
    def _hsm_name(self, sid: StateId) -> str:
        if not self._parallel:
            return sid
        if self.procedure.states[sid].region is not None:
            return f"{_ROOT}{_SEP}{sid}"
        return f"{_ROOT}{_SEP}{_MAIN}{_SEP}{sid}"

    def _hsm_tree(self, sid: StateId) -> dict[str, Any] | str:
        st = self.procedure.states[sid]
        if not st.is_compound:
            return st.name
        assert st.initial is not None
        return {
            "name": st.name,
            "initial": self.procedure.states[st.initial].name,
            "children": [self._hsm_tree(c) for c in st.children],
        }

    def _hsm_states(self) -> list[Any]:
        top = [
            sid for sid, st in self.procedure.states.items()
            if st.parent is None and st.region is None
        ]
        main = [self._hsm_tree(sid) for sid in top]
        if not self._parallel:
            return main
        regions: list[Any] = [
            {"name": _MAIN, "initial": self.procedure.initial, "children": main}
        ]
        regions.extend(self._hsm_tree(r) for r in self.procedure.regions)
        return [{"name": _ROOT, "parallel": regions}]

    def _conditions(self, t: Transition) -> list[str | Callable[..., bool | None]]:
        conditions: list[str | Callable[..., bool | None]] = []
        for guard in t.guards:
            conditions.append(_GuardCondition(guard))
        if t.when_in:
            conditions.append(_WhenInCondition(self, t))
        return conditions

    # -- cases ------------------------------------------------------------------------------
    def new_case(
        self, case_id: str, facts: Mapping[str, object] | None = None, at: SimHours = 0.0
    ) -> tuple[Case, tuple[str, ...]]:
        """A new case added to the ``transitions`` machine, and the clocks its entry starts.

        The engine's ``Machine`` protocol (``simulations.engine``) states the contract.
        """
        case = _MachineCase(case_id=case_id, facts=dict(facts or {}))
        self._machine.add_model(case)
        started: list[str] = []
        for event in initial_events(self.procedure):
            started.extend(self._start_clocks(case, event, at))
        return case, tuple(started)

    def release(self, case: Case) -> None:
        """Detach a finished case from the machine (its record rows stay valid)."""
        self._machine.remove_model(case)

    def configuration(self, case: Case) -> Config:
        """Where the case is: one leaf per region, main flow first."""
        raw = case.state
        names: list[str] = []
        stack: list[Any] = [raw]
        while stack:
            item = stack.pop(0)
            if isinstance(item, list | tuple):
                stack[0:0] = list(item)
            else:
                names.append(str(item))
        leaves = [self._from_hsm[n] for n in names]
        if not self._parallel:
            return tuple(leaves)
        order: dict[str | None, int] = {None: 0}
        order.update({r: i + 1 for i, r in enumerate(self.procedure.regions)})
        leaves.sort(key=lambda s: order[self.procedure.states[s].region])
        return tuple(leaves)

    def options(self, case: Case) -> tuple[Option, ...]:
        """Every move offered from the case's state, with whether it is enabled now."""
        config = self.configuration(case)
        ctx = case.guard_context()
        out: list[Option] = []
        for t in candidates(self.procedure, config, guard_ok=None):
            failing = tuple(g for g in t.guards if not evaluate(g, ctx))
            waiting = () if when_in_holds(self.procedure, config, t) else t.when_in
            out.append(Option(t, not failing and not waiting, failing, waiting))
        # Transitions gated on another region are still worth showing as "waiting".
        for t in self.procedure.transitions:
            if t.when_in and matched_source(self.procedure, config, t) is not None and not any(
                o.transition.id == t.id for o in out
            ):
                failing = tuple(g for g in t.guards if not evaluate(g, ctx))
                out.append(Option(t, False, failing, t.when_in))
        return tuple(out)

    def allowed_triggers(self, case: Case) -> tuple[TriggerId, ...]:
        """The triggers the case may fire now, sorted."""
        return tuple(sorted({o.transition.trigger for o in self.options(case) if o.enabled}))

    def fire(self, case: Case, trigger: TriggerId, at: SimHours) -> FireResult:
        """Fire ``trigger`` on ``case`` at time ``at`` (sim hours).

        Raises:
            UnknownTrigger: the procedure has no such trigger.
            NotAllowedHere: the trigger is not offered from the case's state.
            GuardBlocked: offered, but a guard fails or another region is not ready.
        """
        config = self.configuration(case)
        if trigger not in self._triggers:
            raise UnknownTrigger(case.case_id, config, trigger, self.allowed_triggers(case),
                                 "the procedure has no such trigger")
        options = [o for o in self.options(case) if o.transition.trigger == trigger]
        enabled = [o for o in options if o.enabled]
        if not options:
            raise NotAllowedHere(case.case_id, config, trigger, self.allowed_triggers(case),
                                 "the procedure does not offer it from here")
        if not enabled:
            blocked = options[0]
            parts = []
            if blocked.blocked_by:
                parts.append("guard " + ", ".join(blocked.blocked_by) + " does not hold")
            if blocked.waiting_for:
                parts.append("needs the case to be in " + " or ".join(blocked.waiting_for))
            raise GuardBlocked(case.case_id, config, trigger, self.allowed_triggers(case),
                               "; ".join(parts), blocked.transition.rules,
                               guards=blocked.blocked_by)
        transition = enabled[0].transition
        expected = apply(self.procedure, config, transition)
        fired = self._trigger(case, trigger)
        after = self.configuration(case)
        if not fired or after != expected:  # pragma: no cover - would be a compiler bug
            raise RuntimeError(
                f"machine disagrees with the specification on {trigger!r} from {config}: "
                f"expected {expected}, machine gave {after}"
            )
        events = events_of(self.procedure, config, after, transition)
        count_trigger(case, trigger, events, self._tops)
        verdicts: list[DeadlineVerdict] = []
        started: list[str] = []
        for event in events:
            verdicts.extend(self._close_clocks(case, event, at))
        for event in events:
            started.extend(self._start_clocks(case, event, at))
        step = Step(
            case_id=case.case_id,
            time=at,
            trigger=trigger,
            transition_id=transition.id,
            before=config,
            after=after,
            rules=transition.rules,
            records=transition.records,
            events=events,
        )
        return FireResult(step, tuple(verdicts), tuple(started))

    def raw_fire(self, case: Case, trigger: TriggerId) -> bool:
        """Fire straight on the ``transitions`` machine (no checks, no clocks).

        Used by the tests that show the machine and the graph allow the same moves.

        Raises:
            transitions.MachineError: when the machine refuses the trigger.
        """
        return self._trigger(case, trigger)

    def _trigger(self, case: Case, trigger: TriggerId) -> bool:
        if trigger not in self._triggers:
            raise MachineError(f"no such trigger {trigger!r}")
        return bool(self._machine.trigger_event(case, trigger))

    # -- clocks -----------------------------------------------------------------------------
    def _start_clocks(self, case: Case, event: EventRef, at: SimHours) -> list[str]:
        started: list[str] = []
        for d in self._deadlines_by_event.get(event, ()):
            if d.when is not None and not evaluate(d.when, case.guard_context()):
                continue
            if d.id in case.clocks and not d.repeats:
                continue
            due = self.calendar.due(at, d.within) if d.within else None
            earliest = self.calendar.earliest(at, d.at_least) if d.at_least else None
            case.clocks[d.id] = RunningDeadline(d, at, due, earliest)
            started.append(d.id)
        return started

    def _close_clocks(self, case: Case, event: EventRef, at: SimHours) -> list[DeadlineVerdict]:
        verdicts: list[DeadlineVerdict] = []
        for deadline_id, clock in list(case.clocks.items()):
            d = clock.deadline
            outcome: Outcome
            if event == d.end:
                late = clock.due is not None and at > clock.due
                early = clock.earliest is not None and at < clock.earliest
                outcome = "missed" if late or early else "met"
            elif event in d.cancelled_by:
                outcome = "cancelled"
            else:
                continue
            unit = (d.within or d.at_least)
            assert unit is not None
            elapsed = (
                None if outcome == "cancelled"
                else self.calendar.elapsed(clock.started, at, unit.unit)
            )
            verdicts.append(
                DeadlineVerdict(case.case_id, deadline_id, d.rules, clock.started, at,
                                clock.due, clock.earliest, outcome, elapsed)
            )
            del case.clocks[deadline_id]
        return verdicts

    def overdue(self, case: Case, now: SimHours) -> tuple[RunningDeadline, ...]:
        """Running clocks whose due time has passed at ``now``."""
        return tuple(
            c for c in case.clocks.values() if c.due is not None and now > c.due
        )

    def is_active(self, case: Case, state: StateId) -> bool:
        """True when ``state`` (leaf or compound) is active for the case."""
        return state in active_states(self.procedure, self.configuration(case))

    @property
    def initial(self) -> Config:
        """The configuration of a new case."""
        return initial_configuration(self.procedure)


def top_level_states(procedure: Procedure) -> frozenset[StateId]:
    """The main flow's top-level stages: entering one starts a new episode of the case."""
    return frozenset(sid for sid, st in procedure.states.items()
                     if st.parent is None and st.region is None)


def count_trigger(case: Case, trigger: TriggerId, events: tuple[EventRef, ...],
                  tops: frozenset[StateId]) -> None:
    """Count a fired trigger in the case's history and in its current episode."""
    counts, episode = case.counts, case.episode
    counts[trigger] = counts.get(trigger, 0) + 1
    if any(e.kind == "enter" and e.name in tops for e in events):
        episode.clear()
    episode[trigger] = episode.get(trigger, 0) + 1


class _GuardCondition:
    """A ``transitions`` condition that evaluates one registered guard on the case."""

    def __init__(self, guard: GuardId) -> None:
        self.guard = guard

    def __call__(self, event: Any) -> bool:
        case: Case = event.model
        return evaluate(self.guard, case.guard_context())


class _WhenInCondition:
    """A ``transitions`` condition: one of the transition's ``when_in`` states is active."""

    def __init__(self, compiled: CompiledProcedure, t: Transition) -> None:
        self.compiled = compiled
        self.transition = t

    def __call__(self, event: Any) -> bool:
        case: Case = event.model
        config = self.compiled.configuration(case)
        return when_in_holds(self.compiled.procedure, config, self.transition)
