"""Staff as the engine sees them: the conference diary and the case-holding social workers.

Both hold capacity a case can wait for. The diary hands out a chair's and a minute-taker's
slot on a working day; the workers take cases up to their caps, go absent, and (with
turnover) leave, their cases handed on. Neither knows the procedure: the engine asks them
for a slot or a worker and hears back when one is free.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
from collections import Counter, deque
from collections.abc import Generator, Sequence
from typing import Any, Protocol

import numpy as np
import simpy

from model.calendar import WorkingCalendar
from model.compiler import Case
from model.types import SimHours
from simulations.distributions import HOURS_PER_YEAR, Dist, advance
from simulations.drive import Awaited, Drive
from simulations.record import RunRecord
from simulations.scenario import TurnoverSpec


class StaffedCase(Protocol):
    """A case as the staff see it: who holds it, and since when it has waited for someone."""

    case: Case
    worker: int | None
    """The post holding the case, or None while it waits for one."""
    allocated: simpy.Event | None
    """Succeeds when a waiting case is given a worker."""
    queued_at: SimHours | None
    """When the case began to wait (for its wait for allocation)."""
    team: int
    """Its team, once :meth:`Workers.team` has worked it out; -1 before."""


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
                 caps: Sequence[int] | None = None, demand_spread: float = 0.0,
                 drive: Drive | None = None) -> None:
        """Create ``count`` workers in ``teams`` teams and start their processes.

        ``record`` receives the leavers and re-allocations from ``count_from`` on (the end
        of the warm-up); ``calendar`` times turnover's working-day delays. ``fte`` and
        ``caps`` give each post its FTE and caseload cap (default: 1 and ``cap``);
        ``demand_spread`` is the coefficient of variation of the areas' shares of cases.
        The workers' processes run on ``drive`` (the engine's, which stops them at the
        horizon; by default one of their own).
        """
        self.env = env
        self.drive = Drive(env) if drive is None else drive
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
        self.cases: list[dict[StaffedCase, None]] = [{} for _ in range(count)]
        self._heaps: list[list[tuple[float, int]]] = [[] for _ in range(teams)]
        for i, t in enumerate(self.team_of_post):
            self._heaps[t].append((0.0, i))  # in post order: already a heap
        self.queues: list[deque[StaffedCase]] = [deque() for _ in range(teams)]
        self.handover: dict[StaffedCase, None] = {}
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
                self.drive.start(self._absence(i, absence_rate, spell_days, rng))
        if turnover is not None:
            assert calendar is not None, "turnover needs the working-day calendar"
            self.calendar = calendar
            self._handover_delay = turnover.reallocation_delay.build()
            self._vacancy_gap = turnover.vacancy_gap.build()
            self._agency_gap = turnover.agency_gap.build()
            self._agency_cover = turnover.agency_cover
            stay = HOURS_PER_YEAR / turnover.rate_per_year
            for i in range(count):
                self.drive.start(self._turnover(i, stay, turnover_rng))

    def _absence(self, i: int, rate: float, spell_days: float,
                 rng: np.random.Generator) -> Generator[Awaited, Any, None]:
        away_mean = spell_days * 24.0
        here_mean = away_mean * (1.0 - rate) / rate
        if rng.random() < rate:
            self.present[i] = False
            self.back[i] = self.env.event()
            yield self.drive.timeout(rng.exponential(away_mean))
            self._return(i)
        while True:
            yield self.drive.timeout(rng.exponential(here_mean))
            self.present[i] = False
            self.back[i] = self.env.event()
            yield self.drive.timeout(rng.exponential(away_mean))
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

    def team(self, live: StaffedCase) -> int:
        """The case's team: the same on every (re-)allocation of the case.

        Worked out from the case id on first asking (a keyed hash: about a microsecond)
        and kept with the case.
        """
        if self.teams == 1:
            return 0
        if live.team >= 0:
            return live.team
        live.team = self._team(live.case.case_id)
        return live.team

    def _team(self, case_id: str) -> int:
        """The team a keyed hash of the case id gives (spread as the teams' demand is)."""
        digest = hashlib.blake2b(case_id.encode(), key=self._key,
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

    def request(self, live: StaffedCase) -> None:
        """Allocate a worker of the case's team now, or queue the case for that team."""
        team = self.team(live)
        i = self._take(team)
        if i is not None:
            live.worker = i
            self.cases[i][live] = None
            return
        live.allocated = self.env.event()
        live.queued_at = self.drive.now
        self.queues[team].append(live)

    def release(self, live: StaffedCase) -> None:
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

    def _allocated(self, live: StaffedCase, i: int) -> None:
        """Give a waiting case worker ``i``, note its wait and wake its steps."""
        live.worker = i
        self.cases[i][live] = None
        if live.queued_at is not None:
            self.waits.append(self.drive.now - live.queued_at)
        live.queued_at = None
        event = live.allocated
        live.allocated = None
        if event is not None:
            event.succeed()

    def _counting(self) -> RunRecord | None:
        return self.record if self.drive.now >= self.count_from else None

    def _after(self, dist: Dist, rng: np.random.Generator) -> float:
        """Hours from now until a duration drawn from ``dist`` has passed."""
        now = self.drive.now
        return advance(self.calendar, now, dist.sample(rng), dist.unit) - now

    def _turnover(self, i: int, stay: float,
                  rng: np.random.Generator) -> Generator[Awaited, Any, None]:
        """Post ``i``: its worker leaves, the post stands vacant, a new worker starts."""
        while True:
            yield self.drive.timeout(rng.exponential(stay))
            while not self.present[i]:
                back = self.back[i]
                assert back is not None
                yield back
                # let the steps that waited for this return take their worker first
                yield self.drive.timeout(0)
            self._leave(i, rng)
            if rng.random() < self._agency_cover:
                yield self.drive.timeout(self._after(self._agency_gap, rng))
            else:
                yield self.drive.timeout(self._after(self._vacancy_gap, rng))
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
            live.queued_at = self.drive.now
            self.handover[live] = None
            self.drive.start(self._hand_on(live, self._after(self._handover_delay, rng)))

    def _hand_on(self, live: StaffedCase, delay: float) -> Generator[Awaited, Any, None]:
        """After ``delay``, allocate a leaver's case in its team, or queue it there."""
        yield self.drive.timeout(delay)
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

