"""One level of a nested diagram layout: its nodes in columns, ordered, placed and folded.

A level is what one container (a stage, a parallel region, or the top of the drawing) holds,
laid out on two axes: the *rank* axis, along which moves flow (columns of states, arrow
labels and placeholders), and the *order* axis within a column. Left to right, rank is x
and order is y; top to bottom, rank is y and order is x. This module does the parts that
need only the level itself: layering its members, ordering each column by barycentre sweeps
(keeping the order with fewest crossings), placing every node by pulling it towards its
neighbours while solving the column's spacing exactly (weighted isotonic regression), and
folding a level that is too long into parts laid side by side. ``reports.layout`` builds
the levels from a diagram and nests them; nothing here draws or measures text.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

COL_GAP = 30.0  # room between columns, where arrows curve
EDGE_GAP = 14.0  # room between a stage's border and its content where no arrow crosses
BOX_GAP = 16.0  # vertical room between two boxes in a column
THIN_GAP = 5.0  # vertical room next to a label, placeholder or port
LANE_STEP = 6.0  # between two arrows running side by side where a level is folded
LANE_GAP = 14.0  # between a folded segment's end and its first lane
LANE_PAD = 12.0  # between a folded segment and the lanes in the channel after it

NodeKind = Literal["box", "block", "label", "dummy", "port", "start"]
"""``box`` a state; ``block`` a nested stage or region; ``label`` an arrow's label;
``dummy`` a placeholder where an arrow crosses a column; ``port`` where an arrow crosses a
stage's border; ``start`` the dot where a level starts."""

Edge = tuple[str, str, int]
"""A move between two members of a level: (from, to, arrow index); -1 for the start."""


# -- what a level holds ---------------------------------------------------------------------


@dataclass
class Node:
    """Something placed in a column: a state, a nested block, a label, a placeholder or a port.

    Sizes and positions are in points; ``r`` and ``o`` are the centre on the rank and order
    axes in the level's own coordinates, before folding. A block also records where arrows
    into and out of it cross its border (``anchors``, by arrow index and ``out``/``in``),
    where its own start dot is (``self_anchor``), both on the order axis from its centre,
    and where its inner level begins inside it (``content``).
    """

    key: str
    kind: NodeKind
    w: float
    h: float
    col: int = 0
    r: float = 0.0  # centre on the rank axis, in the level's coordinates
    o: float = 0.0  # centre on the order axis
    ref: str = ""  # box id (box, block), arrow index (label), first state (start)
    anchors: dict[tuple[int, str], float] = field(default_factory=dict)
    self_anchor: float = 0.0
    inner: Level | None = None
    boundary: bool = False
    ghost: bool = False
    content: tuple[float, float] = (0.0, 0.0)  # where the inner level starts in the block


@dataclass
class Seg:
    """One step of an arrow between neighbouring columns, from node ``a`` to node ``b``."""

    a: str
    b: str
    arrow: int
    chain: tuple[int, str]
    pos: int  # index of ``a`` in the chain
    weight: float = 1.0


@dataclass
class Chain:
    """The nodes one arrow passes through within a level, one per column it crosses."""

    keys: list[str]  # in column order (the DAG direction)
    arrow: int
    role: str  # "lift" (between members), "out"/"in" (to a port), "start"
    travel_reversed: bool


@dataclass
class Level:
    """One container's members with the labels, placeholders and ports between them.

    ``lr`` is true when moves flow left to right. ``cols`` lists node keys by column;
    ``chains`` holds each arrow's path by (arrow index, role); ``col_start`` and ``col_size``
    give each column's place on the rank axis. A folded level also records which part each
    column is in (``col_seg``), how each part is shifted (``seg_shift``), the lanes of arrows
    that cross a fold and ports moved beside the part their state is in (``port_at``).
    """

    lr: bool
    nodes: dict[str, Node] = field(default_factory=dict)
    cols: list[list[str]] = field(default_factory=list)
    segs: list[Seg] = field(default_factory=list)
    chains: dict[tuple[int, str], Chain] = field(default_factory=dict)
    col_start: list[float] = field(default_factory=list)
    col_size: list[float] = field(default_factory=list)
    rank_size: float = 0.0
    order_size: float = 0.0
    ox: float = 0.0  # absolute position of the level's origin, set when placed
    oy: float = 0.0
    # folding: which segment each column is in, and how each segment is shifted
    col_seg: list[int] = field(default_factory=list)
    seg_shift: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    lanes: dict[tuple[tuple[int, str], int], tuple[float, float, float]] = field(
        default_factory=dict)
    port_at: dict[str, tuple[bool, float]] = field(default_factory=dict)  # at end?, order

    def shift(self, col: int) -> tuple[float, float]:
        """How far a column is moved by folding, on the rank and order axes."""
        return self.seg_shift[self.col_seg[col]] if self.col_seg else (0.0, 0.0)

    def pos(self, node: Node) -> tuple[float, float]:
        """A node's centre on the folded rank and order axes."""
        if node.key in self.port_at:
            at_end, o = self.port_at[node.key]
            return (self.rank_size if at_end else 0.0), o
        dr, do = self.shift(node.col)
        return node.r + dr, node.o + do

    def rs(self, node: Node) -> float:
        """A node's size along the rank axis."""
        return node.w if self.lr else node.h

    def os(self, node: Node) -> float:
        """A node's size along the order axis."""
        return node.h if self.lr else node.w

    def xy(self, r: float, o: float) -> tuple[float, float]:
        """Absolute drawing coordinates of a point given on the level's axes."""
        return (self.ox + r, self.oy + o) if self.lr else (self.ox + o, self.oy + r)

    @property
    def size(self) -> tuple[float, float]:
        """Width and height."""
        if self.lr:
            return self.rank_size, self.order_size
        return self.order_size, self.rank_size


# -- layering -------------------------------------------------------------------------------


def back_edges(members: list[str], edges: list[Edge]) -> set[int]:
    """Arrow indices of the edges a depth-first search from the start finds going back."""
    out: dict[str, list[tuple[str, int]]] = {m: [] for m in members}
    has_in: set[str] = set()
    for u, v, index in edges:
        out[u].append((v, index))
        has_in.add(v)
    state: dict[str, int] = {}
    back: set[int] = set()

    def visit(node: str) -> None:
        state[node] = 1
        for nxt, index in out[node]:
            if state.get(nxt) == 1:
                back.add(index)
            elif nxt not in state:
                visit(nxt)
        state[node] = 2

    roots = [m for m in members if m.endswith("::start")]
    roots += [m for m in members if m not in has_in and m not in roots]
    for m in [*roots, *members]:
        if m not in state:
            visit(m)
    return back


def layers(members: list[str], edges: list[Edge], back: set[int]
            ) -> dict[str, int]:
    """Layers by longest path from the sources, with back edges turned round."""
    dag: dict[str, list[str]] = {m: [] for m in members}
    indeg = dict.fromkeys(members, 0)
    for u, v, index in edges:
        a, b = (v, u) if index in back else (u, v)
        dag[a].append(b)
        indeg[b] += 1
    layer = dict.fromkeys(members, 0)
    ready = [m for m in members if indeg[m] == 0]
    while ready:
        node = ready.pop(0)
        for nxt in dag[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            indeg[nxt] -= 1
            if indeg[nxt] == 0:
                ready.append(nxt)
    return layer


def components(members: list[str], edges: list[Edge]) -> list[list[str]]:
    """Weakly connected groups of members, in the order their first member is listed."""
    parent = {m: m for m in members}

    def find(m: str) -> str:
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    for u, v, _ in edges:
        parent[find(u)] = find(v)
    groups: dict[str, list[str]] = {}
    for m in members:
        groups.setdefault(find(m), []).append(m)
    return list(groups.values())



# -- ordering and placing -------------------------------------------------------------------


def _crossings(level: Level, pos: dict[str, float]) -> int:
    by_col: dict[int, list[tuple[float, float]]] = {}
    for seg in level.segs:
        by_col.setdefault(level.nodes[seg.a].col, []).append((pos[seg.a], pos[seg.b]))
    count = 0
    for pairs in by_col.values():
        for i, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1:]:
                if (a1 - a2) * (b1 - b2) < 0:
                    count += 1
    return count


def order_columns(level: Level) -> None:
    """Reorder each column by barycentre sweeps, keeping the order with fewest crossings."""
    preds: dict[str, list[str]] = {k: [] for k in level.nodes}
    succs: dict[str, list[str]] = {k: [] for k in level.nodes}
    for seg in level.segs:
        succs[seg.a].append(seg.b)
        preds[seg.b].append(seg.a)

    def positions() -> dict[str, float]:
        return {k: float(i) for col in level.cols for i, k in enumerate(col)}

    best = [list(col) for col in level.cols]
    best_count = _crossings(level, positions())
    for sweep in range(16):
        forward = sweep % 2 == 0
        cols = range(1, len(level.cols)) if forward else range(len(level.cols) - 2, -1, -1)
        for c in cols:
            pos = positions()
            near_of = preds if forward else succs

            def bary(key: str, pos: dict[str, float] = pos,
                     near_of: dict[str, list[str]] = near_of) -> tuple[float, float]:
                near = near_of[key]
                mean = sum(pos[n] for n in near) / len(near) if near else pos[key]
                return mean, pos[key]

            level.cols[c] = sorted(level.cols[c], key=bary)
        count = _crossings(level, positions())
        if count < best_count:
            best, best_count = [list(col) for col in level.cols], count
    level.cols = best


def _gap(a: Node, b: Node) -> float:
    solid = ("box", "block", "start")
    return BOX_GAP if a.kind in solid and b.kind in solid else THIN_GAP


def _isotonic(targets: list[float], weights: list[float]) -> list[float]:
    """Weighted least-squares fit of a non-decreasing sequence (pool adjacent violators)."""
    pools: list[list[float]] = []  # value, weight, count
    for t, w in zip(targets, weights, strict=True):
        pools.append([t, w, 1])
        while len(pools) > 1 and pools[-2][0] > pools[-1][0]:
            v2, w2, c2 = pools.pop()
            v1, w1, c1 = pools.pop()
            pools.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for value, _w, count in pools:
        out.extend([value] * int(count))
    return out



def place(level: Level, offset: Callable[[str, int], float]) -> None:
    """Order-axis positions (pulled to neighbours, never overlapping), then column positions.

    Args:
        level: The level, its columns already ordered.
        offset: Where an arrow (by index) meets a node (by key) on the order axis, from the
            node's centre: a nested block's ports are not at its middle.
    """
    nodes = level.nodes
    links: dict[str, list[tuple[str, float, float]]] = {k: [] for k in nodes}
    for seg in level.segs:
        oa = offset(seg.a, seg.arrow)
        ob = offset(seg.b, seg.arrow)
        links[seg.a].append((seg.b, ob - oa, seg.weight))
        links[seg.b].append((seg.a, oa - ob, seg.weight))

    def spacing(col: list[str]) -> list[float]:
        offs = [0.0] if col else []
        for prev, key in itertools.pairwise(col):
            a, b = nodes[prev], nodes[key]
            offs.append(offs[-1] + (level.os(a) + level.os(b)) / 2 + _gap(a, b))
        return offs

    for col in level.cols:
        for key, off in zip(col, spacing(col), strict=True):
            nodes[key].o = off
    order = list(range(len(level.cols)))
    for sweep in range(48):
        for c in order if sweep % 2 == 0 else order[::-1]:
            col = level.cols[c]
            if not col:
                continue
            offs = spacing(col)
            targets, weights = [], []
            for key, off in zip(col, offs, strict=True):
                near = links[key]
                total = sum(w for _, _, w in near)
                if total:
                    want = sum((nodes[other].o + d) * w for other, d, w in near) / total
                else:
                    want, total = nodes[key].o, 0.05
                targets.append(want - off)
                weights.append(total)
            for key, z, off in zip(col, _isotonic(targets, weights), offs, strict=True):
                nodes[key].o = z + off
    low = min((n.o - level.os(n) / 2 for n in nodes.values()), default=0.0)
    high = max((n.o + level.os(n) / 2 for n in nodes.values()), default=0.0)
    for node in nodes.values():
        node.o -= low
    level.order_size = high - low
    r = 0.0
    last = len(level.cols) - 1
    for c, col in enumerate(level.cols):
        size = 0.0 if c in (0, last) else max((level.rs(nodes[k]) for k in col), default=0.0)
        if c == last:
            r -= COL_GAP - (COL_GAP if col else EDGE_GAP)
        level.col_start.append(r)
        level.col_size.append(size)
        for key in col:
            nodes[key].r = r + size / 2
        if c == 0:
            r += COL_GAP if col else EDGE_GAP
        elif col and c != last:
            r += size + COL_GAP
    level.rank_size = level.col_start[last]



# -- folding a long level -------------------------------------------------------------------


def fold(level: Level, limit: float) -> None:
    """Cut a level that is longer than ``limit`` into segments laid side by side.

    Left to right, the segments become rows one under another; top to bottom, columns one
    beside another. Arrows that cross a cut run in their own lane: on past the end of their
    segment, across the channel between segments and back in at the start of the next.
    """
    last = len(level.cols) - 1
    level.col_seg = [0] * (last + 1)
    if level.rank_size <= limit or last < 4:
        return
    ends = [level.col_start[c] + level.col_size[c] for c in range(last + 1)]
    cross = [0] * (last + 1)
    for seg in level.segs:
        cross[level.nodes[seg.a].col] += 1
    solid = [any(level.nodes[k].kind == "block" or (
        level.nodes[k].kind == "box" and not level.nodes[k].boundary) for k in col)
        for col in level.cols]
    if sum(solid) < 3:  # too few columns of states to be worth folding
        return

    def allowed(first: int, cut: int) -> bool:
        """Each part keeps at least one column of states."""
        return any(solid[first:cut + 1]) and any(solid[cut + 1:])

    cuts: list[int] = []
    first, margin = 0, 0.0
    while ends[last] - level.col_start[first] + margin > limit:
        fits = [c for c in range(max(first, 1), last - 1) if allowed(first, c)
                and ends[c] - level.col_start[first] + margin + LANE_GAP + cross[c] * LANE_STEP
                <= limit]
        if not fits:
            fits = [c for c in range(max(first, 1), last - 1) if allowed(first, c)][:1]
        if not fits:
            break
        cut = min(fits[-4:], key=lambda c: (cross[c] + (0.6 if c % 2 else 0.0), -c))
        cuts.append(cut)
        first, margin = cut + 1, LANE_GAP + cross[cut] * LANE_STEP
    if not cuts:
        return
    bounds = list(zip([0, *(c + 1 for c in cuts)], [*cuts, last], strict=True))
    shifts: list[tuple[float, float]] = []
    along = 0.0
    rank_size = 0.0
    for j, (c0, c1) in enumerate(bounds):
        for c in range(c0, c1 + 1):
            level.col_seg[c] = j
        left = 0.0 if j == 0 else LANE_GAP + cross[cuts[j - 1]] * LANE_STEP
        right = LANE_GAP + cross[c1] * LANE_STEP if j < len(cuts) else 0.0
        dr = left - level.col_start[c0]
        rank_size = max(rank_size, ends[c1] + dr + right)
        members = [level.nodes[k] for c in range(c0, c1 + 1) for k in level.cols[c]]
        low = min((n.o - level.os(n) / 2 for n in members), default=0.0)
        high = max((n.o + level.os(n) / 2 for n in members), default=0.0)
        shifts.append((dr, along - low))
        along += high - low
        if j < len(cuts):
            along += 2 * LANE_PAD + max(cross[c1] - 1, 0) * LANE_STEP
    level.seg_shift = shifts
    level.rank_size, level.order_size = rank_size, along
    rerouted = _reroute_ports(level)
    for j, cut in enumerate(cuts):
        dr_out, do_out = shifts[j]
        crossing = sorted((s for s in level.segs
                           if level.nodes[s.a].col == cut and s.chain not in rerouted),
                          key=lambda s: level.nodes[s.a].o)
        n = len(crossing)
        out_base = ends[cut] + dr_out + LANE_GAP
        channel = max(level.nodes[k].o + level.os(level.nodes[k]) / 2 + do_out
                      for c in range(bounds[j][0], cut + 1) for k in level.cols[c]) + LANE_PAD
        in_base = LANE_GAP + n * LANE_STEP - LANE_GAP
        for t, seg in enumerate(crossing):
            level.lanes[(seg.chain, seg.pos)] = (
                out_base + (n - 1 - t) * LANE_STEP, channel + (n - 1 - t) * LANE_STEP,
                in_base - t * LANE_STEP)


def _reroute_ports(level: Level) -> set[tuple[int, str]]:
    """Move each port to the border beside the part of a folded level its state is in.

    A stage's border runs beside every part, so an arrow leaving from the last part need
    not crawl back through the others: its port moves next to it.
    """
    rerouted: set[tuple[int, str]] = set()
    for key, chain in level.chains.items():
        if chain.role not in ("in", "out"):
            continue
        head, tail = level.nodes[chain.keys[0]], level.nodes[chain.keys[-1]]
        port, member = (head, tail) if head.kind == "port" else (tail, head)
        part = level.col_seg[member.col]
        if level.col_seg[port.col] == part:
            continue
        kept = [k for k in chain.keys if k != port.key
                and level.col_seg[level.nodes[k].col] == part]
        beside = level.nodes[kept[0] if port is head else kept[-1]]
        level.port_at[port.key] = (port.col != 0, beside.o + level.seg_shift[part][1])
        chain.keys = [port.key, *kept] if port is head else [*kept, port.key]
        rerouted.add(key)
    return rerouted


def stretch(level: Level, rank_size: float) -> None:
    """Push the far border (and its ports) out so the level spans ``rank_size``."""
    if rank_size > level.rank_size:
        last = len(level.cols) - 1
        dr, _ = level.shift(last)
        level.col_start[last] = rank_size - dr
        for key in level.cols[last]:
            level.nodes[key].r = rank_size - dr
        level.rank_size = rank_size



# -- absolute positions ---------------------------------------------------------------------


def set_origins(level: Level) -> None:
    """Put every nested level where its block now stands (after ``level`` has moved)."""
    for node in level.nodes.values():
        if node.inner is not None:
            x, y = level.xy(*level.pos(node))
            node.inner.ox = x - node.w / 2 + node.content[0]
            node.inner.oy = y - node.h / 2 + node.content[1]
            set_origins(node.inner)

