"""The SimPy engine: whole caseloads moving through the compiled procedure, competing for staff.

Every step a case takes is a trigger fired on the compiled machine, so a simulated case can
never do what the procedure forbids. What the scenario adds is *when* and *which*: for each
state, a behaviour chooses among the moves the machine offers and says how long it takes;
deadline clocks started by the machine plan the recurring work (visits, core groups, notes).
Capacity is real: a case waits unallocated when every social worker is at their cap, a
social worker's absence holds up their cases, conferences need a chair's and a
minute-taker's diary slot on a working day, and manager responses queue for managers.
When a conference cannot be held in time, the chair's postponement decision is fired on the
machine (so it is recorded as the procedure requires) and the breach is counted.

The staff (the conference diary and the social workers) are in :mod:`simulations.staff`,
the compiled behaviour tables in :mod:`simulations.behaviour`, and what a replication
measures (:class:`simulations.record.RunRecord`) beside its stored form.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import simpy

from model.calendar import WorkingCalendar
from model.compiler import Case, FireResult, Option, Step
from model.graph import ActiveStates, ByIdentity, Config, is_terminal, possible_events
from model.guards import evaluate
from model.spec import Deadline, Procedure, Transition
from model.types import SimHours, StateId, TriggerId
from simulations.behaviour import Behaviour, compile_behaviour
from simulations.collector import collector_paused
from simulations.distributions import HOURS_PER_YEAR, Dist, TimeUnit, advance
from simulations.drive import Awaited, Desk, Drive
from simulations.observers import NullObserver, Observer
from simulations.record import RunRecord
from simulations.scenario import DistSpec, MeetingSpec, Scenario
from simulations.staff import Diary, Workers
from simulations.table import TableMachine

STREAMS = ("arrivals", "facts", "behaviour", "timing", "agencies", "staff", "family",
           "history")
"""Named random streams inside a replication, each from its own SeedSequence child."""


class Machine(Protocol):
    """What the engine needs from a compiled procedure (transitions- or table-based)."""

    procedure: Procedure

    def new_case(self, case_id: str, facts: Mapping[str, object] | None = None,
                 at: SimHours = 0.0) -> tuple[Case, tuple[str, ...]]:
        """Register a new case at its initial state; start the clocks its entry starts.

        Returns:
            The case and the ids of the deadline clocks started.
        """
        ...

    def release(self, case: Case) -> None:
        """Forget a finished case."""
        ...

    def configuration(self, case: Case) -> Config:
        """Where the case is."""
        ...

    def options(self, case: Case) -> tuple[Option, ...]:
        """Moves on offer, with whether each is enabled."""
        ...

    def fire(self, case: Case, trigger: TriggerId, at: SimHours) -> FireResult:
        """Fire a trigger."""
        ...


class SimulationStuck(Exception):
    """A case can go nowhere: the scenario's behaviour offers no move the procedure allows."""


_ENDS_WITH: ByIdentity[dict[TriggerId, tuple[Deadline, ...]]] = ByIdentity(limit=64)


def _ends_with(procedure: Procedure) -> dict[TriggerId, tuple[Deadline, ...]]:
    """The deadlines each trigger can stop, worked out once per procedure.

    Not once per engine: a national run builds 153 engines on one procedure, and working
    this out asks :func:`possible_events` about 400 questions (a few ms an engine).
    """
    found = _ENDS_WITH.get(procedure)
    if found is not None:
        return found
    ends: dict[TriggerId, list[Deadline]] = defaultdict(list)
    for d in procedure.deadlines:
        if d.end.kind == "trigger":
            ends[d.end.name].append(d)
        elif d.end.kind == "enter":
            # a clock that stops on entering a state stops with each move into it (a
            # meeting booked for such a move is late when it falls after the clock's due)
            for t in procedure.transitions:
                if d.end in possible_events(procedure, t) and d not in ends[t.trigger]:
                    ends[t.trigger].append(d)
    found = {trigger: tuple(ds) for trigger, ds in ends.items()}
    _ENDS_WITH.put(procedure, found)
    return found


def caseload_summary(loads: list[int]) -> tuple[float, float, float, float]:
    """Mean, median, 90th percentile (numpy's default, linear) and largest of caseloads.

    The same floats as ``np.mean``, ``np.median`` and ``np.percentile(..., 90)`` give
    (``tests/test_engine_caches.py`` compares them), without the numpy calls' overhead,
    which was a fiftieth of a run. Caseloads are whole numbers, so their sum is exact.
    """
    ordered = sorted(loads)
    n = len(ordered)
    mean = float(sum(ordered)) / n
    middle = n // 2
    median = (float(ordered[middle]) if n % 2
              else (float(ordered[middle - 1]) + float(ordered[middle])) / 2.0)
    virtual = (n - 1) * 0.9  # numpy: (n - 1) * (90 / 100)
    if virtual >= n - 1:
        p90 = float(ordered[-1])
    else:
        below = math.floor(virtual)
        low, high = float(ordered[below]), float(ordered[below + 1])
        gap, weight = high - low, virtual - below
        # numpy's _lerp: from the nearer end, for accuracy
        p90 = high - gap * (1.0 - weight) if weight >= 0.5 else low + gap * weight
    return mean, median, p90, float(ordered[-1])


def replication_streams(root_seed: int, replication: int, authority: int | None = None
                        ) -> dict[str, np.random.Generator]:
    """One generator per named source for one replication (or one authority's shard of it).

    Derived from ``SeedSequence(root_seed, spawn_key=(replication, k))`` so a replication's
    draws do not depend on which worker runs it, and two scenarios run with the same seed
    draw the same numbers for the same source (common random numbers). Authority ``a`` of
    a scenario split into authorities draws from ``spawn_key=(replication, k, a)`` instead:
    each shard has streams of its own, and a scenario without authorities is unchanged.
    """
    return {
        name: np.random.default_rng(np.random.SeedSequence(
            root_seed, spawn_key=(replication, k) if authority is None
            else (replication, k, authority)))
        for k, name in enumerate(STREAMS)
    }


def _hours(dist_unit: str, amount: float) -> float:
    """An approximate length in hours (used only for leads counted back from a meeting)."""
    return {"hours": 1.0, "working_hours": 24.0 / 8.0, "days": 24.0,
            "working_days": 24.0 * 7.0 / 5.0}[dist_unit] * amount


@dataclass(frozen=True)
class History:
    """An open case taken from real data: where it started and the steps it took.

    Attributes:
        case_id: Its pseudonym.
        start: When its first recorded event happened (sim hours).
        steps: (time, trigger) of every step its recorded history implies, in order.
        final: Where the history leaves the case (for listings).
    """

    case_id: str
    start: SimHours
    steps: tuple[tuple[SimHours, TriggerId], ...]
    final: str = ""


_Shape = tuple[tuple[StateId, ...], tuple[StateId, ...], bool]
"""A step's exited states, entered states, and whether the exits mirror the entries."""


@dataclass(frozen=True, slots=True)
class _Kind:
    """What a transition's resources say about it, worked out once per transition.

    Attributes:
        transition: The transition.
        people: It needs people, so it happens in working hours.
        meeting: It needs a chair and a minute-taker: it opens a meeting, unless the case
            already sits in one.
        social: It needs the case's social worker.
        managers: The manager levels it queues for, in its resources' order (only levels
            the scenario staffs).
        actor: Who is recorded as doing it when nobody in particular was waited for.
    """

    transition: Transition
    people: bool
    meeting: bool
    social: bool
    managers: tuple[str, ...]
    actor: str


@dataclass(frozen=True, slots=True)
class _Here:
    """What the engine asks about one configuration, worked out once per configuration.

    Attributes:
        config: The configuration.
        active: Its active states.
        behaving: Active states with a behaviour, outermost first, main flow then regions.
        holds: A social worker holds a case here.
        top: Its top-level stage (the main flow's outermost state).
        offered: Triggers whose transitions start somewhere active (guards ignored).
        in_plan: Some state of the plan episode is active.
    """

    config: Config
    active: frozenset[StateId]
    behaving: tuple[StateId, ...]
    holds: bool
    top: str
    offered: frozenset[TriggerId]
    in_plan: bool


# -- live state ------------------------------------------------------------------------------
# Plain classes with their own ``__init__``, not dataclasses: compiled, building one is a C
# call, where a dataclass's generated ``__init__`` is a Python frame (about one _Plan a step).
class _Plan:
    """A step a case means to take, and when.

    Attributes:
        time: When (sim hours; infinite while a task waits until the case can do it).
        order: When it was planned (ties go to the earlier plan).
        trigger: The trigger to fire.
        owner: The behaving state or task that planned it (its key in the case's plans).
        reason: Recorded with the step (a postponement's reason), or empty.
    """

    __slots__ = ("order", "owner", "reason", "time", "trigger")

    def __init__(self, time: SimHours, order: int, trigger: TriggerId, owner: str,
                 reason: str = "") -> None:
        """A plan to fire ``trigger`` at ``time``."""
        self.time = time
        self.order = order
        self.trigger = trigger
        self.owner = owner
        self.reason = reason


class _Live:
    """A case in the simulation, and what the engine keeps about it.

    Attributes:
        case: The machine's case.
        process_order: When it started, among all cases.
        here: Where the case is (kept with every step it takes).
        entered: When it entered each active state.
        visits: Entries into each state in its current episode.
        plans: What it means to do next, by owner.
        declined: Per behaving state, the choices it declined at this opportunity.
        bookings: Per meeting trigger, its diary slot (day, start).
        absence_postponed: Meetings postponed once for an absent agency.
        family_postponed: Meetings postponed once for the family.
        worker: Its social worker's post, when allocated.
        allocated: The event its allocation fires, while it waits for one.
        queued_at: When it joined the allocation queue.
        team: Its social work team, once the staff have worked it out (-1 before).
        plan_started: When its current plan started.
        plans_had: Plans it has had (before the run too).
        meeting: The meeting state it sits in, if any.
        enabled: Each enabled trigger's first enabled transition, until the case moves
            (shared: read only; None when not yet asked since the case last moved).
        hurried: A step came early (a review brought forward): aims wait until the next
            meeting sits, or until the case leaves the stage.
    """

    __slots__ = ("absence_postponed", "allocated", "bookings", "case", "declined", "enabled",
                 "entered", "family_postponed", "here", "hurried", "meeting", "plan_started",
                 "plans", "plans_had", "process_order", "queued_at", "team", "visits",
                 "worker")

    def __init__(self, case: Case, process_order: int, here: _Here) -> None:
        """A case just arrived at ``here``."""
        self.case = case
        self.process_order = process_order
        self.here = here
        self.entered: dict[StateId, SimHours] = {}
        self.visits: dict[StateId, int] = {}
        self.plans: dict[str, _Plan] = {}
        self.declined: dict[StateId, frozenset[str]] = {}
        self.bookings: dict[TriggerId, tuple[int, SimHours]] = {}
        self.absence_postponed: set[TriggerId] = set()
        self.family_postponed: set[TriggerId] = set()
        self.worker: int | None = None
        self.allocated: simpy.Event | None = None
        self.queued_at: SimHours | None = None
        self.team = -1
        self.plan_started: SimHours | None = None
        self.plans_had = 0
        self.meeting: StateId | None = None
        self.enabled: dict[TriggerId, _Kind] | None = None
        self.hurried = False


# -- engine ----------------------------------------------------------------------------------
class Engine:
    """One replication of a scenario.

    Args:
        scenario: The validated scenario.
        machine: The compiled procedure (a ``CompiledProcedure`` or a ``TableMachine``).
        calendar: Working-day calendar starting at the scenario's start date.
        replication: Replication number (0-based).
        root_seed: The experiment's root seed.
        observers: Event log, invariant monitor, ... (default: none).
        progress: Called with the simulated hours reached, about once a simulated week.
        history: Open cases from real data, started at ``start_at`` where their recorded
            history left them, with their deadline clocks already running.
        start_at: When the simulation starts (hours from the calendar's start date; a
            snapshot's date when starting from real data).
        authority: Which authority's shard this is, for a scenario split into authorities
            (its own random streams, :func:`replication_streams`); None when not split.
    """

    def __init__(self, scenario: Scenario, machine: Machine, calendar: WorkingCalendar,
                 replication: int, root_seed: int, observers: Sequence[Observer] = (),
                 progress: Callable[[float], None] | None = None,
                 history: Sequence[History] = (), start_at: SimHours = 0.0,
                 authority: int | None = None) -> None:
        """Build resources and behaviour tables; nothing runs until :meth:`run`."""
        spec = scenario.spec
        self.spec = spec
        self.procedure = machine.procedure
        self.machine = machine
        self.calendar = calendar
        self.env = simpy.Environment(initial_time=start_at)
        # Runs every generator below, and ends them at the horizon. The hot path reads the
        # time as ``_drive.now``: ``env.now`` is a property, a Python call per read, and the
        # engine reads the time several times a step.
        self._drive = Drive(self.env)
        self.rng = replication_streams(root_seed, replication, authority)
        # the streams the hot path draws from, and the table machine when it is one, as
        # typed attributes (a compiled engine calls them directly, not through a dict)
        self._behaviour_rng = self.rng["behaviour"]
        self._timing_rng = self.rng["timing"]
        self._agencies_rng = self.rng["agencies"]
        self._table = machine if isinstance(machine, TableMachine) else None
        self.observers: tuple[Observer, ...] = tuple(observers) or (NullObserver(),)
        # each observer's step method, looked up once (compiled, calling a Protocol's
        # method looks it up by name on every call; there is one call a step per observer)
        self._step_observers: tuple[Callable[[Step, str], None], ...] = tuple(
            obs.step for obs in self.observers)
        self.progress = progress
        self.history = tuple(history)
        self.horizon = start_at + spec.run.horizon_days * 24.0
        self.warm_up = start_at + spec.run.warm_up_days * 24.0
        self.record = RunRecord(replication, self.warm_up, self.horizon)
        # what every step counts, kept here and added to the record at the horizon
        # (_close_books): compiled, a plain dict and an int of the engine are C operations,
        # the record's Counters and fields Python lookups
        self._transitions = 0
        self._trigger_counts: dict[TriggerId, int] = {}
        self._entries: dict[StateId, int] = {}
        for d in self.procedure.deadlines:
            limit = d.within or d.at_least
            assert limit is not None
            self.record.deadlines[d.id] = {
                "met": 0, "missed": 0, "cancelled": 0, "open_overdue": 0, "open_not_due": 0,
                "elapsed": [], "unit": limit.unit, "limit": limit.value,
                "kind": "within" if d.within else "at_least",
            }
        self.behaviour = {sid: compile_behaviour(sid, b) for sid, b in spec.behaviour.items()}
        self.tasks = {t: (ts.aim.build() if isinstance(ts.aim, DistSpec) else ts.aim,
                          ts.after.build() if ts.after else None)
                      for t, ts in spec.tasks.items()}
        self.contributions = {t: (frozenset(c.meetings), c.lead.build())
                              for t, c in spec.before_meetings.items()}
        self._task_needs_people = {
            t.trigger: bool(t.resources) for t in self.procedure.transitions}
        self.deadline = {d.id: d for d in self.procedure.deadlines}
        self.ends_with = _ends_with(self.procedure)
        staff = spec.staffing
        sw = staff.social_workers
        heads = sw.heads()
        spread = sw.teams.demand_spread if sw.teams is not None else None
        self.workers = Workers(self.env, len(heads), sw.caseload_cap,
                               sw.absence_rate, sw.absence_spell_days, self.rng["staff"],
                               teams=sw.team_count(), turnover=sw.turnover,
                               calendar=calendar, record=self.record, count_from=self.warm_up,
                               fte=[f for f, _ in heads], caps=[c for _, c in heads],
                               demand_spread=0.0 if spread is None else spread.cv,
                               drive=self._drive)
        self.holding = frozenset(sw.holds_cases_in)
        self.diary = Diary(calendar, staff.conference_chairs.count,
                           staff.conference_chairs.slots_per_day, staff.minute_takers.count,
                           staff.minute_takers.slots_per_day,
                           staff.conference_chairs.meeting_hours)
        self._meetings: dict[TriggerId, tuple[float, Dist | None]] = {}
        self.managers = {level: (Desk(self._drive, m.count), m.work.build())
                         for level, m in staff.managers.items()}
        self.live: dict[str, _Live] = {}
        self._order = itertools.count()
        self._numbers = itertools.count(1)
        self._active = ActiveStates(self.procedure)
        self._heres: dict[Config, _Here] = {}
        # where a booked meeting stays booked: the states around its trigger's sources (the
        # conference's preparation, whose steps run before the meeting can open)
        self._booking_scope: dict[TriggerId, frozenset[StateId]] = defaultdict(frozenset)
        for t in self.procedure.transitions:
            self._booking_scope[t.trigger] |= frozenset(
                self.procedure.states[s].parent or s for s in t.sources)
        self._kinds: dict[str, _Kind] = {}
        # for the transitions machine, per options tuple (by identity): each enabled
        # trigger's first enabled transition
        self._enabled_cache: ByIdentity[dict[TriggerId, _Kind]] = ByIdentity()
        # per events tuple (by identity): the states exited and entered, and whether the
        # exits mirror the entries (for the transitions machine, and history's replay)
        self._shape_cache: ByIdentity[_Shape] = ByIdentity()
        # the same two, kept by number for the table machine: each configuration's enabled
        # triggers when no guard decides them, and each move's shape
        table = self._table
        self._node_enabled: list[dict[TriggerId, _Kind] | None] = (
            [None] * table.node_count if table is not None else [])
        self._move_shapes: list[_Shape | None] = (
            [None] * table.move_count if table is not None else [])
        self._task_keys = {d.id: f"task:{d.id}" for d in self.procedure.deadlines}
        # per deadline a task ends: (its trigger, aim, after, needs people, plan key)
        self._task_of = {
            d.id: (d.end.name, *self.tasks[d.end.name],
                   self._task_needs_people.get(d.end.name, True), self._task_keys[d.id])
            for d in self.procedure.deadlines
            if d.end.kind == "trigger" and d.end.name in self.tasks}
        # per top-level state, the states inside it
        self._inside = {top: frozenset(s for s in self.procedure.states
                                       if s != top and top in self.procedure.ancestors(s))
                        for top, st in self.procedure.states.items() if st.parent is None}
        self._worker_actors: dict[int, str] = {}
        self.stage_counts: Counter[str] = Counter()
        self.plan_state = spec.plan_state
        self.plan_episode: frozenset[StateId] = (
            frozenset({spec.plan_state, *spec.plan_includes}) if spec.plan_includes
            else frozenset())

    # -- small cached views of a configuration and a transition -----------------------------
    def _here(self, config: Config) -> _Here:
        """What the engine asks about ``config`` (worked out on first sight)."""
        found = self._heres.get(config)
        if found is None:
            active = self._active(config)
            behaving = tuple(sid for leaf in config
                             for sid in reversed(self.procedure.ancestors(leaf))
                             if sid in self.behaviour)
            offered = frozenset(t.trigger for t in self.procedure.transitions
                                if active & set(t.sources))
            found = self._heres[config] = _Here(
                config, active, behaving, bool(self.holding & active),
                self.procedure.ancestors(config[0])[-1], offered,
                bool(active & self.plan_episode))
        return found

    def _kind(self, t: Transition) -> _Kind:
        """What a transition's resources say about it (worked out on first sight)."""
        found = self._kinds.get(t.id)
        if found is None:
            roles = {r.role for r in t.resources}
            found = self._kinds[t.id] = _Kind(
                t, bool(t.resources),
                not t.internal and "conference_chair" in roles and "minute_taker" in roles,
                "social_worker" in roles,
                tuple(r.level for r in t.resources
                      if r.role == "manager" and r.level is not None
                      and r.level in self.managers),
                next((r.role for r in t.resources), "case"))
        return found

    def _worker_actor(self, worker: int) -> str:
        """The actor a step done by social worker post ``worker`` is recorded with."""
        found = self._worker_actors.get(worker)
        if found is None:
            found = self._worker_actors[worker] = f"social_worker:{worker}"
        return found

    # -- running -----------------------------------------------------------------------------
    def run(self) -> RunRecord:
        """Run to the horizon and return the replication's measurements.

        The cyclic garbage collector is off while the run lasts, and back as it was
        afterwards: a run makes no reference cycles (reference counting frees all it drops,
        ``tests/test_engine_caches.py`` checks), so the collector's passes over the run's
        many live objects would find nothing, at about a twentieth of the run's time. A
        job keeps it off for longer, until the engine is freed (:mod:`simulations.collector`).
        """
        for past in self.history:
            self._seed(past)
        self._drive.start(self._arrivals())
        if self.spec.demand.history is not None:
            self._drive.start(self._returns())
        self._drive.start(self._sampler())
        with collector_paused():
            self._drive.run(self.horizon)
        self._close_books()
        # what still waits at the horizon holds the engine in a cycle: end it, so that
        # reference counting frees the run, not the collector (tests/test_runner_caches.py)
        self._drive.stop_all()
        return self.record

    def _arrivals(self) -> Generator[Awaited, Any, None]:
        demand = self.spec.demand
        rate = demand.referrals_per_year * (1.0 - demand.re_referral_share) / HOURS_PER_YEAR
        season = demand.seasonality
        peak = max(season) / (sum(season) / 12.0) if season else 1.0
        rng = self.rng["arrivals"]
        while True:
            yield self._drive.timeout(rng.exponential(1.0 / (rate * peak)))
            if season:
                month = self.calendar.date_of(self._drive.now).month - 1
                if rng.random() * peak > season[month] / (sum(season) / 12.0):
                    continue
            self._new_case()

    def _returns(self) -> Generator[Awaited, Any, None]:
        """Children who closed before the run starts, coming back (``demand.history``).

        Closures before the run are taken as steady at ``closures_per_year``; a child closed
        ``s`` hours before the start returns at ``t`` when its gap (drawn from the returning
        behaviour's ``after``) is ``s + t``. That is a Poisson stream of rate ``closures x
        chance`` thinned by the chance the gap exceeds ``t``: a draw of the gap longer than
        ``t`` keeps the candidate. Simulated closures take over as this stream dies away,
        so the authority starts with the returns of a steady state.
        """
        history = self.spec.demand.history
        assert history is not None
        b = self.spec.behaviour[history.returns_from]
        assert b.after is not None
        gap = b.after.build()
        closures = history.closures_per_year or self.spec.demand.referrals_per_year
        planned = history.plan_share * b.chance_for(had_plan=True)
        others = (1.0 - history.plan_share) * b.chance_for(had_plan=False)
        rate = closures * (planned + others) / HOURS_PER_YEAR
        if rate <= 0:
            return
        had_plan = planned / (planned + others)  # among those who come back
        rng = self.rng["history"]
        begin = self._drive.now
        while True:
            yield self._drive.timeout(rng.exponential(1.0 / rate))
            since = self._drive.now - begin
            if advance(self.calendar, 0.0, gap.sample(rng), gap.unit) > since:
                self._new_case(previous_plans=int(rng.random() < had_plan))

    def _new_case(self, previous_plans: int = 0) -> None:
        number = next(self._numbers)
        case_id = f"C{number:07d}"
        rng = self.rng["facts"]
        facts = {name: bool(rng.random() < p) for name, p in self.spec.demand.facts.items()}
        case, started = self.machine.new_case(case_id, facts, self._drive.now)
        config = self.machine.configuration(case)
        here = self._here(config)
        live = _Live(case, next(self._order), here)
        live.plans_had = previous_plans
        self.live[case_id] = live
        self.record.cases_created += 1
        now = self._drive.now
        for sid in here.active:
            live.entered[sid] = now
            live.visits[sid] = live.visits.get(sid, 0) + 1
            if now >= self.warm_up:
                self._entries[sid] = self._entries.get(sid, 0) + 1
        self.stage_counts[here.top] += 1
        told: Mapping[str, object] = (facts if not previous_plans
                                      else {**facts, "previous_plans": previous_plans})
        for obs in self.observers:
            obs.case_started(case_id, now, config, told)
        self._plan_tasks(live, started)
        if here.holds:
            self.workers.request(live)
        self._drive.start(self._case(live))

    def _seed(self, past: History) -> None:
        """Start an open case from its recorded history: replay it, then let it run on."""
        rng = self.rng["facts"]
        facts = {name: bool(rng.random() < p) for name, p in self.spec.demand.facts.items()}
        case, _ = self.machine.new_case(past.case_id, facts, past.start)
        config = self.machine.configuration(case)
        live = _Live(case, next(self._order), self._here(config))
        self.live[past.case_id] = live
        self.record.cases_created += 1
        for sid in live.here.active:
            live.entered[sid] = past.start
            live.visits[sid] = live.visits.get(sid, 0) + 1
        for obs in self.observers:
            obs.case_started(past.case_id, past.start, config, facts)
        for at, trigger in past.steps:
            live.enabled = None
            step = self.machine.fire(case, trigger, at).step
            for obs in self.observers:
                obs.step(step, "history")
            before, live.here = live.here, self._here(step.after)
            self._moved(live, step, self._shape(step.events), before, live.here,
                        counting=False, staff=False)
        live.enabled = None
        self.stage_counts[live.here.top] += 1
        self._plan_tasks(live, tuple(case.clocks))
        if live.here.holds:
            self.workers.request(live)
        self._drive.start(self._case(live))

    def _case(self, live: _Live) -> Generator[Awaited, Any, None]:
        drive = self._drive
        back = self.workers.back
        plans = live.plans
        while True:
            self._replan(live)
            # the earliest plan, ties by planning order (one pass, no key tuples)
            key = ""
            plan = None
            for k, p in plans.items():
                if plan is None or p.time < plan.time or (
                        p.time == plan.time and p.order < plan.order):
                    key, plan = k, p
            if plan is None or plan.time == math.inf:  # nothing planned it can do
                config = self.machine.configuration(live.case)
                if not is_terminal(self.procedure, config):
                    raise SimulationStuck(
                        f"case {live.case.case_id} in {' + '.join(config)} has nothing to "
                        "do: the scenario's behaviour chooses no move the procedure allows "
                        f"here (allowed: {', '.join(sorted(self._enabled(live))) or 'none'})")
                self._finish(live, config)
                return
            now = drive.now
            if plan.time > now:
                yield drive.timeout(plan.time - now)
            # Most steps wait for nobody: fire them here, without a generator for the step
            # (the same decisions as _execute's, which handles every other step).
            enabled = live.enabled
            if enabled is None:
                enabled = self._enabled(live)
            kind = enabled.get(plan.trigger)
            if kind is not None and not kind.managers and not (
                    kind.meeting and live.meeting is None):
                if not (kind.social and live.here.holds):
                    actor = kind.actor
                elif live.worker is not None and back[live.worker] is None:
                    actor = self._worker_actor(live.worker)
                else:
                    actor = ""
                if actor:
                    if key in plans:
                        del plans[key]
                    self._fire(live, plan.trigger, actor, plan.reason)
                    continue
            yield from self._execute(live, key, plan)

    def _enabled(self, live: _Live) -> dict[TriggerId, _Kind]:
        """The enabled triggers, each with its first enabled transition.

        From the machine's options, remembered until the case next moves.
        """
        found = live.enabled
        if found is not None:
            return found
        table = self._table
        if table is not None:
            # the table's configurations are numbered: where no move has a guard, the
            # answer is the same for every case there, kept by that number
            node: int = live.case.state
            found = self._node_enabled[node]
            if found is None:
                found = self._enabled_of(table.options(live.case))
                if table.fixed_options(live.case):
                    self._node_enabled[node] = found
        else:
            options = self.machine.options(live.case)
            found = self._enabled_cache.get(options)
            if found is None:
                found = self._enabled_of(options)
                self._enabled_cache.put(options, found)
        live.enabled = found
        return found

    def _enabled_of(self, options: tuple[Option, ...]) -> dict[TriggerId, _Kind]:
        """Each enabled trigger among ``options`` with its first enabled transition."""
        enabled: dict[TriggerId, _Kind] = {}
        for o in options:
            if o.enabled and o.transition.trigger not in enabled:
                enabled[o.transition.trigger] = self._kind(o.transition)
        return enabled

    # -- planning ----------------------------------------------------------------------------
    def _replan(self, live: _Live) -> None:
        plans = live.plans
        inf = math.inf
        for p in plans.values():
            if p.time == inf:  # a task waiting until the case can do it again
                waiting = [p for p in plans.values() if p.time == inf]
                enabled_now = self._enabled(live)
                for plan in waiting:
                    if plan.trigger in enabled_now:
                        plan.time = self._working_moment(self._drive.now, self._drive.now)
                break
        behaving = live.here.behaving
        for sid in behaving:
            if sid not in plans:
                break
        else:
            return  # every behaving state has its plan
        enabled = self._enabled(live)
        for sid in behaving:
            if sid in live.plans:
                continue
            b = self.behaviour[sid]
            if b.history_table is not None and live.plans_had:
                table = b.history_table
            elif b.by_visit:
                table = b.tables[min(live.visits.get(sid, 0), len(b.tables)) - 1]
            else:
                table = b.tables[0]
            usable = frozenset([t for t in table.triggers if t in enabled])
            if not usable:
                live.declined.pop(sid, None)  # the opportunity has passed
                continue
            if live.declined.get(sid) == usable:
                continue  # already declined at this opportunity
            rng = self._behaviour_rng
            chance = b.history_chance if live.plans_had else b.chance
            if chance < 1.0 and rng.random() >= chance:
                live.declined[sid] = usable
                continue
            live.declined.pop(sid, None)
            trigger, after = table.choose(usable, rng)
            if table.early and after is None:
                # Some of these come early on their own timing (a review brought forward);
                # the draw is on the timing stream, and only where a scenario asks for it.
                early = table.early[table.triggers.index(trigger)]
                if early is not None and self._timing_rng.random() < early[0]:
                    after = early[1]
                    live.hurried = True
            self._plan_step(live, b, trigger, after)

    def _fraction(self, at: float | Dist | None) -> float:
        if at is None:
            return 0.8
        if isinstance(at, Dist):
            return at.sample(self._timing_rng)
        return at

    def _plan_step(self, live: _Live, b: Behaviour, trigger: TriggerId,
                   after: Dist | None) -> None:
        now = self._drive.now
        rng = self._timing_rng
        time: float | None = None
        if b.meeting_for_lead is not None and b.meeting_for_lead in live.bookings:
            time = self._before_meeting(live, b, trigger)
        # A choice with its own timing (a plan ending when the child is looked after, an
        # enquiry closing) happens on that timing; the state's aim times the others.
        if time is None and b.aim_deadlines and after is None and not live.hurried:
            for did in b.aim_deadlines:
                clock = live.case.clocks.get(did)
                if clock is not None and clock.due is not None:
                    frac = self._fraction(b.aim_at)
                    time = clock.started + frac * (clock.due - clock.started)
                    break
        if time is None:
            dist = after or b.after
            if dist is None:
                dist = Dist("fixed", "hours", (0.0,))
            time = advance(self.calendar, now, dist.sample(rng), dist.unit)
        time = max(time, now)
        kind = self._enabled(live).get(trigger)
        if kind is not None and kind.meeting and live.meeting is None:
            time, late = self._book(live, trigger, time)
            if late and b.postpone is not None and "postpone" not in live.plans:
                live.plans["postpone"] = _Plan(now, next(self._order), b.postpone,
                                               "postpone", "no_slot_in_time")
        elif kind is not None and kind.people:
            time = self._working_moment(time, now)
        live.plans[b.state] = _Plan(time, next(self._order), trigger, b.state)

    def _working_moment(self, t: SimHours, now: SimHours) -> SimHours:
        """``t`` moved into working hours.

        Back to the last working half-hour before it (so a step aimed before a deadline
        stays before it), or, if that has passed, the next working moment from now.
        """
        cal = self.calendar
        day = math.floor(t / 24.0)
        hour = t - 24.0 * day
        working = cal.is_working(day)
        if working and cal.day_starts <= hour < cal.day_ends:
            return t
        if working and hour >= cal.day_ends:
            earlier = 24.0 * day + cal.day_ends - 0.5
        else:
            earlier = 24.0 * cal.working_before(day) + cal.day_ends - 0.5
        if earlier >= now:
            return earlier
        return cal.next_working_time(now)

    def _book(self, live: _Live, trigger: TriggerId, target: SimHours) -> tuple[float, bool]:
        """Book (or reuse) the case's diary slot for a meeting; True when it is too late."""
        now = self._drive.now
        existing = live.bookings.get(trigger)
        if existing is not None and existing[1] >= now:
            return existing[1], False
        day, start = self.diary.book(target, now)
        live.bookings[trigger] = (day, start)
        for step, (meetings, lead) in self.contributions.items():
            if trigger in meetings:
                time = self._working_moment(
                    max(now, start - self._lead(live, step, trigger, lead)), now)
                live.plans[f"before:{step}"] = _Plan(time, next(self._order), step,
                                                     f"before:{step}")
        due = [c.due for d in self.ends_with.get(trigger, ())
               if (c := live.case.clocks.get(d.id)) is not None and c.due is not None]
        return start, bool(due) and start > min(due)

    def _before_meeting(self, live: _Live, b: Behaviour, trigger: TriggerId) -> float | None:
        assert b.meeting_for_lead is not None and b.lead is not None
        return live.bookings[b.meeting_for_lead][1] - self._lead(live, trigger,
                                                                b.meeting_for_lead, b.lead)

    def _lead(self, live: _Live, trigger: TriggerId, meeting: TriggerId, lead: Dist) -> float:
        """How long before ``meeting`` the contributions behind ``trigger`` are all in.

        The procedure's minimum notice is the largest ``at_least`` deadline from
        ``trigger`` that applies to the case; each agency in the step's resources is on
        time (notice plus ``lead``) with its ``report_on_time`` probability, otherwise it
        arrives inside the notice period. The step happens when the last one is in.
        """
        ctx = live.case.guard_context()
        required = 0.0
        for d in self.procedure.deadlines:
            if (d.start.kind == "trigger" and d.start.name == trigger and d.at_least
                    and (d.when is None or evaluate(d.when, ctx))):
                required = max(required, _hours(d.at_least.unit, d.at_least.value))
        transition = next((t for t in self.procedure.transitions if t.trigger == trigger),
                          None)
        agencies = [a for r in (transition.resources if transition else ())
                    if r.role == "agency" for a in r.agencies]
        rng = self._agencies_rng
        timing = self._timing_rng
        leads = []
        for agency in agencies or ["_"]:
            spec = self.spec.staffing.agencies.get(agency)
            on_time = spec.report_on_time if spec else 1.0
            if rng.random() < on_time:
                leads.append(required + _hours(lead.unit, lead.sample(timing)))
            else:
                # rng.uniform(0, required), as numpy computes it from one double
                leads.append(required * rng.random() if required > 0 else 0.0)
        del meeting
        return min(leads)

    def _plan_tasks(self, live: _Live, started: Sequence[str]) -> None:
        for did in started:
            task = self._task_of.get(did)
            if task is None:
                continue
            clock = live.case.clocks.get(did)
            if clock is None:
                continue
            trigger, aim, after, people, key = task
            if clock.due is not None:
                low = clock.earliest if clock.earliest is not None else clock.started
                time = low + self._fraction(aim) * (clock.due - low)
            elif after is not None:
                time = advance(self.calendar, clock.started, after.sample(self._timing_rng),
                               after.unit)
            else:
                continue
            now = self._drive.now
            time = max(time, now)
            if people:
                time = self._working_moment(time, now)
            live.plans[key] = _Plan(time, next(self._order), trigger, key)

    # -- doing -------------------------------------------------------------------------------
    def _execute(self, live: _Live, key: str, plan: _Plan) -> Generator[Awaited, Any, None]:
        """Gather what the step needs, then fire it.

        Social-work and management steps happen in working hours: a case waits for its
        allocation, for its worker's return from absence, and for a free manager, then the
        step is done at the next working moment. A meeting goes ahead at its booked slot
        (a colleague covers an absent worker); if waiting for allocation made it miss the
        slot, the next free slot is booked.
        """
        case = live.case
        kind = self._enabled(live).get(plan.trigger)
        if kind is None:
            if key.startswith("task:") and key[5:] in case.clocks:
                # Not possible here (a visit while the review conference sits): the task
                # waits, its clock still running, until the case can do it again.
                plan.time = math.inf
            else:
                live.plans.pop(key, None)
            return
        actors: list[str] = []
        transition = kind.transition
        meeting = kind.meeting and live.meeting is None
        waited = False
        if kind.social and live.here.holds:
            while live.worker is None:
                assert live.allocated is not None
                yield live.allocated
                waited = True
            back = self.workers.back[live.worker]
            if back is not None and not meeting:
                yield back
                waited = True
            actors.append(self._worker_actor(live.worker))
        for level in kind.managers:
            desk, work = self.managers[level]
            request = desk.request()
            yield request
            hours = work.sample(self._timing_rng)
            yield self._drive.timeout(advance(self.calendar, self._drive.now, hours,
                                              work.unit) - self._drive.now)
            desk.release(request)
            actors.append(f"manager:{level}")
        if waited and not meeting:
            start = self.calendar.next_working_time(self._drive.now)
            if start > self._drive.now:
                yield self._drive.timeout(start - self._drive.now)
        if meeting:
            booking = live.bookings.get(plan.trigger)
            if booking is None or booking[1] < self._drive.now - 1e-9:
                if booking is not None:
                    self.diary.cancel(booking[0])
                booking = self.diary.book(self._drive.now, self._drive.now)
                live.bookings[plan.trigger] = booking
            if booking[1] > self._drive.now:
                yield self._drive.timeout(booking[1] - self._drive.now)
            absent = self._attendance(transition)
            if absent:
                actors.append("absent:" + "|".join(absent))
            owner = self.behaviour.get(plan.owner)
            staffing = self.spec.staffing
            can_postpone = (owner is not None and owner.postpone is not None
                            and owner.postpone in self._enabled(live))
            reason = ""
            family, _ = self._meeting_rules(plan.trigger)
            if (can_postpone and family > 0
                    and plan.trigger not in live.family_postponed
                    and self.rng["family"].random() < family):
                # The family cannot come on the booked day: the chair rebooks (a parent's
                # attendance is part of the conference, WM-17).
                live.family_postponed.add(plan.trigger)
                reason = "family_unavailable"
            elif (absent and can_postpone and plan.trigger not in live.absence_postponed
                    and self._agencies_rng.random() < staffing.postpone_when_absent):
                # WM-11: better to postpone a day or two to get everyone there
                live.absence_postponed.add(plan.trigger)
                reason = "agency_absent"
            if reason:
                assert owner is not None and owner.postpone is not None
                self.diary.cancel(live.bookings.pop(plan.trigger)[0])
                nxt = advance(self.calendar, self._drive.now, *self._rebook_delay(plan.trigger))
                live.bookings[plan.trigger] = self.diary.book(nxt, self._drive.now)
                self._fire(live, owner.postpone, "conference_chair", reason)
                return
            self.diary.hold(live.bookings.pop(plan.trigger)[0])
            live.absence_postponed.discard(plan.trigger)
            live.family_postponed.discard(plan.trigger)
            live.meeting = transition.dest
            live.hurried = False
            actors.append("conference_chair")
        if not actors:
            actors.append(kind.actor)
        live.plans.pop(key, None)
        self._fire(live, plan.trigger, ";".join(actors), plan.reason)

    def _meeting_rules(self, trigger: TriggerId) -> tuple[float, Dist | None]:
        """The chance the family cannot come to this meeting, and its rebooking delay."""
        found = self._meetings.get(trigger)
        if found is None:
            staffing = self.spec.staffing
            own = staffing.by_meeting.get(trigger) or MeetingSpec()
            family = (staffing.family_unavailable if own.family_unavailable is None
                      else own.family_unavailable)
            rebook = own.rebook_after or staffing.rebook_after
            found = self._meetings[trigger] = (family, rebook.build() if rebook else None)
        return found

    def _rebook_delay(self, trigger: TriggerId) -> tuple[float, TimeUnit]:
        """How long after a postponed date the next one is (amount, unit)."""
        dist = self._meeting_rules(trigger)[1]
        if dist is None:
            return 1.0, "working_days"
        return dist.sample(self._timing_rng), dist.unit

    def _attendance(self, t: Transition) -> list[str]:
        rng = self._agencies_rng
        absent = []
        for r in t.resources:
            if r.role != "agency":
                continue
            for agency in r.agencies:
                spec = self.spec.staffing.agencies.get(agency)
                if spec is not None and rng.random() >= spec.attends:
                    absent.append(agency)
                    self.record.agency_absences[agency] += 1
        return absent

    def _fire(self, live: _Live, trigger: TriggerId, actor: str, reason: str = "") -> None:
        now = self._drive.now
        case = live.case
        live.enabled = None
        table = self._table
        if table is not None:
            result, number = table.fire_move(case, trigger, now)
        else:
            result, number = self.machine.fire(case, trigger, now), -1
        step = result.step
        rec = self.record
        self._transitions += 1
        counting = now >= self.warm_up
        if counting:
            triggers = self._trigger_counts
            triggers[trigger] = triggers.get(trigger, 0) + 1
            if reason:
                rec.postponements[f"{trigger}:{reason}"] += 1
        if reason:
            actor = f"{actor};reason:{reason}"
        for observe in self._step_observers:
            observe(step, actor)
        here = live.here
        after = here if step.after == here.config else self._here(step.after)
        live.here = after
        if number >= 0:  # the table's move: its shape is kept by the move's number
            found = self._move_shapes[number]
            if found is None:
                found = self._move_shapes[number] = self._shape(step.events)
            shape = found
        else:
            shape = self._shape(step.events)
        if after is not here or shape[1]:
            self._moved(live, step, shape, here, after, counting)
        plans = live.plans
        for verdict in result.verdicts:
            plans.pop(self._task_keys[verdict.deadline_id], None)
            if verdict.started < self.warm_up:
                continue
            row = rec.deadlines[verdict.deadline_id]
            row[verdict.outcome] += 1
            if verdict.elapsed is not None:
                row["elapsed"].append(verdict.elapsed)
        postpone = plans.get("postpone")
        if postpone is not None and postpone.trigger == trigger:
            del plans["postpone"]
        if result.started:
            self._plan_tasks(live, result.started)
        if live.bookings:
            for trig in list(live.bookings):
                if (trig not in after.offered
                        and not after.active & self._booking_scope[trig]):
                    self.diary.cancel(live.bookings.pop(trig)[0])

    def _moved(self, live: _Live, step: Step, shape: _Shape, before: _Here, after: _Here,
               counting: bool, staff: bool = True) -> None:
        """Follow the machine's own exit and entry events (a self-targeted move re-enters).

        ``shape`` is the step's (:meth:`_shape`); ``before`` and ``after`` are where it
        left and took the case. ``staff`` False replays history: no allocation changes, no
        stage counts.
        """
        now = step.time
        exited, entered, mirrored = shape
        # A routine task (a statutory visit, a core group) that leaves the case where it was
        # is not a new visit: what was planned in the state keeps its time, and visit counts
        # (choose_by_visit) stay. Without this every visit re-drew the state's choice.
        routine = mirrored and step.trigger in self.tasks
        if live.meeting is not None and live.meeting in exited:
            live.meeting = None
        if not routine:
            # ``in`` and ``del`` rather than pop(sid, None): compiled, these are C calls,
            # where dict.pop with a default is a Python method lookup
            entered_at, plans, declined = live.entered, live.plans, live.declined
            for sid in exited:
                if sid in entered_at:
                    del entered_at[sid]
                if sid in plans:
                    del plans[sid]
                if sid in declined:
                    del declined[sid]
        entries = self._entries
        visits = live.visits
        for sid in entered:
            if counting:
                entries[sid] = entries.get(sid, 0) + 1
            if routine:
                continue
            live.entered[sid] = now
            inside = self._inside.get(sid)
            if inside is not None:
                # a new episode at the top level: visit counts inside it start again
                for inner in [s for s in visits if s in inside]:
                    del visits[inner]
            visits[sid] = visits.get(sid, 0) + 1
        top_before, top_after = before.top, after.top
        if top_before != top_after:
            # an early step hurries its stage's aimed steps until the meeting sits; leaving
            # the stage before it sits ends that too (a later episode times by its aims)
            live.hurried = False
            if staff:
                stages = self.stage_counts
                stages[top_before] -= 1
                stages[top_after] = stages.get(top_after, 0) + 1
        rec = self.record
        plan_starts, plan_ends = self.plan_state in entered, self.plan_state in exited
        if self.plan_episode:
            # the plan lasts while the case is in any of its states (a flat procedure whose
            # reviews sit beside the plan): it starts on entering them and ends on leaving
            was, stays = before.in_plan, after.in_plan
            plan_starts, plan_ends = stays and not was, was and not stays
        if plan_starts:
            if counting:
                rec.plans_started += 1
                if live.plans_had:
                    rec.repeat_plans += 1
            live.plans_had += 1
            live.plan_started = now
        elif plan_ends:
            if counting:
                rec.plans_ended += 1
                if live.plan_started is not None:
                    rec.plan_lengths_days.append((now - live.plan_started) / 24.0)
            live.plan_started = None
        holds_before, holds_after = before.holds, after.holds
        if not staff:
            return
        if holds_after and not holds_before and live.worker is None and live.allocated is None:
            self.workers.request(live)
        elif holds_before and not holds_after:
            self.workers.release(live)

    def _shape(self, events: tuple[Any, ...]) -> _Shape:
        """States a step exits and enters (in event order), and whether exits mirror entries.

        Cached by the events tuple's identity (:class:`model.graph.ByIdentity`).
        """
        found = self._shape_cache.get(events)
        if found is not None:
            return found
        exited = tuple(e.name for e in events if e.kind == "exit")
        entered = tuple(e.name for e in events if e.kind == "enter")
        shape = (exited, entered, exited == entered[::-1])
        self._shape_cache.put(events, shape)
        return shape

    def _finish(self, live: _Live, config: Config) -> None:
        for obs in self.observers:
            obs.case_finished(live.case.case_id, config)
        self.workers.release(live)
        for _trig, (day, _start) in live.bookings.items():
            self.diary.cancel(day)
        self.stage_counts[live.here.top] -= 1
        self.machine.release(live.case)
        del self.live[live.case.case_id]
        self.record.cases_finished += 1

    # -- measuring ---------------------------------------------------------------------------
    def _sampler(self) -> Generator[Awaited, Any, None]:
        every = self.spec.run.sample_every_days * 24.0
        rec = self.record
        stages = [sid for sid, st in self.procedure.states.items()
                  if st.parent is None and st.region is None]
        # open plans are the cases in the scenario's plan state, when that is a top-level stage
        plans = self.plan_state if self.plan_state in stages else None
        # a case resting in a terminal stage (closed, perhaps to be referred again) is not open
        resting = [sid for sid in stages if self.procedure.states[sid].terminal]

        def open_cases() -> float:
            return float(len(self.live) - sum(self.stage_counts[s] for s in resting))

        while True:
            now = self._drive.now
            if self.progress is not None:
                self.progress(now)
            rec.transient_days.append(int(now // 24))
            rec.transient["open_cases"].append(open_cases())
            if plans is not None:
                rec.transient["open_plans"].append(float(self.stage_counts[plans]))
            if now >= self.warm_up:
                mean, median, p90, top = caseload_summary(self.workers.caseloads())
                rec.sample_days.append(int(now // 24))
                series = rec.series
                series["caseload_mean"].append(mean)
                series["caseload_median"].append(median)
                series["caseload_p90"].append(p90)
                series["caseload_max"].append(top)
                series["unallocated_queue"].append(float(self.workers.unallocated()))
                series["workers_absent"].append(float(self.workers.absent()))
                for sid in stages:
                    series[f"stage:{sid}"].append(float(self.stage_counts[sid]))
                series["open_cases"].append(open_cases())
            yield self._drive.timeout(every)

    def _close_books(self) -> None:
        """At the horizon: open clocks, open cases by state, capacity used."""
        rec = self.record
        rec.transitions += self._transitions
        rec.triggers.update(self._trigger_counts)
        rec.entries.update(self._entries)
        self._transitions = 0
        self._trigger_counts.clear()
        self._entries.clear()
        now = self.horizon
        for live in self.live.values():
            config = self.machine.configuration(live.case)
            rec.open_by_state[" + ".join(config)] += 1
            for did, clock in live.case.clocks.items():
                if clock.started < self.warm_up:
                    continue
                if clock.due is not None and clock.due < now:
                    rec.deadlines[did]["open_overdue"] += 1
                else:
                    rec.deadlines[did]["open_not_due"] += 1
        rec.allocation_waits_hours = [w for w in self.workers.waits]
        first = math.ceil(self.warm_up / 24)
        last = int(self.horizon // 24)
        working = max(0, self.calendar.count_working(first - 1, last - 1))  # days first..last-1
        rec.meetings_held = sum(n for d, n in self.diary.held.items() if first <= d < last)
        rec.meeting_capacity = working * self.diary.capacity
        rec.chair_capacity = working * self.diary.chair_capacity
        rec.minute_capacity = working * self.diary.minute_capacity
