"""PNG and SVG drawings of a procedure, laid out here and drawn with matplotlib alone.

The layout is layered and nested: every stage (compound state) is laid out on its own first
and then placed in its parent as one block, so stages are drawn as boxes inside boxes. Each
level is laid out on a *rank* axis (the direction moves flow) and an *order* axis:

1. Moves are lifted to the level's members (a move from ``icpc.outcome`` to ``cp_plan`` is,
   at the top, a move from the ``icpc`` block to ``cp_plan``). A depth-first search from the
   start marks the moves that go back to an earlier step; the rest form a DAG that is
   layered by longest path from its sources. A long arrow into an end state (``closed``)
   ends instead at a small grey copy of it placed next to its source.
2. Between two layers of states sits a layer for arrow labels: each label is a node of its
   own next to its arrow's source, and an arrow spanning several layers gets a thin
   placeholder in each layer it crosses. A move into or out of a nested stage crosses its
   border at a *port*, on the side given by the move's direction where it is lifted.
3. Each layer is ordered by barycentre sweeps (keeping the order with fewest crossings),
   then positions are found by repeatedly pulling every node towards its neighbours and
   solving the layer's spacing constraints exactly (weighted isotonic regression), so
   boxes, labels and arrows never overlap.
4. A level that is too long may be *folded* into parts laid side by side (rows, or
   newspaper columns); arrows crossing a fold run in lanes of their own around the parts.

Both directions (left to right, top to bottom) are tried, unfolded and folded at each depth
of nesting, and the layout nearest a screen-like shape with the fewest lanes wins. Arrows run
straight through layers and as smooth curves between them, the label sitting on its arrow.
Moves that stay in a state (internal transitions and self-loops) are listed with ``↻``
inside the state's box. Text is measured with the Agg renderer in points, so the figure is
sized from the layout; pyplot is never used.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, PathPatch, Polygon
from matplotlib.path import Path as MplPath

from model.atomic import PendingFile
from model.diagram import Arrow, Box, Diagram, build_diagram
from model.spec import Procedure

FONT = "DejaVu Sans"
DPI = {"png": 150, "svg": 72}

NAME_SIZE = 9.0
BOUNDARY_SIZE = 7.5
LABEL_SIZE = 6.5
RULE_SIZE = 6.0
LIST_SIZE = 6.5
CLUSTER_SIZE = 9.0
TITLE_SIZE = 13.0
SUBTITLE_SIZE = 8.0
LEGEND_SIZE = 7.0
LINE_SPACING = 1.15

GHOST_SPAN = 2  # an arrow to a terminal state longer than this many layers ends at a copy
COL_GAP = 30.0  # room between columns, where arrows curve
EDGE_GAP = 14.0  # room between a stage's border and its content where no arrow crosses
BOX_GAP = 16.0  # vertical room between two boxes in a column
THIN_GAP = 5.0  # vertical room next to a label, placeholder or port
PAD = 8.0  # inside a box or a stage's border
MARGIN = 16.0
LIST_GAP = 3.0  # between two moves listed in a box
LANE_STEP = 6.0  # between two arrows running side by side where a level is folded
LANE_GAP = 14.0  # between a folded segment's end and its first lane
LANE_PAD = 12.0  # between a folded segment and the lanes in the channel after it

INK = "#2d3748"
ARROW = "#4a5568"
BACK = "#c0661f"
RULE_INK = "#6b7280"
STAGE_FILL = ("#eef3fa", "#e2eaf5")
STAGE_EDGE = "#9fb3cf"
REGION_FILL = "#fbf4e6"
REGION_EDGE = "#d9b77a"
BOUNDARY_FILL = "#f3f3f3"
BOUNDARY_EDGE = "#9a9a9a"
LIST_FILL = "#fffbe6"
LIST_EDGE = "#d8c77a"
LIST_INK = "#5a4b00"
GHOST_INK = "#6b7280"

NodeKind = Literal["box", "block", "label", "dummy", "port", "start"]


# -- text measurement --------------------------------------------------------------------


class _Measure:
    """Sizes of text in points, measured with the Agg renderer at 72 dpi."""

    def __init__(self) -> None:
        self.fig = Figure(dpi=72)
        self.canvas = FigureCanvasAgg(self.fig)
        self.renderer = self.canvas.get_renderer()  # type: ignore[no-untyped-call]
        self.cache: dict[tuple[str, float, str], tuple[float, float]] = {}

    def __call__(self, text: str, size: float, weight: str = "normal") -> tuple[float, float]:
        key = (text, size, weight)
        if key not in self.cache:
            artist = self.fig.text(0, 0, text, fontsize=size, fontweight=weight,
                                   fontfamily=FONT, linespacing=LINE_SPACING)
            box = artist.get_window_extent(self.renderer)
            artist.remove()
            self.cache[key] = (float(box.width), float(box.height))
        return self.cache[key]


# -- what gets drawn inside boxes and labels ---------------------------------------------


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False) or [""]


def _label_parts(arrow: Arrow) -> tuple[str, str]:
    """An arrow label as two blocks of lines: trigger and timescales, then rule ids."""
    head = [arrow.trigger + (" (internal)" if arrow.internal else "")]
    for phrase in arrow.timing:
        head.extend(_wrap(phrase, 34))
    rules = _wrap(arrow.rule_text, 36) if arrow.rules else []
    return "\n".join(head), "\n".join(rules)


def _listed_text(arrow: Arrow, diagram: Diagram, owner: str) -> str:
    """One move listed inside a box: ``↻ trigger · timing [rules]``, wrapped."""
    if arrow.is_loop:
        text = f"↻ {arrow.label}"
    else:
        other = arrow.dest if arrow.source == owner else arrow.source
        text = f"↪ {arrow.head} → {diagram.boxes[other].label} {arrow.rule_text}".rstrip()
    lines = _wrap(text, 44)
    return "\n".join([lines[0], *("   " + line for line in lines[1:])])


# -- layout data ---------------------------------------------------------------------------
#
# A level is laid out on two axes: the *rank* axis, along which moves flow (columns of
# states, labels and placeholders), and the *order* axis within a column. Left to right,
# rank is x and order is y; top to bottom, rank is y and order is x.


@dataclass
class _Node:
    key: str
    kind: NodeKind
    w: float
    h: float
    col: int = 0
    r: float = 0.0  # centre on the rank axis, in the level's coordinates
    o: float = 0.0  # centre on the order axis
    ref: str = ""  # box id (box, block) or arrow index (label)
    anchors: dict[tuple[int, str], float] = field(default_factory=dict)
    self_anchor: float = 0.0
    inner: _Level | None = None
    boundary: bool = False
    ghost: bool = False
    content: tuple[float, float] = (0.0, 0.0)  # where the inner level starts in the block


@dataclass
class _Seg:
    a: str
    b: str
    arrow: int
    chain: tuple[int, str]
    pos: int  # index of ``a`` in the chain
    weight: float = 1.0


@dataclass
class _Chain:
    keys: list[str]  # in column order (the DAG direction)
    arrow: int
    role: str  # "lift" (between members), "out"/"in" (to a port), "start"
    travel_reversed: bool


@dataclass
class _Level:
    lr: bool
    nodes: dict[str, _Node] = field(default_factory=dict)
    cols: list[list[str]] = field(default_factory=list)
    segs: list[_Seg] = field(default_factory=list)
    chains: dict[tuple[int, str], _Chain] = field(default_factory=dict)
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

    def pos(self, node: _Node) -> tuple[float, float]:
        """A node's centre on the folded rank and order axes."""
        if node.key in self.port_at:
            at_end, o = self.port_at[node.key]
            return (self.rank_size if at_end else 0.0), o
        dr, do = self.shift(node.col)
        return node.r + dr, node.o + do

    def rs(self, node: _Node) -> float:
        """A node's size along the rank axis."""
        return node.w if self.lr else node.h

    def os(self, node: _Node) -> float:
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


@dataclass
class _Lift:
    """Where a drawn arrow is routed: the level it is lifted to and its two members."""

    container: str | None
    src_member: str
    dst_member: str
    src_path: list[str]  # clusters crossed on the way out, outermost first
    dst_path: list[str]  # clusters crossed on the way in, outermost first
    back: bool = False


@dataclass
class _Layout:
    diagram: Diagram
    measure: _Measure
    lr: bool
    lifts: dict[int, _Lift] = field(default_factory=dict)
    listed: dict[str, list[int]] = field(default_factory=dict)
    ports: dict[str, list[tuple[int, str, bool, str]]] = field(default_factory=dict)
    levels: dict[str, _Level] = field(default_factory=dict)
    components: list[_Level] = field(default_factory=list)
    blocks: dict[str, _Node] = field(default_factory=dict)
    limits: dict[int, float] = field(default_factory=dict)  # fold longer levels, by depth
    longest: dict[int, float] = field(default_factory=dict)  # longest level, by depth
    lanes: int = 0  # arrows that run in a lane because their level was folded
    ghosts: int = 0  # copies of terminal states drawn to save long arrows
    width: float = 0.0
    height: float = 0.0


def _path(diagram: Diagram, box: str) -> list[str]:
    """``box`` and the boxes enclosing it, outermost first."""
    out: list[str] = []
    current: str | None = box
    while current is not None:
        out.append(current)
        current = diagram.boxes[current].parent
    return out[::-1]


def _route(layout: _Layout) -> None:
    """Sort every arrow into listed (stays in a box) or lifted (drawn between members)."""
    diagram = layout.diagram
    for index, arrow in enumerate(diagram.arrows):
        sp, dp = _path(diagram, arrow.source), _path(diagram, arrow.dest)
        k = 0
        while k < min(len(sp), len(dp)) and sp[k] == dp[k]:
            k += 1
        if k == len(sp) or k == len(dp):
            owner = sp[-1] if k == len(sp) else dp[-1]
            layout.listed.setdefault(owner, []).append(index)
            continue
        container = sp[k - 1] if k else None
        layout.lifts[index] = _Lift(container, sp[k], dp[k], sp[k:-1], dp[k:-1])


def _members(layout: _Layout, container: str | None) -> list[str]:
    diagram = layout.diagram
    if container is None:
        return list(diagram.roots)
    return [c for c in diagram.boxes[container].children if c in diagram.boxes]


def _start_key(container: str | None) -> str:
    return f"{container or ''}::start"


def _level_edges(layout: _Layout, container: str | None) -> list[tuple[str, str, int]]:
    """Member-level edges of a container: (from, to, arrow index); -1 for the start."""
    diagram = layout.diagram
    edges: list[tuple[str, str, int]] = []
    start = diagram.initial if container is None else diagram.boxes[container].initial
    if start is not None and start in diagram.boxes:
        edges.append((_start_key(container), start, -1))
    for index, lift in layout.lifts.items():
        if lift.container == container:
            edges.append((lift.src_member, lift.dst_member, index))
    return edges


def _back_edges(members: list[str], edges: list[tuple[str, str, int]]) -> set[int]:
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


def _layers(members: list[str], edges: list[tuple[str, str, int]], back: set[int]
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


def _components(members: list[str], edges: list[tuple[str, str, int]]) -> list[list[str]]:
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


# -- sizes of the things in a level --------------------------------------------------------


def _listed_size(layout: _Layout, owner: str) -> tuple[list[str], float, float]:
    """The moves listed inside a box, and the size of that list."""
    diagram = layout.diagram
    texts = [_listed_text(diagram.arrows[i], diagram, owner) for i in layout.listed.get(owner, [])]
    width = height = 0.0
    for text in texts:
        w, h = layout.measure(text, LIST_SIZE)
        width, height = max(width, w), height + h + LIST_GAP
    return texts, width, height - LIST_GAP if texts else 0.0


def _box_node(layout: _Layout, box: Box, ghost: bool = False) -> _Node:
    """A state's box; a *ghost* is a small copy of a terminal state that saves a long arrow."""
    small = box.kind == "boundary" or ghost
    size = BOUNDARY_SIZE if small else NAME_SIZE
    w, h = layout.measure(box.label, size, "normal" if small else "bold")
    texts, list_w, list_h = ([], 0.0, 0.0) if ghost else _listed_size(layout, box.id)
    ring = 5.0 if box.terminal and box.kind != "boundary" else 0.0
    width = max(w, list_w) + 2 * PAD + ring
    height = h + 2 * (PAD - 2) + (list_h + LIST_GAP + 2 if texts else 0.0) + ring
    return _Node(box.id, "box", max(width, 40.0 if small else 56.0), height, ref=box.id,
                 boundary=box.kind == "boundary", ghost=ghost)


def _label_node(layout: _Layout, index: int) -> _Node:
    head, rules = _label_parts(layout.diagram.arrows[index])
    hw, hh = layout.measure(head, LABEL_SIZE)
    rw, rh = layout.measure(rules, RULE_SIZE) if rules else (0.0, 0.0)
    return _Node(f"label:{index}", "label", max(hw, rw) + 4, hh + rh + 4, ref=str(index))


# -- laying out one level ------------------------------------------------------------------


def _build_level(layout: _Layout, container: str | None, members: list[str]) -> _Level:
    """Lay out one container's members (already sized), with labels, placeholders and ports."""
    diagram = layout.diagram
    level = _Level(layout.lr)
    start = _start_key(container)
    edges = [e for e in _level_edges(layout, container) if e[1] in members]
    keys = [start, *members] if any(e[0] == start for e in edges) else list(members)
    back = {index for _, _, index in edges if index >= 0 and layout.lifts[index].back}
    layer = _layers(keys, edges, back)
    ghosts: dict[str, str] = {}
    for pos, (u, v, index) in enumerate(edges):
        box = diagram.boxes.get(v)
        if (index >= 0 and index not in back and box is not None and box.kind == "state"
                and box.terminal and layer[v] - layer[u] > GHOST_SPAN):
            ghosts[f"ghost:{index}"] = v
            edges[pos] = (u, f"ghost:{index}", index)
    if ghosts:
        keys += list(ghosts)
        layer = _layers(keys, edges, back)
        layout.ghosts += len(ghosts)
    last = 2 * max(layer.values(), default=0) + 2

    for key in keys:
        if key == start:
            node = _Node(key, "start", 8.0, 8.0)
        elif key in ghosts:
            node = _box_node(layout, diagram.boxes[ghosts[key]], ghost=True)
            node.key = key
        elif diagram.boxes[key].is_cluster:
            node = layout.blocks[key]
        else:
            node = _box_node(layout, diagram.boxes[key])
        node.col = 2 * layer[key] + 1
        level.nodes[key] = node

    def add_chain(first: str, second: str, arrow: int, role: str, travel_reversed: bool,
                  label_col: int | None) -> None:
        a, b = level.nodes[first], level.nodes[second]
        chain = [first]
        for col in range(a.col + 1, b.col):
            if col == label_col:
                node = _label_node(layout, arrow)
            else:
                node = _Node(f"v:{arrow}:{role}:{col}", "dummy", 3.0, 3.0)
            node.col = col
            level.nodes[node.key] = node
            chain.append(node.key)
        chain.append(second)
        for pos, (u, v) in enumerate(itertools.pairwise(chain)):
            thin = {level.nodes[u].kind, level.nodes[v].kind} <= {"dummy", "label"}
            level.segs.append(_Seg(u, v, arrow, (arrow, role), pos, 2.0 if thin else 1.0))
        level.chains[(arrow, role)] = _Chain(chain, arrow, role, travel_reversed)

    for u, v, index in edges:
        if index == -1:
            add_chain(u, v, -1, "start", False, None)
        elif index in back:
            add_chain(v, u, index, "lift", True, level.nodes[u].col - 1)
        else:
            add_chain(u, v, index, "lift", False, level.nodes[u].col + 1)

    if container is not None:
        for index, role, at_end, member in layout.ports.get(container, []):
            port = _Node(f"port:{index}:{role}", "port", 3.0, 3.0)
            port.col = last if at_end else 0
            level.nodes[port.key] = port
            outward = role == "out"
            if at_end:
                add_chain(member, port.key, index, role, not outward, None)
            else:
                add_chain(port.key, member, index, role, outward, None)

    level.cols = [[] for _ in range(last + 1)]
    for key, node in level.nodes.items():
        level.cols[node.col].append(key)
    _order(level)
    _place(layout, level)
    depth = 0 if container is None else len(_path(diagram, container))
    layout.longest[depth] = max(layout.longest.get(depth, 0.0), level.rank_size)
    _fold(level, layout.limits.get(depth, math.inf))
    layout.lanes += len(level.lanes)
    return level


def _offset(level: _Level, key: str, arrow: int, layout: _Layout) -> float:
    """Where an arrow meets a node on the order axis, relative to the node's centre."""
    node = level.nodes[key]
    if node.kind != "block" or arrow < 0:
        return 0.0
    lift = layout.lifts[arrow]
    if node.ref in lift.src_path:
        return node.anchors.get((arrow, "out"), node.self_anchor)
    if node.ref in lift.dst_path:
        return node.anchors.get((arrow, "in"), node.self_anchor)
    return node.self_anchor


def _crossings(level: _Level, pos: dict[str, float]) -> int:
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


def _order(level: _Level) -> None:
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


def _gap(a: _Node, b: _Node) -> float:
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


def _place(layout: _Layout, level: _Level) -> None:
    """Order-axis positions (pulled to neighbours, never overlapping), then column positions."""
    nodes = level.nodes
    links: dict[str, list[tuple[str, float, float]]] = {k: [] for k in nodes}
    for seg in level.segs:
        oa = _offset(level, seg.a, seg.arrow, layout)
        ob = _offset(level, seg.b, seg.arrow, layout)
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


def _fold(level: _Level, limit: float) -> None:
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


def _reroute_ports(level: _Level) -> set[tuple[int, str]]:
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


def _stretch(level: _Level, rank_size: float) -> None:
    """Push the far border (and its ports) out so the level spans ``rank_size``."""
    if rank_size > level.rank_size:
        last = len(level.cols) - 1
        dr, _ = level.shift(last)
        level.col_start[last] = rank_size - dr
        for key in level.cols[last]:
            level.nodes[key].r = rank_size - dr
        level.rank_size = rank_size


def _layout_container(layout: _Layout, container: str) -> _Node:
    """Lay out a stage or region bottom-up and return it as one block for its parent."""
    diagram = layout.diagram
    box = diagram.boxes[container]
    for child in _members(layout, container):
        if diagram.boxes[child].is_cluster:
            layout.blocks[child] = _layout_container(layout, child)
    level = _build_level(layout, container, _members(layout, container))
    layout.levels[container] = level
    tw, th = layout.measure(_block_title(box), CLUSTER_SIZE, "bold")
    texts, fw, fh = _listed_size(layout, container)
    header = th + 2 * PAD
    panel_w, panel_h = (fw + 2 * PAD, fh + PAD) if texts else (0.0, 0.0)
    if layout.lr:  # ports left and right; the title above and the list below the content
        width = max(level.rank_size, tw + 3 * PAD, panel_w + 2 * PAD)
        _stretch(level, width)
        height = header + level.order_size + PAD + (panel_h + PAD if texts else 0.0)
        content = (0.0, header)
    else:  # ports above and below; the title above and the list beside the content
        side = 2 * PAD
        width = max(side + level.order_size + side + (panel_w + PAD if texts else 0.0),
                    tw + 3 * PAD)
        _stretch(level, max(level.rank_size, panel_h + 2 * PAD))
        height = header + level.rank_size
        content = (side, header)
    node = _Node(container, "block", width, height, ref=container, inner=level,
                 content=content)
    base = content[1] - height / 2 if layout.lr else content[0] - width / 2
    for key, inner in level.nodes.items():
        if inner.kind == "port":
            _, index, role = key.split(":")
            node.anchors[(int(index), role)] = base + level.pos(inner)[1]
    start = level.nodes.get(_start_key(container))
    node.self_anchor = base + level.pos(start)[1] if start is not None else 0.0
    return node


def _block_title(box: Box) -> str:
    return f"{box.label} — parallel region" if box.kind == "region" else box.label


def _plan_ports(layout: _Layout) -> None:
    """Give every nested stage a port for each arrow that crosses its border."""
    diagram = layout.diagram
    for index, lift in layout.lifts.items():
        forward = not lift.back
        ends = (("out", lift.src_path, diagram.arrows[index].source),
                ("in", lift.dst_path, diagram.arrows[index].dest))
        for role, path, end in ends:
            full = [*path, end]
            at_end = (role == "out") == forward
            for depth, cluster in enumerate(path):
                layout.ports.setdefault(cluster, []).append((index, role, at_end, full[depth + 1]))


def _layout(diagram: Diagram, lr: bool, measure: _Measure,
            limits: dict[int, float] | None = None) -> _Layout:
    """Lay out a whole diagram in one direction, folding levels longer than their limit."""
    layout = _Layout(diagram, measure, lr, limits=limits or {})
    _route(layout)
    containers = [None, *(b for b, box in diagram.boxes.items() if box.is_cluster)]
    for container in containers:
        edges = _level_edges(layout, container)
        keys = _members(layout, container)
        if any(e[2] == -1 for e in edges):
            keys.insert(0, _start_key(container))
        for index in _back_edges(keys, edges):
            layout.lifts[index].back = True
    _plan_ports(layout)
    top = _members(layout, None)
    for member in top:
        if diagram.boxes[member].is_cluster:
            layout.blocks[member] = _layout_container(layout, member)
    keys = [_start_key(None), *top] if diagram.initial is not None else top
    for group in _components(keys, _level_edges(layout, None)):
        layout.components.append(_build_level(layout, None, [k for k in group if "::" not in k]))
    # side by side across the flow: stacked downwards left to right, else left to right
    along = 0.0
    for level in layout.components:
        w, h = level.size
        level.ox, level.oy = (0.0, along) if lr else (along, 0.0)
        _set_origins(level)
        along += (h if lr else w) + 2 * BOX_GAP
        layout.width = max(layout.width, w) if lr else along - 2 * BOX_GAP
        layout.height = along - 2 * BOX_GAP if lr else max(layout.height, h)
    return layout


# -- drawing -------------------------------------------------------------------------------


def _set_origins(level: _Level) -> None:
    for node in level.nodes.values():
        if node.inner is not None:
            x, y = level.xy(*level.pos(node))
            node.inner.ox = x - node.w / 2 + node.content[0]
            node.inner.oy = y - node.h / 2 + node.content[1]
            _set_origins(node.inner)


def _chain_points(level: _Level, chain: _Chain, layout: _Layout) -> list[tuple[float, float]]:
    """The absolute points an arrow passes through in one level, in travel order."""
    points: list[tuple[float, float]] = []  # on the folded rank and order axes
    keys = chain.keys
    for i, key in enumerate(keys):
        node = level.nodes[key]
        dr, do = level.shift(node.col)
        prev = level.nodes[keys[i - 1]] if i else node
        if "port" not in (node.kind, prev.kind) and (
                level.col_seg[node.col] != level.col_seg[prev.col]):
            out_r, channel, in_r = level.lanes[((chain.arrow, chain.role), i - 1)]
            points += [(out_r, points[-1][1]), (out_r, channel), (in_r, channel),
                       (in_r, node.o + do)]
        if node.kind in ("dummy", "label"):
            start = level.col_start[node.col] + dr
            points += [(start, node.o + do), (start + level.col_size[node.col], node.o + do)]
        elif node.kind == "port":
            points.append(level.pos(node))
        else:
            half = level.rs(node) / 2
            r = node.r + dr + (half if i == 0 else -half)
            points.append((r, node.o + do + _offset(level, key, chain.arrow, layout)))
    if chain.travel_reversed:
        points.reverse()
    return [level.xy(r, o) for r, o in points]


def _arrow_points(layout: _Layout, index: int) -> list[tuple[float, float]]:
    lift = layout.lifts[index]
    parts: list[tuple[_Level, _Chain]] = []
    for cluster in reversed(lift.src_path):
        parts.append((layout.levels[cluster], layout.levels[cluster].chains[(index, "out")]))
    host = _host_level(layout, lift.container, index)
    parts.append((host, host.chains[(index, "lift")]))
    for cluster in lift.dst_path:
        parts.append((layout.levels[cluster], layout.levels[cluster].chains[(index, "in")]))
    points: list[tuple[float, float]] = []
    for level, chain in parts:
        for p in _chain_points(level, chain, layout):
            if not points or abs(points[-1][0] - p[0]) + abs(points[-1][1] - p[1]) > 0.01:
                points.append(p)
    return points


def _host_level(layout: _Layout, container: str | None, index: int) -> _Level:
    if container is not None:
        return layout.levels[container]
    for level in layout.components:
        if (index, "lift") in level.chains:
            return level
    raise KeyError(index)  # pragma: no cover - every lifted arrow has a chain


def _curve(points: list[tuple[float, float]], lr: bool) -> MplPath:
    """Straight along columns, smooth S-curves (tangent to the flow) between them."""
    verts = [points[0]]
    codes = [MplPath.MOVETO]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if (abs(y1 - y0) < 0.5) if lr else (abs(x1 - x0) < 0.5):
            verts.append((x1, y1))
            codes.append(MplPath.LINETO)
        elif lr:
            mid = (x0 + x1) / 2
            verts += [(mid, y0), (mid, y1), (x1, y1)]
            codes += [MplPath.CURVE4] * 3
        else:
            mid = (y0 + y1) / 2
            verts += [(x0, mid), (x1, mid), (x1, y1)]
            codes += [MplPath.CURVE4] * 3
    return MplPath(verts, codes)


def _draw_arrow(ax: Axes, points: list[tuple[float, float]], color: str, lr: bool) -> None:
    if len(points) < 2:
        return
    ax.add_patch(PathPatch(_curve(points, lr), facecolor="none", edgecolor=color,
                           linewidth=1.0, zorder=1.5, capstyle="round", joinstyle="round"))
    (x0, y0), (x1, y1) = points[-2], points[-1]
    if lr:
        d = 1.0 if x1 >= x0 else -1.0
        head = [(x1, y1), (x1 - 6.5 * d, y1 - 2.6), (x1 - 6.5 * d, y1 + 2.6)]
    else:
        d = 1.0 if y1 >= y0 else -1.0
        head = [(x1, y1), (x1 - 2.6, y1 - 6.5 * d), (x1 + 2.6, y1 - 6.5 * d)]
    ax.add_patch(Polygon(head, closed=True, facecolor=color, edgecolor=color, linewidth=0.5,
                         zorder=3))


def _draw_list(ax: Axes, layout: _Layout, texts: list[str], x: float, y: float) -> None:
    for text in texts:
        _, h = layout.measure(text, LIST_SIZE)
        ax.text(x, y + h / 2, text, ha="left", va="center", fontsize=LIST_SIZE,
                fontfamily=FONT, color=LIST_INK, linespacing=LINE_SPACING, zorder=4)
        y += h + LIST_GAP


def _draw_box(ax: Axes, layout: _Layout, node: _Node, x: float, y: float) -> None:
    box = layout.diagram.boxes[node.ref]
    x0, y0 = x - node.w / 2, y - node.h / 2
    boundary, ghost = box.kind == "boundary", node.ghost
    edge = BOUNDARY_EDGE if boundary else (GHOST_INK if ghost else INK)
    ax.add_patch(FancyBboxPatch((x0, y0), node.w, node.h, boxstyle="round,pad=0,rounding_size=6",
                                facecolor=BOUNDARY_FILL if boundary else "white",
                                edgecolor=edge, linewidth=0.9 if boundary or ghost else 1.1,
                                linestyle=(0, (3, 2)) if boundary else "-", zorder=2))
    ring = 0.0
    if box.terminal and not boundary:
        ring = 2.5
        ax.add_patch(FancyBboxPatch((x0 + 2.5, y0 + 2.5), node.w - 5, node.h - 5,
                                    boxstyle="round,pad=0,rounding_size=4", facecolor="none",
                                    edgecolor=edge, linewidth=0.8, zorder=2))
    size = BOUNDARY_SIZE if boundary or ghost else NAME_SIZE
    weight = "normal" if boundary or ghost else "bold"
    _, nh = layout.measure(box.label, size, weight)
    texts, _, _ = ([], 0.0, 0.0) if ghost else _listed_size(layout, box.id)
    top = y0 + PAD - 2 + ring
    ax.text(x, top + nh / 2 if texts else y, box.label, ha="center", va="center",
            fontsize=size, fontweight=weight, fontfamily=FONT,
            color="#555555" if boundary else (GHOST_INK if ghost else INK), zorder=4)
    _draw_list(ax, layout, texts, x0 + PAD + ring, top + nh + LIST_GAP + 2)


def _draw_block(ax: Axes, layout: _Layout, node: _Node, x: float, y: float, depth: int) -> None:
    box = layout.diagram.boxes[node.ref]
    x0, y0 = x - node.w / 2, y - node.h / 2
    region = box.kind == "region"
    fill = REGION_FILL if region else STAGE_FILL[depth % 2]
    ax.add_patch(FancyBboxPatch((x0, y0), node.w, node.h, boxstyle="round,pad=0,rounding_size=9",
                                facecolor=fill, edgecolor=REGION_EDGE if region else STAGE_EDGE,
                                linewidth=1.2, zorder=0.5 + depth * 0.01))
    title = _block_title(box)
    _, th = layout.measure(title, CLUSTER_SIZE, "bold")
    ax.text(x0 + PAD + 4, y0 + PAD + th / 2, title, ha="left", va="center",
            fontsize=CLUSTER_SIZE, fontweight="bold", fontfamily=FONT,
            color="#8a5a14" if region else "#34507a", zorder=4,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": fill, "edgecolor": "none"})
    texts, fw, fh = _listed_size(layout, box.id)
    if not texts:
        return
    pw, ph = fw + 2 * PAD, fh + PAD
    if layout.lr:
        px, py = x0 + PAD, y0 + node.h - ph - PAD
        pw = node.w - 2 * PAD
    else:
        px, py = x0 + node.w - pw - PAD, y0 + node.content[1] + PAD
    ax.add_patch(FancyBboxPatch((px, py), pw, ph, boxstyle="round,pad=0,rounding_size=4",
                                facecolor=LIST_FILL, edgecolor=LIST_EDGE, linewidth=0.7,
                                zorder=1))
    _draw_list(ax, layout, texts, px + PAD, py + PAD / 2)


def _draw_label(ax: Axes, layout: _Layout, node: _Node, x: float, y: float) -> None:
    index = int(node.ref)
    head, rules = _label_parts(layout.diagram.arrows[index])
    _, hh = layout.measure(head, LABEL_SIZE)
    top = y - node.h / 2 + 2
    ax.add_patch(FancyBboxPatch((x - node.w / 2, y - node.h / 2), node.w, node.h,
                                boxstyle="round,pad=0,rounding_size=2", facecolor="white",
                                edgecolor="none", alpha=0.92, zorder=2.5))
    ax.text(x, top + hh / 2, head, ha="center", va="center", fontsize=LABEL_SIZE,
            fontfamily=FONT, color=BACK if layout.lifts[index].back else INK,
            linespacing=LINE_SPACING, zorder=4)
    if rules:
        _, rh = layout.measure(rules, RULE_SIZE)
        ax.text(x, top + hh + rh / 2, rules, ha="center", va="center", fontsize=RULE_SIZE,
                fontfamily=FONT, color=RULE_INK, linespacing=LINE_SPACING, zorder=4)


_Drawn = tuple[list[tuple[float, float]], str]


def _draw_level(ax: Axes, layout: _Layout, level: _Level, depth: int,
                arrows: list[_Drawn]) -> None:
    """Draw a level's boxes and labels; collect its arrows (drawn once all are known)."""
    for node in level.nodes.values():
        x, y = level.xy(*level.pos(node))
        if node.kind == "block":
            _draw_block(ax, layout, node, x, y, depth)
            assert node.inner is not None
            _draw_level(ax, layout, node.inner, depth + 1, arrows)
        elif node.kind == "box":
            _draw_box(ax, layout, node, x, y)
        elif node.kind == "start":
            ax.add_patch(Circle((x, y), 4.0, facecolor="#222222", edgecolor="none", zorder=3))
        elif node.kind == "label":
            _draw_label(ax, layout, node, x, y)
    for (index, role), chain in level.chains.items():
        if index == -1:
            arrows.append((_chain_points(level, chain, layout), "#222222"))
        elif role == "lift":
            color = BACK if layout.lifts[index].back else ARROW
            arrows.append((_arrow_points(layout, index), color))


def _spread(arrows: list[_Drawn], lr: bool) -> None:
    """Fan out arrows that meet a box at the same point, in the order they come from."""
    ends: dict[tuple[int, int], list[tuple[float, list[tuple[float, float]], int]]] = {}
    axis = 1 if lr else 0
    for points, _ in arrows:
        if len(points) < 2:
            continue
        for at, near in ((0, 1), (len(points) - 1, len(points) - 2)):
            key = (round(points[at][0] * 4), round(points[at][1] * 4))
            ends.setdefault(key, []).append((points[near][axis], points, at))
    for group in ends.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda item: item[0])
        step = min(7.0, 18.0 / (len(group) - 1))
        for t, (_, points, at) in enumerate(group):
            x, y = points[at]
            delta = (t - (len(group) - 1) / 2) * step
            points[at] = (x, y + delta) if lr else (x + delta, y)


def _legend(diagram: Diagram, layout: _Layout) -> list[str]:
    lines = [
        "Arrow labels: trigger · timescale (≤ at most, ≥ at least, “every” repeats, "
        "“from here” starts a clock) · [rule ids].",
        "Orange arrows go back to an earlier step.  ● where a stage starts.  "
        "A double border marks a state where a case may end.  ↻ moves that stay in a state.",
    ]
    if diagram.stage is not None:
        lines.append("Dashed grey boxes are states outside the stage that it connects to.")
    if layout.ghosts:
        lines.append("A small grey copy of an end state (such as closed) stands for that same "
                     "state, to save drawing a long arrow to it.")
    return lines


def _best_layout(diagram: Diagram, direction: Literal["auto", "LR", "TB"]) -> _Layout:
    """Try both directions, plain and with one depth of nesting folded into 2-4 parts.

    The winner is the layout nearest a screen-like shape (between 7:10 and 22:10), then the
    one with fewest arrows in lanes (they are harder to follow than straight arrows), then
    the smallest.
    """
    measure = _Measure()
    best: tuple[tuple[float, int, float], _Layout] | None = None
    for lr in (True, False):
        if direction != "auto" and lr != (direction == "LR"):
            continue
        plain = _layout(diagram, lr, measure)
        candidates = [plain]
        depths = sorted(plain.longest)
        for depth in depths:
            deeper = [d for d in depths if d >= depth]
            for chosen in ([depth], deeper) if len(deeper) > 1 else ([depth],):
                for parts in (2, 3, 4):
                    limit = plain.longest[depth] / parts * 1.1
                    candidates.append(_layout(diagram, lr, measure,
                                              dict.fromkeys(chosen, limit)))
        for layout in candidates:
            ratio = max(layout.width, 1.0) / max(layout.height, 1.0)
            shape = max(0.0, math.log(0.7 / ratio), math.log(ratio / 2.2))
            score = (round(shape, 1), layout.lanes, layout.width * layout.height)
            if best is None or score < best[0]:
                best = (score, layout)
    assert best is not None
    return best[1]


def draw_diagram(proc: Procedure, stage: str | None = None,
                 direction: Literal["auto", "LR", "TB"] = "auto") -> Figure:
    """Lay out and draw a procedure, or one stage of it, on a new matplotlib figure.

    The figure is built with ``matplotlib.figure.Figure`` and an Agg canvas, never pyplot,
    and is sized from the layout (one data unit is one point).

    Args:
        proc: The procedure.
        stage: A state id to draw alone with the states around it, or None for everything.
        direction: ``LR`` (left to right), ``TB`` (top to bottom), or ``auto`` for
            whichever is nearer a landscape page.

    Returns:
        The figure; its one Axes holds every text artist (``fig.axes[0].texts``).

    Raises:
        InputError: when ``stage`` names no state of the procedure.
    """
    diagram = build_diagram(proc, stage)
    layout = _best_layout(diagram, direction)
    measure = layout.measure
    title = diagram.title
    subtitle = (f"{diagram.procedure} — stage {diagram.stage}" if diagram.stage
                else f"{diagram.procedure} — whole procedure")
    tw, th = measure(title, TITLE_SIZE, "bold")
    sw, sh = measure(subtitle, SUBTITLE_SIZE)
    width = max(layout.width, tw, sw, 420.0)
    legend = "\n".join(line for text in _legend(diagram, layout)
                       for line in _wrap(text, max(60, int(width / 4.2))))
    lw, lh = measure(legend, LEGEND_SIZE)
    width = max(width, lw)
    head = MARGIN + th + 4 + sh + 18
    fig_w = width + 2 * MARGIN
    fig_h = head + layout.height + 22 + lh + MARGIN
    for level in layout.components:
        level.ox += MARGIN
        level.oy += head
        _set_origins(level)
    fig = Figure(figsize=(fig_w / 72, fig_h / 72), dpi=72)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, fig_w)
    ax.set_ylim(fig_h, 0)
    ax.set_axis_off()
    arrows: list[_Drawn] = []
    ax.text(MARGIN, MARGIN + th / 2, title, ha="left", va="center", fontsize=TITLE_SIZE,
            fontweight="bold", fontfamily=FONT, color=INK)
    ax.text(MARGIN, MARGIN + th + 4 + sh / 2, subtitle, ha="left", va="center",
            fontsize=SUBTITLE_SIZE, fontfamily=FONT, color=RULE_INK)
    for level in layout.components:
        _draw_level(ax, layout, level, 0, arrows)
    _spread(arrows, layout.lr)
    for points, color in arrows:
        _draw_arrow(ax, points, color, layout.lr)
    ax.text(MARGIN, fig_h - MARGIN - lh / 2, legend, ha="left", va="center",
            fontsize=LEGEND_SIZE, fontfamily=FONT, color=RULE_INK, linespacing=LINE_SPACING)
    return fig


def render_diagram(proc: Procedure, target: Path, fmt: Literal["png", "svg"],
                   stage: str | None) -> None:
    """Draw a procedure, or one stage, to a PNG or SVG file, with matplotlib only.

    The file is written atomically (:class:`model.atomic.PendingFile`): drawn to a hidden
    temporary file in the same folder, then renamed over ``target``, so a reader never
    sees half a picture and a failure leaves nothing behind. Missing folders are created.

    Args:
        proc: The procedure.
        target: The file to write.
        fmt: ``png`` or ``svg``.
        stage: A state id to draw alone with the states around it, or None for everything.

    Raises:
        InputError: when ``stage`` names no state of the procedure (nothing is written).
        ValueError: when ``fmt`` is neither ``png`` nor ``svg``.
        model.atomic.WriteFailed: when ``target`` cannot be written.
    """
    if fmt not in DPI:
        raise ValueError(f"unsupported diagram format: {fmt!r}")
    fig = draw_diagram(proc, stage)
    metadata: dict[str, str | None] = {"Title": proc.title}
    if fmt == "svg":
        metadata["Date"] = None  # the same procedure always gives the same file
    with PendingFile(target) as pending:
        fig.savefig(pending.path, format=fmt, dpi=DPI[fmt], metadata=metadata)
