"""The procedure's configuration graph: every reachable combination of active states.

A *configuration* holds one active leaf per region (main flow first, then the orthogonal
regions in declared order). The same functions that build the analysis graph also tell the
compiled machine which states a move enters and leaves, so analysis and runtime agree on
what an event is.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import networkx as nx

from model.spec import EventRef, Procedure, Transition
from model.types import GuardId, StateId

Config = tuple[StateId, ...]
"""One active leaf per region: index 0 is the main flow, then ``Procedure.regions``."""

GuardCheck = Callable[[GuardId], bool]


def region_index(procedure: Procedure, state: StateId) -> int:
    """0 for a main-flow state, 1 + the region's position for a region state."""
    region = procedure.states[state].region
    return 0 if region is None else 1 + procedure.regions.index(region)


def initial_configuration(procedure: Procedure) -> Config:
    """The configuration of a new case: each region's entry leaf."""
    leaves = [procedure.entry_leaf(procedure.initial)]
    for region in procedure.regions:
        initial = procedure.states[region].initial
        assert initial is not None
        leaves.append(procedure.entry_leaf(initial))
    return tuple(leaves)


def active_states(procedure: Procedure, config: Config) -> frozenset[StateId]:
    """Every active state: the leaves and all states enclosing them (regions excluded)."""
    active: set[StateId] = set()
    for leaf in config:
        for state in procedure.ancestors(leaf):
            if procedure.states[state].parent is None and procedure.states[state].region:
                continue  # the region's own root is not a state a case is "in"
            active.add(state)
    return frozenset(active)


_Value = TypeVar("_Value")


class ByIdentity(Generic[_Value]):
    """Values remembered per object by identity, for tuples a machine hands out again.

    The table machine reuses one events tuple per move, so a run asks about a few hundred;
    the ``transitions`` machine makes a new tuple every step, so the cache is emptied when
    it reaches ``limit`` entries. Each entry holds its object, so its id cannot be reused
    while the entry stands.

    >>> cache: ByIdentity[int] = ByIdentity()
    >>> key = ("enter", "icpc")
    >>> cache.get(key) is None
    True
    >>> cache.put(key, 2)
    >>> cache.get(key), cache.get(("enter", "icpc2"))
    (2, None)
    """

    __slots__ = ("_found", "limit")

    def __init__(self, limit: int = 4096) -> None:
        """Start empty; forget everything once ``limit`` objects are remembered."""
        self.limit = limit
        self._found: dict[int, tuple[object, _Value]] = {}

    def get(self, key: object) -> _Value | None:
        """The value remembered for this very object, or None."""
        found = self._found.get(id(key))
        if found is not None and found[0] is key:
            return found[1]
        return None

    def put(self, key: object, value: _Value) -> None:
        """Remember ``value`` for this object."""
        if len(self._found) >= self.limit:
            self._found.clear()
        self._found[id(key)] = (key, value)


class ActiveStates:
    """:func:`active_states` of one procedure, remembered for each configuration asked about.

    The runtime monitors and the engine ask about the same few configurations again and
    again; the procedure never changes, so neither does the answer.

    >>> from model.loader import load_procedure
    >>> active = ActiveStates(load_procedure("west-midlands-2014"))
    >>> sorted(active(("icpc.session",)))
    ['icpc', 'icpc.session']
    >>> active(("icpc.session",)) is active(("icpc.session",))
    True
    """

    def __init__(self, procedure: Procedure) -> None:
        """Remember nothing yet."""
        self.procedure = procedure
        self._memo: dict[Config, frozenset[StateId]] = {}

    def __call__(self, config: Config) -> frozenset[StateId]:
        """The active states of ``config``."""
        found = self._memo.get(config)
        if found is None:
            found = self._memo[config] = active_states(self.procedure, config)
        return found


def matched_source(procedure: Procedure, config: Config, t: Transition) -> StateId | None:
    """The innermost active source of ``t`` in ``config``, or None when ``t`` is not active."""
    leaf = config[region_index(procedure, t.dest)]
    for state in procedure.ancestors(leaf):
        if state in t.sources:
            return state
    return None


def when_in_holds(procedure: Procedure, config: Config, t: Transition) -> bool:
    """True when ``t`` has no ``when_in`` or one of its states is active."""
    if not t.when_in:
        return True
    active = active_states(procedure, config)
    return any(w in active for w in t.when_in)


def candidates(
    procedure: Procedure,
    config: Config,
    guard_ok: GuardCheck | None = None,
    transitions: Sequence[Transition] | None = None,
) -> list[Transition]:
    """Transitions that may fire in ``config``, innermost source first.

    Args:
        procedure: The procedure.
        config: The current configuration.
        guard_ok: Evaluates a guard for a concrete case; None treats every guard as
            possibly true (the over-approximation used for proofs).
        transitions: Restrict to these transitions (default: all).
    """
    out: list[tuple[int, int, Transition]] = []
    for order, t in enumerate(transitions if transitions is not None else procedure.transitions):
        source = matched_source(procedure, config, t)
        if source is None or not when_in_holds(procedure, config, t):
            continue
        if guard_ok is not None and not all(guard_ok(g) for g in t.guards):
            continue
        depth = -len(procedure.ancestors(source))
        out.append((depth, order, t))
    out.sort(key=lambda item: (item[0], item[1]))
    return [t for _, _, t in out]


def apply(procedure: Procedure, config: Config, t: Transition) -> Config:
    """The configuration after firing ``t`` (which must be active in ``config``)."""
    if t.internal:
        return config
    index = region_index(procedure, t.dest)
    leaves = list(config)
    leaves[index] = procedure.entry_leaf(t.dest)
    return tuple(leaves)


def entered_and_exited(
    procedure: Procedure, before: Config, after: Config, t: Transition
) -> tuple[tuple[StateId, ...], tuple[StateId, ...]]:
    """States left and entered by a move, outermost first for entries, innermost for exits.

    The boundary is the deepest state enclosing both the old and the new leaf; a transition
    whose destination is the state it leaves from, or one enclosing it, leaves and re-enters
    that destination. An internal transition enters and leaves nothing.
    """
    if t.internal:
        return (), ()
    index = region_index(procedure, t.dest)
    old_chain = list(reversed(procedure.ancestors(before[index])))  # outermost first
    new_chain = list(reversed(procedure.ancestors(after[index])))
    common = 0
    while (
        common < min(len(old_chain), len(new_chain))
        and old_chain[common] == new_chain[common]
    ):
        common += 1
    if t.dest in old_chain:
        common = min(common, old_chain.index(t.dest))
    region_root = procedure.states[old_chain[0]]
    skip = 1 if region_root.region is not None and region_root.parent is None else 0
    common = max(common, skip)
    exited = tuple(reversed(old_chain[common:]))
    entered = tuple(new_chain[common:])
    return entered, exited


def events_of(
    procedure: Procedure, before: Config, after: Config, t: Transition
) -> tuple[EventRef, ...]:
    """What happens when ``t`` fires: exits (innermost first), the trigger, then entries."""
    entered, exited = entered_and_exited(procedure, before, after, t)
    return (
        *(EventRef("exit", s) for s in exited),
        EventRef("trigger", t.trigger),
        *(EventRef("enter", s) for s in entered),
    )


def possible_events(procedure: Procedure, t: Transition) -> frozenset[EventRef]:
    """Every event firing ``t`` can cause, from any leaf inside any of its sources.

    The static counterpart of :func:`events_of`, for questions asked without a configuration
    (does this move ever enter that state?). Other regions do not change a move's events, so
    each source leaf is tried on its own.

    >>> from model.loader import load_procedure
    >>> p = load_procedure("west-midlands-2014")
    >>> sorted(str(e) for e in possible_events(p, p.transition("postpone_icpc")))[:3]
    ['enter:icpc.preparation', 'enter:icpc.preparation.inviting', 'exit:icpc.preparation']
    """
    out: set[EventRef] = set()
    width = 1 + len(procedure.regions)
    index = region_index(procedure, t.dest)
    for source in t.sources:
        for leaf in procedure.leaves():
            if source not in procedure.ancestors(leaf):
                continue
            before: Config = tuple(leaf if k == index else "" for k in range(width))
            out.update(events_of(procedure, before, apply(procedure, before, t), t))
    return frozenset(out)


def initial_events(procedure: Procedure) -> tuple[EventRef, ...]:
    """The entry events of a new case's initial configuration, outermost first."""
    events: list[EventRef] = []
    for leaf in initial_configuration(procedure):
        for state in reversed(procedure.ancestors(leaf)):
            st = procedure.states[state]
            if st.parent is None and st.region is not None:
                continue
            events.append(EventRef("enter", state))
    return tuple(events)


def is_terminal(procedure: Procedure, config: Config) -> bool:
    """True when every region rests in a terminal state (the case may end here)."""
    return all(procedure.states[leaf].terminal for leaf in config)


@dataclass(frozen=True)
class ProcedureGraph:
    """The reachable configurations and moves of a procedure (guards over-approximated).

    Attributes:
        graph: A ``networkx.MultiDiGraph``; nodes are configurations, each edge is keyed by
            the transition id and carries the ``transition``.
        initial: The initial configuration.
        terminal: The reachable configurations in which a case may end.
    """

    procedure: Procedure
    graph: nx.MultiDiGraph
    initial: Config
    terminal: frozenset[Config]

    def edges(self) -> Iterable[tuple[Config, Config, Transition]]:
        """Every move as (before, after, transition), in a stable order."""
        for u, v, key in sorted(self.graph.edges(keys=True), key=_edge_key):
            yield u, v, self.graph.edges[u, v, key]["transition"]

    def path_to(self, target: Config, graph: nx.MultiDiGraph | None = None,
                source: Config | None = None) -> list[tuple[Config, Config, Transition]] | None:
        """A shortest run from ``source`` (default: initial) to ``target``, as moves."""
        g = self.graph if graph is None else graph
        start = self.initial if source is None else source
        try:
            nodes = nx.shortest_path(g, start, target)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None
        return [(u, v, _first_edge(g, u, v)) for u, v in itertools.pairwise(nodes)]


def _edge_key(edge: tuple[Config, Config, str]) -> tuple[str, str, str]:
    u, v, key = edge
    return ("|".join(u), "|".join(v), key)


def _first_edge(g: nx.MultiDiGraph, u: Config, v: Config) -> Transition:
    key = sorted(g[u][v])[0]
    transition: Transition = g.edges[u, v, key]["transition"]
    return transition


def build_graph(procedure: Procedure) -> ProcedureGraph:
    """Explore every configuration reachable from a new case, treating guards as open."""
    graph = nx.MultiDiGraph()
    start = initial_configuration(procedure)
    graph.add_node(start)
    queue: deque[Config] = deque([start])
    seen = {start}
    while queue:
        config = queue.popleft()
        for t in candidates(procedure, config):
            after = apply(procedure, config, t)
            graph.add_edge(config, after, key=t.id, transition=t)
            if after not in seen:
                seen.add(after)
                queue.append(after)
    terminal = frozenset(c for c in graph.nodes if is_terminal(procedure, c))
    return ProcedureGraph(procedure, graph, start, terminal)


def describe(config: Config) -> str:
    """A configuration as text: ``icpc.session`` or ``cp_plan.active + resolution.stage_2``."""
    return " + ".join(config)
