"""Prove a procedure sound: exhaustive graph checks and the properties it declares.

Every check is a pure function returning findings (:mod:`model.findings`, which also prints
the report); a finding that shows a violation carries a counterexample: the shortest run
from a new case to the point where it goes wrong.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import networkx as nx

from model.findings import CheckReport, Finding, path_of
from model.graph import (
    Config,
    ProcedureGraph,
    active_states,
    build_graph,
    describe,
    events_of,
    initial_events,
    matched_source,
)
from model.guards import GUARDS, covers_every_case
from model.spec import EventRef, Procedure, Property, Transition
from model.timescales import check_timescales
from model.types import StateId

Move = tuple[Config, Config, Transition]


def _matches(pg: ProcedureGraph, event: EventRef, move: Move) -> bool:
    u, v, t = move
    return event in events_of(pg.procedure, u, v, t)


# -- structural checks ------------------------------------------------------------------------
def check_reachability(pg: ProcedureGraph) -> list[Finding]:
    """Every state can be reached from a new case."""
    reached: set[StateId] = set()
    for config in pg.graph.nodes:
        reached |= active_states(pg.procedure, config)
    out = []
    for sid, st in pg.procedure.states.items():
        if st.parent is None and st.region is not None:
            continue
        if sid not in reached:
            out.append(Finding("reachability", "error",
                               f"state {sid} can never be reached from a new case", st.rules))
    return out


def check_can_end(pg: ProcedureGraph, limit: int = 5) -> list[Finding]:
    """Every reachable configuration can still reach one where the case may end.

    Dead ends (nothing can happen, and the case may not end there) are reported first, each
    with the run that reaches it; otherwise the nearest configuration that can never end.
    """
    can_end: set[Config] = set(pg.terminal)
    reverse = pg.graph.reverse(copy=False)
    for t in pg.terminal:
        can_end |= nx.descendants(reverse, t)
    lengths = nx.single_source_shortest_path_length(pg.graph, pg.initial)
    doomed = sorted((c for c in pg.graph.nodes if c not in can_end),
                    key=lambda c: (lengths.get(c, 0), "|".join(c)))
    if not doomed:
        return []
    dead_ends = [c for c in doomed if pg.graph.out_degree(c) == 0]
    out = []
    for config in dead_ends[:limit]:
        rules = tuple(sorted({r for leaf in config for r in pg.procedure.states[leaf].rules}))
        out.append(Finding(
            "can_end", "error",
            f"dead end: in {describe(config)} nothing can happen and the case may not end there",
            rules, path_of(pg.path_to(config) or []), config))
    if not dead_ends:
        config = doomed[0]
        rules = tuple(sorted({r for leaf in config for r in pg.procedure.states[leaf].rules}))
        out.append(Finding(
            "can_end", "error",
            f"from {describe(config)} the case can never reach a state where it may end",
            rules, path_of(pg.path_to(config) or [])))
    return out


def check_traps(pg: ProcedureGraph) -> list[Finding]:
    """No set of states that, once entered, holds the case forever with no way to end."""
    out = []
    for component in nx.attracting_components(pg.graph):
        if component & pg.terminal:
            continue
        if len(component) == 1 and pg.graph.out_degree(next(iter(component))) == 0:
            continue  # a single dead end: reported by check_can_end
        entry = min(component, key=lambda c: (len(pg.path_to(c) or []), "|".join(c)))
        states = sorted({leaf for c in component for leaf in c})
        out.append(Finding(
            "traps", "error",
            f"trap: once in {{{', '.join(states)}}} a case can never leave or end",
            tuple(sorted({r for s in states for r in pg.procedure.states[s].rules})),
            path_of(pg.path_to(entry) or []), entry))
    return out


def check_ladders(procedure: Procedure) -> tuple[list[Finding], dict[str, int]]:
    """Each region (an escalation ladder) is acyclic and bounded, apart from starting again.

    Moves out of a region's rest (terminal) states are left out: a new disagreement may
    start a new climb, but no climb may go round in circles.
    """
    out: list[Finding] = []
    heights: dict[str, int] = {}
    for region in procedure.regions:
        g = nx.DiGraph()
        for t in procedure.transitions:
            if procedure.states[t.dest].region != region:
                continue
            for s in t.sources:
                leaves = [x for x in procedure.leaves() if s in procedure.ancestors(x)]
                for leaf in leaves:
                    if procedure.states[leaf].terminal:
                        continue
                    g.add_edge(leaf, procedure.entry_leaf(t.dest), transition=t)
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            heights[region] = nx.dag_longest_path_length(g) if g.number_of_edges() else 0
            continue
        ts = [g.edges[u, v]["transition"] for u, v in cycle]
        out.append(Finding(
            "ladders", "error",
            f"region {region} can go round in a circle: "
            + " -> ".join([cycle[0][0], *(v for _, v in cycle)]),
            tuple(sorted({r for t in ts for r in t.rules}))))
    return out, heights


def check_guards(procedure: Procedure) -> list[Finding]:
    """Every guard is registered, and no decision point can leave a case with nothing to do.

    At a non-terminal leaf, if every move on offer is guarded, the guards must together
    cover every case: a whole complementary group from :mod:`model.guards`, or guards the
    state declares ``exhaustive``.
    """
    out = []
    used = {g for t in procedure.transitions for g in t.guards}
    for g in sorted(used - set(GUARDS)):
        out.append(Finding("guards", "error", f"guard {g} is not registered"))
    for leaf in procedure.leaves():
        st = procedure.states[leaf]
        if st.terminal:
            continue
        offered = []
        for t in procedure.transitions:
            if procedure.states[t.dest].region != st.region or t.when_in:
                continue
            index_config = _single_leaf_config(procedure, leaf)
            if matched_source(procedure, index_config, t) is not None:
                offered.append(t)
        if not offered or any(not t.guards for t in offered):
            continue
        guards = frozenset(g for t in offered for g in t.guards)
        declared = frozenset(
            g for s in procedure.ancestors(leaf) for g in procedure.states[s].exhaustive
        )
        if covers_every_case(guards) or (declared and declared <= guards):
            continue
        out.append(Finding(
            "guards", "error",
            f"decision point {leaf}: every move is guarded ({', '.join(sorted(guards))}) and "
            "the guards are not known to cover every case; add an unguarded alternative or "
            "declare the state's guards `exhaustive`",
            st.rules))
    return out


def _single_leaf_config(procedure: Procedure, leaf: StateId) -> Config:
    config: list[StateId] = [procedure.entry_leaf(procedure.initial)]
    for name in procedure.regions:
        initial = procedure.states[name].initial
        assert initial is not None
        config.append(procedure.entry_leaf(initial))
    region = procedure.states[leaf].region
    index = 0 if region is None else 1 + procedure.regions.index(region)
    config[index] = leaf
    return tuple(config)


# -- declared properties ----------------------------------------------------------------------
def _without(pg: ProcedureGraph, event: EventRef) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from(pg.graph.nodes)
    for u, v, t in pg.edges():
        if not _matches(pg, event, (u, v, t)):
            g.add_edge(u, v, key=t.id, transition=t)
    return g


def _initially(pg: ProcedureGraph, event: EventRef) -> bool:
    return event in initial_events(pg.procedure)


def _violation(p: Property, message: str, path: Iterable[Move],
               stuck: Config | None = None) -> Finding:
    return Finding(f"property:{p.id}", "error", message, p.rules, path_of(path), stuck)


def _check_absence(pg: ProcedureGraph, p: Property) -> list[Finding]:
    assert p.of is not None
    if _initially(pg, p.of):
        return [_violation(p, f"{p.of} happens as soon as a case starts", [])]
    for move in pg.edges():
        if _matches(pg, p.of, move):
            path = (pg.path_to(move[0]) or []) + [move]
            return [_violation(p, f"{p.of} can happen", path)]
    return []


def _check_existence(pg: ProcedureGraph, p: Property) -> list[Finding]:
    assert p.of is not None
    if _initially(pg, p.of):
        return []
    g = _without(pg, p.of)
    reach = nx.descendants(g, pg.initial) | {pg.initial}
    ends = sorted((c for c in pg.terminal if c in reach), key=lambda c: "|".join(c))
    if ends:
        path = pg.path_to(ends[0], graph=g) or []
        return [_violation(p, f"a case can end in {describe(ends[0])} without {p.of}", path)]
    return []


def _check_precedence(pg: ProcedureGraph, p: Property) -> list[Finding]:
    assert p.of is not None and p.requires is not None
    if _initially(pg, p.of) and not _initially(pg, p.requires):
        return [_violation(p, f"{p.of} happens at the start, before {p.requires}", [])]
    if _initially(pg, p.requires):
        return []
    g = _without(pg, p.requires)
    reach = nx.descendants(g, pg.initial) | {pg.initial}
    for move in pg.edges():
        if move[0] in reach and _matches(pg, p.of, move) and not _matches(pg, p.requires, move):
            path = (pg.path_to(move[0], graph=g) or []) + [move]
            return [_violation(p, f"{p.of} can happen before {p.requires}", path)]
    return []


def _check_response(pg: ProcedureGraph, p: Property) -> list[Finding]:
    assert p.of is not None and p.then is not None
    g = _without(pg, p.then)
    for move in pg.edges():
        if not _matches(pg, p.of, move) or _matches(pg, p.then, move):
            continue
        start = move[1]
        reach = nx.descendants(g, start) | {start}
        bad_end = sorted((c for c in reach if c in pg.terminal), key=lambda c: "|".join(c))
        stuck = sorted((c for c in reach
                        if pg.graph.out_degree(c) == 0 and c not in pg.terminal),
                       key=lambda c: "|".join(c))
        target = (bad_end or stuck or [None])[0]
        if target is None:
            continue
        path = (pg.path_to(move[0]) or []) + [move] + (pg.path_to(target, g, start) or [])
        what = "ends" if target in pg.terminal else "gets stuck"
        return [_violation(p, f"after {p.of} the case {what} in {describe(target)} "
                              f"without {p.then}", path,
                           None if target in pg.terminal else target)]
    return []


def _check_never_ends_without(pg: ProcedureGraph, p: Property) -> list[Finding]:
    """Every way out of ``scope`` has recorded one group of fields since entering it."""
    assert p.scope is not None
    proc = pg.procedure
    tracked = frozenset(f for group in p.records_any for f in group)

    def in_scope(c: Config) -> bool:
        return p.scope in active_states(proc, c)

    def satisfied(recorded: frozenset[str]) -> bool:
        return any(set(group) <= recorded for group in p.records_any)

    Node = tuple[Config, frozenset[str]]
    parent: dict[Node, tuple[Node, Move] | None] = {}
    parent_entry: dict[Node, Move] = {}
    queue: deque[Node] = deque()
    for u, v, t in pg.edges():
        if not in_scope(u) and in_scope(v):
            node = (v, frozenset(t.records) & tracked)
            if node not in parent:
                parent[node] = None
                queue.append(node)
                parent_entry[node] = (u, v, t)
    if in_scope(pg.initial):
        node = (pg.initial, frozenset())
        parent.setdefault(node, None)
        queue.append(node)

    def trace(node: Node) -> list[Move]:
        moves: list[Move] = []
        current: Node | None = node
        while current is not None:
            back = parent[current]
            if back is None:
                entry = parent_entry.get(current)
                if entry is not None:
                    moves.append(entry)
                    moves.extend(reversed(pg.path_to(entry[0]) or []))
                break
            current, move = back
            moves.append(move)
        return list(reversed(moves))

    can_exit: set[Node] = set()
    seen_order: list[Node] = []
    while queue:
        node = queue.popleft()
        seen_order.append(node)
        config, recorded = node
        for _, v, key in sorted(pg.graph.out_edges(config, keys=True), key=lambda e: str(e)):
            t = pg.graph.edges[config, v, key]["transition"]
            now = recorded | (frozenset(t.records) & tracked)
            if not in_scope(v):
                if not satisfied(now):
                    need = " or ".join("+".join(g) for g in p.records_any)
                    return [_violation(p, f"{p.scope} can be left by {t.trigger} without "
                                          f"recording {need}",
                                       [*trace(node), (config, v, t)])]
                can_exit.add(node)
                continue
            nxt = (v, now)
            if nxt not in parent:
                parent[nxt] = (node, (config, v, t))
                queue.append(nxt)
    # Liveness within the scope: every reachable in-scope situation can still get out.
    succ: dict[Node, set[Node]] = {n: set() for n in seen_order}
    for node, back in parent.items():
        if back is not None:
            succ.setdefault(back[0], set()).add(node)
    for node in seen_order:
        config, recorded = node
        for _, v, key in pg.graph.out_edges(config, keys=True):
            move: Transition = pg.graph.edges[config, v, key]["transition"]
            if in_scope(v):
                succ[node].add((v, recorded | (frozenset(move.records) & tracked)))
    ok = set(can_exit)
    changed = True
    while changed:
        changed = False
        for node in seen_order:
            if node not in ok and any(n in ok for n in succ.get(node, ())):
                ok.add(node)
                changed = True
    trapped = [n for n in seen_order if n not in ok and n[0] not in pg.terminal]
    if trapped:
        dead = [n for n in trapped if pg.graph.out_degree(n[0]) == 0]
        node = (dead or trapped)[0]
        return [_violation(p, f"a case in {describe(node[0])} can never leave {p.scope}",
                           trace(node), node[0] if dead else None)]
    return []


def _check_co_recorded(pg: ProcedureGraph, p: Property) -> list[Finding]:
    assert p.if_records is not None
    for t in pg.procedure.transitions:
        if p.if_records in t.records and not set(p.also) <= set(t.records):
            missing = sorted(set(p.also) - set(t.records))
            path: list[Move] = []
            for move in pg.edges():
                if move[2].id == t.id:
                    path = (pg.path_to(move[0]) or []) + [move]
                    break
            return [_violation(p, f"{t.id} records {p.if_records} but not "
                                  f"{', '.join(missing)}", path)]
    return []


def _check_monotone(pg: ProcedureGraph, p: Property) -> list[Finding]:
    proc = pg.procedure
    rank = {s: i for i, s in enumerate(p.order)}
    for u, v, t in pg.edges():
        index = None
        for i, leaf in enumerate(u):
            if proc.states[leaf].region == proc.states[t.dest].region:
                index = i
        if index is None:
            continue
        before = next((s for s in proc.ancestors(u[index]) if s in rank), None)
        after = next((s for s in proc.ancestors(v[index]) if s in rank), None)
        if before is None:
            continue
        if after is not None and rank[after] <= rank[before] and before != after:
            return [_violation(p, f"{t.trigger} moves down the ladder from {before} to {after}",
                               (pg.path_to(u) or []) + [(u, v, t)])]
        if after is None and p.exits and not any(
            e in proc.ancestors(v[index]) for e in p.exits
        ):
            return [_violation(p, f"{t.trigger} leaves the ladder at {before} for "
                                  f"{v[index]}, which is not a declared exit",
                               (pg.path_to(u) or []) + [(u, v, t)])]
        if after is not None and before == after and u[index] != v[index]:
            continue
    return []


def _check_final(pg: ProcedureGraph, p: Property) -> list[Finding]:
    assert p.state is not None
    proc = pg.procedure
    guarded = set(proc.ancestors(p.state))
    for t in proc.transitions:
        if guarded & set(t.sources):
            path: list[Move] = []
            for move in pg.edges():
                if move[2].id == t.id:
                    path = (pg.path_to(move[0]) or []) + [move]
                    break
            return [_violation(p, f"{p.state} is meant to be final but {t.trigger} leaves it",
                               path)]
    return []


_PATTERN_CHECKS = {
    "absence": _check_absence,
    "existence": _check_existence,
    "precedence": _check_precedence,
    "response": _check_response,
    "never_ends_without": _check_never_ends_without,
    "co_recorded": _check_co_recorded,
    "monotone": _check_monotone,
    "final": _check_final,
}


def check_property(pg: ProcedureGraph, prop: Property) -> list[Finding]:
    """Check one declared property exhaustively over the configuration graph."""
    return _PATTERN_CHECKS[prop.pattern](pg, prop)


def check_procedure(procedure: Procedure) -> CheckReport:
    """Run every structural check and every declared property; never prints."""
    pg = build_graph(procedure)
    findings: list[Finding] = []
    passed: list[str] = []

    def run(name: str, result: list[Finding]) -> None:
        findings.extend(result)
        if not any(f.severity == "error" for f in result):
            passed.append(name)

    run("reachability", check_reachability(pg))
    run("can_end", check_can_end(pg))
    run("traps", check_traps(pg))
    ladder_findings, heights = check_ladders(procedure)
    run("ladders", ladder_findings)
    run("guards", check_guards(procedure))
    for prop in procedure.properties:
        run(f"property:{prop.id}", check_property(pg, prop))
    run("timescales", check_timescales(pg))
    stats = {
        "states": sum(1 for s in procedure.states.values()
                      if not (s.parent is None and s.region is not None)),
        "transitions": len(procedure.transitions),
        "deadlines": len(procedure.deadlines),
        "properties": len(procedure.properties),
        "configurations": pg.graph.number_of_nodes(),
        "moves": pg.graph.number_of_edges(),
        **{f"ladder_height:{k}": v for k, v in heights.items()},
    }
    return CheckReport(procedure.id, tuple(findings), tuple(passed), stats)

