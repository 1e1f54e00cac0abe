"""A transition table compiled from a procedure: the simulator's fast stand-in for the machine.

``CompiledProcedure`` runs every move through a hierarchical ``transitions`` machine, which is
exact but far too slow for national-scale caseloads. ``TableMachine`` is compiled from the
*same* ``Procedure``: :func:`model.graph.build_graph` enumerates every reachable configuration
and move, and for each configuration and trigger the table holds the candidate moves in the
order ``CompiledProcedure`` would try them, their guards, the events they cause and the
deadline clocks those events close, cancel or start. Firing a trigger is then a couple of
dictionary look-ups plus guard evaluation.

Architecture decision 5 allows this only while a property test shows that both machines give
the same states, steps, verdicts and errors for the same random trigger sequences; that test is
``tests/test_simulations_table.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from model.calendar import WorkingCalendar
from model.compiler import (
    Case,
    DeadlineVerdict,
    FireResult,
    GuardBlocked,
    NotAllowedHere,
    Option,
    Outcome,
    RunningDeadline,
    Step,
    UnknownTrigger,
    top_level_states,
)
from model.graph import (
    Config,
    active_states,
    build_graph,
    candidates,
    events_of,
    initial_events,
    matched_source,
)
from model.guards import GUARDS, GuardContext, GuardFn
from model.spec import Deadline, EventRef, Procedure, Transition
from model.types import (
    Duration,
    DurationUnit,
    GuardId,
    RuleId,
    SimHours,
    StateId,
    TriggerId,
)

# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Offer:
    """A move offered from a configuration, as ``CompiledProcedure.options`` lists it.

    Attributes:
        transition: The procedure's transition.
        guards: Its guards with their functions, in declared order.
        waiting: Its ``when_in`` states when none is active (the move cannot be taken),
            else empty.
    """

    transition: Transition
    guards: tuple[tuple[GuardId, GuardFn], ...]
    waiting: tuple[StateId, ...]

    def failing(self, ctx: GuardContext) -> tuple[GuardId, ...]:
        """The guards that do not hold for the case."""
        return tuple(name for name, fn in self.guards if not fn(ctx))


@dataclass(frozen=True, slots=True)
class _Start:
    """A deadline clock an event may start, with its ``when`` guard resolved.

    The deadline's fields that starting it reads are copied here: compiled, a field of this
    class is a C read, where one of the procedure's ``Deadline`` is a Python lookup.
    """

    deadline: Deadline
    when: GuardFn | None
    deadline_id: str
    repeats: bool
    within: Duration | None
    at_least: Duration | None


@dataclass(frozen=True, slots=True)
class _Move:
    """A move that can be taken from a configuration when its guards hold.

    Attributes:
        transition: The procedure's transition.
        number: Its place among all the table's moves (:meth:`TableMachine.fire_move`).
        transition_id: The transition's id.
        rules: The rules it cites.
        records: What it records. (These three are copied from the transition for the
            step: compiled, each is a C read, where the transition's fields are Python
            lookups.)
        guards: Its guard functions.
        target: Index of the configuration it leads to.
        before: The configuration it leaves.
        after: The configuration it leads to.
        events: Exits, the trigger, then entries (``model.graph.events_of``).
        closes: For each event that closes any clock, in event order: deadline id to True
            when the event is the deadline's end, False when it cancels the clock.
        closing: Every deadline id in ``closes`` (a case running none of them skips it).
        starts: The clocks the events may start, in event order then procedure order.
        new_episode: It enters a top-level state, so the case's episode counts restart
            (as :func:`model.compiler.count_trigger` decides).
    """

    transition: Transition
    number: int
    transition_id: str
    rules: tuple[RuleId, ...]
    records: tuple[str, ...]
    guards: tuple[GuardFn, ...]
    target: int
    before: Config
    after: Config
    events: tuple[EventRef, ...]
    closes: tuple[dict[str, bool], ...]
    closing: frozenset[str]
    starts: tuple[_Start, ...]
    new_episode: bool


@dataclass(frozen=True, slots=True)
class _Trigger:
    """What one trigger can do from one configuration.

    Attributes:
        moves: The moves that can be taken, in the order they are tried.
        first: The first move offered (takeable or waiting); it explains a refusal.
    """

    moves: tuple[_Move, ...]
    first: _Offer


@dataclass(frozen=True, slots=True)
class _Node:
    """One reachable configuration and everything a case there may do.

    Attributes:
        config: The configuration.
        active: Its active states (leaves and enclosing states).
        offers: Every move offered, in ``CompiledProcedure.options`` order.
        triggers: Per trigger offered here, its moves.
        allowed: The allowed triggers when no guard affects them, else None.
        unguarded: Triggers some unguarded move makes allowed for every case.
        guarded: Guarded moves whose trigger is not in ``unguarded``.
        options: The options on offer when no offer has a guard (the same for every
            case, so built once), else None.
    """

    config: Config
    active: frozenset[StateId]
    offers: tuple[_Offer, ...]
    triggers: dict[TriggerId, _Trigger]
    allowed: tuple[TriggerId, ...] | None
    unguarded: frozenset[TriggerId]
    guarded: tuple[_Move, ...]
    options: tuple[Option, ...] | None


class TableMachine:
    """A procedure compiled to a transition table; a drop-in for ``CompiledProcedure``.

    A case's ``state`` holds the index of its configuration in the table.

    Example:
        >>> from datetime import date
        >>> from model.loader import load_procedure
        >>> machine = TableMachine(load_procedure("west-midlands-2014"),
        ...                        WorkingCalendar(date(2025, 4, 1)))
        >>> case, _ = machine.new_case("c1")
        >>> machine.fire(case, "decide_strategy_discussion", 2.0).step.after
        ('strategy_discussion.convening',)

    Attributes:
        procedure: The procedure the table was compiled from.
        calendar: The calendar deadline clocks run on.
    """

    def __init__(self, procedure: Procedure, calendar: WorkingCalendar) -> None:
        """Compile the table from the procedure's configuration graph."""
        self.procedure = procedure
        self.calendar = calendar
        self._known_triggers = frozenset(procedure.triggers)
        self._tops = top_level_states(procedure)
        self._starts_by_event = self._deadline_starts(procedure)
        self._closes_by_event = self._deadline_closes(procedure)
        # per deadline, what a verdict on it reads: its rules and the unit it is counted in
        # (copied: compiled, a tuple of these is C reads, the Deadline's fields Python ones)
        self._verdict_info: dict[str, tuple[tuple[RuleId, ...], DurationUnit]] = {}
        for d in procedure.deadlines:
            limit = d.within or d.at_least
            assert limit is not None  # the loader requires one
            self._verdict_info[d.id] = (d.rules, limit.unit)

        graph = build_graph(procedure)
        self._initial: Config = graph.initial
        configs = [graph.initial, *(c for c in graph.graph.nodes if c != graph.initial)]
        self._index: dict[Config, int] = {c: i for i, c in enumerate(configs)}
        targets: dict[tuple[Config, str], Config] = {
            (before, t.id): after for before, after, t in graph.edges()
        }
        self._move_count = 0
        self._nodes = tuple(self._node(config, targets) for config in configs)
        self._initial_starts = self._starts_for(initial_events(procedure))

    # -- compiling --------------------------------------------------------------------------
    @staticmethod
    def _deadline_starts(procedure: Procedure) -> dict[EventRef, tuple[_Start, ...]]:
        """Per event, the clocks it may start, in procedure order."""
        by_event: dict[EventRef, list[_Start]] = {}
        for d in procedure.deadlines:
            when = None if d.when is None else GUARDS[d.when].fn
            by_event.setdefault(d.start, []).append(
                _Start(d, when, d.id, d.repeats, d.within, d.at_least))
        return {event: tuple(starts) for event, starts in by_event.items()}

    @staticmethod
    def _deadline_closes(procedure: Procedure) -> dict[EventRef, dict[str, bool]]:
        """Per event, the clocks it stops: True when it is their end, False when it cancels.

        Clocks are keyed by deadline id, so ids must be unique (the loader ensures it).
        """
        ids = [d.id for d in procedure.deadlines]
        if len(set(ids)) != len(ids):
            raise ValueError(f"procedure {procedure.id}: deadline ids are not unique")
        by_event: dict[EventRef, dict[str, bool]] = {}
        for d in procedure.deadlines:
            by_event.setdefault(d.end, {})[d.id] = True
            for event in d.cancelled_by:
                by_event.setdefault(event, {}).setdefault(d.id, False)  # an end wins
        return by_event

    def _starts_for(self, events: tuple[EventRef, ...]) -> tuple[_Start, ...]:
        return tuple(s for event in events for s in self._starts_by_event.get(event, ()))

    def _node(self, config: Config, targets: Mapping[tuple[Config, str], Config]) -> _Node:
        """Everything a case in ``config`` may do; ``targets`` are the graph's edges."""
        procedure = self.procedure
        # The same two passes as CompiledProcedure.options: the moves that may fire now
        # (innermost source first), then moves waiting for a state of another region.
        ready = candidates(procedure, config)
        ready_ids = {t.id for t in ready}
        waiting = [
            t for t in procedure.transitions
            if t.when_in and t.id not in ready_ids
            and matched_source(procedure, config, t) is not None
        ]
        offers = (
            *(self._offer(t, ()) for t in ready),
            *(self._offer(t, t.when_in) for t in waiting),
        )
        moves = [self._move(config, targets[config, t.id], t) for t in ready]

        triggers: dict[TriggerId, _Trigger] = {}
        for offer in offers:
            trigger = offer.transition.trigger
            if trigger not in triggers:
                own = tuple(m for m in moves if m.transition.trigger == trigger)
                triggers[trigger] = _Trigger(own, offer)

        unguarded = frozenset(m.transition.trigger for m in moves if not m.guards)
        guarded = tuple(m for m in moves if m.guards and m.transition.trigger not in unguarded)
        return _Node(
            config=config,
            active=active_states(procedure, config),
            offers=offers,
            triggers=triggers,
            allowed=None if guarded else tuple(sorted(unguarded)),
            unguarded=unguarded,
            guarded=guarded,
            options=None if any(o.guards for o in offers) else tuple(
                Option(o.transition, not o.waiting, (), o.waiting) for o in offers),
        )

    @staticmethod
    def _offer(t: Transition, waiting: tuple[StateId, ...]) -> _Offer:
        return _Offer(t, tuple((g, GUARDS[g].fn) for g in t.guards), waiting)

    def _move(self, before: Config, after: Config, t: Transition) -> _Move:
        events = events_of(self.procedure, before, after, t)
        closes = tuple(
            self._closes_by_event[e] for e in events if e in self._closes_by_event
        )
        self._move_count += 1
        return _Move(
            transition=t,
            number=self._move_count - 1,
            transition_id=t.id,
            rules=t.rules,
            records=t.records,
            guards=tuple(GUARDS[g].fn for g in t.guards),
            target=self._index[after],
            before=before,
            after=after,
            events=events,
            closes=closes,
            closing=frozenset(i for closers in closes for i in closers),
            starts=self._starts_for(events),
            new_episode=any(e.kind == "enter" and e.name in self._tops for e in events),
        )

    # -- cases ------------------------------------------------------------------------------
    @property
    def initial(self) -> Config:
        """The configuration of a new case."""
        return self._initial

    def new_case(
        self, case_id: str, facts: Mapping[str, object] | None = None, at: SimHours = 0.0
    ) -> tuple[Case, tuple[str, ...]]:
        """A new case at node 0, the initial configuration, and the clocks its entry starts.

        :class:`simulations.engine.Machine` states the contract.
        """
        case = Case(case_id=case_id, facts=dict(facts or {}))
        case.state = 0
        return case, self._start_clocks(case, self._initial_starts, at)

    def release(self, case: Case) -> None:
        """Nothing to detach: the table keeps no reference to its cases."""

    def configuration(self, case: Case) -> Config:
        """Where the case is: one leaf per region, main flow first."""
        node: _Node = self._nodes[case.state]
        return node.config

    def options(self, case: Case) -> tuple[Option, ...]:
        """Every move offered from the case's state, with whether it is enabled now."""
        node: _Node = self._nodes[case.state]
        if node.options is not None:
            return node.options
        ctx = case.guard_context()
        out: list[Option] = []
        for offer in node.offers:
            failing = offer.failing(ctx)
            out.append(
                Option(offer.transition, not failing and not offer.waiting, failing,
                       offer.waiting)
            )
        return tuple(out)

    def allowed_triggers(self, case: Case) -> tuple[TriggerId, ...]:
        """The triggers the case may fire now, sorted."""
        node: _Node = self._nodes[case.state]
        if node.allowed is not None:
            return node.allowed
        ctx = case.guard_context()
        allowed = set(node.unguarded)
        for move in node.guarded:
            if all(fn(ctx) for fn in move.guards):
                allowed.add(move.transition.trigger)
        return tuple(sorted(allowed))

    @property
    def move_count(self) -> int:
        """How many moves the table holds (numbered from 0, :meth:`fire_move`)."""
        return self._move_count

    @property
    def node_count(self) -> int:
        """How many configurations the table holds (a case's ``state`` is one's index)."""
        return len(self._nodes)

    def fixed_options(self, case: Case) -> bool:
        """Whether :meth:`options` is the same for every case where this one is.

        True when no move offered there has a guard: then the options are one tuple, built
        with the table.
        """
        node: _Node = self._nodes[case.state]
        return node.options is not None

    def fire(self, case: Case, trigger: TriggerId, at: SimHours) -> FireResult:
        """Fire ``trigger`` on ``case`` at time ``at`` (sim hours).

        Raises:
            UnknownTrigger: the procedure has no such trigger.
            NotAllowedHere: the trigger is not offered from the case's state.
            GuardBlocked: offered, but a guard fails or another region is not ready.
        """
        return self.fire_move(case, trigger, at)[0]

    def fire_move(self, case: Case, trigger: TriggerId, at: SimHours
                  ) -> tuple[FireResult, int]:
        """:meth:`fire`, and the number of the move taken (0 to :attr:`move_count` - 1).

        The same move from the same configuration always gives the same step's shape
        (states exited and entered), so the engine can keep what it works out per move.
        """
        node: _Node = self._nodes[case.state]
        offered = node.triggers.get(trigger)
        if offered is None:
            if trigger not in self._known_triggers:
                raise UnknownTrigger(case.case_id, node.config, trigger,
                                     self.allowed_triggers(case),
                                     "the procedure has no such trigger")
            raise NotAllowedHere(case.case_id, node.config, trigger,
                                 self.allowed_triggers(case),
                                 "the procedure does not offer it from here")
        move = self._first_enabled(offered.moves, case)
        if move is None:
            raise self._blocked(case, node, trigger, offered.first)

        case.state = move.target
        # count_trigger, with the episode test worked out when the table was built
        counts = case.counts
        counts[trigger] = counts.get(trigger, 0) + 1
        episode = case.episode
        if move.new_episode:
            episode.clear()
        episode[trigger] = episode.get(trigger, 0) + 1
        verdicts: tuple[DeadlineVerdict, ...] = ()
        if move.closes and case.clocks and not move.closing.isdisjoint(case.clocks):
            verdicts = self._close_clocks(case, move.closes, at)
        started = self._start_clocks(case, move.starts, at) if move.starts else ()
        step = Step(case.case_id, at, trigger, move.transition_id, move.before, move.after,
                    move.rules, move.records, move.events)
        return FireResult(step, verdicts, started), move.number

    @staticmethod
    def _first_enabled(moves: tuple[_Move, ...], case: Case) -> _Move | None:
        ctx: GuardContext | None = None
        for move in moves:
            if not move.guards:
                return move
            if ctx is None:
                ctx = case.guard_context()
            if all(fn(ctx) for fn in move.guards):
                return move
        return None

    def _blocked(
        self, case: Case, node: _Node, trigger: TriggerId, offer: _Offer
    ) -> GuardBlocked:
        failing = offer.failing(case.guard_context())
        parts = []
        if failing:
            parts.append("guard " + ", ".join(failing) + " does not hold")
        if offer.waiting:
            parts.append("needs the case to be in " + " or ".join(offer.waiting))
        return GuardBlocked(case.case_id, node.config, trigger, self.allowed_triggers(case),
                            "; ".join(parts), offer.transition.rules, guards=failing)

    # -- clocks -----------------------------------------------------------------------------
    def _start_clocks(
        self, case: Case, starts: tuple[_Start, ...], at: SimHours
    ) -> tuple[str, ...]:
        started: list[str] = []
        clocks = case.clocks
        ctx: GuardContext | None = None
        for start in starts:
            if start.when is not None:
                if ctx is None:
                    ctx = case.guard_context()
                if not start.when(ctx):
                    continue
            deadline_id = start.deadline_id
            if deadline_id in clocks and not start.repeats:
                continue
            within, at_least = start.within, start.at_least
            due = self.calendar.due(at, within) if within else None
            earliest = self.calendar.earliest(at, at_least) if at_least else None
            clocks[deadline_id] = RunningDeadline(start.deadline, at, due, earliest)
            started.append(deadline_id)
        return tuple(started)

    def _close_clocks(
        self, case: Case, closes: tuple[dict[str, bool], ...], at: SimHours
    ) -> tuple[DeadlineVerdict, ...]:
        verdicts: list[DeadlineVerdict] = []
        clocks = case.clocks
        for closers in closes:
            for deadline_id in [i for i in clocks if i in closers]:  # in clock start order
                clock = clocks.pop(deadline_id)
                rules, unit = self._verdict_info[deadline_id]
                outcome: Outcome
                elapsed: float | None
                if closers[deadline_id]:
                    late = clock.due is not None and at > clock.due
                    early = clock.earliest is not None and at < clock.earliest
                    outcome = "missed" if late or early else "met"
                    elapsed = self.calendar.elapsed(clock.started, at, unit)
                else:
                    outcome, elapsed = "cancelled", None
                verdicts.append(
                    DeadlineVerdict(case.case_id, deadline_id, rules, clock.started, at,
                                    clock.due, clock.earliest, outcome, elapsed)
                )
        return tuple(verdicts)

    def overdue(self, case: Case, now: SimHours) -> tuple[RunningDeadline, ...]:
        """Running clocks whose due time has passed at ``now``."""
        return tuple(c for c in case.clocks.values() if c.due is not None and now > c.due)

    def is_active(self, case: Case, state: StateId) -> bool:
        """True when ``state`` (leaf or compound) is active for the case."""
        return state in self._nodes[case.state].active
