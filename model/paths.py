"""Plan walkthroughs that together cover a procedure: the logic behind ``cpsim paths``.

A *walkthrough* is one case's journey, replayable with ``cpsim walk --replay``: it starts
as a new case with facts chosen up front (so fact guards such as ``extended_notice_needed``
can hold) and ends where a case may end. The planner searches the procedure's concrete
state space: the configuration plus the trigger counts that guards read (as each guard
declares in :mod:`model.guards`, e.g. ``designated_review_due`` needs three reviews of the
current plan; counted up to where its answer stops changing), with guards evaluated exactly
as the compiled machine does.

Choosing the fewest walkthroughs that cover everything is a set-cover problem (NP-hard),
so the set is built greedily and is not proven minimal. Each round builds one candidate per
(case facts, target): the shortest run from a new case that covers the target and can
still end, then, while anything not yet covered can be reached without the case ending on
the way, the cheapest detour to it (nearest first), then the shortest way to an end. The
candidate covering the most not yet covered wins the round (ties: fewer steps). Every
chosen walkthrough is then replayed on the real machine (:class:`model.session.WalkSession`),
which adds clock moves where a deadline sets a minimum gap, and what it covers is taken
from that replay.

Coverage: a state is covered when the case is in it (compound states count when any state
inside is active); a transition when it fires; a deadline when its clock both starts and
ends on the walk (met or missed; a cancelled clock does not count); a rule when a covered
state, transition or deadline cites it. Rules cited only by declared properties are listed
apart: no single walk exercises a property.
"""

from __future__ import annotations

import heapq
import math
import textwrap
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from model.compiler import top_level_states
from model.graph import (
    Config,
    active_states,
    apply,
    build_graph,
    candidates,
    events_of,
    initial_configuration,
    initial_events,
    is_terminal,
)
from model.guards import GUARDS, GuardContext, counts_read, evaluate, fact_classes, reads_counts
from model.session import DEFAULT_START, Move, WalkSession, format_transcript
from model.session_view import format_facts
from model.spec import Deadline, EventRef, Procedure, Transition
from model.types import StateId, TriggerId

CoverMode = Literal["states", "transitions", "deadlines", "rules"]
COVER_MODES: tuple[CoverMode, ...] = ("states", "transitions", "deadlines", "rules")

MAX_DETOUR_STEPS = 40
"""A walkthrough takes no new detour once it is this many actions long (exercises stay usable)."""

ElementKind = Literal["state", "transition", "deadline"]
_INF = math.inf
_ENDING = 100_000


@dataclass(frozen=True, slots=True)
class Walkthrough:
    """One planned walkthrough.

    Attributes:
        number: 1-based position in the plan.
        facts: The case facts it starts with (only the true ones).
        commands: The walk's commands (action names and clock moves).
        steps: How many actions it takes.
        route: The main-flow stages it passes through, repeats merged.
        new: Items it covers that earlier walkthroughs did not, in plan order.
        covers: Every item it covers.
        transcript: The transcript text (``cpsim walk --replay`` runs it).
    """

    number: int
    facts: Mapping[str, bool]
    commands: tuple[str, ...]
    steps: int
    route: tuple[StateId, ...]
    new: tuple[str, ...]
    covers: tuple[str, ...]
    transcript: str

    @property
    def file_name(self) -> str:
        """The transcript's file name, e.g. ``walk-01.txt``."""
        return f"walk-{self.number:02d}.txt"

    def summary(self) -> str:
        """One line: ``01 covers 14 new: referral → ... → closed (23 steps)``."""
        return (f"{self.number:02d} covers {len(self.new)} new: {' → '.join(self.route)} "
                f"({self.steps} step{'s' if self.steps != 1 else ''})")


@dataclass(frozen=True)
class PathsPlan:
    """Walkthroughs that together cover a procedure's states, transitions, deadlines or rules.

    Attributes:
        universe: Every item to cover, in plan order.
        uncovered: Items no walkthrough can cover, each with the reason.
        not_exercisable: For ``rules``: rules cited only by declared properties.
    """

    procedure: str
    mode: CoverMode
    start_date: date
    universe: tuple[str, ...]
    walks: tuple[Walkthrough, ...]
    uncovered: tuple[tuple[str, str], ...] = ()
    not_exercisable: tuple[str, ...] = ()

    @property
    def covered(self) -> frozenset[str]:
        """Every item some walkthrough covers."""
        return frozenset(i for w in self.walks for i in w.covers)


# -- the concrete search space -----------------------------------------------------------------
@dataclass(frozen=True, slots=True, order=True)
class _Node:
    config: Config
    counts: tuple[int, ...]
    episode: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Edge:
    id: int
    src: int
    dst: int
    transition: Transition
    events: tuple[EventRef, ...]


def _used_guards(procedure: Procedure) -> tuple[str, ...]:
    return tuple(sorted({g for t in procedure.transitions for g in t.guards}
                        | {d.when for d in procedure.deadlines if d.when}))


def fact_variants(procedure: Procedure) -> tuple[dict[str, bool], ...]:
    """One set of case facts per distinct way the procedure's guards can read them.

    One per class of :func:`model.guards.fact_classes`, the simplest first, each given by
    its simplest member (only the true facts). Count-based guards read no facts, so they
    do not split the facts.

    >>> from model.loader import load_procedure
    >>> [sorted(f) for f in fact_variants(load_procedure("newcastle-2010"))][:4]
    [[], ['parent_learning_disability'], ['pre_birth'], ['domestic_abuse']]
    """
    return tuple(dict(c.facts) for c in fact_classes(_used_guards(procedure)))


def counted_triggers(procedure: Procedure) -> tuple[tuple[TriggerId, ...], tuple[TriggerId, ...]]:
    """Triggers whose count (whole case, then current episode) some guard used here reads.

    As the guards declare (:func:`model.guards.counts_read`), limited to the procedure's own
    triggers (any other is never counted, so stays 0).

    >>> from model.loader import load_procedure
    >>> counted_triggers(load_procedure("newcastle-2010"))
    ((), ('designated_review_opens', 'review_opens'))
    """
    counts, episode = counts_read(_used_guards(procedure))
    own = set(procedure.triggers)
    return tuple(sorted(counts & own)), tuple(sorted(episode & own))


def count_cap(procedure: Procedure) -> int:
    """The count at which the search stops counting a trigger: every higher one reads the same.

    The largest ``saturates_at`` the count-reading guards used here declare (0 when none
    reads a count).

    >>> from model.loader import load_procedure
    >>> count_cap(load_procedure("newcastle-2010"))
    4
    """
    return max((GUARDS[g].saturates_at for g in _used_guards(procedure) if reads_counts(g)),
               default=0)


class _Space:
    """Every situation a case with given facts can reach: configuration and guard counts."""

    def __init__(self, procedure: Procedure, facts: Mapping[str, bool],
                 counted: tuple[TriggerId, ...], episodic: tuple[TriggerId, ...],
                 cap: int) -> None:
        self.procedure = procedure
        self.facts = dict(facts)
        self.counted = counted
        self.episodic = episodic
        tops = top_level_states(procedure)
        start = _Node(initial_configuration(procedure), (0,) * len(counted),
                      (0,) * len(episodic))
        self.nodes: list[_Node] = [start]
        self.index: dict[_Node, int] = {start: 0}
        self.out: list[list[_Edge]] = []
        self.edges: list[_Edge] = []
        i = 0
        while i < len(self.nodes):
            node = self.nodes[i]
            ctx = self.context(node)
            fired: set[TriggerId] = set()
            out: list[_Edge] = []
            for t in candidates(procedure, node.config):
                if t.trigger in fired or not all(evaluate(g, ctx) for g in t.guards):
                    continue
                fired.add(t.trigger)
                after = apply(procedure, node.config, t)
                events = events_of(procedure, node.config, after, t)
                reset = any(e.kind == "enter" and e.name in tops for e in events)
                episode = (0,) * len(episodic) if reset else node.episode
                nxt = _Node(
                    after,
                    tuple(min(cap, c + (tr == t.trigger))
                          for tr, c in zip(counted, node.counts, strict=True)),
                    tuple(min(cap, c + (tr == t.trigger))
                          for tr, c in zip(episodic, episode, strict=True)),
                )
                j = self.index.get(nxt)
                if j is None:
                    j = len(self.nodes)
                    self.index[nxt] = j
                    self.nodes.append(nxt)
                edge = _Edge(len(self.edges), i, j, t, events)
                self.edges.append(edge)
                out.append(edge)
            self.out.append(out)
            i += 1
        n = len(self.nodes)
        self.terminal = [is_terminal(procedure, node.config) for node in self.nodes]
        self.active = [active_states(procedure, node.config) for node in self.nodes]
        self.into: list[list[_Edge]] = [[] for _ in range(n)]
        for e in self.edges:
            self.into[e.dst].append(e)
        # Shortest way to an end, never passing through a configuration where it could end.
        self.dist_end: list[float] = [_INF] * n
        self.end_next: list[_Edge | None] = [None] * n
        queue: deque[int] = deque()
        for v in range(n):
            if self.terminal[v]:
                self.dist_end[v] = 0
                queue.append(v)
        while queue:
            v = queue.popleft()
            for e in self.into[v]:
                u = e.src
                if not self.terminal[u] and self.dist_end[u] == _INF:
                    self.dist_end[u] = self.dist_end[v] + 1
                    queue.append(u)
        for u in range(n):
            if self.terminal[u] or self.dist_end[u] == _INF:
                continue
            self.end_next[u] = next(e for e in self.out[u]
                                    if self.dist_end[e.dst] == self.dist_end[u] - 1)
        self._by_end: dict[EventRef, list[str]] = {}
        self._by_cancel: dict[EventRef, list[str]] = {}
        self._effects: dict[int, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {}
        self._phase_memo: dict[tuple[str, int, int], tuple[bool, int]] = {}
        self.initial_running = self._initial_running()

    def context(self, node: _Node) -> GuardContext:
        """The guard context of a case in ``node``."""
        return GuardContext(facts=self.facts,
                            counts=dict(zip(self.counted, node.counts, strict=True)),
                            episode=dict(zip(self.episodic, node.episode, strict=True)))

    def _starts(self, d: Deadline, event: EventRef, ctx: GuardContext) -> bool:
        return d.start == event and (d.when is None or evaluate(d.when, ctx))

    def _initial_running(self) -> frozenset[str]:
        ctx = self.context(self.nodes[0])
        running: set[str] = set()
        for event in initial_events(self.procedure):
            for d in self.procedure.deadlines:
                if self._starts(d, event, ctx):
                    running.add(d.id)
        return frozenset(running)

    def _clock_effects(self, edge: _Edge) -> tuple[frozenset[str], frozenset[str],
                                                   frozenset[str]]:
        """For one move: the clocks it ends, those it cancels, and those it starts."""
        found = self._effects.get(edge.id)
        if found is not None:
            return found
        if not self._by_end:
            for d in self.procedure.deadlines:
                self._by_end.setdefault(d.end, []).append(d.id)
                for c in d.cancelled_by:
                    self._by_cancel.setdefault(c, []).append(d.id)
        ends: set[str] = set()
        cancels: set[str] = set()
        for event in edge.events:  # the first event that concerns a clock decides
            for did in self._by_end.get(event, ()):
                if did not in cancels:
                    ends.add(did)
            for did in self._by_cancel.get(event, ()):
                if did not in ends:
                    cancels.add(did)
        ctx = self.context(self.nodes[edge.dst])
        starts = {d.id for d in self.procedure.deadlines
                  if d.start in edge.events and (d.when is None or evaluate(d.when, ctx))}
        found = (frozenset(ends), frozenset(cancels), frozenset(starts))
        self._effects[edge.id] = found
        return found

    def step_clocks(self, running: frozenset[str], edge: _Edge
                    ) -> tuple[frozenset[str], frozenset[str]]:
        """The clocks ended (met or missed) by ``edge`` and those running after it.

        Mirrors the compiled machine: each running clock is closed by the first of the
        move's events that is its end (a verdict) or cancels it; then the move's events
        start clocks, with the deadline's guard read after the move is counted (a clock
        already running and not repeating simply keeps running).
        """
        ends, cancels, starts = self._clock_effects(edge)
        ended = running & ends
        return ended, (running - ends - cancels) | starts

    def phase_step(self, deadline_id: str, edge: _Edge, phase: int) -> tuple[bool, int]:
        """For one deadline: whether ``edge`` ends its clock, and whether it runs after."""
        key = (deadline_id, edge.id, phase)
        hit = self._phase_memo.get(key)
        if hit is None:
            ended, running = self.step_clocks(
                frozenset({deadline_id}) if phase else frozenset(), edge)
            hit = (deadline_id in ended, int(deadline_id in running))
            self._phase_memo[key] = hit
        return hit


# -- targets -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Element:
    kind: ElementKind
    id: str
    order: int


@dataclass
class _Table:
    """Cost to cover one element from each situation, then end (never ending on the way).

    Covering moves that themselves end the case cost ``_ENDING`` more, so a walk takes
    every detour it can before one that ends it.
    """

    cost: list[float]
    choice: list[tuple[_Edge, bool] | None]


class _Targets:
    """Per facts variant: how to cover each element, and what covering it gives."""

    def __init__(self, space: _Space) -> None:
        self.space = space
        self._tables: dict[tuple[ElementKind, str], _Table] = {}
        self._forwards: dict[str, tuple[list[int], dict[int, int],
                                        dict[int, tuple[int, _Edge]]]] = {}

    def phased(self, element: _Element) -> bool:
        return element.kind == "deadline"

    def state_of(self, element: _Element, node: int, running: frozenset[str]) -> int:
        """The search state for ``element``: the node, with the clock's phase if a deadline."""
        if self.phased(element):
            return node * 2 + int(element.id in running)
        return node

    def goal(self, element: _Element, edge: _Edge, phase: int) -> tuple[bool, int]:
        """Whether ``edge`` (taken with ``phase``) covers the element, and the next phase."""
        if element.kind == "deadline":
            return self.space.phase_step(element.id, edge, phase)
        if element.kind == "transition":
            return edge.transition.id == element.id, 0
        return element.id in self.space.active[edge.dst], 0

    def table(self, element: _Element) -> _Table:
        """Reverse Dijkstra from the element's goal moves, within the no-ending-midway graph."""
        key = (element.kind, element.id)
        found = self._tables.get(key)
        if found is not None:
            return found
        sp = self.space
        phases = (0, 1) if self.phased(element) else (0,)
        width = len(phases)
        size = len(sp.nodes) * width
        cost = [_INF] * size
        choice: list[tuple[_Edge, bool] | None] = [None] * size
        back: list[list[tuple[int, _Edge]]] = [[] for _ in range(size)]
        for u in range(len(sp.nodes)):
            if sp.terminal[u]:
                continue
            for ph in phases:
                x = u * width + ph
                for e in sp.out[u]:
                    hit, nph = self.goal(element, e, ph)
                    y = e.dst * width + (nph if width == 2 else 0)
                    back[y].append((x, e))
                    if hit and sp.dist_end[e.dst] < _INF:
                        # A detour that ends the case comes last: nothing can follow it.
                        c = 1 + sp.dist_end[e.dst] + (_ENDING if sp.terminal[e.dst] else 0)
                        if c < cost[x]:
                            cost[x] = c
                            choice[x] = (e, True)
        heap = [(c, x) for x, c in enumerate(cost) if c < _INF]
        heapq.heapify(heap)
        while heap:
            c, y = heapq.heappop(heap)
            if c > cost[y]:
                continue
            for x, e in back[y]:
                if c + 1 < cost[x]:
                    cost[x] = c + 1
                    choice[x] = (e, False)
                    heapq.heappush(heap, (c + 1, x))
        table = _Table(cost, choice)
        self._tables[key] = table
        return table

    def _forward(self, deadline: str | None
                 ) -> tuple[list[int], dict[int, int], dict[int, tuple[int, _Edge]]]:
        """Breadth-first from a new case over every move (ends on the way allowed)."""
        key = deadline or ""
        found = self._forwards.get(key)
        if found is not None:
            return found
        sp = self.space
        width = 2 if deadline else 1
        start = 0 if deadline is None else int(deadline in sp.initial_running)
        dist = {start: 0}
        parent: dict[int, tuple[int, _Edge]] = {}
        order = [start]
        queue: deque[int] = deque([start])
        while queue:
            x = queue.popleft()
            u, ph = divmod(x, width)
            for e in sp.out[u]:
                nph = sp.phase_step(deadline, e, ph)[1] if deadline else 0
                y = e.dst * width + nph
                if y not in dist:
                    dist[y] = dist[x] + 1
                    parent[y] = (x, e)
                    order.append(y)
                    queue.append(y)
        found = (order, dist, parent)
        self._forwards[key] = found
        return found

    def first_route(self, element: _Element) -> tuple[list[_Edge] | None, bool]:
        """The shortest run from a new case that covers ``element`` and can still end.

        May pass through configurations where a case could end (a re-referral needs that).

        Returns:
            The moves (None when impossible) and whether the element can be reached at all.
        """
        sp = self.space
        phased = self.phased(element)
        width = 2 if phased else 1
        order, dist, parent = self._forward(element.id if phased else None)
        best: tuple[float, int, _Edge] | None = None
        reachable = False
        for x in order:
            u, ph = divmod(x, width)
            for e in sp.out[u]:
                if not self.goal(element, e, ph)[0]:
                    continue
                reachable = True
                c = dist[x] + 1 + sp.dist_end[e.dst]
                if c < _INF and (best is None or c < best[0]):
                    best = (c, x, e)
        if best is None:
            return None, reachable
        _, x, last = best
        moves = [last]
        while x != order[0]:
            x, e = parent[x]
            moves.append(e)
        moves.reverse()
        return moves, True


# -- building walks ----------------------------------------------------------------------------
@dataclass
class _Walk:
    variant: int
    primary: _Element
    moves: list[_Edge] = field(default_factory=list)
    items: set[str] = field(default_factory=set)
    node: int = 0
    running: frozenset[str] = frozenset()


class _Planner:
    def __init__(self, procedure: Procedure, mode: CoverMode,
                 max_steps: int = MAX_DETOUR_STEPS) -> None:
        self.procedure = procedure
        self.mode = mode
        self.max_steps = max_steps
        counted, episodic = counted_triggers(procedure)
        self.variants = fact_variants(procedure)
        cap = count_cap(procedure)
        self.spaces = [_Space(procedure, f, counted, episodic, cap) for f in self.variants]
        self.targets = [_Targets(sp) for sp in self.spaces]
        self.elements = self._elements()
        self.gives = {(e.kind, e.id): self._gives(e) for e in self.elements}

    def _elements(self) -> list[_Element]:
        p = self.procedure
        out: list[tuple[ElementKind, str]] = []
        if self.mode in ("states", "rules"):
            out += [("state", s) for s in universe(p, "states")]
        if self.mode in ("transitions", "rules"):
            out += [("transition", t.id) for t in p.transitions]
        if self.mode in ("deadlines", "rules"):
            out += [("deadline", d.id) for d in p.deadlines]
        return [_Element(kind, ident, i) for i, (kind, ident) in enumerate(out)]

    def _gives(self, e: _Element) -> frozenset[str]:
        p = self.procedure
        if self.mode != "rules":
            return frozenset({e.id})
        if e.kind == "state":
            return frozenset(p.states[e.id].rules)
        if e.kind == "transition":
            return frozenset(p.transition(e.id).rules)
        return frozenset(next(d for d in p.deadlines if d.id == e.id).rules)

    def items_of(self, sp: _Space, edge: _Edge | None, node: int,
                 ended: frozenset[str]) -> set[str]:
        """The items covered by arriving in ``node`` by ``edge`` (None: a new case)."""
        p = self.procedure
        states = sp.active[node]
        if self.mode == "states":
            return set(states)
        if self.mode == "transitions":
            return {edge.transition.id} if edge is not None else set()
        if self.mode == "deadlines":
            return set(ended)
        rules = {r for s in states for r in p.states[s].rules}
        if edge is not None:
            rules.update(edge.transition.rules)
        rules.update(r for d in p.deadlines if d.id in ended for r in d.rules)
        return rules

    def _take(self, walk: _Walk, edge: _Edge) -> None:
        sp = self.spaces[walk.variant]
        ended, walk.running = sp.step_clocks(walk.running, edge)
        walk.moves.append(edge)
        walk.node = edge.dst
        walk.items |= self.items_of(sp, edge, edge.dst, ended)

    def _follow(self, walk: _Walk, element: _Element, table: _Table) -> None:
        targets = self.targets[walk.variant]
        while True:
            step = table.choice[targets.state_of(element, walk.node, walk.running)]
            if step is None:  # pragma: no cover - tables and clocks disagree
                raise RuntimeError(f"lost the way to {element.id} in {self.procedure.id}")
            edge, is_goal = step
            self._take(walk, edge)
            if is_goal:
                return

    def build(self, variant: int, primary: _Element, uncovered: frozenset[str]
              ) -> _Walk | None:
        """A candidate walk that covers ``primary``.

        From a new case it takes, nearest first, every detour to something in
        ``uncovered`` that can be reached without the case ending on the way and that still
        leaves ``primary`` reachable; then ``primary`` (when no detour covered it), more
        detours, and the shortest way to an end. A ``primary`` that can only be reached by
        passing through a place where the case could end (a re-referral) is reached first.
        """
        sp = self.spaces[variant]
        targets = self.targets[variant]
        walk = _Walk(variant, primary, running=sp.initial_running)
        walk.items = self.items_of(sp, None, 0, frozenset())
        goal = self.gives[(primary.kind, primary.id)]
        ptable = targets.table(primary)
        if ptable.cost[targets.state_of(primary, 0, walk.running)] == _INF:
            route, _ = targets.first_route(primary)
            if route is None:
                return None
            for edge in route:
                self._take(walk, edge)
        while not sp.terminal[walk.node]:
            wanted = uncovered - walk.items
            done = goal <= walk.items
            options: list[tuple[float, int, _Element]] = []
            for element in self.elements:
                if element is primary or not (self.gives[(element.kind, element.id)] & wanted):
                    continue
                c = targets.table(element).cost[
                    targets.state_of(element, walk.node, walk.running)]
                if c < _INF:
                    options.append((c, element.order, element))
            options.sort(key=lambda o: (o[0], o[1]))
            chosen: _Element | None = None
            if len(walk.moves) >= self.max_steps:
                options = []
            for _, _, element in options:
                if done:
                    chosen = element
                    break
                trial = _Walk(variant, primary, list(walk.moves), set(walk.items),
                              walk.node, walk.running)
                self._follow(trial, element, targets.table(element))
                if ptable.cost[targets.state_of(primary, trial.node, trial.running)] < _INF:
                    chosen = element
                    break
            if chosen is None and not done:
                chosen = primary
            if chosen is None:
                break
            self._follow(walk, chosen, targets.table(chosen))
        while not sp.terminal[walk.node]:
            nxt = sp.end_next[walk.node]
            if nxt is None:  # pragma: no cover - walks only go where an end is reachable
                raise RuntimeError(f"walk cannot end in {self.procedure.id}")
            self._take(walk, nxt)
        return walk

    def reach(self) -> dict[str, str]:
        """For each item that no walk can cover, why."""
        coverable: set[str] = set()
        reachable: set[str] = set()
        for variant, targets in enumerate(self.targets):
            for element in self.elements:
                route, seen = targets.first_route(element)
                gives = self.gives[(element.kind, element.id)]
                if seen:
                    reachable |= gives
                if route is not None:
                    walk = self.build(variant, element, frozenset())
                    assert walk is not None
                    coverable |= walk.items
        open_graph = build_graph(self.procedure)
        ever: set[str] = set()
        for config in open_graph.graph.nodes:
            ever |= active_states(self.procedure, config)
        fired = {t.id for _, _, t in open_graph.edges()}
        reasons: dict[str, str] = {}
        for item in universe(self.procedure, self.mode):
            if item in coverable:
                continue
            if item in reachable:
                reasons[item] = ("reachable, but every run through it gets stuck before the "
                                 "case may end")
            elif (self.mode == "states" and item not in ever) or (
                    self.mode == "transitions" and item not in fired):
                reasons[item] = "never reached from a new case, even with guards ignored"
            else:
                reasons[item] = "not reached by any run, under any case facts"
        return reasons


def universe(procedure: Procedure, mode: CoverMode) -> tuple[str, ...]:
    """Everything a plan in ``mode`` must cover, in order.

    >>> from model.loader import load_procedure
    >>> universe(load_procedure("west-midlands-2014"), "deadlines")[:2]
    ('referral_decision', 'assessment_complete')
    """
    p = procedure
    if mode == "states":
        return tuple(s for s, st in p.states.items()
                     if not (st.parent is None and st.region is not None))
    if mode == "transitions":
        return tuple(t.id for t in p.transitions)
    if mode == "deadlines":
        return tuple(d.id for d in p.deadlines)
    return tuple(sorted({r for s in p.states.values() for r in s.rules}
                        | {r for t in p.transitions for r in t.rules}
                        | {r for d in p.deadlines for r in d.rules}))


def _route(procedure: Procedure, configs: Sequence[Config]) -> tuple[StateId, ...]:
    out: list[StateId] = []
    for config in configs:
        stage = procedure.ancestors(config[0])[-1]
        if not out or out[-1] != stage:
            out.append(stage)
    return tuple(out)


def _gap(hours: float) -> str:
    if hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day{'s' if days != 1 else ''}"
    whole = math.ceil(hours)
    return f"{whole} hour{'s' if whole != 1 else ''}"


def _replay(procedure: Procedure, facts: Mapping[str, bool], moves: Sequence[_Edge],
            configs: Sequence[Config], start_date: date) -> WalkSession:
    """Run the planned moves on the real machine, waiting out minimum gaps when harmless.

    Before a move that ends a clock with a minimum gap still to run, the clock is moved on
    to the earliest allowed time, unless that would leave another running clock overdue.
    """
    session = WalkSession(procedure, start_date, facts)
    for edge, expected in zip(moves, configs, strict=True):
        now = session.now
        waits = [c.earliest for c in session.case.clocks.values()
                 if c.earliest is not None and c.earliest > now and c.deadline.end in edge.events]
        if waits:
            until = max(waits)
            harmless = all(c.due is None or c.due >= until
                           for c in session.case.clocks.values())
            if harmless:
                result = session.apply(Move.advance(_gap(until - now)))
                if result.status != "ok":  # pragma: no cover - commands we wrote ourselves
                    raise RuntimeError(f"planned clock move failed: {result.notes}")
        result = session.apply(Move.act(edge.transition.trigger))
        if result.status != "ok" or session.configuration != expected:
            raise RuntimeError(  # pragma: no cover - the search and the machine disagree
                f"planned walk through {procedure.id} does not replay at "
                f"{edge.transition.trigger}: {result.status}")
    return session


def plan_walks(procedure: Procedure, mode: CoverMode,
               start_date: date = DEFAULT_START) -> PathsPlan:
    """Plan walkthroughs that together cover every state, transition, deadline or rule.

    Greedy (see the module docstring): a small set, not proven minimal. Every walkthrough
    is replayed on the real machine before it is returned.

    Example:
        >>> from model.loader import load_procedure
        >>> plan = plan_walks(load_procedure("wigan-2008-change-meetings"), "states")
        >>> plan.covered == set(plan.universe) and not plan.uncovered
        True
    """
    planner = _Planner(procedure, mode)
    items = universe(procedure, mode)
    reasons = planner.reach()
    uncovered = frozenset(i for i in items if i not in reasons)
    order = {item: i for i, item in enumerate(items)}
    chosen: list[_Walk] = []
    evaluated: dict[tuple[int, int], int] = {}
    heap: list[tuple[int, int, int, int]] = []

    def evaluate_candidate(variant: int, element: _Element, left: frozenset[str]
                           ) -> tuple[int, int, int, int] | None:
        walk = planner.build(variant, element, left)
        if walk is None:
            return None
        gain = len(walk.items & left)
        if gain == 0:
            return None
        return (-gain, len(walk.moves), variant, element.order)

    round_no = 0
    for variant in range(len(planner.spaces)):
        for element in planner.elements:
            key = evaluate_candidate(variant, element, uncovered)
            if key is not None:
                heapq.heappush(heap, key)
                evaluated[(variant, element.order)] = round_no
    left = uncovered
    while left and heap:
        top = heapq.heappop(heap)
        variant, element_order = top[2], top[3]
        element = planner.elements[element_order]
        if evaluated.get((variant, element_order)) == round_no:
            walk = planner.build(variant, element, left)
            assert walk is not None
            chosen.append(walk)
            left = left - walk.items
            round_no += 1
            continue
        key = evaluate_candidate(variant, element, left)
        if key is not None:
            heapq.heappush(heap, key)
            evaluated[(variant, element_order)] = round_no
    walks: list[Walkthrough] = []
    seen: set[str] = set()
    for number, walk in enumerate(chosen, 1):
        facts = planner.variants[walk.variant]
        space = planner.spaces[walk.variant]
        configs = [space.nodes[e.dst].config for e in walk.moves]
        session = _replay(procedure, facts, walk.moves, configs, start_date)
        covers = sorted(session.coverage().of(mode) & set(items), key=order.__getitem__)
        if set(covers) != walk.items & set(items):  # pragma: no cover - a planner bug
            raise RuntimeError(f"walkthrough {number} of {procedure.id} covers "
                               f"{sorted(set(covers) ^ (walk.items & set(items)))} "
                               "differently on the machine than planned")
        new = [i for i in covers if i not in seen]
        seen.update(covers)
        route = _route(procedure, [space.nodes[0].config, *configs])
        comments = _comments(procedure, mode, number, len(chosen), facts, route,
                             len(walk.moves), new)
        walks.append(Walkthrough(
            number, dict(facts), tuple(session.commands), len(walk.moves), route,
            tuple(new), tuple(covers),
            format_transcript(procedure.id, start_date, facts, session.commands, comments)))
    not_exercisable: tuple[str, ...] = ()
    if mode == "rules":
        cited = set(items)
        not_exercisable = tuple(sorted({r for q in procedure.properties for r in q.rules}
                                       - cited))
    return PathsPlan(procedure.id, mode, start_date, items, tuple(walks),
                     tuple((i, reasons[i]) for i in items if i in reasons), not_exercisable)


def _comments(procedure: Procedure, mode: CoverMode, number: int, total: int,
              facts: Mapping[str, bool], route: Sequence[str], steps: int,
              new: Sequence[str]) -> list[str]:
    lines = [
        f"Walkthrough {number:02d} of {total:02d} for {procedure.id}, planned by "
        f"`cpsim paths {procedure.id} --cover {mode}`.",
        f"Case facts: {format_facts(facts, only_true=True)}. Route: {' → '.join(route)} "
        f"({steps} steps).",
    ]
    lines.extend(textwrap.wrap(f"New {mode} covered here ({len(new)}): {', '.join(new)}.",
                               width=92, break_on_hyphens=False))
    return lines


def format_plan(plan: PathsPlan) -> str:
    """The plan as the command prints it: a verdict, one line per walkthrough, and gaps."""
    total = len(plan.universe)
    covered = len(plan.covered & set(plan.universe))
    count = len(plan.walks)
    noun = plan.mode if total != 1 else plan.mode[:-1]
    head = (f"{plan.procedure} --cover {plan.mode}: {count} walkthrough"
            f"{'s cover' if count != 1 else ' covers'} ")
    head += (f"all {total} {noun}" if covered == total else f"{covered} of {total} {noun}")
    lines = [
        head,
        "  (greedy set cover over candidate walks, so a small set but not proven minimal; "
        "each walkthrough starts as a new case and ends where a case may end)",
    ]
    lines.extend(w.summary() for w in plan.walks)
    if plan.uncovered:
        lines.append(f"cannot be covered ({len(plan.uncovered)}):")
        lines.extend(f"  {item}: {reason}" for item, reason in plan.uncovered)
    if plan.not_exercisable:
        lines.append("cited only by declared properties, which no single walk exercises: "
                     + ", ".join(plan.not_exercisable))
    return "\n".join(lines)
