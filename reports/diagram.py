"""PNG and SVG drawings of a procedure, drawn with matplotlib alone from a computed layout.

Where everything goes is worked out by :mod:`reports.layout` (nested stages, layers, folding,
arrow routes); this module measures text for it with the Agg renderer, in points, then
draws boxes, labels and arrows on a figure sized from the layout. Arrows run straight
through layers and as smooth curves between them, the label sitting on its arrow. Moves that
stay in a state (internal transitions and self-loops) are listed with ``↻`` inside the
state's box. pyplot is never used.

Every artist that stands for a state or a move carries a *gid* saying which, so an SVG keeps
it as the ``id`` of the artist's group and a page can find a state's box without guessing
(``reports.explore`` does). A gid is ``KIND:ID[:N]:PART``; the first two fields say what is
drawn, the last which part of it, and every gid is used once in a drawing:

=========================================  ================================================
``state:<state id>:<part>``                the state's box (a stage's or region's border for
                                           a compound state): ``box``, ``ring`` (the inner
                                           border of a state where a case may end), ``name``
                                           (its name or title), ``list`` (the panel listing
                                           moves inside a stage)
``state:<state id>:<n>:<part>``            the small copy of an end state that drawn move
                                           ``n`` leads to: ``box``, ``ring``, ``name``
``transition:<transition id>:<n>:<part>``  drawn move ``n`` (``Diagram.arrows[n]``, one per
                                           source of the transition): ``edge``, ``head``,
                                           ``label`` (its background), ``text`` (trigger and
                                           timescales), ``rules``, or ``listed`` (its line in
                                           a box, for a move that stays in the box)
``start:<state id>:<part>``                the dot where a stage or the procedure starts and
                                           its arrow to ``<state id>``: ``dot``, ``edge``,
                                           ``head``
=========================================  ================================================

State and transition ids never contain ``:`` (see the loader's id rules), so :func:`read_gid`
reads a gid back by splitting on it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, PathPatch, Polygon
from matplotlib.path import Path as MplPath

from model.atomic import PendingFile
from model.diagram import Diagram, build_diagram
from model.spec import Procedure
from reports.layout import (
    BOUNDARY_SIZE,
    CLUSTER_SIZE,
    LABEL_SIZE,
    LIST_GAP,
    LIST_SIZE,
    NAME_SIZE,
    PAD,
    RULE_SIZE,
    Direction,
    Layout,
    Point,
    best_layout,
    block_title,
    label_parts,
    listed_size,
    move,
    routes,
    wrap,
)
from reports.level import Level, Node

FONT = "DejaVu Sans"
DPI = {"png": 150, "svg": 72}

TITLE_SIZE = 13.0
SUBTITLE_SIZE = 8.0
LEGEND_SIZE = 7.0
LINE_SPACING = 1.15
MARGIN = 16.0

INK = "#2d3748"
ARROW = "#4a5568"
BACK = "#c0661f"
START_INK = "#222222"
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


# -- which artist is which ------------------------------------------------------------------

TagKind = Literal["state", "transition", "start"]


@dataclass(frozen=True)
class Tag:
    """What a drawn artist stands for, read back from its gid.

    Attributes:
        kind: ``state``, ``transition`` or ``start``.
        ref: The state id, or the transition id (for ``start``, the state it leads to).
        part: Which part of it the artist is (see the module's table).
        arrow: The drawn move's index in ``Diagram.arrows`` for a transition, or for a copy
            of an end state the move that leads to it; None otherwise.
    """

    kind: TagKind
    ref: str
    part: str
    arrow: int | None = None


def state_gid(state: str, part: str, copy_for: int | None = None) -> str:
    """The gid of part of a state's box, or of its copy at the end of move ``copy_for``.

    >>> state_gid("icpc.session", "box"), state_gid("closed", "name", 7)
    ('state:icpc.session:box', 'state:closed:7:name')
    """
    return f"state:{state}:{part}" if copy_for is None else f"state:{state}:{copy_for}:{part}"


def transition_gid(transition: str, arrow: int, part: str) -> str:
    """The gid of part of drawn move ``arrow``, one source of ``transition``.

    >>> transition_gid("plan_agreed", 12, "label")
    'transition:plan_agreed:12:label'
    """
    return f"transition:{transition}:{arrow}:{part}"


def start_gid(state: str, part: str) -> str:
    """The gid of part of the start dot whose arrow leads to ``state``."""
    return f"start:{state}:{part}"


def read_gid(gid: str) -> Tag | None:
    """What an artist's gid says it stands for; None for a gid this module did not give.

    >>> read_gid("transition:plan_agreed:12:label")
    Tag(kind='transition', ref='plan_agreed', part='label', arrow=12)
    >>> read_gid("state:icpc.session:box"), read_gid("patch_3")
    (Tag(kind='state', ref='icpc.session', part='box', arrow=None), None)
    """
    fields = gid.split(":")
    if len(fields) == 3 and fields[0] in ("state", "start"):
        kind: TagKind = "state" if fields[0] == "state" else "start"
        return Tag(kind, fields[1], fields[2])
    if len(fields) == 4 and fields[0] in ("state", "transition") and fields[2].isdigit():
        kind = "state" if fields[0] == "state" else "transition"
        return Tag(kind, fields[1], fields[3], int(fields[2]))
    return None


# -- text measurement -----------------------------------------------------------------------


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


# -- drawing --------------------------------------------------------------------------------


def _curve(points: list[Point], lr: bool) -> MplPath:
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


def _draw_arrow(ax: Axes, points: list[Point], color: str, lr: bool, gid: str) -> None:
    """An arrow's line and head; ``gid`` ends in ``:`` and gets ``edge`` and ``head``."""
    if len(points) < 2:
        return
    ax.add_patch(PathPatch(_curve(points, lr), facecolor="none", edgecolor=color,
                           linewidth=1.0, zorder=1.5, capstyle="round", joinstyle="round",
                           gid=gid + "edge"))
    (x0, y0), (x1, y1) = points[-2], points[-1]
    if lr:
        d = 1.0 if x1 >= x0 else -1.0
        head = [(x1, y1), (x1 - 6.5 * d, y1 - 2.6), (x1 - 6.5 * d, y1 + 2.6)]
    else:
        d = 1.0 if y1 >= y0 else -1.0
        head = [(x1, y1), (x1 - 2.6, y1 - 6.5 * d), (x1 + 2.6, y1 - 6.5 * d)]
    ax.add_patch(Polygon(head, closed=True, facecolor=color, edgecolor=color, linewidth=0.5,
                         zorder=3, gid=gid + "head"))


def _draw_list(ax: Axes, layout: Layout, owner: str, x: float, y: float) -> None:
    """The moves that stay in ``owner``, one under another from (x, y)."""
    texts, _, _ = listed_size(layout, owner)
    arrows = layout.diagram.arrows
    for index, text in zip(layout.listed.get(owner, []), texts, strict=True):
        _, h = layout.measure(text, LIST_SIZE)
        ax.text(x, y + h / 2, text, ha="left", va="center", fontsize=LIST_SIZE,
                fontfamily=FONT, color=LIST_INK, linespacing=LINE_SPACING, zorder=4,
                gid=transition_gid(arrows[index].transition, index, "listed"))
        y += h + LIST_GAP


def _draw_box(ax: Axes, layout: Layout, node: Node, x: float, y: float) -> None:
    box = layout.diagram.boxes[node.ref]
    x0, y0 = x - node.w / 2, y - node.h / 2
    boundary, ghost = box.kind == "boundary", node.ghost
    copy_for = int(node.key.split(":")[1]) if ghost else None  # a copy's key is ghost:<n>

    def gid(part: str) -> str:
        return state_gid(box.id, part, copy_for)

    edge = BOUNDARY_EDGE if boundary else (GHOST_INK if ghost else INK)
    ax.add_patch(FancyBboxPatch((x0, y0), node.w, node.h, boxstyle="round,pad=0,rounding_size=6",
                                facecolor=BOUNDARY_FILL if boundary else "white",
                                edgecolor=edge, linewidth=0.9 if boundary or ghost else 1.1,
                                linestyle=(0, (3, 2)) if boundary else "-", zorder=2,
                                gid=gid("box")))
    ring = 0.0
    if box.terminal and not boundary:
        ring = 2.5
        ax.add_patch(FancyBboxPatch((x0 + 2.5, y0 + 2.5), node.w - 5, node.h - 5,
                                    boxstyle="round,pad=0,rounding_size=4", facecolor="none",
                                    edgecolor=edge, linewidth=0.8, zorder=2, gid=gid("ring")))
    size = BOUNDARY_SIZE if boundary or ghost else NAME_SIZE
    weight = "normal" if boundary or ghost else "bold"
    _, nh = layout.measure(box.label, size, weight)
    listed = not ghost and bool(layout.listed.get(box.id))
    top = y0 + PAD - 2 + ring
    ax.text(x, top + nh / 2 if listed else y, box.label, ha="center", va="center",
            fontsize=size, fontweight=weight, fontfamily=FONT,
            color="#555555" if boundary else (GHOST_INK if ghost else INK), zorder=4,
            gid=gid("name"))
    if listed:
        _draw_list(ax, layout, box.id, x0 + PAD + ring, top + nh + LIST_GAP + 2)


def _draw_block(ax: Axes, layout: Layout, node: Node, x: float, y: float, depth: int) -> None:
    box = layout.diagram.boxes[node.ref]
    x0, y0 = x - node.w / 2, y - node.h / 2
    region = box.kind == "region"
    fill = REGION_FILL if region else STAGE_FILL[depth % 2]
    ax.add_patch(FancyBboxPatch((x0, y0), node.w, node.h, boxstyle="round,pad=0,rounding_size=9",
                                facecolor=fill, edgecolor=REGION_EDGE if region else STAGE_EDGE,
                                linewidth=1.2, zorder=0.5 + depth * 0.01,
                                gid=state_gid(box.id, "box")))
    title = block_title(box)
    _, th = layout.measure(title, CLUSTER_SIZE, "bold")
    ax.text(x0 + PAD + 4, y0 + PAD + th / 2, title, ha="left", va="center",
            fontsize=CLUSTER_SIZE, fontweight="bold", fontfamily=FONT,
            color="#8a5a14" if region else "#34507a", zorder=4,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": fill, "edgecolor": "none"},
            gid=state_gid(box.id, "name"))
    texts, fw, fh = listed_size(layout, box.id)
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
                                zorder=1, gid=state_gid(box.id, "list")))
    _draw_list(ax, layout, box.id, px + PAD, py + PAD / 2)


def _draw_label(ax: Axes, layout: Layout, node: Node, x: float, y: float) -> None:
    index = int(node.ref)
    arrow = layout.diagram.arrows[index]
    head, rules = label_parts(arrow)
    _, hh = layout.measure(head, LABEL_SIZE)
    top = y - node.h / 2 + 2
    ax.add_patch(FancyBboxPatch((x - node.w / 2, y - node.h / 2), node.w, node.h,
                                boxstyle="round,pad=0,rounding_size=2", facecolor="white",
                                edgecolor="none", alpha=0.92, zorder=2.5,
                                gid=transition_gid(arrow.transition, index, "label")))
    ax.text(x, top + hh / 2, head, ha="center", va="center", fontsize=LABEL_SIZE,
            fontfamily=FONT, color=BACK if layout.lifts[index].back else INK,
            linespacing=LINE_SPACING, zorder=4,
            gid=transition_gid(arrow.transition, index, "text"))
    if rules:
        _, rh = layout.measure(rules, RULE_SIZE)
        ax.text(x, top + hh + rh / 2, rules, ha="center", va="center", fontsize=RULE_SIZE,
                fontfamily=FONT, color=RULE_INK, linespacing=LINE_SPACING, zorder=4,
                gid=transition_gid(arrow.transition, index, "rules"))


def _draw_level(ax: Axes, layout: Layout, level: Level, depth: int) -> None:
    """Draw a level's boxes, blocks (with what they hold), start dots and labels."""
    for node in level.nodes.values():
        x, y = level.xy(*level.pos(node))
        if node.kind == "block":
            _draw_block(ax, layout, node, x, y, depth)
            assert node.inner is not None
            _draw_level(ax, layout, node.inner, depth + 1)
        elif node.kind == "box":
            _draw_box(ax, layout, node, x, y)
        elif node.kind == "start":
            ax.add_patch(Circle((x, y), 4.0, facecolor=START_INK, edgecolor="none", zorder=3,
                                gid=start_gid(node.ref, "dot")))
        elif node.kind == "label":
            _draw_label(ax, layout, node, x, y)


def _legend(diagram: Diagram, layout: Layout) -> list[str]:
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


def draw_diagram(proc: Procedure, stage: str | None = None,
                 direction: Direction = "auto") -> Figure:
    """Lay out and draw a procedure, or one stage of it, on a new matplotlib figure.

    The figure is built with ``matplotlib.figure.Figure`` and an Agg canvas, never pyplot,
    and is sized from the layout (one data unit is one point). Every artist standing for a
    state or a move has a gid naming it (see the module's table).

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
    measure = _Measure()
    layout = best_layout(diagram, measure, direction)
    title = diagram.title
    subtitle = (f"{diagram.procedure} — stage {diagram.stage}" if diagram.stage
                else f"{diagram.procedure} — whole procedure")
    tw, th = measure(title, TITLE_SIZE, "bold")
    sw, sh = measure(subtitle, SUBTITLE_SIZE)
    width = max(layout.width, tw, sw, 420.0)
    legend = "\n".join(line for text in _legend(diagram, layout)
                       for line in wrap(text, max(60, int(width / 4.2))))
    lw, lh = measure(legend, LEGEND_SIZE)
    width = max(width, lw)
    head = MARGIN + th + 4 + sh + 18
    fig_w = width + 2 * MARGIN
    fig_h = head + layout.height + 22 + lh + MARGIN
    move(layout, MARGIN, head)
    fig = Figure(figsize=(fig_w / 72, fig_h / 72), dpi=72)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, fig_w)
    ax.set_ylim(fig_h, 0)
    ax.set_axis_off()
    ax.text(MARGIN, MARGIN + th / 2, title, ha="left", va="center", fontsize=TITLE_SIZE,
            fontweight="bold", fontfamily=FONT, color=INK)
    ax.text(MARGIN, MARGIN + th + 4 + sh / 2, subtitle, ha="left", va="center",
            fontsize=SUBTITLE_SIZE, fontfamily=FONT, color=RULE_INK)
    for level in layout.components:
        _draw_level(ax, layout, level, 0)
    for route in routes(layout):
        if route.arrow == -1:
            color, gid = START_INK, start_gid(route.to, "")
        else:
            color = BACK if route.back else ARROW
            gid = transition_gid(diagram.arrows[route.arrow].transition, route.arrow, "")
        _draw_arrow(ax, route.points, color, layout.lr, gid)
    ax.text(MARGIN, fig_h - MARGIN - lh / 2, legend, ha="left", va="center",
            fontsize=LEGEND_SIZE, fontfamily=FONT, color=RULE_INK, linespacing=LINE_SPACING)
    return fig


def render_diagram(proc: Procedure, target: Path, fmt: Literal["png", "svg"],
                   stage: str | None) -> None:
    """Draw a procedure, or one stage, to a PNG or SVG file, with matplotlib only.

    The file is written atomically (:class:`model.atomic.PendingFile`): drawn to a hidden
    temporary file in the same folder, then renamed over ``target``, so a reader never
    sees half a picture and a failure leaves nothing behind. Missing folders are created.
    An SVG keeps each artist's gid as its group's ``id``; its other ids are salted with the
    procedure's id unless ``svg.hashsalt`` is set, so the same procedure gives the same file.

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
    salt = matplotlib.rcParams["svg.hashsalt"] or f"cpsim:{proc.id}"  # a caller's salt wins
    with PendingFile(target) as pending, matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(pending.path, format=fmt, dpi=DPI[fmt], metadata=metadata)
