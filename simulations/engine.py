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
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import heapq
import itertools
import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import simpy

from model.calendar import WorkingCalendar
from model.compiler import Case, FireResult, Option, Step
from model.graph import Config, active_states, is_terminal, possible_events
from model.guards import evaluate
from model.spec import Deadline, Procedure, Transition
from model.types import SimHours, StateId, TriggerId
from simulations.distributions import Dist, TimeUnit, advance
from simulations.observers import NullObserver, Observer
from simulations.scenario import (
    BehaviourSpec,
    ChoiceSpec,
    DistSpec,
    MeetingSpec,
    Scenario,
    TurnoverSpec,
)

HOURS_PER_YEAR = 365.25 * 24.0
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


def replication_streams(root_seed: int, replication: int) -> dict[str, np.random.Generator]:
    """One generator per named source for one replication.

    Derived from ``SeedSequence(root_seed, spawn_key=(replication, k))`` so a replication's
    draws do not depend on which worker runs it, and two scenarios run with the same seed
    draw the same numbers for the same source (common random numbers).
    """
    return {
        name: np.random.default_rng(
            np.random.SeedSequence(root_seed, spawn_key=(replication, k)))
        for k, name in enumerate(STREAMS)
    }


# -- compiled behaviour ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Table:
    triggers: tuple[TriggerId, ...]
    cumulative: tuple[float, ...]
    afters: tuple[Dist | None, ...]
    early: tuple[tuple[float, Dist] | None, ...] = ()
    """Per branch: (share, timing) of the times it comes earlier than the state's timing."""


@dataclass(frozen=True)
class _Behaviour:
    state: StateId
    tables: tuple[_Table, ...]
    by_visit: bool
    history_table: _Table | None
    chance: float
    history_chance: float
    after: Dist | None
    aim_deadlines: tuple[str, ...]
    aim_at: float | Dist | None
    meeting_for_lead: TriggerId | None
    lead: Dist | None
    postpone: TriggerId | None


def _table(choices: dict[str, float] | dict[str, float | ChoiceSpec]) -> _Table:
    triggers: list[str] = []
    weights: list[float] = []
    afters: list[Dist | None] = []
    early: list[tuple[float, Dist] | None] = []
    for trig, value in choices.items():
        triggers.append(trig)
        if isinstance(value, ChoiceSpec):
            weights.append(value.weight)
            afters.append(value.after.build() if value.after else None)
            early.append((value.early.share, value.early.after.build())
                         if value.early is not None else None)
        else:
            weights.append(float(value))
            afters.append(None)
            early.append(None)
    total = sum(weights) or 1.0
    cumulative = tuple(itertools.accumulate(w / total for w in weights))
    return _Table(tuple(triggers), cumulative, tuple(afters),
                  tuple(early) if any(e is not None for e in early) else ())


def _compile_behaviour(sid: StateId, b: BehaviourSpec) -> _Behaviour:
    tables = ((_table(b.choose),) if b.choose is not None
              else tuple(_table(t) for t in b.choose_by_visit or []))
    aim_at: float | Dist | None = None
    if b.aim is not None:
        aim_at = b.aim.at.build() if isinstance(b.aim.at, DistSpec) else b.aim.at
    return _Behaviour(
        state=sid,
        tables=tables,
        by_visit=b.choose_by_visit is not None,
        history_table=(_table(b.choose_if_previous_plan)
                       if b.choose_if_previous_plan is not None else None),
        chance=b.chance,
        history_chance=b.chance_for(had_plan=True),
        after=b.after.build() if b.after else None,
        aim_deadlines=tuple(b.aim.deadlines) if b.aim else (),
        aim_at=aim_at,
        meeting_for_lead=b.before_meeting.trigger if b.before_meeting else None,
        lead=b.before_meeting.lead.build() if b.before_meeting else None,
        postpone=b.postpone,
    )


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


# -- live state ------------------------------------------------------------------------------
@dataclass(slots=True)
class _Plan:
    time: SimHours
    order: int
    trigger: TriggerId
    owner: str
    reason: str = ""


@dataclass(eq=False, slots=True)
class _Live:
    case: Case
    process_order: int
    entered: dict[StateId, SimHours] = field(default_factory=dict)
    visits: Counter[StateId] = field(default_factory=Counter)
    plans: dict[str, _Plan] = field(default_factory=dict)
    declined: dict[StateId, frozenset[str]] = field(default_factory=dict)
    bookings: dict[TriggerId, tuple[int, SimHours]] = field(default_factory=dict)
    absence_postponed: set[TriggerId] = field(default_factory=set)
    family_postponed: set[TriggerId] = field(default_factory=set)
    worker: int | None = None
    allocated: simpy.Event | None = None
    queued_at: SimHours | None = None
    plan_started: SimHours | None = None
    plans_had: int = 0
    meeting: StateId | None = None
    options: tuple[Option, ...] | None = None
    hurried: bool = False
    """A step came early (a review brought forward): aims wait until the next meeting sits."""


# -- resources -------------------------------------------------------------------------------
class Diary:
    """Conference slots on working days for chairs and minute-takers together.

    A conference needs one chair slot and one minute-taker slot on the same working day.
    Slots are numbered in the day; the n-th meeting of a day starts at the start of working
    hours plus ``(n // parallel) * meeting_hours``.
    """

    def __init__(self, calendar: WorkingCalendar, chairs: int, chair_slots: int,
                 minute_takers: int, minute_slots: int, meeting_hours: float) -> None:
        """Set the daily capacities."""
        self.calendar = calendar
        self.chair_capacity = chairs * chair_slots
        self.minute_capacity = minute_takers * minute_slots
        self.capacity = min(self.chair_capacity, self.minute_capacity)
        self.parallel = max(1, min(chairs, minute_takers))
        self.meeting_hours = meeting_hours
        self.booked: Counter[int] = Counter()
        self.held: Counter[int] = Counter()

    def book(self, target: SimHours, now: SimHours) -> tuple[int, SimHours]:
        """The first free slot on a working day at or after ``target``'s date, not before now.

        Returns:
            The day index and the slot's start time (sim hours).
        """
        day = max(self.calendar.day_of(max(target, now)), 0)
        while True:
            if self.calendar.is_working(day):
                n = self.booked[day]
                if n < self.capacity:
                    start = (day * 24.0 + self.calendar.day_starts
                             + (n // self.parallel) * self.meeting_hours)
                    if start >= now:
                        self.booked[day] += 1
                        return day, start
            day += 1

    def cancel(self, day: int) -> None:
        """Free a slot that will not be used."""
        if self.booked[day] > 0:
            self.booked[day] -= 1

    def hold(self, day: int) -> None:
        """Count a meeting that took place (for utilisation)."""
        self.held[day] += 1


class Workers:
    """Case-holding social workers in teams: allocation up to a cap, absence and turnover.

    Posts are dealt to teams in turn, and each case belongs to one team (its area): it is
    allocated to the least-loaded worker of that team below their cap, or joins the team's
    first-come queue, however much room other teams have. A case keeps its team for life (the
    team is a keyed hash of the case id, with a key drawn once per replication, so nothing is
    stored per case and no draw is made without teams). Absence (leave and sickness)
    alternates with presence per post; while a worker is away, their cases' social-work steps
    wait for their return.

    Posts may differ in FTE and cap (part-timers, newly qualified workers): a team's
    workers are compared by load relative to their own cap, so a part-timer at 0.6 FTE with
    a cap of 13 holds about 0.6 of a full-timer's cases. Posts are dealt to the team with
    the least FTE so far (in turn when all are full-time), so teams are staffed alike. With
    ``demand_spread`` the teams' areas get unequal shares of the cases: gamma weights with
    that coefficient of variation, drawn once per replication, replace equal shares.

    With turnover, the worker in each post leaves after exponential times (a worker who is
    away leaves on return). Their cases lose their worker and wait, exactly like unallocated
    cases, until a manager hands them on ``reallocation_delay`` later; they are then
    allocated in their team or queue for it, and their wait for allocation counts from the
    moment their worker left. The post stands vacant (its vacancy or agency gap) until a
    new worker starts in it with no cases. Without teams and turnover this is a single
    authority-wide pool whose posts stay filled, drawing nothing beyond absence.
    """

    def __init__(self, env: simpy.Environment, count: int, cap: int, absence_rate: float,
                 spell_days: float, rng: np.random.Generator, *, teams: int = 1,
                 turnover: TurnoverSpec | None = None,
                 calendar: WorkingCalendar | None = None, record: RunRecord | None = None,
                 count_from: SimHours = 0.0, fte: Sequence[float] | None = None,
                 caps: Sequence[int] | None = None, demand_spread: float = 0.0) -> None:
        """Create ``count`` workers in ``teams`` teams and start their processes.

        ``record`` receives the leavers and re-allocations from ``count_from`` on (the end
        of the warm-up); ``calendar`` times turnover's working-day delays. ``fte`` and
        ``caps`` give each post its FTE and caseload cap (default: 1 and ``cap``);
        ``demand_spread`` is the coefficient of variation of the areas' shares of cases.
        """
        self.env = env
        self.cap = cap
        self.caps = [cap] * count if caps is None else list(caps)
        self.fte = [1.0] * count if fte is None else list(fte)
        assert len(self.caps) == count and len(self.fte) == count
        self.load = [0] * count
        self.present = [True] * count
        self.back: list[simpy.Event | None] = [None] * count
        self.filled = [True] * count
        self.teams = teams
        self.team_of_post = self._deal(self.fte, teams)
        self.cases: list[dict[_Live, None]] = [{} for _ in range(count)]
        self._heaps: list[list[tuple[float, int]]] = [[] for _ in range(teams)]
        for i, t in enumerate(self.team_of_post):
            self._heaps[t].append((0.0, i))  # in post order: already a heap
        self.queues: list[deque[_Live]] = [deque() for _ in range(teams)]
        self.handover: dict[_Live, None] = {}
        """Cases whose worker left, not yet handed on (insertion-ordered)."""
        self.waits: list[float] = []
        self.record = record
        self.count_from = count_from
        # child streams of the staff stream: spawning draws nothing from it, so absence
        # draws are the same whether or not teams, turnover and unequal areas are configured
        # (and a child added at the end leaves the earlier children as they were)
        team_rng, turnover_rng, area_rng = rng.spawn(3)
        self._key = team_rng.bytes(16) if teams > 1 else b""
        self._bounds: list[float] | None = None
        """Upper ends of the areas' cumulative shares, when these are unequal."""
        if teams > 1 and demand_spread > 0:
            shape = 1.0 / demand_spread ** 2
            weights = area_rng.gamma(shape, 1.0, size=teams)
            self._bounds = [float(b) for b in np.cumsum(weights / weights.sum())]
        if absence_rate > 0:
            for i in range(count):
                env.process(self._absence(i, absence_rate, spell_days, rng))
        if turnover is not None:
            assert calendar is not None, "turnover needs the working-day calendar"
            self.calendar = calendar
            self._handover_delay = turnover.reallocation_delay.build()
            self._vacancy_gap = turnover.vacancy_gap.build()
            self._agency_gap = turnover.agency_gap.build()
            self._agency_cover = turnover.agency_cover
            stay = HOURS_PER_YEAR / turnover.rate_per_year
            for i in range(count):
                env.process(self._turnover(i, stay, turnover_rng))

    def _absence(self, i: int, rate: float, spell_days: float,
                 rng: np.random.Generator) -> Generator[simpy.Event, Any, None]:
        away_mean = spell_days * 24.0
        here_mean = away_mean * (1.0 - rate) / rate
        if rng.random() < rate:
            self.present[i] = False
            self.back[i] = self.env.event()
            yield self.env.timeout(rng.exponential(away_mean))
            self._return(i)
        while True:
            yield self.env.timeout(rng.exponential(here_mean))
            self.present[i] = False
            self.back[i] = self.env.event()
            yield self.env.timeout(rng.exponential(away_mean))
            self._return(i)

    def _return(self, i: int) -> None:
        self.present[i] = True
        event = self.back[i]
        self.back[i] = None
        if event is not None:
            event.succeed()

    @staticmethod
    def _deal(fte: Sequence[float], teams: int) -> list[int]:
        """Each post's team: the team with the least FTE so far (the first on ties)."""
        dealt = [(0.0, t) for t in range(teams)]
        out = []
        for f in fte:
            have, t = heapq.heappop(dealt)
            out.append(t)
            heapq.heappush(dealt, (have + f, t))
        return out

    def team(self, live: _Live) -> int:
        """The case's team: the same on every (re-)allocation of the case."""
        if self.teams == 1:
            return 0
        digest = hashlib.blake2b(live.case.case_id.encode(), key=self._key,
                                 digest_size=8).digest()
        if self._bounds is None:
            return int.from_bytes(digest, "big") % self.teams
        u = int.from_bytes(digest, "big") / 2.0 ** 64
        return min(bisect.bisect_right(self._bounds, u), self.teams - 1)

    def _rank(self, i: int) -> float:
        """Worker ``i``'s load as a share of their own cap: who is allocated next."""
        return self.load[i] / self.caps[i]

    def caseloads(self) -> list[int]:
        """Caseloads of the filled posts only (a vacant post is not a worker with no cases).

        Per person, whatever their FTE (as a caseload survey counts them). A single 0 when
        every post is vacant.
        """
        return [n for n, f in zip(self.load, self.filled, strict=True) if f] or [0]

    def absent(self) -> int:
        """Workers in post who are away (a vacant post is not counted)."""
        return sum(f and not p for p, f in zip(self.present, self.filled, strict=True))

    def unallocated(self) -> int:
        """Cases without a worker: queued for their team, or waiting to be handed on."""
        return sum(len(q) for q in self.queues) + len(self.handover)

    def _take(self, team: int) -> int | None:
        heap = self._heaps[team]
        while heap:
            rank, i = heap[0]
            if rank != self._rank(i) or not self.filled[i]:
                heapq.heappop(heap)
                continue
            if self.load[i] >= self.caps[i]:
                return None  # the lowest share of its cap is full: so is everyone's
            self.load[i] += 1
            heapq.heapreplace(heap, (self._rank(i), i))
            return i
        return None

    def request(self, live: _Live) -> None:
        """Allocate a worker of the case's team now, or queue the case for that team."""
        team = self.team(live)
        i = self._take(team)
        if i is not None:
            live.worker = i
            self.cases[i][live] = None
            return
        live.allocated = self.env.event()
        live.queued_at = self.env.now
        self.queues[team].append(live)

    def release(self, live: _Live) -> None:
        """Free the case's worker and allocate the next queued case of the team, if any.

        A case without a worker leaves its team's queue, or the cases waiting to be handed
        on, whichever it is in.
        """
        i = live.worker
        if i is None:
            if live in self.handover:
                del self.handover[live]
                live.queued_at = None
                if live.allocated is not None and not live.allocated.callbacks:
                    live.allocated = None  # no step waits: a later request starts afresh
                return
            queue = self.queues[self.team(live)]
            if live in queue:
                queue.remove(live)
            return
        live.worker = None
        del self.cases[i][live]
        self.load[i] -= 1
        team = self.team_of_post[i]
        heapq.heappush(self._heaps[team], (self._rank(i), i))
        self._serve(team)

    def _serve(self, team: int) -> None:
        """Allocate the team's queued cases, first come first served, while it has room."""
        queue = self.queues[team]
        while queue:
            j = self._take(team)
            if j is None:
                break
            self._allocated(queue.popleft(), j)

    def _allocated(self, live: _Live, i: int) -> None:
        """Give a waiting case worker ``i``, note its wait and wake its steps."""
        live.worker = i
        self.cases[i][live] = None
        if live.queued_at is not None:
            self.waits.append(self.env.now - live.queued_at)
        live.queued_at = None
        event = live.allocated
        live.allocated = None
        if event is not None:
            event.succeed()

    def _counting(self) -> RunRecord | None:
        return self.record if self.env.now >= self.count_from else None

    def _after(self, dist: Dist, rng: np.random.Generator) -> float:
        """Hours from now until a duration drawn from ``dist`` has passed."""
        now = self.env.now
        return advance(self.calendar, now, dist.sample(rng), dist.unit) - now

    def _turnover(self, i: int, stay: float,
                  rng: np.random.Generator) -> Generator[simpy.Event, Any, None]:
        """Post ``i``: its worker leaves, the post stands vacant, a new worker starts."""
        while True:
            yield self.env.timeout(rng.exponential(stay))
            while not self.present[i]:
                back = self.back[i]
                assert back is not None
                yield back
                # let the steps that waited for this return take their worker first
                yield self.env.timeout(0)
            self._leave(i, rng)
            if rng.random() < self._agency_cover:
                yield self.env.timeout(self._after(self._agency_gap, rng))
            else:
                yield self.env.timeout(self._after(self._vacancy_gap, rng))
            self._start(i)

    def _leave(self, i: int, rng: np.random.Generator) -> None:
        """The worker in post ``i`` leaves: each of their cases waits to be handed on."""
        self.filled[i] = False
        cases = list(self.cases[i])
        self.cases[i].clear()
        self.load[i] = 0
        record = self._counting()
        if record is not None:
            record.leavers += 1
        for live in cases:
            live.worker = None
            live.allocated = self.env.event()
            live.queued_at = self.env.now
            self.handover[live] = None
            self.env.process(self._hand_on(live, self._after(self._handover_delay, rng)))

    def _hand_on(self, live: _Live, delay: float) -> Generator[simpy.Event, Any, None]:
        """After ``delay``, allocate a leaver's case in its team, or queue it there."""
        yield self.env.timeout(delay)
        if live not in self.handover:
            return  # the case closed, or left the stages that hold a worker, meanwhile
        del self.handover[live]
        record = self._counting()
        if record is not None:
            record.reallocations += 1
        team = self.team(live)
        i = self._take(team)
        if i is None:
            self.queues[team].append(live)
        else:
            self._allocated(live, i)

    def _start(self, i: int) -> None:
        """A new worker starts in post ``i`` with no cases (and present)."""
        self.filled[i] = True
        if not self.present[i]:
            self._return(i)  # the absence spell drawn for the vacant post does not apply
        team = self.team_of_post[i]
        heapq.heappush(self._heaps[team], (0.0, i))
        self._serve(team)


# -- results ---------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """Raw measurements of one replication (plain data, no live objects).

    ``deadlines`` maps a deadline id to counts (met, missed, cancelled, open_overdue,
    open_not_due) and the elapsed values (in the deadline's own unit) of met and missed
    clocks. ``series`` maps a time-series name to one value per sample day after the
    warm-up. ``transient_days`` and ``transient`` hold a few stocks (``open_cases`` and, when
    the plan state is a top-level stage, ``open_plans``) sampled at the same cadence from the
    start of the run, warm-up included, so that the warm-up can be measured rather than assumed.
    The caseload series are over filled posts only. ``leavers`` and ``reallocations`` count
    social workers leaving and their cases handed on after the warm-up (0 without turnover).
    """

    replication: int
    warm_up_hours: float
    horizon_hours: float
    deadlines: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    postponements: Counter[str] = field(default_factory=Counter)
    plan_lengths_days: list[float] = field(default_factory=list)
    repeat_plans: int = 0
    plans_started: int = 0
    plans_ended: int = 0
    sample_days: list[int] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    transient_days: list[int] = field(default_factory=list)
    transient: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    allocation_waits_hours: list[float] = field(default_factory=list)
    meetings_held: int = 0
    meeting_capacity: int = 0
    chair_capacity: int = 0
    minute_capacity: int = 0
    cases_created: int = 0
    cases_finished: int = 0
    open_by_state: Counter[str] = field(default_factory=Counter)
    transitions: int = 0
    agency_absences: Counter[str] = field(default_factory=Counter)
    leavers: int = 0
    reallocations: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain, JSON-ready data; raw elapsed times become quantiles and a histogram."""
        deadlines = {}
        for did, row in self.deadlines.items():
            out = {k: v for k, v in row.items() if k != "elapsed"}
            values = np.asarray(row["elapsed"], dtype=float)
            out.update(_summary(values, _BIN_WIDTH.get(str(row["unit"]), 1.0)))
            deadlines[did] = out
        plan = _summary(np.asarray(self.plan_lengths_days, dtype=float), 30.0)
        waits = np.asarray(self.allocation_waits_hours, dtype=float) / 24.0
        return {
            "replication": self.replication,
            "warm_up_hours": self.warm_up_hours,
            "horizon_hours": self.horizon_hours,
            "deadlines": deadlines,
            "entries": dict(sorted(self.entries.items())),
            "triggers": dict(sorted(self.triggers.items())),
            "postponements": dict(sorted(self.postponements.items())),
            "plan_lengths_days": plan,
            "repeat_plans": self.repeat_plans,
            "plans_started": self.plans_started,
            "plans_ended": self.plans_ended,
            "sample_days": self.sample_days,
            "series": {k: self.series[k] for k in sorted(self.series)},
            "transient": {"days": self.transient_days,
                          **{k: self.transient[k] for k in sorted(self.transient)}},
            "allocation_waits_days": _summary(waits, 1.0),
            "meetings_held": self.meetings_held,
            "meeting_capacity": self.meeting_capacity,
            "chair_capacity": self.chair_capacity,
            "minute_capacity": self.minute_capacity,
            "cases_created": self.cases_created,
            "cases_finished": self.cases_finished,
            "open_by_state": dict(sorted(self.open_by_state.items())),
            "transitions": self.transitions,
            "agency_absences": dict(sorted(self.agency_absences.items())),
            "leavers": self.leavers,
            "reallocations": self.reallocations,
        }


_BIN_WIDTH = {"hours": 1.0, "days": 1.0, "working_days": 1.0, "months": 0.25}


def _summary(values: np.ndarray[Any, Any], width: float) -> dict[str, Any]:
    """Count, mean, median, 90th percentile and a fixed-width histogram from 0."""
    if values.size == 0:
        return {"n": 0, "mean": None, "median": None, "p90": None,
                "hist_width": width, "hist": []}
    top = max(math.floor(float(values.max()) / width) + 1, 1)
    counts = np.bincount(np.clip(np.floor(values / width), 0, None).astype(int),
                         minlength=top)
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "hist_width": width,
        "hist": [int(c) for c in counts],
    }


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
    """

    def __init__(self, scenario: Scenario, machine: Machine, calendar: WorkingCalendar,
                 replication: int, root_seed: int, observers: Sequence[Observer] = (),
                 progress: Callable[[float], None] | None = None,
                 history: Sequence[History] = (), start_at: SimHours = 0.0) -> None:
        """Build resources and behaviour tables; nothing runs until :meth:`run`."""
        spec = scenario.spec
        self.spec = spec
        self.procedure = machine.procedure
        self.machine = machine
        self.calendar = calendar
        self.env = simpy.Environment(initial_time=start_at)
        self.rng = replication_streams(root_seed, replication)
        self.observers: tuple[Observer, ...] = tuple(observers) or (NullObserver(),)
        self.progress = progress
        self.history = tuple(history)
        self.horizon = start_at + spec.run.horizon_days * 24.0
        self.warm_up = start_at + spec.run.warm_up_days * 24.0
        self.record = RunRecord(replication, self.warm_up, self.horizon)
        for d in self.procedure.deadlines:
            limit = d.within or d.at_least
            assert limit is not None
            self.record.deadlines[d.id] = {
                "met": 0, "missed": 0, "cancelled": 0, "open_overdue": 0, "open_not_due": 0,
                "elapsed": [], "unit": limit.unit, "limit": limit.value,
                "kind": "within" if d.within else "at_least",
            }
        self.behaviour = {sid: _compile_behaviour(sid, b) for sid, b in spec.behaviour.items()}
        self.tasks = {t: (ts.aim.build() if isinstance(ts.aim, DistSpec) else ts.aim,
                          ts.after.build() if ts.after else None)
                      for t, ts in spec.tasks.items()}
        self.contributions = {t: (frozenset(c.meetings), c.lead.build())
                              for t, c in spec.before_meetings.items()}
        self._task_needs_people = {
            t.trigger: bool(t.resources) for t in self.procedure.transitions}
        self.deadline = {d.id: d for d in self.procedure.deadlines}
        self.ends_with: dict[TriggerId, list[Deadline]] = defaultdict(list)
        for d in self.procedure.deadlines:
            if d.end.kind == "trigger":
                self.ends_with[d.end.name].append(d)
            elif d.end.kind == "enter":
                # a clock that stops on entering a state stops with each move into it (a
                # meeting booked for such a move is late when it falls after the clock's due)
                for t in self.procedure.transitions:
                    if d.end in possible_events(self.procedure, t) and \
                            d not in self.ends_with[t.trigger]:
                        self.ends_with[t.trigger].append(d)
        staff = spec.staffing
        sw = staff.social_workers
        heads = sw.heads()
        spread = sw.teams.demand_spread if sw.teams is not None else None
        self.workers = Workers(self.env, len(heads), sw.caseload_cap,
                               sw.absence_rate, sw.absence_spell_days, self.rng["staff"],
                               teams=sw.team_count(), turnover=sw.turnover,
                               calendar=calendar, record=self.record, count_from=self.warm_up,
                               fte=[f for f, _ in heads], caps=[c for _, c in heads],
                               demand_spread=0.0 if spread is None else spread.cv)
        self.holding = frozenset(sw.holds_cases_in)
        self.diary = Diary(calendar, staff.conference_chairs.count,
                           staff.conference_chairs.slots_per_day, staff.minute_takers.count,
                           staff.minute_takers.slots_per_day,
                           staff.conference_chairs.meeting_hours)
        self._meetings: dict[TriggerId, tuple[float, Dist | None]] = {}
        self.managers = {level: (simpy.Resource(self.env, capacity=m.count), m.work.build())
                         for level, m in staff.managers.items()}
        self.live: dict[str, _Live] = {}
        self._order = itertools.count()
        self._numbers = itertools.count(1)
        self._active_cache: dict[Config, frozenset[StateId]] = {}
        self._behaving_cache: dict[Config, tuple[StateId, ...]] = {}
        self._holding_cache: dict[Config, bool] = {}
        self._offered_cache: dict[Config, frozenset[TriggerId]] = {}
        # where a booked meeting stays booked: the states around its trigger's sources (the
        # conference's preparation, whose steps run before the meeting can open)
        self._booking_scope: dict[TriggerId, frozenset[StateId]] = defaultdict(frozenset)
        for t in self.procedure.transitions:
            self._booking_scope[t.trigger] |= frozenset(
                self.procedure.states[s].parent or s for s in t.sources)
        self._top_cache: dict[Config, str] = {}
        self.stage_counts: Counter[str] = Counter()
        self.plan_state = spec.plan_state
        self.plan_episode: frozenset[StateId] = (
            frozenset({spec.plan_state, *spec.plan_includes}) if spec.plan_includes
            else frozenset())

    # -- small cached views of a configuration ---------------------------------------------
    def _active(self, config: Config) -> frozenset[StateId]:
        found = self._active_cache.get(config)
        if found is None:
            found = active_states(self.procedure, config)
            self._active_cache[config] = found
        return found

    def _behaving(self, config: Config) -> tuple[StateId, ...]:
        """Active states with a behaviour, outermost first, main flow then regions."""
        found = self._behaving_cache.get(config)
        if found is None:
            out: list[StateId] = []
            for leaf in config:
                for sid in reversed(self.procedure.ancestors(leaf)):
                    if sid in self.behaviour:
                        out.append(sid)
            found = tuple(out)
            self._behaving_cache[config] = found
        return found

    def _holds(self, config: Config) -> bool:
        found = self._holding_cache.get(config)
        if found is None:
            found = bool(self.holding & self._active(config))
            self._holding_cache[config] = found
        return found

    def _offered(self, config: Config) -> frozenset[TriggerId]:
        """Triggers whose transitions start somewhere active (guards ignored)."""
        found = self._offered_cache.get(config)
        if found is None:
            active = self._active(config)
            found = frozenset(t.trigger for t in self.procedure.transitions
                              if active & set(t.sources))
            self._offered_cache[config] = found
        return found

    def _top(self, config: Config) -> str:
        found = self._top_cache.get(config)
        if found is None:
            found = self.procedure.ancestors(config[0])[-1]
            self._top_cache[config] = found
        return found

    # -- running -----------------------------------------------------------------------------
    def run(self) -> RunRecord:
        """Run to the horizon and return the replication's measurements.

        The cyclic garbage collector is made lazier while the run lasts (a run holds many
        long-lived objects and makes few cycles) and restored afterwards.
        """
        for past in self.history:
            self._seed(past)
        self.env.process(self._arrivals())
        if self.spec.demand.history is not None:
            self.env.process(self._returns())
        self.env.process(self._sampler())
        thresholds = gc.get_threshold()
        gc.set_threshold(200_000, 50, 1000)
        try:
            self.env.run(until=self.horizon)
        finally:
            gc.set_threshold(*thresholds)
        self._close_books()
        return self.record

    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        demand = self.spec.demand
        rate = demand.referrals_per_year * (1.0 - demand.re_referral_share) / HOURS_PER_YEAR
        season = demand.seasonality
        peak = max(season) / (sum(season) / 12.0) if season else 1.0
        rng = self.rng["arrivals"]
        while True:
            yield self.env.timeout(rng.exponential(1.0 / (rate * peak)))
            if season:
                month = self.calendar.date_of(self.env.now).month - 1
                if rng.random() * peak > season[month] / (sum(season) / 12.0):
                    continue
            self._new_case()

    def _returns(self) -> Generator[simpy.Event, Any, None]:
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
        begin = self.env.now
        while True:
            yield self.env.timeout(rng.exponential(1.0 / rate))
            since = self.env.now - begin
            if advance(self.calendar, 0.0, gap.sample(rng), gap.unit) > since:
                self._new_case(previous_plans=int(rng.random() < had_plan))

    def _new_case(self, previous_plans: int = 0) -> None:
        number = next(self._numbers)
        case_id = f"C{number:07d}"
        rng = self.rng["facts"]
        facts = {name: bool(rng.random() < p) for name, p in self.spec.demand.facts.items()}
        case, started = self.machine.new_case(case_id, facts, self.env.now)
        live = _Live(case, next(self._order))
        live.plans_had = previous_plans
        self.live[case_id] = live
        self.record.cases_created += 1
        config = self.machine.configuration(case)
        now = self.env.now
        for sid in self._active(config):
            live.entered[sid] = now
            live.visits[sid] += 1
            if now >= self.warm_up:
                self.record.entries[sid] += 1
        self.stage_counts[self._top(config)] += 1
        told: Mapping[str, object] = (facts if not previous_plans
                                      else {**facts, "previous_plans": previous_plans})
        for obs in self.observers:
            obs.case_started(case_id, now, config, told)
        self._plan_tasks(live, started)
        if self._holds(config):
            self.workers.request(live)
        self.env.process(self._case(live))

    def _seed(self, past: History) -> None:
        """Start an open case from its recorded history: replay it, then let it run on."""
        rng = self.rng["facts"]
        facts = {name: bool(rng.random() < p) for name, p in self.spec.demand.facts.items()}
        case, _ = self.machine.new_case(past.case_id, facts, past.start)
        live = _Live(case, next(self._order))
        self.live[past.case_id] = live
        self.record.cases_created += 1
        config = self.machine.configuration(case)
        for sid in self._active(config):
            live.entered[sid] = past.start
            live.visits[sid] += 1
        for obs in self.observers:
            obs.case_started(past.case_id, past.start, config, facts)
        for at, trigger in past.steps:
            live.options = None
            step = self.machine.fire(case, trigger, at).step
            for obs in self.observers:
                obs.step(step, "history")
            self._moved(live, step, counting=False, staff=False)
        live.options = None
        config = self.machine.configuration(case)
        self.stage_counts[self._top(config)] += 1
        self._plan_tasks(live, tuple(case.clocks))
        if self._holds(config):
            self.workers.request(live)
        self.env.process(self._case(live))

    def _case(self, live: _Live) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            self._replan(live)
            if not any(p.time != math.inf for p in live.plans.values()):
                config = self.machine.configuration(live.case)
                if not is_terminal(self.procedure, config):
                    raise SimulationStuck(
                        f"case {live.case.case_id} in {' + '.join(config)} has nothing to "
                        "do: the scenario's behaviour chooses no move the procedure allows "
                        f"here (allowed: {', '.join(sorted(self._enabled(live))) or 'none'})")
                self._finish(live, config)
                return
            key = min(live.plans, key=lambda k: (live.plans[k].time, live.plans[k].order))
            plan = live.plans[key]
            if plan.time > env.now:
                yield env.timeout(plan.time - env.now)
            yield from self._execute(live, key, plan)

    def _options(self, live: _Live) -> tuple[Option, ...]:
        """The machine's options for the case, remembered until the case next moves."""
        if live.options is None:
            live.options = self.machine.options(live.case)
        return live.options

    def _enabled(self, live: _Live) -> frozenset[TriggerId]:
        return frozenset(o.transition.trigger for o in self._options(live) if o.enabled)

    # -- planning ----------------------------------------------------------------------------
    def _replan(self, live: _Live) -> None:
        config = self.machine.configuration(live.case)
        waiting = [p for p in live.plans.values() if p.time == math.inf]
        if waiting:
            enabled_now = self._enabled(live)
            for plan in waiting:
                if plan.trigger in enabled_now:
                    plan.time = self._working_moment(self.env.now, self.env.now)
        behaving = self._behaving(config)
        if all(sid in live.plans for sid in behaving):
            return
        enabled = self._enabled(live)
        for sid in behaving:
            if sid in live.plans:
                continue
            b = self.behaviour[sid]
            if b.history_table is not None and live.plans_had:
                table = b.history_table
            elif b.by_visit:
                table = b.tables[min(live.visits[sid], len(b.tables)) - 1]
            else:
                table = b.tables[0]
            usable = frozenset(t for t in table.triggers if t in enabled)
            if not usable:
                live.declined.pop(sid, None)  # the opportunity has passed
                continue
            if live.declined.get(sid) == usable:
                continue  # already declined at this opportunity
            rng = self.rng["behaviour"]
            chance = b.history_chance if live.plans_had else b.chance
            if chance < 1.0 and rng.random() >= chance:
                live.declined[sid] = usable
                continue
            live.declined.pop(sid, None)
            trigger, after = self._choose(table, usable, rng)
            if table.early and after is None:
                # Some of these come early on their own timing (a review brought forward);
                # the draw is on the timing stream, and only where a scenario asks for it.
                early = table.early[table.triggers.index(trigger)]
                if early is not None and self.rng["timing"].random() < early[0]:
                    after = early[1]
                    live.hurried = True
            self._plan_step(live, b, trigger, after)

    def _choose(self, table: _Table, usable: frozenset[TriggerId],
                rng: np.random.Generator) -> tuple[TriggerId, Dist | None]:
        if len(usable) == len(table.triggers):
            i = bisect.bisect_right(table.cumulative, rng.random() * table.cumulative[-1])
            i = min(i, len(table.triggers) - 1)
            return table.triggers[i], table.afters[i]
        weights = []
        previous = 0.0
        for trig, cum in zip(table.triggers, table.cumulative, strict=True):
            weights.append((cum - previous) if trig in usable else 0.0)
            previous = cum
        total = sum(weights)
        if total <= 0:
            choices = [i for i, t in enumerate(table.triggers) if t in usable]
            i = choices[int(rng.integers(len(choices)))]
        else:
            x = rng.random() * total
            i = 0
            acc = weights[0]
            while acc <= x and i < len(weights) - 1:
                i += 1
                acc += weights[i]
        return table.triggers[i], table.afters[i]

    def _fraction(self, at: float | Dist | None) -> float:
        if at is None:
            return 0.8
        if isinstance(at, Dist):
            return at.sample(self.rng["timing"])
        return at

    def _plan_step(self, live: _Live, b: _Behaviour, trigger: TriggerId,
                   after: Dist | None) -> None:
        now = self.env.now
        rng = self.rng["timing"]
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
        reason = ""
        transition = self._transition_for(live, trigger)
        if self._needs_people(transition) and not (
                transition is not None and self._is_meeting(live, transition)):
            time = self._working_moment(time, now)
        if transition is not None and self._is_meeting(live, transition):
            time, late = self._book(live, trigger, time)
            if late and b.postpone is not None and "postpone" not in live.plans:
                live.plans["postpone"] = _Plan(now, next(self._order), b.postpone,
                                               "postpone", "no_slot_in_time")
        live.plans[b.state] = _Plan(time, next(self._order), trigger, b.state, reason)

    def _working_moment(self, t: SimHours, now: SimHours) -> SimHours:
        """``t`` moved into working hours.

        Back to the last working half-hour before it (so a step aimed before a deadline
        stays before it), or, if that has passed, the next working moment from now.
        """
        cal = self.calendar
        day = math.floor(t / 24.0)
        hour = t - 24.0 * day
        if cal.is_working(day) and cal.day_starts <= hour < cal.day_ends:
            return t
        if cal.is_working(day) and hour >= cal.day_ends:
            earlier = 24.0 * day + cal.day_ends - 0.5
        else:
            earlier = 24.0 * cal.working_before(day) + cal.day_ends - 0.5
        if earlier >= now:
            return earlier
        return cal.next_working_time(now)

    def _needs_people(self, t: Transition | None) -> bool:
        return t is not None and bool(t.resources)

    def _transition_for(self, live: _Live, trigger: TriggerId) -> Transition | None:
        for o in self._options(live):
            if o.transition.trigger == trigger and o.enabled:
                return o.transition
        return None

    @staticmethod
    def _is_meeting(live: _Live, t: Transition) -> bool:
        """True when ``t`` opens a meeting.

        It needs a chair and a minute-taker, and the case is not already sitting in one
        (steps inside a sitting conference need them too).
        """
        return (live.meeting is None and not t.internal
                and any(r.role == "conference_chair" for r in t.resources)
                and any(r.role == "minute_taker" for r in t.resources))

    def _book(self, live: _Live, trigger: TriggerId, target: SimHours) -> tuple[float, bool]:
        """Book (or reuse) the case's diary slot for a meeting; True when it is too late."""
        now = self.env.now
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

    def _before_meeting(self, live: _Live, b: _Behaviour, trigger: TriggerId) -> float | None:
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
        rng = self.rng["agencies"]
        timing = self.rng["timing"]
        leads = []
        for agency in agencies or ["_"]:
            spec = self.spec.staffing.agencies.get(agency)
            on_time = spec.report_on_time if spec else 1.0
            if rng.random() < on_time:
                leads.append(required + _hours(lead.unit, lead.sample(timing)))
            else:
                leads.append(float(rng.uniform(0.0, required)) if required > 0 else 0.0)
        del meeting
        return min(leads)

    def _plan_tasks(self, live: _Live, started: Sequence[str]) -> None:
        for did in started:
            d = self.deadline[did]
            if d.end.kind != "trigger" or d.end.name not in self.tasks:
                continue
            clock = live.case.clocks.get(did)
            if clock is None:
                continue
            aim, after = self.tasks[d.end.name]
            if clock.due is not None:
                low = clock.earliest if clock.earliest is not None else clock.started
                time = low + self._fraction(aim) * (clock.due - low)
            elif after is not None:
                time = advance(self.calendar, clock.started, after.sample(self.rng["timing"]),
                               after.unit)
            else:
                continue
            now = self.env.now
            time = max(time, now)
            if self._task_needs_people.get(d.end.name, True):
                time = self._working_moment(time, now)
            live.plans[f"task:{did}"] = _Plan(time, next(self._order), d.end.name,
                                              f"task:{did}")

    # -- doing -------------------------------------------------------------------------------
    def _execute(self, live: _Live, key: str, plan: _Plan) -> Generator[simpy.Event, Any, None]:
        """Gather what the step needs, then fire it.

        Social-work and management steps happen in working hours: a case waits for its
        allocation, for its worker's return from absence, and for a free manager, then the
        step is done at the next working moment. A meeting goes ahead at its booked slot
        (a colleague covers an absent worker); if waiting for allocation made it miss the
        slot, the next free slot is booked.
        """
        case = live.case
        transition = self._transition_for(live, plan.trigger)
        if transition is None:
            if key.startswith("task:") and key[5:] in case.clocks:
                # Not possible here (a visit while the review conference sits): the task
                # waits, its clock still running, until the case can do it again.
                plan.time = math.inf
            else:
                live.plans.pop(key, None)
            return
        actors: list[str] = []
        config = self.machine.configuration(case)
        needs = transition.resources
        meeting = self._is_meeting(live, transition)
        waited = False
        if any(r.role == "social_worker" for r in needs) and self._holds(config):
            while live.worker is None:
                assert live.allocated is not None
                yield live.allocated
                waited = True
            back = self.workers.back[live.worker]
            if back is not None and not meeting:
                yield back
                waited = True
            actors.append(f"social_worker:{live.worker}")
        for r in needs:
            if r.role == "manager" and r.level in self.managers:
                resource, work = self.managers[r.level]
                with resource.request() as req:
                    yield req
                    hours = work.sample(self.rng["timing"])
                    yield self.env.timeout(advance(self.calendar, self.env.now, hours,
                                                   work.unit) - self.env.now)
                actors.append(f"manager:{r.level}")
        if waited and not meeting:
            start = self.calendar.next_working_time(self.env.now)
            if start > self.env.now:
                yield self.env.timeout(start - self.env.now)
        if meeting:
            booking = live.bookings.get(plan.trigger)
            if booking is None or booking[1] < self.env.now - 1e-9:
                if booking is not None:
                    self.diary.cancel(booking[0])
                booking = self.diary.book(self.env.now, self.env.now)
                live.bookings[plan.trigger] = booking
            if booking[1] > self.env.now:
                yield self.env.timeout(booking[1] - self.env.now)
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
                    and self.rng["agencies"].random() < staffing.postpone_when_absent):
                # WM-11: better to postpone a day or two to get everyone there
                live.absence_postponed.add(plan.trigger)
                reason = "agency_absent"
            if reason:
                assert owner is not None and owner.postpone is not None
                self.diary.cancel(live.bookings.pop(plan.trigger)[0])
                nxt = advance(self.calendar, self.env.now, *self._rebook_delay(plan.trigger))
                live.bookings[plan.trigger] = self.diary.book(nxt, self.env.now)
                self._fire(live, owner.postpone, "conference_chair", reason)
                return
            self.diary.hold(live.bookings.pop(plan.trigger)[0])
            live.absence_postponed.discard(plan.trigger)
            live.family_postponed.discard(plan.trigger)
            live.meeting = transition.dest
            live.hurried = False
            actors.append("conference_chair")
        if not actors:
            actors.append(next((r.role for r in needs), "case"))
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
        return dist.sample(self.rng["timing"]), dist.unit

    def _attendance(self, t: Transition) -> list[str]:
        rng = self.rng["agencies"]
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
        now = self.env.now
        case = live.case
        live.options = None
        result = self.machine.fire(case, trigger, now)
        step = result.step
        rec = self.record
        rec.transitions += 1
        counting = now >= self.warm_up
        if counting:
            rec.triggers[trigger] += 1
            if reason:
                rec.postponements[f"{trigger}:{reason}"] += 1
        if reason:
            actor = f"{actor};reason:{reason}"
        for obs in self.observers:
            obs.step(step, actor)
        if step.before != step.after or any(e.kind == "enter" for e in step.events):
            self._moved(live, step, counting)
        for verdict in result.verdicts:
            live.plans.pop(f"task:{verdict.deadline_id}", None)
            if verdict.started < self.warm_up:
                continue
            row = rec.deadlines[verdict.deadline_id]
            row[verdict.outcome] += 1
            if verdict.elapsed is not None:
                row["elapsed"].append(verdict.elapsed)
        if live.plans.get("postpone") is not None and live.plans["postpone"].trigger == trigger:
            live.plans.pop("postpone", None)
        self._plan_tasks(live, result.started)
        for trig in list(live.bookings):
            if (trig not in self._offered(step.after)
                    and not self._active(step.after) & self._booking_scope[trig]):
                self.diary.cancel(live.bookings.pop(trig)[0])

    def _moved(self, live: _Live, step: Step, counting: bool, staff: bool = True) -> None:
        """Follow the machine's own exit and entry events (a self-targeted move re-enters).

        ``staff`` False replays history: no allocation changes, no stage counts.
        """
        now = step.time
        before, after = step.before, step.after
        exited = [e.name for e in step.events if e.kind == "exit"]
        entered = [e.name for e in step.events if e.kind == "enter"]
        # A routine task (a statutory visit, a core group) that leaves the case where it was
        # is not a new visit: what was planned in the state keeps its time, and visit counts
        # (choose_by_visit) stay. Without this every visit re-drew the state's choice.
        routine = step.trigger in self.tasks and exited == entered[::-1]
        if live.meeting is not None and live.meeting in exited:
            live.meeting = None
        if not routine:
            for sid in exited:
                live.entered.pop(sid, None)
                live.plans.pop(sid, None)
                live.declined.pop(sid, None)
        rec = self.record
        states = self.procedure.states
        for sid in entered:
            if counting:
                rec.entries[sid] += 1
            if routine:
                continue
            live.entered[sid] = now
            if states[sid].parent is None:
                # a new episode at the top level: visit counts inside it start again
                for inner in [s for s in live.visits
                              if s != sid and sid in self.procedure.ancestors(s)]:
                    del live.visits[inner]
            live.visits[sid] += 1
        top_before, top_after = self._top(before), self._top(after)
        if staff and top_before != top_after:
            self.stage_counts[top_before] -= 1
            self.stage_counts[top_after] += 1
        plan_starts, plan_ends = self.plan_state in entered, self.plan_state in exited
        if self.plan_episode:
            # the plan lasts while the case is in any of its states (a flat procedure whose
            # reviews sit beside the plan): it starts on entering them and ends on leaving
            was = bool(self._active(before) & self.plan_episode)
            stays = bool(self._active(after) & self.plan_episode)
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
        holds_before, holds_after = self._holds(before), self._holds(after)
        if not staff:
            return
        if holds_after and not holds_before and live.worker is None and live.allocated is None:
            self.workers.request(live)
        elif holds_before and not holds_after:
            self.workers.release(live)

    def _finish(self, live: _Live, config: Config) -> None:
        for obs in self.observers:
            obs.case_finished(live.case.case_id, config)
        self.workers.release(live)
        for _trig, (day, _start) in live.bookings.items():
            self.diary.cancel(day)
        self.stage_counts[self._top(config)] -= 1
        self.machine.release(live.case)
        del self.live[live.case.case_id]
        self.record.cases_finished += 1

    # -- measuring ---------------------------------------------------------------------------
    def _sampler(self) -> Generator[simpy.Event, Any, None]:
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
            now = self.env.now
            if self.progress is not None:
                self.progress(now)
            rec.transient_days.append(int(now // 24))
            rec.transient["open_cases"].append(open_cases())
            if plans is not None:
                rec.transient["open_plans"].append(float(self.stage_counts[plans]))
            if now >= self.warm_up:
                loads = np.array(self.workers.caseloads(), dtype=float)
                rec.sample_days.append(int(now // 24))
                series = rec.series
                series["caseload_mean"].append(float(loads.mean()))
                series["caseload_median"].append(float(np.median(loads)))
                series["caseload_p90"].append(float(np.percentile(loads, 90)))
                series["caseload_max"].append(float(loads.max()))
                series["unallocated_queue"].append(float(self.workers.unallocated()))
                series["workers_absent"].append(float(self.workers.absent()))
                for sid in stages:
                    series[f"stage:{sid}"].append(float(self.stage_counts[sid]))
                series["open_cases"].append(open_cases())
            yield self.env.timeout(every)

    def _close_books(self) -> None:
        """At the horizon: open clocks, open cases by state, capacity used."""
        rec = self.record
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
