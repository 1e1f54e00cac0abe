"""Timescale consistency: prove that a procedure's deadlines can all be kept, or show a clash.

The deadlines of a procedure are a system of temporal constraints. Along one run (a path of
the configuration graph, see :mod:`model.graph`) they form a *simple temporal network*
(STN): one time point per step (the events of one move happen together; the events of a
new case happen at its start), steps in the run's order, and for each deadline clock

* ``within d``: the clock must not run past its due: its ``to`` event, or an event that
  cancels it, comes at most ``d`` after its ``from`` event (``t(close) - t(start) <= d``),
  and while it runs no other step can come later than that (the runtime's *overdue*);
* ``at_least d``: its ``to`` event comes no sooner than ``d`` after the start
  (``t(end) - t(start) >= d``).

Which clocks run, restart, end or are cancelled follows the runtime exactly
(:class:`model.compiler.CompiledProcedure`): a clock starts on its ``from`` event when its
``when`` guard holds, a running clock that does not repeat ignores a second start, one
that repeats restarts, and the first ``to`` or ``cancelled_by`` event closes it. A run can
keep every rule exactly when its STN has no negative cycle.

**What counts as a clash.** Not every run has to be keepable: two core groups at least 28
days apart and only then the first visit, due within 10 working days of the plan, breaks a
rule, but the case could have visited first. *Activities* (moves that leave the
configuration as it is: a visit, a core group, sending notes or minutes, receiving review
reports) are the case's to do when it likes. *Stage changes* (every other move) are what
the procedure may impose: the enquiry's findings, the conference's decision. So the check
is: whenever a case that has kept every rule so far can take a stage change, it can take
it keeping every rule, perhaps after some activities and after waiting. A clash is a run
that has kept every rule (the merged exploration below holds every timing that does)
followed by a stage change that no timing and no activities can make in time. It is
reported with the smallest set of deadlines that cannot all be kept on that run (each is
needed: drop any one and the rest can be kept), the steps where they clash, the case's
guard values, and the run as a counterexample. Separately, a deadline (or several between
the same two events) whose ``at_least`` exceeds its ``within`` can never be met.

**Reading of the calendar.** A duration does not have one length in hours: ``3 working
days`` from a Friday spans a weekend, ``2 days`` are due by the end of the day, a month has
28 to 31 days. :func:`gap_range` gives the shortest and longest gap each timescale can mean,
over every start date from :data:`CALENDAR_FIRST` to :data:`CALENDAR_LAST` on the England
and Wales calendar the simulator uses (:mod:`model.calendar`, bank holidays included) and
every start time of day. The proof uses the **most favourable reading**: every ``within``
at its longest, every ``at_least`` at its shortest, so a clash it finds is a clash whatever
the calendar. For example ``1 working day`` can stretch to the end of the 5th calendar day
after the start (Maundy Thursday to the Tuesday after Easter), so it is read as at most 144
hours, and 15 working days as at most 28 days (April 2011: Easter, the royal wedding and
the early May bank holiday). The **ordinary reading** is as generous, but on a calendar
of weekends without bank holidays: a clash there is an error too, since the rules could
then be kept only when a run of bank holidays (Easter, Christmas) happens to make room. The
**strict reading** (every ``within`` at its shortest, every ``at_least`` at its longest) is
checked last; a clash that shows only there is a warning: the rules can then be kept only
on favourable dates.

**Which runs (the bound).** Runs are explored breadth first from a new case. Runs that
reach the same configuration with the same constraints between the present and the
running clocks' starts are merged (summarising an STN on the points later steps can still
be tied to is exact, and each merged state holds every timing its runs allow), keeping the
fewest clock starts any of them has used. Loops are bounded by counting clock starts: on
one run each deadline is checked over its first ``max_starts`` clocks (default 2) and
later starts of it are ignored, so a repeating deadline is checked over two consecutive
occurrences (two core groups, two visits' interval, two review conferences) and a case's
second time round the pathway is checked as fully as its first. With every start counted,
the merged states are finitely many and the exploration ends; :data:`MAX_STATES` is a
safety net that makes the check say it is incomplete.

**Guards.** A deadline's ``when`` guard that reads only the case's facts is fixed for the
case: each kind of case (:class:`FactCase`) is one consistent set of values of those guards
(one class of :func:`model.guards.fact_classes`, so complementary groups such as
``extended_notice_needed`` / ``standard_notice`` always take opposite values). A guard that
reads trigger counts (as it declares in :mod:`model.guards`) may hold at one start and not
at the next, so each start is tried both ways.

**Regions.** Deadlines whose events all lie in one region (or the main flow) are checked on
the configuration graph projected onto that region; deadlines that tie regions together
are checked on the product of those regions. The counterexample shows the projected
configurations.

:func:`timescale_bounds` reports, for each main-flow stage (top-level and compound states)
and each deadline's ``to`` event that a stage change can bring about, the earliest and
latest time after an origin event (by default entering the initial state: the referral,
measured again from each new referral) at which it first happens on a run that keeps every
rule, in the most favourable reading (so the windows hold whatever the calendar). Each is
read off the constraints known when the event happens, so it may be wider than the rest of
the run would allow, never narrower; "no upper bound" means a run that keeps every rule can
take as long as it likes to get there (a child in need plan, early help, a conference
sitting, have no time limit).

Everything here is pure: functions return findings and data, and never print.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import networkx as nx

from model.calendar import CALENDAR_FIRST, CALENDAR_LAST, WorkingCalendar
from model.errors import InputError, Problem, did_you_mean
from model.findings import Finding, PathStep, path_of
from model.graph import Config, ProcedureGraph, build_graph, events_of, initial_events
from model.graph import region_index as _region_index
from model.guards import fact_classes, reads_counts
from model.spec import Deadline, EventRef, Procedure, Transition
from model.types import Duration, GuardId, RuleId

Reading = Literal["favourable", "ordinary", "strict"]
"""``favourable``: each timescale as generous as any date allows; ``ordinary``: as generous
as any date allows on a calendar of weekends without bank holidays; ``strict``: as tight."""

MAX_STARTS = 2
"""Default bound: each deadline is checked over its first this many clocks on a run."""

MAX_STATES = 20_000
"""Stop exploring (and say the proof is incomplete) after this many merged states."""

MAX_CLASHES = 5
"""Explain at most this many blocked moves per kind of case and reading."""

INF = math.inf


# -- reading durations in hours ----------------------------------------------------------------
@functools.cache
def _calendar_days(limit: Duration, holidays: bool = True) -> tuple[int, int]:
    """Fewest and most calendar days from a start date to the date ``limit`` is due on.

    Without ``holidays``, on a calendar of weekends alone (an ordinary week).
    """
    starts = range((CALENDAR_LAST - CALENDAR_FIRST).days + 1)  # day numbers of start dates
    cal = WorkingCalendar(CALENDAR_FIRST, bank_holidays=holidays)
    if limit.unit == "days":
        return limit.value, limit.value
    if limit.unit == "working_days":
        spans = [cal.add_working(day, limit.value) - day for day in starts]
    elif limit.unit == "months":
        spans = [round(cal.due(24.0 * day, limit) / 24.0) - 1 - day for day in starts]
    else:
        raise ValueError(f"{limit.unit} is not a calendar unit")
    return min(spans), max(spans)


def gap_range(limit: Duration, kind: Literal["within", "at_least"],
              holidays: bool = True) -> tuple[float, float]:
    """The shortest and longest gap, in hours, that a timescale can mean.

    Taken over every start date from :data:`CALENDAR_FIRST` to :data:`CALENDAR_LAST` on
    the England and Wales calendar and every time of day, following
    :meth:`model.calendar.WorkingCalendar.due` and ``earliest`` exactly:

    * ``hours``: exact, both ways.
    * ``within`` ``days`` / ``working_days`` / ``months``: due by the end of the due date,
      which is ``D`` calendar days after the start date, so the gap is ``24 * D`` hours
      (started just before midnight) to ``24 * (D + 1)`` (started at midnight), with ``D``
      from its fewest to its most calendar days (weekends, bank holidays, month lengths).
    * ``at_least`` ``days``: exactly ``24 * n`` hours; ``months``: ``24 * D`` hours (the
      same time of day ``D`` days later); ``working_days``: from the start of the working
      day on the ``D``-th calendar day, so ``24 * D + day_starts - 24`` (started just
      before midnight) to ``24 * D + day_starts`` hours.

    Supremum and infimum are used where a bound is approached but not reached (a start
    "just before midnight"); that makes the favourable reading slightly more generous,
    never less.

    Args:
        limit: The timescale.
        kind: ``within`` (the latest allowed gap) or ``at_least`` (the earliest).
        holidays: Count bank holidays (False: an ordinary week, weekends only).

    Returns:
        ``(shortest, longest)`` in hours.
    """
    if limit.unit == "hours":
        return float(limit.value), float(limit.value)
    fewest, most = _calendar_days(limit, holidays)
    if kind == "within":
        return 24.0 * fewest, 24.0 * (most + 1)
    if limit.unit == "days":
        return 24.0 * limit.value, 24.0 * limit.value
    if limit.unit == "months":
        return 24.0 * fewest, 24.0 * most
    day_starts = float(WorkingCalendar(CALENDAR_FIRST).day_starts)
    return 24.0 * fewest + day_starts - 24.0, 24.0 * most + day_starts


def allowed_hours(limit: Duration, reading: Reading) -> float:
    """The latest gap a ``within`` timescale allows, in hours, in ``reading``."""
    shortest, longest = gap_range(limit, "within", reading != "ordinary")
    return shortest if reading == "strict" else longest


def required_hours(limit: Duration, reading: Reading) -> float:
    """The least gap an ``at_least`` timescale demands, in hours, in ``reading``."""
    shortest, longest = gap_range(limit, "at_least", reading != "ordinary")
    return longest if reading == "strict" else shortest


# -- guards and fact cases --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FactCase:
    """One kind of case as the deadlines' fact-reading ``when`` guards see it.

    Not a simulation scenario: one class of :func:`model.guards.fact_classes`, fixed for
    the case's whole life.

    Attributes:
        guards: Each such guard with its value, sorted by name.
        facts: An example case giving these values: the facts set true (fewest first).
    """

    guards: tuple[tuple[GuardId, bool], ...]
    facts: tuple[str, ...]

    def value(self, guard: GuardId) -> bool | None:
        """The guard's value for this kind of case, or None when the facts do not fix it."""
        for name, holds in self.guards:
            if name == guard:
                return holds
        return None


def fact_cases(deadlines: Sequence[Deadline]) -> tuple[FactCase, ...]:
    """The kinds of case these deadlines' fact-reading ``when`` guards tell apart.

    One per class of :func:`model.guards.fact_classes` (simplest first), shown with its
    simplest member. Guards that read trigger counts are left out: they are decided at
    each clock start.
    """
    names = sorted({d.when for d in deadlines if d.when is not None and not reads_counts(d.when)})
    return tuple(FactCase(tuple((g, g in c.holds) for g in names), tuple(c.facts))
                 for c in fact_classes(names))


# -- the projected graph ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Move:
    """One move of the projected graph; an *activity* when it keeps the configuration.

    A *service* activity ends or cancels a ``within`` clock (a visit, a core group): the
    case does it when it suits the rules. A *harmless* one also starts no clock and ends
    no ``at_least`` clock (sending notes or minutes): doing it at once can only help, so
    it is done at once. Every other move (stage changes, and activities such as receiving
    reports that only add constraints) may be imposed on the case.
    """

    before: Config
    after: Config
    transition: Transition
    events: tuple[EventRef, ...]
    service: bool = False
    harmless: bool = False

    @property
    def activity(self) -> bool:
        """True for a visit, a core group, sending notes: the configuration stays as it is."""
        return self.before == self.after


@dataclass(frozen=True)
class _Projection:
    """The configuration graph seen from some regions, with the deadlines that live there."""

    graph: ProcedureGraph
    regions: tuple[int, ...]
    initial: Config
    initial_events: tuple[EventRef, ...]
    moves: Mapping[Config, tuple[_Move, ...]]
    deadlines: tuple[Deadline, ...]

    @property
    def procedure(self) -> Procedure:
        """The procedure projected."""
        return self.graph.procedure

    def lift(self, moves: Iterable[_Move]) -> list[tuple[Config, Config, Transition]]:
        """The run in whole configurations, the other regions staying where they are.

        Falls back to the projected configurations if some move needs another region to
        have moved first.
        """
        g = self.graph.graph
        current = self.graph.initial
        out: list[tuple[Config, Config, Transition]] = []
        projected = list(moves)
        for move in projected:
            for _, v, key in sorted(g.out_edges(current, keys=True), key=lambda e: e[2]):
                t: Transition = g.edges[current, v, key]["transition"]
                if t.id == move.transition.id and tuple(v[i] for i in self.regions) == move.after:
                    out.append((current, v, t))
                    current = v
                    break
            else:
                return [(m.before, m.after, m.transition) for m in projected]
        return out


def _event_regions(procedure: Procedure, event: EventRef) -> set[int]:
    if event.kind == "trigger":
        return {_region_index(procedure, t.dest) for t in procedure.transitions
                if t.trigger == event.name}
    if event.name in procedure.states:
        return {_region_index(procedure, event.name)}
    return set()


def _projections(pg: ProcedureGraph, extra: Iterable[EventRef] = ()) -> list[_Projection]:
    """One projection per group of regions tied together by deadlines; main flow first.

    Args:
        pg: The configuration graph.
        extra: Events that must be seen together with the main flow (for measuring).
    """
    proc = pg.procedure
    parent = list(range(1 + len(proc.regions)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(regions: set[int]) -> None:
        first, *rest = sorted(regions)
        for r in rest:
            parent[root(r)] = root(first)

    touched: dict[str, set[int]] = {}
    for d in proc.deadlines:
        regions: set[int] = set()
        for event in (d.start, d.end, *d.cancelled_by):
            regions |= _event_regions(proc, event)
        touched[d.id] = regions or {0}
        join(touched[d.id])
    for event in extra:
        join(_event_regions(proc, event) | {0})
    groups: dict[int, set[int]] = {}
    for i in range(len(parent)):
        groups.setdefault(root(i), set()).add(i)
    wanted = sorted((g for g in groups.values()
                     if 0 in g or any(touched[d.id] <= g for d in proc.deadlines)), key=min)
    return [_project(pg, group, tuple(d for d in proc.deadlines if touched[d.id] <= group))
            for group in wanted]


def _project(pg: ProcedureGraph, group: set[int], deadlines: tuple[Deadline, ...]) -> _Projection:
    proc = pg.procedure
    index = tuple(sorted(group))

    def project(config: Config) -> Config:
        return tuple(config[i] for i in index)

    moves: dict[Config, dict[tuple[Config, str], _Move]] = {}
    for u, v, t in pg.edges():
        if _region_index(proc, t.dest) not in group:
            continue
        pu, pv = project(u), project(v)
        here = moves.setdefault(pu, {})
        if (pv, t.id) not in here:
            events = events_of(proc, u, v, t)
            if pu == pv and not any(e == d.start or e == d.end or e in d.cancelled_by
                                    for d in deadlines for e in events):
                continue  # changes neither the stage nor any clock: nothing to prove
            service = pu == pv and any(
                d.within is not None and (d.end in events or set(d.cancelled_by) & set(events))
                for d in deadlines)
            harmless = service and not any(
                d.start in events or (d.end in events and d.at_least is not None)
                for d in deadlines)
            here[(pv, t.id)] = _Move(pu, pv, t, events, service, harmless)
    return _Projection(
        pg, index, project(pg.initial), initial_events(proc),
        {c: tuple(m.values()) for c, m in moves.items()}, deadlines,
    )


# -- a closed distance matrix over named time points (the STN summary) -------------------------
class _Zone:
    """Time points and the tightest known bounds between them (closed: all shortest paths).

    ``dist[a][b]`` bounds ``t(b) - t(a)`` from above. Roles name points (``now``, a running
    clock's start, the origin); several roles may share one point, and flags (a tracked
    event seen, a start ignored) share the origin's.
    """

    __slots__ = ("dist", "roles")

    def __init__(self, roles: dict[str, int], dist: list[list[float]]) -> None:
        self.roles = roles
        self.dist = dist

    @classmethod
    def single(cls, role: str) -> _Zone:
        return cls({role: 0}, [[0.0]])

    def copy(self) -> _Zone:
        return _Zone(dict(self.roles), [row[:] for row in self.dist])

    def add_point(self) -> int:
        for row in self.dist:
            row.append(INF)
        self.dist.append([INF] * len(self.dist) + [0.0])
        return len(self.dist) - 1

    def constrain(self, a: int, b: int, w: float) -> bool:
        """Add ``t(b) - t(a) <= w``; False when that leaves no solution."""
        d = self.dist
        if w + d[b][a] < 0:
            return False
        if w >= d[a][b]:
            return True
        row_b = d[b]
        n = len(d)
        for i in range(n):
            via = d[i][a]
            if via == INF:
                continue
            via += w
            row_i = d[i]
            for j in range(n):
                cand = via + row_b[j]
                if cand < row_i[j]:
                    row_i[j] = cand
        return True

    def drop_unused(self) -> None:
        used = sorted(set(self.roles.values()))
        if len(used) == len(self.dist):
            return
        renumber = {old: new for new, old in enumerate(used)}
        self.dist = [[self.dist[i][j] for j in used] for i in used]
        self.roles = {r: renumber[p] for r, p in self.roles.items()}

    def by_role(self) -> tuple[float, ...]:
        """Every bound between two roles, roles in name order (for comparing zones)."""
        points = [self.roles[name] for name in sorted(self.roles)]
        return tuple(self.dist[i][j] for i in points for j in points)

    def key(self) -> tuple[object, ...]:
        names = sorted(self.roles)
        order: list[int] = []
        for name in names:
            p = self.roles[name]
            if p not in order:
                order.append(p)
        pos = {p: i for i, p in enumerate(order)}
        return (tuple((n, pos[self.roles[n]]) for n in names),
                tuple(self.dist[i][j] for i in order for j in order))


# -- exploring runs ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Step:
    move: _Move | None  # None: the events of a new case
    declined: frozenset[str]  # clocks whose count-reading guard was taken as false here


_Key = tuple[object, ...]
_Outcome = Literal["ok", "clash"]


@dataclass
class _Node:
    config: Config
    zone: _Zone
    counts: tuple[int, ...]
    parent: _Key | None
    steps: tuple[_Step, ...]  # the move that led here, then the harmless activities done at once
    tried: list[tuple[_Step, _Outcome, _Key | None]] = field(default_factory=list)


@dataclass(frozen=True)
class _Limits:
    within: Mapping[str, float]
    at_least: Mapping[str, float]


def _limits(deadlines: Sequence[Deadline], reading: Reading) -> _Limits:
    return _Limits(
        {d.id: allowed_hours(d.within, reading) for d in deadlines if d.within is not None},
        {d.id: required_hours(d.at_least, reading) for d in deadlines if d.at_least is not None},
    )


def _skipped(d: Deadline, fact_case: FactCase, declined: frozenset[str]) -> bool:
    """True when ``d``'s guard keeps its clock from starting for this case at this step."""
    return d.id in declined or (d.when is not None and fact_case.value(d.when) is False)


_Record = dict[EventRef, list[float]]

_BEYOND = "beyond"
"""Role marking that a non-repeating clock's start was ignored (past the bound) since the origin."""


class _Explorer:
    """Breadth-first exploration of one projection for one kind of case and one reading.

    Every state holds all the timings that keep every rule along its runs; a move that no
    such timing allows is recorded as a ``clash`` and not followed.
    """

    def __init__(self, proj: _Projection, fact_case: FactCase, reading: Reading,
                 max_starts: int, track: Sequence[EventRef] = (),
                 origin: EventRef | None = None) -> None:
        self.proj = proj
        self.fact_case = fact_case
        self.limits = _limits(proj.deadlines, reading)
        self.max_starts = max_starts
        self.track = tuple(track)
        self.origin = origin
        self.index = {d.id: i for i, d in enumerate(proj.deadlines)}
        self.starting: dict[EventRef, list[Deadline]] = {}
        for d in proj.deadlines:
            self.starting.setdefault(d.start, []).append(d)
        self.free = {d.id for d in proj.deadlines
                     if d.when is not None and fact_case.value(d.when) is None}
        self.nodes: dict[_Key, _Node] = {}
        self.order: list[_Key] = []
        self.record: _Record = {}
        self.buckets: dict[tuple[Config, tuple[str, ...]],
                           list[tuple[_Key, tuple[float, ...]]]] = {}
        self.truncated = False

    # clocks -----------------------------------------------------------------------------------
    def _options(self, events: Sequence[EventRef]) -> list[frozenset[str]]:
        """The ways the count-reading guards of clocks starting here may come out."""
        free = sorted({d.id for e in events for d in self.starting.get(e, ()) if d.id in self.free})
        return [frozenset(c) for n in range(len(free) + 1) for c in itertools.combinations(free, n)]

    def _apply(self, zone: _Zone, point: int, events: Sequence[EventRef], counts: list[int],
               declined: frozenset[str]) -> _Outcome:
        """Keep, close, cancel and start clocks at ``point``."""
        for d_id, limit in self.limits.within.items():
            start = zone.roles.get(f"start:{d_id}")
            if start is not None and start != point and not zone.constrain(start, point, limit):
                return "clash"
        for event in events:
            for d in self.proj.deadlines:
                role = f"start:{d.id}"
                start = zone.roles.get(role)
                if start is None:
                    continue
                if event == d.end:
                    if d.id in self.limits.at_least and not zone.constrain(
                            point, start, -self.limits.at_least[d.id]):
                        return "clash"
                    del zone.roles[role]
                elif event in d.cancelled_by:
                    del zone.roles[role]
        for event in events:
            for d in self.starting.get(event, ()):
                if _skipped(d, self.fact_case, declined):
                    continue
                role = f"start:{d.id}"
                if role in zone.roles and not d.repeats:
                    continue
                i = self.index[d.id]
                if counts[i] >= self.max_starts:
                    if "origin" in zone.roles and not d.repeats:  # a flag on the origin's point
                        zone.roles[_BEYOND] = zone.roles["origin"]
                    continue
                counts[i] += 1
                zone.roles[role] = point
        return "ok"

    # measuring --------------------------------------------------------------------------------
    def _mark(self, zone: _Zone, point: int, events: Sequence[EventRef]) -> None:
        """Move the origin, and measure tracked events happening first since it.

        The window is read off the constraints known when the event happens (a running
        ``within`` clock already bounds it), so it contains every window the rest of the run
        could narrow it to. Nothing is measured once a clock start has been ignored since
        the origin for a deadline that does not repeat (past the bound: the run is then
        missing a whole deadline). Ignoring a repeating deadline's later restarts only drops
        later occurrences of a cadence, which can only widen the windows.
        """
        if self.origin is not None and self.origin in events:
            for role in [r for r in zone.roles if r.startswith("seen:")]:
                del zone.roles[role]
            zone.roles.pop(_BEYOND, None)
            zone.roles["origin"] = point
        origin = zone.roles.get("origin")
        if origin is None:
            return
        for event in events:
            if event not in self.track or f"seen:{event}" in zone.roles:
                continue
            zone.roles[f"seen:{event}"] = origin  # a flag: it shares the origin's point
            if _BEYOND in zone.roles:
                continue
            seen = self.record.setdefault(event, [INF, -INF])
            seen[0] = min(seen[0], -zone.dist[point][origin])
            seen[1] = max(seen[1], zone.dist[origin][point])

    # search -----------------------------------------------------------------------------------
    def _admit(self, node: _Node, queue: deque[_Key]) -> _Key:
        """Add a state, or merge it into the one with the same configuration and timings.

        Runs that differ only in how many clocks they have started are merged, keeping the
        fewest starts of each deadline (the merged state may do all either run could); a
        state whose counts drop is explored again. When measuring windows, a state is also
        dropped when an explored one allows every timing it does with no more starts used
        (its windows can only be narrower).
        """
        if not self.track:
            node.zone.roles.pop(_BEYOND, None)
        node.zone.drop_unused()
        key = (node.config, node.zone.key())
        known = self.nodes.get(key)
        if known is not None:
            fewer = tuple(map(min, known.counts, node.counts))
            if fewer != known.counts:
                known.counts = fewer
                known.tried.clear()
                queue.append(key)
            return key
        if self.track:
            bucket = self.buckets.setdefault((node.config, tuple(sorted(node.zone.roles))), [])
            flat = node.zone.by_role()
            for other_key, other_flat in bucket:
                other = self.nodes[other_key]
                if all(a >= b for a, b in zip(other_flat, flat, strict=True)) and all(
                        a <= b for a, b in zip(other.counts, node.counts, strict=True)):
                    return other_key
            bucket.append((key, flat))
        self.nodes[key] = node
        self.order.append(key)
        queue.append(key)
        return key

    def path(self, key: _Key | None) -> list[_Step]:
        """The steps from a new case to the state ``key``."""
        chunks: list[tuple[_Step, ...]] = []
        while key is not None:
            node = self.nodes[key]
            chunks.append(node.steps)
            key = node.parent
        return [step for chunk in reversed(chunks) for step in chunk]

    def _settle(self, config: Config, zone: _Zone, counts: list[int]) -> list[_Step]:
        """Do every harmless activity that closes a running clock, at once; the steps done."""
        done: list[_Step] = []
        progress = True
        while progress:
            progress = False
            for move in self.proj.moves.get(config, ()):
                if not move.harmless or not any(
                        f"start:{d.id}" in zone.roles
                        and (d.end in move.events or set(d.cancelled_by) & set(move.events))
                        for d in self.proj.deadlines):
                    continue
                point = zone.add_point()
                zone.constrain(point, zone.roles["now"], 0.0)
                zone.roles["now"] = point
                outcome = self._apply(zone, point, move.events, counts, frozenset())
                assert outcome == "ok", "doing a harmless activity at once is always possible"
                self._mark(zone, point, move.events)
                done.append(_Step(move, frozenset()))
                progress = True
        return done

    def run(self, max_states: int = MAX_STATES) -> None:
        """Explore every state (up to ``max_states``), recording what each move came to."""
        queue: deque[_Key] = deque()
        events = self.proj.initial_events
        for declined in self._options(events):
            zone = _Zone.single("now")
            counts = [0] * len(self.proj.deadlines)
            if self._apply(zone, 0, events, counts, declined) != "ok":  # pragma: no cover
                continue
            self._mark(zone, 0, events)
            done = self._settle(self.proj.initial, zone, counts)
            self._admit(_Node(self.proj.initial, zone, tuple(counts), None,
                              (_Step(None, declined), *done)), queue)
        while queue:
            if len(self.nodes) > max_states:
                self.truncated = True
                return
            key = queue.popleft()
            node = self.nodes[key]
            for move in self.proj.moves.get(node.config, ()):
                if move.harmless:
                    continue
                for declined in self._options(move.events):
                    zone = node.zone.copy()
                    point = zone.add_point()
                    zone.constrain(point, zone.roles["now"], 0.0)
                    zone.roles["now"] = point
                    counts = list(node.counts)
                    outcome = self._apply(zone, point, move.events, counts, declined)
                    step = _Step(move, declined)
                    child = None
                    if outcome == "ok":
                        self._mark(zone, point, move.events)
                        done = self._settle(move.after, zone, counts)
                        child = self._admit(_Node(move.after, zone, tuple(counts), key,
                                                  (step, *done)), queue)
                    node.tried.append((step, outcome, child))

    def blocked(self) -> list[list[tuple[_Key, _Step]]]:
        """Moves that may be imposed on the case and that no choice of services allows.

        Runs are grouped by what may be imposed on the case (stage changes and activities
        that are not services, in order); each group is the set of states its runs can
        reach, doing service activities whenever they like. A group's imposed move is
        blocked when it is possible from no state of the group. Each result lists, for one
        blocked move of one group, the states of the group with the step that fails from
        each (nearest first).

        Groups are bit sets over the explored states. A group that contains one already
        found is not followed: every move it allows the smaller group allows too, and what
        it leads to contains what the smaller group's leads to, so anything blocked after
        it is blocked after the smaller group as well (the antichain argument used for
        universality of automata). Service closures are computed once per strongly
        connected component.
        """
        order = self.order
        bit = {key: i for i, key in enumerate(order)}
        graph: nx.DiGraph[int] = nx.DiGraph()
        graph.add_nodes_from(range(len(order)))
        imposed: list[list[tuple[tuple[Config, str, Config], _Step, _Outcome, int | None]]] = []
        for i, key in enumerate(order):
            mine: list[tuple[tuple[Config, str, Config], _Step, _Outcome, int | None]] = []
            for step, outcome, child in self.nodes[key].tried:
                assert step.move is not None
                target = None if child is None else bit[child]
                if step.move.service:
                    if outcome == "ok" and target is not None:
                        graph.add_edge(i, target)
                    continue
                ident = (step.move.before, step.move.transition.id, step.move.after)
                mine.append((ident, step, outcome, target))
            imposed.append(mine)
        condensed = nx.condensation(graph)
        member = condensed.graph["mapping"]
        reach: dict[int, int] = {}
        for c in reversed(list(nx.topological_sort(condensed))):
            mask = 0
            for i in condensed.nodes[c]["members"]:
                mask |= 1 << i
            for d in condensed.successors(c):
                mask |= reach[d]
            reach[c] = mask

        def closure(indices: Iterable[int]) -> int:
            mask = 0
            for i in indices:
                mask |= reach[member[i]]
            return mask

        def members(mask: int) -> list[int]:
            out: list[int] = []
            while mask:
                low = mask & -mask
                out.append(low.bit_length() - 1)
                mask ^= low
            return out

        first = closure(i for i, k in enumerate(order) if self.nodes[k].parent is None)
        found = [first]
        queue = deque([first])
        out: list[list[tuple[_Key, _Step]]] = []
        while queue:
            group = queue.popleft()
            moves: dict[tuple[Config, str, Config],
                        list[tuple[int, _Step, _Outcome, int | None]]] = {}
            for i in members(group):
                for ident, step, outcome, target in imposed[i]:
                    moves.setdefault(ident, []).append((i, step, outcome, target))
            for tries in moves.values():
                reached = [t for _, _, outcome, t in tries if outcome == "ok" and t is not None]
                if not reached:
                    out.append([(order[i], step) for i, step, _, _ in tries])
                    continue
                nxt = closure(reached)
                if any(g & nxt == g for g in found):
                    continue
                found = [g for g in found if g & nxt != nxt]
                found.append(nxt)
                queue.append(nxt)
        return out


# -- one run as an explicit STN: find and shrink the clash -------------------------------------
@dataclass(frozen=True, slots=True)
class _Instance:
    """One clock along a run: started at ``start``, closed (or still running) at ``close``."""

    deadline: Deadline
    start: int
    close: int
    ended: bool


def _replay(proj: _Projection, fact_case: FactCase, steps: Sequence[_Step]) -> list[_Instance]:
    """Replay the runtime's clocks along a run: every clock that starts on it."""
    running: dict[str, tuple[Deadline, int]] = {}
    out: list[_Instance] = []
    for pos, step in enumerate(steps):
        events = proj.initial_events if step.move is None else step.move.events
        for event in events:
            for d_id, (d, start) in list(running.items()):
                if event == d.end or event in d.cancelled_by:
                    out.append(_Instance(d, start, pos, event == d.end))
                    del running[d_id]
        for event in events:
            for d in proj.deadlines:
                if d.start != event or _skipped(d, fact_case, step.declined):
                    continue
                if d.id in running and not d.repeats:
                    continue
                running[d.id] = (d, pos)
    out.extend(_Instance(d, start, len(steps) - 1, False) for d, start in running.values())
    return out


def _stn(size: int, instances: Sequence[_Instance], chosen: Iterable[int],
         limits: _Limits) -> nx.DiGraph:
    """The distance graph: an edge ``u -> v`` of weight ``w`` says ``t(v) - t(u) <= w``.

    Steps keep the run's order; only the clocks numbered in ``chosen`` are included.
    """
    g = nx.DiGraph()

    def add(u: int, v: int, w: float, label: int | None) -> None:
        if g.has_edge(u, v) and g.edges[u, v]["weight"] <= w:
            return
        g.add_edge(u, v, weight=w, label=label)

    g.add_nodes_from(range(size))
    for pos in range(1, size):
        add(pos, pos - 1, 0.0, None)
    for k in chosen:
        inst = instances[k]
        d_id = inst.deadline.id
        if d_id in limits.within and inst.close > inst.start:
            add(inst.start, inst.close, limits.within[d_id], k)
        if d_id in limits.at_least and inst.ended:
            add(inst.close, inst.start, -limits.at_least[d_id], k)
    return g


def _minimal_clash(size: int, instances: Sequence[_Instance],
                   limits: _Limits) -> list[int] | None:
    """Clocks of the run that clash, none of which can be dropped (None: no clash)."""
    g = _stn(size, instances, range(len(instances)), limits)
    if not nx.negative_edge_cycle(g):
        return None
    cycle = nx.find_negative_cycle(g, size - 1)
    chosen = sorted({g.edges[u, v]["label"] for u, v in itertools.pairwise(cycle)} - {None})
    for k in list(chosen):
        rest = [i for i in chosen if i != k]
        if nx.negative_edge_cycle(_stn(size, instances, rest, limits)):
            chosen = rest
    return chosen


# -- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clash:
    """Deadlines that cannot all be kept.

    Attributes:
        deadlines: A minimal set of deadline ids that clash (drop any one and the rest can
            be kept on this run), in the order the procedure declares them.
        rules: The rule ids those deadlines cite.
        reading: ``favourable``: a clash whatever the calendar; ``ordinary``: in every week
            without bank holidays; ``strict``: a clash when the
            timescales are at their tightest (on some dates only).
        guards: Values of the ``when`` guards of those deadlines, as the case has them.
        facts: An example case: the facts set true that give those guard values.
        blocked: The stage change that cannot be made in time (its trigger), or None when a
            deadline cannot be met by itself.
        events: The triggers of the steps the clashing constraints run through, in order.
        path: The run from a new case up to and including the blocked move.
        needed: Hours the clashing ``at_least`` deadlines demand round the cycle.
        allowed: Hours the clashing ``within`` deadlines allow round the cycle.
        details: One plain sentence per deadline of the set.
    """

    deadlines: tuple[str, ...]
    rules: tuple[RuleId, ...]
    reading: Reading
    guards: tuple[tuple[GuardId, bool], ...]
    facts: tuple[str, ...]
    blocked: str | None
    events: tuple[str, ...]
    path: tuple[PathStep, ...]
    needed: float
    allowed: float
    details: tuple[str, ...] = field(default=())

    @property
    def key(self) -> tuple[tuple[str, ...], tuple[tuple[GuardId, bool], ...]]:
        """What makes two clashes the same: the deadlines and the guard values."""
        return self.deadlines, self.guards


def _hours(h: float) -> str:
    if h == INF:
        return "no upper bound"
    if h % 24 == 0 and h != 0:
        days = h / 24
        return f"{h:g} h ({days:g} day{'s' if days != 1 else ''})"
    return f"{h:g} h"


def _explain(d: Deadline, limits: _Limits) -> str:
    parts = []
    if d.within is not None:
        parts.append(f"within {d.within} (read as at most {_hours(limits.within[d.id])})")
    if d.at_least is not None:
        parts.append(f"at least {d.at_least} (read as at least "
                     f"{_hours(limits.at_least[d.id])})")
    return (f"{d.id}: {d.end} {' and '.join(parts)} after {d.start} "
            f"[{', '.join(d.rules)}]")


def _trigger_of(step: _Step) -> str:
    return "(a new case)" if step.move is None else step.move.transition.trigger


def _rules_of(deadlines: Iterable[Deadline]) -> tuple[RuleId, ...]:
    rules: list[RuleId] = []
    for d in deadlines:
        rules.extend(r for r in d.rules if r not in rules)
    return tuple(rules)


def _clash(proj: _Projection, fact_case: FactCase, reading: Reading,
           steps: list[_Step]) -> Clash | None:
    """Explain why the last move of ``steps`` cannot be made in time."""
    limits = _limits(proj.deadlines, reading)
    instances = _replay(proj, fact_case, steps)
    chosen = _minimal_clash(len(steps), instances, limits)
    if chosen is None:  # pragma: no cover - the exploration and the replay agree
        return None
    ids = {instances[k].deadline.id for k in chosen}
    ordered = [d for d in proj.deadlines if d.id in ids]
    whens = {d.when for d in ordered if d.when is not None}
    guards = tuple((g, v) for g, v in fact_case.guards if g in whens)
    g = _stn(len(steps), instances, chosen, limits)
    cycle = nx.find_negative_cycle(g, len(steps) - 1)
    weights = [g.edges[u, v]["weight"] for u, v in itertools.pairwise(cycle)]
    last = steps[-1].move
    assert last is not None
    return Clash(
        tuple(d.id for d in ordered), _rules_of(ordered), reading, guards,
        fact_case.facts if guards else (), last.transition.trigger,
        tuple(_trigger_of(steps[p]) for p in sorted(set(cycle))),
        path_of(proj.lift(s.move for s in steps if s.move is not None)),
        -sum(w for w in weights if w < 0), sum(w for w in weights if w > 0),
        tuple(_explain(d, limits) for d in ordered),
    )


def _unkeepable(pg: ProcedureGraph, reading: Reading) -> list[Clash]:
    """Deadlines between the same two events whose ``at_least`` exceeds their ``within``.

    Only deadlines whose guards can hold for the same case are taken together.
    """
    proc = pg.procedure
    limits = _limits(proc.deadlines, reading)
    out = []
    for fact_case in fact_cases(proc.deadlines):
        groups: dict[tuple[EventRef, EventRef], list[Deadline]] = {}
        for d in proc.deadlines:
            if d.when is None or fact_case.value(d.when) is not False:
                groups.setdefault((d.start, d.end), []).append(d)
        for (start, end), group in groups.items():
            lows = [d for d in group if d.id in limits.at_least]
            highs = [d for d in group if d.id in limits.within]
            if not lows or not highs:
                continue
            low = max(lows, key=lambda d: limits.at_least[d.id])
            high = min(highs, key=lambda d: limits.within[d.id])
            if limits.at_least[low.id] <= limits.within[high.id]:
                continue
            pair = [d for d in proc.deadlines if d.id in {low.id, high.id}]
            whens = {d.when for d in pair if d.when is not None}
            guards = tuple((g, v) for g, v in fact_case.guards if g in whens)
            out.append(Clash(
                tuple(d.id for d in pair), _rules_of(pair), reading, guards,
                fact_case.facts if guards else (), None, (str(start), str(end)),
                path_of(_shortest_run_to(pg, start)), limits.at_least[low.id],
                limits.within[high.id], tuple(_explain(d, limits) for d in pair),
            ))
    return out


def _shortest_run_to(pg: ProcedureGraph,
                     event: EventRef) -> list[tuple[Config, Config, Transition]]:
    """The shortest run from a new case through a move where ``event`` happens."""
    proc = pg.procedure
    if event in initial_events(proc):
        return []
    best: list[tuple[Config, Config, Transition]] | None = None
    for u, v, t in pg.edges():
        if event in events_of(proc, u, v, t):
            run = [*(pg.path_to(u) or []), (u, v, t)]
            if best is None or len(run) < len(best):
                best = run
    return best or []


def find_clashes(procedure: Procedure | ProcedureGraph, reading: Reading = "favourable",
                 max_starts: int = MAX_STARTS) -> tuple[list[Clash], bool]:
    """Every distinct clash of the procedure's deadlines, in one reading.

    Args:
        procedure: The procedure (or its already built configuration graph).
        reading: ``favourable`` (prove whatever the calendar), ``ordinary`` (weekends, no
            bank holidays) or ``strict``.
        max_starts: Each deadline is checked over its first ``max_starts`` clocks on a run.

    Returns:
        The clashes (shortest run first, one per distinct set of deadlines and guard
        values, at most :data:`MAX_CLASHES` blocked moves explained per kind of case) and
        whether the exploration finished within :data:`MAX_STATES`.
    """
    pg = procedure if isinstance(procedure, ProcedureGraph) else build_graph(procedure)
    found: dict[object, Clash] = {c.key: c for c in _unkeepable(pg, reading)}
    complete = True
    for proj in _projections(pg):
        for fact_case in fact_cases(proj.deadlines):
            explorer = _Explorer(proj, fact_case, reading, max_starts)
            explorer.run()
            complete = complete and not explorer.truncated
            if explorer.truncated:
                # A partial state space cannot show a move blocked from every state of a
                # group, and grouping it can take far longer than exploring did: the proof
                # is reported incomplete instead.
                continue
            for failures in explorer.blocked()[:MAX_CLASHES]:
                options = [_clash(proj, fact_case, reading, [*explorer.path(key), step])
                           for key, step in failures[:_EXPLAIN]]
                best = min((c for c in options if c is not None),
                           key=lambda c: (len(c.deadlines), len(c.path)), default=None)
                if best is not None and (best.key not in found
                                         or len(best.path) < len(found[best.key].path)):
                    found[best.key] = best
    return sorted(found.values(), key=lambda c: (len(c.path), c.deadlines)), complete


_EXPLAIN = 8
"""How many failing states of one blocked move to explain, keeping the smallest set."""


def _guard_text(clash: Clash) -> str:
    if not clash.guards:
        return "for every case"
    held = [g for g, v in clash.guards if v]
    failed = [g for g, v in clash.guards if not v]
    parts = []
    if held:
        parts.append(" and ".join(held) + (" holds" if len(held) == 1 else " hold"))
    if failed:
        parts.append(" and ".join(failed) + (" does not hold" if len(failed) == 1
                                             else " do not hold"))
    example = f" (e.g. a case with {', '.join(clash.facts)})" if clash.facts else ""
    return "when " + " and ".join(parts) + example


def _message(clash: Clash) -> str:
    names = clash.deadlines[0]
    if len(clash.deadlines) > 1:
        names = ", ".join(clash.deadlines[:-1]) + " and " + clash.deadlines[-1]
    verb = "cannot all be kept" if len(clash.deadlines) > 1 else "cannot be kept"
    if clash.reading == "favourable":
        when = ("whatever the calendar (each timescale read as generously as any date "
                f"from {CALENDAR_FIRST.year} to {CALENDAR_LAST.year} and any time of day allow)")
    elif clash.reading == "ordinary":
        when = ("in every ordinary week (each timescale read as generously as weekends allow, "
                "with no bank holiday): only a run of bank holidays, such as Easter or "
                "Christmas, could make room for them")
    else:
        when = ("on some dates: with each timescale at its tightest (no weekend or bank "
                "holiday to stretch it, started late in the day) they clash, so they can be "
                "kept only when the calendar is favourable")
    if clash.blocked is None:
        lines = [f"{names} {verb} {_guard_text(clash)}, {when}: between the same two "
                 "events they demand more time than they allow:"]
    else:
        lines = [f"{names} {verb} {_guard_text(clash)}, {when}: after the run below "
                 f"{clash.blocked} cannot be made in time, whatever is done first:"]
    lines.extend(f"      {d}" for d in clash.details)
    lines.append("      along " + " -> ".join(clash.events) + f" they need {_hours(clash.needed)} "
                 f"where they allow at most {_hours(clash.allowed)}")
    return "\n".join(lines)


def check_timescales(pg: ProcedureGraph, max_starts: int = MAX_STARTS) -> list[Finding]:
    """Prove the deadlines can all be kept, or show where they clash.

    A clash in the most favourable reading of the calendar, or in the ordinary reading
    (weekends, no bank holidays), is an error; one that shows only in the strict reading
    is a warning. Running out of states is a warning too (the proof is then incomplete).
    """
    out: list[Finding] = []
    errors, complete = find_clashes(pg, "favourable", max_starts)
    if complete:
        ordinary, complete = find_clashes(pg, "ordinary", max_starts)
        keys = {c.key for c in errors}
        errors = [*errors, *(c for c in ordinary if c.key not in keys)]
    seen = {c.key for c in errors}
    for clash in errors:
        out.append(Finding("timescales", "error", _message(clash), clash.rules, clash.path))
    if complete:
        strict, complete = find_clashes(pg, "strict", max_starts)
        for clash in strict:
            if clash.key not in seen:
                out.append(Finding("timescales", "warning", _message(clash), clash.rules,
                                   clash.path))
    if not complete:
        out.append(Finding("timescales", "warning",
                           f"timescale check stopped after {MAX_STATES} states; the deadlines "
                           "are not proved consistent on every run"))
    return out


# -- when each stage can happen ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StageWindow:
    """When one stage or milestone first happens after the origin, if every rule is kept.

    Attributes:
        event: The event measured (entering a stage, or a deadline's ``to`` event).
        earliest: Hours after the origin, at the soonest; None when never measured.
        latest: Hours after the origin at the latest (``inf``: no upper bound); None when
            never measured.
    """

    event: EventRef
    earliest: float | None
    latest: float | None


@dataclass(frozen=True)
class TimescaleBounds:
    """The window of every stage and milestone, measured from the origin event.

    Attributes:
        procedure: The procedure's id.
        origin: The event time is measured from (by default entering the initial state).
        windows: One per stage and milestone, soonest first; never-measured ones last.
        max_starts: The bound on clock starts per run that the exploration used.
        complete: False when the exploration stopped at :data:`MAX_STATES`.
    """

    procedure: str
    origin: EventRef
    windows: tuple[StageWindow, ...]
    max_starts: int
    complete: bool

    def window(self, event: EventRef | str) -> StageWindow:
        """The window of ``event`` (an EventRef or its text, e.g. ``trigger:icpc_opens``)."""
        for w in self.windows:
            if w.event == event or str(w.event) == event:
                return w
        raise KeyError(str(event))


def _tracked(proj: _Projection) -> list[EventRef]:
    """Main-flow stages (top-level and compound states), then deadlines' ``to`` events.

    A ``to`` event is left out when only activities make it happen: the case chooses when
    it does those (harmless ones are done at once), so they have no window of their own.
    """
    proc = proj.procedure
    stages = [EventRef("enter", s.id) for s in proc.states.values()
              if s.region is None and (s.parent is None or s.is_compound)]
    moves = [m for ms in proj.moves.values() for m in ms]
    milestones: list[EventRef] = []
    for d in proc.deadlines:
        if d.end in stages or d.end in milestones or 0 not in _event_regions(proc, d.end):
            continue
        if any(d.end in m.events and not m.activity for m in moves):
            milestones.append(d.end)
    return stages + milestones


def timescale_bounds(procedure: Procedure | ProcedureGraph, origin: EventRef | None = None,
                     max_starts: int = MAX_STARTS) -> TimescaleBounds:
    """When each main-flow stage and deadline milestone can first happen, keeping every rule.

    Measured from the most recent ``origin`` (default: entering the initial state, i.e. the
    referral) in the most favourable reading of the calendar, over every kind of case, on the
    runs explored as for :func:`find_clashes`. Each window is read off the constraints
    known when the event first happens after the origin, so it holds for every run that
    keeps every rule (it may be wider than the whole run would allow, never narrower).

    Args:
        procedure: The procedure (or its configuration graph).
        origin: The event to measure from.
        max_starts: Each deadline is checked over its first ``max_starts`` clocks on a run.
    """
    pg = procedure if isinstance(procedure, ProcedureGraph) else build_graph(procedure)
    proc = pg.procedure
    origin = origin or EventRef("enter", proc.initial)
    stages = [EventRef("enter", s.id) for s in proc.states.values() if s.region is None]
    proj = _projections(pg, extra=[origin, *stages])[0]
    track = _tracked(proj)
    record: _Record = {}
    complete = True
    for fact_case in fact_cases(proj.deadlines):
        explorer = _Explorer(proj, fact_case, "favourable", max_starts, track, origin)
        explorer.run()
        complete = complete and not explorer.truncated
        for event, (low, high) in explorer.record.items():
            seen = record.setdefault(event, [INF, -INF])
            seen[0] = min(seen[0], low)
            seen[1] = max(seen[1], high)
    windows = [StageWindow(e, record[e][0], record[e][1]) if e in record
               else StageWindow(e, None, None) for e in track]
    windows.sort(key=lambda w: (w.earliest is None, w.earliest or 0.0, w.latest or 0.0))
    return TimescaleBounds(proc.id, origin, tuple(windows), max_starts, complete)


def event_from_text(procedure: Procedure, text: str) -> EventRef:
    """Read ``trigger:NAME``, ``enter:STATE`` or ``exit:STATE`` as one of the procedure's events.

    Raises:
        InputError: when the text is not such an event of this procedure.
    """
    kind, _, name = text.partition(":")
    if kind == "trigger" and name in procedure.triggers:
        return EventRef("trigger", name)
    if kind in ("enter", "exit") and name in procedure.states:
        return EventRef(kind, name)  # type: ignore[arg-type]
    choices = [f"trigger:{t}" for t in procedure.triggers] + [
        f"{k}:{s}" for k in ("enter", "exit") for s in procedure.states]
    raise InputError([Problem(procedure.id, None, "--from",
                              "not an event of this procedure (trigger:NAME, enter:STATE or "
                              "exit:STATE)", text, did_you_mean(text, choices))])


def _days(hours: float) -> str:
    return "no upper bound" if hours == INF else f"{hours / 24 + 0.0:.1f}"


def format_timescales(bounds: TimescaleBounds, initial: str | None = None) -> str:
    """The windows as a short plain-text table, in days after the origin.

    Args:
        bounds: The windows.
        initial: The procedure's initial state, to name the default origin in words.
    """
    if initial is not None and bounds.origin == EventRef("enter", initial):
        origin = f"{bounds.origin} (a new case, and again each time it comes back there)"
    else:
        origin = str(bounds.origin)
    lines = [f"{bounds.procedure}: if every rule is kept, each stage and milestone first happens "
             f"this many days after {origin}",
             f"  (most favourable reading, so the windows hold whatever the calendar; each "
             f"deadline over its first {bounds.max_starts} clocks on a run)"]
    width = max([len(str(w.event)) for w in bounds.windows] + [18])
    lines.append(f"  {'stage or milestone':<{width}}  {'earliest':>8}  {'latest':>14}")
    for w in bounds.windows:
        if w.earliest is None or w.latest is None:
            lines.append(f"  {w.event!s:<{width}}  {'-':>8}  {'not reached':>14}")
        else:
            lines.append(f"  {w.event!s:<{width}}  {_days(w.earliest):>8}  "
                         f"{_days(w.latest):>14}")
    if not bounds.complete:
        lines.append(f"  (stopped after {MAX_STATES} states: the windows may be incomplete)")
    return "\n".join(lines)


__all__ = [
    "CALENDAR_FIRST",
    "CALENDAR_LAST",
    "MAX_STARTS",
    "Clash",
    "FactCase",
    "StageWindow",
    "TimescaleBounds",
    "allowed_hours",
    "check_timescales",
    "event_from_text",
    "fact_cases",
    "find_clashes",
    "format_timescales",
    "gap_range",
    "required_hours",
    "timescale_bounds",
]
