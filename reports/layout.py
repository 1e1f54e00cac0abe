"""Where everything in a drawn procedure goes: boxes, labels and arrow routes, in points.

The layout is layered and nested: every stage (compound state) is laid out on its own first
and then placed in its parent as one block, so stages are drawn as boxes inside boxes. Each
level is laid out on a *rank* axis (the direction moves flow) and an *order* axis
(:mod:`reports.level`):

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
of nesting, and the layout nearest a screen-like shape with the fewest lanes wins
(:func:`best_layout`); :func:`routes` then gives every arrow's points. Moves that stay in a
state (internal transitions and self-loops) are listed inside the state's box. Text is
measured by a function the caller passes in (``reports.diagram`` measures with matplotlib's
Agg renderer), so this module imports no drawing library.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from dataclasses import dataclass, field
from typing import Literal, Protocol

from model.diagram import Arrow, Box, Diagram
from reports.level import (
    BOX_GAP,
    Chain,
    Edge,
    Level,
    Node,
    Seg,
    back_edges,
    components,
    fold,
    layers,
    order_columns,
    place,
    set_origins,
    stretch,
)

NAME_SIZE = 9.0  # font sizes in points
BOUNDARY_SIZE = 7.5
LABEL_SIZE = 6.5
RULE_SIZE = 6.0
LIST_SIZE = 6.5
CLUSTER_SIZE = 9.0

GHOST_SPAN = 2  # an arrow to a terminal state longer than this many layers ends at a copy
PAD = 8.0  # inside a box or a stage's border
LIST_GAP = 3.0  # between two moves listed in a box

Direction = Literal["auto", "LR", "TB"]
Point = tuple[float, float]


class Measure(Protocol):
    """Measures text: its width and height in points at a font size and weight."""

    def __call__(self, text: str, size: float, weight: str = "normal") -> tuple[float, float]:
        """The size of ``text`` as drawn, in points."""


# -- text -----------------------------------------------------------------------------------


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, breaking only at spaces."""
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False) or [""]


def label_parts(arrow: Arrow) -> tuple[str, str]:
    """An arrow label as two blocks of lines: trigger and timescales, then rule ids."""
    head = [arrow.trigger + (" (internal)" if arrow.internal else "")]
    for phrase in arrow.timing:
        head.extend(wrap(phrase, 34))
    rules = wrap(arrow.rule_text, 36) if arrow.rules else []
    return "\n".join(head), "\n".join(rules)


def listed_text(arrow: Arrow, diagram: Diagram, owner: str) -> str:
    """One move listed inside a box: ``↻ trigger · timing [rules]``, wrapped."""
    if arrow.is_loop:
        text = f"↻ {arrow.label}"
    else:
        other = arrow.dest if arrow.source == owner else arrow.source
        text = f"↪ {arrow.head} → {diagram.boxes[other].label} {arrow.rule_text}".rstrip()
    lines = wrap(text, 44)
    return "\n".join([lines[0], *("   " + line for line in lines[1:])])


def block_title(box: Box) -> str:
    """The title written at the top of a stage or a parallel region."""
    return f"{box.label} — parallel region" if box.kind == "region" else box.label


# -- the layout of a whole diagram ----------------------------------------------------------


@dataclass
class Lift:
    """Where a drawn arrow is routed: the level it is lifted to and its two members."""

    container: str | None
    src_member: str
    dst_member: str
    src_path: list[str]  # clusters crossed on the way out, outermost first
    dst_path: list[str]  # clusters crossed on the way in, outermost first
    back: bool = False


@dataclass
class Layout:
    """A diagram laid out in one direction: every level, and how each arrow is routed.

    ``lifts`` holds the arrows drawn between members of a level, ``listed`` the ones listed
    inside a box (by the box's id), both by index in ``diagram.arrows``. ``levels`` are the
    nested stages' levels by id; ``components`` are the top level's weakly connected parts,
    stacked across the flow. ``width`` and ``height`` are the whole layout's size in points.
    """

    diagram: Diagram
    measure: Measure
    lr: bool
    lifts: dict[int, Lift] = field(default_factory=dict)
    listed: dict[str, list[int]] = field(default_factory=dict)
    ports: dict[str, list[tuple[int, str, bool, str]]] = field(default_factory=dict)
    levels: dict[str, Level] = field(default_factory=dict)
    components: list[Level] = field(default_factory=list)
    blocks: dict[str, Node] = field(default_factory=dict)
    limits: dict[int, float] = field(default_factory=dict)  # fold longer levels, by depth
    longest: dict[int, float] = field(default_factory=dict)  # longest level, by depth
    lanes: int = 0  # arrows that run in a lane because their level was folded
    ghosts: int = 0  # copies of terminal states drawn to save long arrows
    width: float = 0.0
    height: float = 0.0


# -- which level each arrow is drawn in ----------------------------------------------------


def _path(diagram: Diagram, box: str) -> list[str]:
    """``box`` and the boxes enclosing it, outermost first."""
    out: list[str] = []
    current: str | None = box
    while current is not None:
        out.append(current)
        current = diagram.boxes[current].parent
    return out[::-1]


def _route(layout: Layout) -> None:
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
        layout.lifts[index] = Lift(container, sp[k], dp[k], sp[k:-1], dp[k:-1])


def _members(layout: Layout, container: str | None) -> list[str]:
    """The boxes drawn directly in a container (the top of the drawing for None)."""
    diagram = layout.diagram
    if container is None:
        return list(diagram.roots)
    return [c for c in diagram.boxes[container].children if c in diagram.boxes]


def _start_key(container: str | None) -> str:
    """The key of a container's start dot."""
    return f"{container or ''}::start"


def _level_edges(layout: Layout, container: str | None) -> list[Edge]:
    """Member-level edges of a container: (from, to, arrow index); -1 for the start."""
    diagram = layout.diagram
    edges: list[Edge] = []
    start = diagram.initial if container is None else diagram.boxes[container].initial
    if start is not None and start in diagram.boxes:
        edges.append((_start_key(container), start, -1))
    for index, lift in layout.lifts.items():
        if lift.container == container:
            edges.append((lift.src_member, lift.dst_member, index))
    return edges


# -- sizes ----------------------------------------------------------------------------------


def listed_size(layout: Layout, owner: str) -> tuple[list[str], float, float]:
    """The moves listed inside a box, and the size of that list."""
    diagram = layout.diagram
    texts = [listed_text(diagram.arrows[i], diagram, owner) for i in layout.listed.get(owner, [])]
    width = height = 0.0
    for text in texts:
        w, h = layout.measure(text, LIST_SIZE)
        width, height = max(width, w), height + h + LIST_GAP
    return texts, width, height - LIST_GAP if texts else 0.0


def _box_node(layout: Layout, box: Box, ghost: bool = False) -> Node:
    """A state's box; a *ghost* is a small copy of a terminal state that saves a long arrow."""
    small = box.kind == "boundary" or ghost
    size = BOUNDARY_SIZE if small else NAME_SIZE
    w, h = layout.measure(box.label, size, "normal" if small else "bold")
    texts, list_w, list_h = ([], 0.0, 0.0) if ghost else listed_size(layout, box.id)
    ring = 5.0 if box.terminal and box.kind != "boundary" else 0.0
    width = max(w, list_w) + 2 * PAD + ring
    height = h + 2 * (PAD - 2) + (list_h + LIST_GAP + 2 if texts else 0.0) + ring
    return Node(box.id, "box", max(width, 40.0 if small else 56.0), height, ref=box.id,
                 boundary=box.kind == "boundary", ghost=ghost)


def _label_node(layout: Layout, index: int) -> Node:
    """An arrow's label, as a node of its own in the column after the arrow's source."""
    head, rules = label_parts(layout.diagram.arrows[index])
    hw, hh = layout.measure(head, LABEL_SIZE)
    rw, rh = layout.measure(rules, RULE_SIZE) if rules else (0.0, 0.0)
    return Node(f"label:{index}", "label", max(hw, rw) + 4, hh + rh + 4, ref=str(index))


# -- building one level ---------------------------------------------------------------------


def _build_level(layout: Layout, container: str | None, members: list[str]) -> Level:
    """Lay out one container's members (already sized), with labels, placeholders and ports."""
    diagram = layout.diagram
    level = Level(layout.lr)
    start = _start_key(container)
    edges = [e for e in _level_edges(layout, container) if e[1] in members]
    keys = [start, *members] if any(e[0] == start for e in edges) else list(members)
    back = {index for _, _, index in edges if index >= 0 and layout.lifts[index].back}
    layer = layers(keys, edges, back)
    ghosts: dict[str, str] = {}
    for pos, (u, v, index) in enumerate(edges):
        box = diagram.boxes.get(v)
        if (index >= 0 and index not in back and box is not None and box.kind == "state"
                and box.terminal and layer[v] - layer[u] > GHOST_SPAN):
            ghosts[f"ghost:{index}"] = v
            edges[pos] = (u, f"ghost:{index}", index)
    if ghosts:
        keys += list(ghosts)
        layer = layers(keys, edges, back)
        layout.ghosts += len(ghosts)
    last = 2 * max(layer.values(), default=0) + 2

    for key in keys:
        if key == start:  # its ref is the state the level starts in
            node = Node(key, "start", 8.0, 8.0, ref=next(v for u, v, _ in edges if u == start))
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
                node = Node(f"v:{arrow}:{role}:{col}", "dummy", 3.0, 3.0)
            node.col = col
            level.nodes[node.key] = node
            chain.append(node.key)
        chain.append(second)
        for pos, (u, v) in enumerate(itertools.pairwise(chain)):
            thin = {level.nodes[u].kind, level.nodes[v].kind} <= {"dummy", "label"}
            level.segs.append(Seg(u, v, arrow, (arrow, role), pos, 2.0 if thin else 1.0))
        level.chains[(arrow, role)] = Chain(chain, arrow, role, travel_reversed)

    for u, v, index in edges:
        if index == -1:
            add_chain(u, v, -1, "start", False, None)
        elif index in back:
            add_chain(v, u, index, "lift", True, level.nodes[u].col - 1)
        else:
            add_chain(u, v, index, "lift", False, level.nodes[u].col + 1)

    if container is not None:
        for index, role, at_end, member in layout.ports.get(container, []):
            port = Node(f"port:{index}:{role}", "port", 3.0, 3.0)
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
    order_columns(level)
    place(level, lambda key, arrow: _offset(level, key, arrow, layout))
    depth = 0 if container is None else len(_path(diagram, container))
    layout.longest[depth] = max(layout.longest.get(depth, 0.0), level.rank_size)
    fold(level, layout.limits.get(depth, math.inf))
    layout.lanes += len(level.lanes)
    return level


def _offset(level: Level, key: str, arrow: int, layout: Layout) -> float:
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


# -- nesting --------------------------------------------------------------------------------


def _layout_container(layout: Layout, container: str) -> Node:
    """Lay out a stage or region bottom-up and return it as one block for its parent."""
    diagram = layout.diagram
    box = diagram.boxes[container]
    for child in _members(layout, container):
        if diagram.boxes[child].is_cluster:
            layout.blocks[child] = _layout_container(layout, child)
    level = _build_level(layout, container, _members(layout, container))
    layout.levels[container] = level
    tw, th = layout.measure(block_title(box), CLUSTER_SIZE, "bold")
    texts, fw, fh = listed_size(layout, container)
    header = th + 2 * PAD
    panel_w, panel_h = (fw + 2 * PAD, fh + PAD) if texts else (0.0, 0.0)
    if layout.lr:  # ports left and right; the title above and the list below the content
        width = max(level.rank_size, tw + 3 * PAD, panel_w + 2 * PAD)
        stretch(level, width)
        height = header + level.order_size + PAD + (panel_h + PAD if texts else 0.0)
        content = (0.0, header)
    else:  # ports above and below; the title above and the list beside the content
        side = 2 * PAD
        width = max(side + level.order_size + side + (panel_w + PAD if texts else 0.0),
                    tw + 3 * PAD)
        stretch(level, max(level.rank_size, panel_h + 2 * PAD))
        height = header + level.rank_size
        content = (side, header)
    node = Node(container, "block", width, height, ref=container, inner=level,
                 content=content)
    base = content[1] - height / 2 if layout.lr else content[0] - width / 2
    for key, inner in level.nodes.items():
        if inner.kind == "port":
            _, index, role = key.split(":")
            node.anchors[(int(index), role)] = base + level.pos(inner)[1]
    start = level.nodes.get(_start_key(container))
    node.self_anchor = base + level.pos(start)[1] if start is not None else 0.0
    return node


def _plan_ports(layout: Layout) -> None:
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


def layout_diagram(diagram: Diagram, lr: bool, measure: Measure,
                   limits: dict[int, float] | None = None) -> Layout:
    """Lay out a whole diagram in one direction, folding levels longer than their limit.

    Args:
        diagram: What to draw.
        lr: Moves flow left to right (else top to bottom).
        measure: Measures text as it will be drawn.
        limits: The longest a level may be at each depth of nesting before it is folded.
    """
    layout = Layout(diagram, measure, lr, limits=limits or {})
    _route(layout)
    containers = [None, *(b for b, box in diagram.boxes.items() if box.is_cluster)]
    for container in containers:
        edges = _level_edges(layout, container)
        keys = _members(layout, container)
        if any(e[2] == -1 for e in edges):
            keys.insert(0, _start_key(container))
        for index in back_edges(keys, edges):
            layout.lifts[index].back = True
    _plan_ports(layout)
    top = _members(layout, None)
    for member in top:
        if diagram.boxes[member].is_cluster:
            layout.blocks[member] = _layout_container(layout, member)
    keys = [_start_key(None), *top] if diagram.initial is not None else top
    for group in components(keys, _level_edges(layout, None)):
        layout.components.append(_build_level(layout, None, [k for k in group if "::" not in k]))
    # side by side across the flow: stacked downwards left to right, else left to right
    along = 0.0
    for level in layout.components:
        w, h = level.size
        level.ox, level.oy = (0.0, along) if lr else (along, 0.0)
        set_origins(level)
        along += (h if lr else w) + 2 * BOX_GAP
        layout.width = max(layout.width, w) if lr else along - 2 * BOX_GAP
        layout.height = along - 2 * BOX_GAP if lr else max(layout.height, h)
    return layout


# -- the best of several layouts ------------------------------------------------------------


def best_layout(diagram: Diagram, measure: Measure, direction: Direction = "auto") -> Layout:
    """Try both directions, plain and with one depth of nesting folded into 2-4 parts.

    The winner is the layout nearest a screen-like shape (between 7:10 and 22:10), then the
    one with fewest arrows in lanes (they are harder to follow than straight arrows), then
    the smallest.

    Args:
        diagram: What to draw.
        measure: Measures text as it will be drawn.
        direction: ``LR`` (left to right), ``TB`` (top to bottom), or ``auto`` for both.

    Returns:
        The chosen layout, with its top-left corner at (0, 0).
    """
    best: tuple[tuple[float, int, float], Layout] | None = None
    for lr in (True, False):
        if direction != "auto" and lr != (direction == "LR"):
            continue
        plain = layout_diagram(diagram, lr, measure)
        candidates = [plain]
        depths = sorted(plain.longest)
        for depth in depths:
            deeper = [d for d in depths if d >= depth]
            for chosen in ([depth], deeper) if len(deeper) > 1 else ([depth],):
                for parts in (2, 3, 4):
                    limit = plain.longest[depth] / parts * 1.1
                    candidates.append(layout_diagram(diagram, lr, measure,
                                                     dict.fromkeys(chosen, limit)))
        for layout in candidates:
            ratio = max(layout.width, 1.0) / max(layout.height, 1.0)
            shape = max(0.0, math.log(0.7 / ratio), math.log(ratio / 2.2))
            score = (round(shape, 1), layout.lanes, layout.width * layout.height)
            if best is None or score < best[0]:
                best = (score, layout)
    assert best is not None
    return best[1]


def move(layout: Layout, dx: float, dy: float) -> None:
    """Move a whole layout (every level in it) by ``dx`` and ``dy`` points."""
    for level in layout.components:
        level.ox += dx
        level.oy += dy
        set_origins(level)


# -- routes ---------------------------------------------------------------------------------


@dataclass
class Route:
    """One arrow as it is drawn, in absolute points.

    Attributes:
        arrow: The move's index in ``Diagram.arrows``, or -1 for the arrow from a start dot.
        to: The box the arrow leads to: the move's destination (or its copy), or for a
            start dot's arrow the state its level starts in.
        points: The points it passes through, in travel order (the head at the last).
        back: The move goes back to an earlier step.
    """

    arrow: int
    to: str
    points: list[Point]
    back: bool = False


def _chain_points(level: Level, chain: Chain, layout: Layout) -> list[Point]:
    """The absolute points an arrow passes through in one level, in travel order."""
    points: list[Point] = []  # on the folded rank and order axes
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


def _arrow_points(layout: Layout, index: int) -> list[Point]:
    """The points of a lifted arrow, from its source out through every border to its dest."""
    lift = layout.lifts[index]
    parts: list[tuple[Level, Chain]] = []
    for cluster in reversed(lift.src_path):
        parts.append((layout.levels[cluster], layout.levels[cluster].chains[(index, "out")]))
    host = _host_level(layout, lift.container, index)
    parts.append((host, host.chains[(index, "lift")]))
    for cluster in lift.dst_path:
        parts.append((layout.levels[cluster], layout.levels[cluster].chains[(index, "in")]))
    points: list[Point] = []
    for level, chain in parts:
        for p in _chain_points(level, chain, layout):
            if not points or abs(points[-1][0] - p[0]) + abs(points[-1][1] - p[1]) > 0.01:
                points.append(p)
    return points


def _host_level(layout: Layout, container: str | None, index: int) -> Level:
    """The level an arrow is lifted to (a top-level arrow is in one of the components)."""
    if container is not None:
        return layout.levels[container]
    for level in layout.components:
        if (index, "lift") in level.chains:
            return level
    raise KeyError(index)  # pragma: no cover - every lifted arrow has a chain


def routes(layout: Layout) -> list[Route]:
    """Every arrow of a placed layout, arrows meeting a box at one point fanned out.

    Arrows come level by level, a nested stage's before those of the level around it, so
    they are drawn in the same order every time.
    """
    out: list[Route] = []

    def collect(level: Level) -> None:
        for node in level.nodes.values():
            if node.inner is not None:
                collect(node.inner)
        for (index, role), chain in level.chains.items():
            if index == -1:
                out.append(Route(-1, chain.keys[-1], _chain_points(level, chain, layout)))
            elif role == "lift":
                lift = layout.lifts[index]
                out.append(Route(index, layout.diagram.arrows[index].dest,
                                 _arrow_points(layout, index), lift.back))

    for level in layout.components:
        collect(level)
    spread(out, layout.lr)
    return out


def spread(arrows: list[Route], lr: bool) -> None:
    """Fan out arrows that meet a box at the same point, in the order they come from."""
    ends: dict[tuple[int, int], list[tuple[float, list[Point], int]]] = {}
    axis = 1 if lr else 0
    for route in arrows:
        points = route.points
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
