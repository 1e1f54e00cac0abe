"""The reference loop `make bench` measures the engine against: SimPy driving a dict table.

The table is the procedure's configuration graph (``model.graph.build_graph``) turned into
plain dicts of integers: for each configuration, the list of (next configuration) moves. A
stream of cases arrives; each case is a SimPy process that waits an exponential time, takes
a random move out of its configuration, and stops where no move leads on (or at the first
terminal configuration). No guards, deadlines, staff, monitors or event log: this is the
least a SimPy simulation of the same procedure can do per transition, so the ratio of the
engine's rate to this one says how much of the engine's cost is its own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from typing import Any

import simpy

from model.graph import build_graph
from model.spec import Procedure


def dict_table(procedure: Procedure) -> tuple[dict[int, list[int]], int, set[int]]:
    """The configuration graph as integer dicts: moves per configuration, start, ends."""
    graph = build_graph(procedure)
    index: dict[Any, int] = {}
    for node in sorted(graph.graph.nodes, key=repr):
        index[node] = len(index)
    moves: dict[int, list[int]] = {i: [] for i in index.values()}
    for before, after, _ in graph.edges():
        moves[index[before]].append(index[after])
    ends = {index[c] for c in graph.terminal}
    return moves, index[graph.initial], ends


def reference_loop(procedure: Procedure, transitions: int, seed: int = 1) -> tuple[float, int]:
    """Seconds SimPy takes to fire ``transitions`` moves over the dict table, and the count."""
    moves, start, ends = dict_table(procedure)
    rng = random.Random(seed)  # noqa: S311 (a simulation, not cryptography)
    env = simpy.Environment()
    fired = 0

    def case() -> Generator[simpy.Event, Any, None]:
        nonlocal fired
        where = start
        while fired < transitions:
            yield env.timeout(rng.expovariate(1 / 24.0))
            nxt = moves[where]
            if not nxt or (where in ends and rng.random() < 0.5):
                return
            where = nxt[rng.randrange(len(nxt))]
            fired += 1

    def arrivals() -> Generator[simpy.Event, Any, None]:
        while fired < transitions:
            env.process(case())
            yield env.timeout(rng.expovariate(1.0))

    env.process(arrivals())
    began = time.perf_counter()
    env.run()
    return time.perf_counter() - began, fired
