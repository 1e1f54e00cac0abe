r"""A procedure in the browser: one self-contained HTML page a trainer can click through.

``cpsim explore PROCEDURE --out FILE.html`` writes a page that shows the procedure's state
diagram with the case's current state highlighted, offers the moves allowed now as buttons
(and on the diagram's arrow labels), and keeps, beside the diagram, the rules that apply, the
running deadlines with their due dates, and the case's history, with *back* and *reset*.
Nothing is fetched: no server, no external script, style or font, so it works offline.

How the page is generated, not hand-written:

* **Moves** come from the procedure's configuration graph (:func:`model.graph.build_graph`),
  built by the same functions the compiled machine fires with (``candidates``, ``apply``,
  ``events_of``), so the page offers exactly the states, triggers and guards that ``cpsim
  check`` proves. Each node lists its moves in the order
  :meth:`model.compiler.CompiledProcedure.options` gives them, and a trigger fires the first
  enabled one, as :meth:`~model.compiler.CompiledProcedure.fire` does.
* **Deadlines** are exported as data; the page starts, stops and cancels clocks with the
  compiler's rules and computes due dates with :class:`model.calendar.WorkingCalendar`'s
  arithmetic, on the working days of that calendar's own table, exported for the start
  year and the three years after it (:func:`working_day_numbers`).
* **Guards** are Python functions (:mod:`model.guards`), so each is turned into a *truth
  table* (:func:`tabulate_guard`) from what it declares it reads: it is evaluated on every
  combination of those facts (yes/no) and trigger counts (0 up to the count above which its
  answer stops changing, which the table's lookup clamps to). ``tests/test_model_guards.py``
  confirms each declaration, so the table is exact.

The page embeds its data as JSON in a ``<script type="application/json">`` element, with
``<``, ``>`` and ``&`` written as ``\u003c``, ``\u003e`` and ``\u0026`` so no text in a
procedure can close the element (:func:`embed_json`), and one generic script (the same for
every procedure) reads it and puts text on the page only as text nodes. The diagram is the
matplotlib drawing of :func:`reports.diagram.render_diagram`, written as SVG with its text as
glyph outlines. The drawing names every artist of a state or a move as it draws it, and the
page's tags (which group is which state's box, which move's label) are read back from those
names in the SVG (:func:`read_tags`); then the SVG is rebuilt from an allow-list of drawing
elements and attributes (:func:`clean_svg`), so no script, link, style sheet, comment or
metadata from the drawing reaches the page.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
from markupsafe import Markup

from model.atomic import write_text_atomic
from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure, top_level_states
from model.graph import (
    active_states,
    apply,
    build_graph,
    candidates,
    describe,
    events_of,
    initial_events,
    is_terminal,
    matched_source,
    when_in_holds,
)
from model.guards import FACTS, GUARDS, GuardContext, facts_read
from model.rules import load_rules
from model.spec import Deadline, Procedure, ResourceNeed
from model.types import Duration, GuardId
from reports.diagram import read_gid, render_diagram

CALENDAR_YEARS = 4
"""Working days are exported for the start year and the years after it, this many in all."""

TABLE_LIMIT = 200_000
"""Most cells one guard's truth table may have (the page carries every table)."""


# -- guards as truth tables ------------------------------------------------------------------


class GuardNotTabulable(ValueError):
    """A guard declares so many inputs that its truth table is too large for the page."""


@dataclass(frozen=True)
class GuardTable:
    """A guard as the page evaluates it: a lookup table over what the guard reads.

    The index of a context is mixed-radix: one binary digit per fact (1 = yes), then one
    digit in base ``cap + 1`` per count and per episode count (clamped to ``cap``), in the
    order listed.

    Attributes:
        name: The guard's registered name.
        summary: Its plain-English summary.
        facts: The case facts it reads.
        counts: The trigger counts (whole history) it reads.
        episode: The trigger counts of the current episode it reads.
        cap: The largest count tabulated (the guard's ``saturates_at``).
        table: ``"1"`` or ``"0"`` for every index, in index order.
    """

    name: GuardId
    summary: str
    facts: tuple[str, ...]
    counts: tuple[str, ...]
    episode: tuple[str, ...]
    cap: int
    table: str

    def index(self, ctx: GuardContext) -> int:
        """The table index of a context (facts as yes/no, counts clamped to the cap)."""
        i = 0
        for fact in self.facts:
            i = i * 2 + (1 if ctx.facts.get(fact) else 0)
        for mapping, keys in ((ctx.counts, self.counts), (ctx.episode, self.episode)):
            for key in keys:
                i = i * (self.cap + 1) + min(int(mapping.get(key, 0) or 0), self.cap)
        return i

    def holds(self, ctx: GuardContext) -> bool:
        """Look the context up in the table."""
        return self.table[self.index(ctx)] == "1"

    def to_json(self) -> dict[str, Any]:
        """The table as the page reads it."""
        return {"summary": self.summary, "facts": list(self.facts),
                "counts": list(self.counts), "episode": list(self.episode),
                "cap": self.cap, "table": self.table}


def tabulate_guard(name: GuardId) -> GuardTable:
    """A registered guard as an exact truth table, straight from what it declares.

    The table covers every combination of the facts the guard reads (yes/no, in
    :data:`model.guards.FACTS` order) and of the trigger counts it reads, each from 0 to
    its ``saturates_at``: every higher count answers as that one does, and an absent fact
    or count reads as no or 0 (both confirmed by ``tests/test_model_guards.py``).

    Args:
        name: A guard registered in :data:`model.guards.GUARDS`.

    Returns:
        The guard's table.

    Raises:
        KeyError: no guard of that name is registered.
        GuardNotTabulable: the table would have more than :data:`TABLE_LIMIT` cells.

    >>> t = tabulate_guard("extended_notice_needed")
    >>> t.facts, t.counts, t.cap, t.table
    (('parent_learning_disability', 'interpreter_needed'), (), 0, '0111')
    """
    guard = GUARDS[name]
    cap = guard.saturates_at
    shape = GuardTable(name, guard.summary, facts_read([name]), tuple(sorted(guard.counts)),
                       tuple(sorted(guard.episode)), cap, "")
    keys = shape.facts + shape.counts + shape.episode
    size = 2 ** len(shape.facts) * (cap + 1) ** (len(keys) - len(shape.facts))
    if size > TABLE_LIMIT:
        raise GuardNotTabulable(f"guard {name!r} reads too many facts and counts to "
                                f"tabulate: {', '.join(keys)}")
    cells = ["0"] * size
    f, c = len(shape.facts), len(shape.facts) + len(shape.counts)
    domains = [(False, True)] * f + [range(cap + 1)] * (len(keys) - f)
    for values in itertools.product(*domains):
        ctx = GuardContext(dict(zip(shape.facts, values[:f], strict=True)),
                           dict(zip(shape.counts, values[f:c], strict=True)),
                           dict(zip(shape.episode, values[c:], strict=True)))
        cells[shape.index(ctx)] = "1" if guard.fn(ctx) else "0"
    return GuardTable(shape.name, shape.summary, shape.facts, shape.counts, shape.episode,
                      cap, "".join(cells))


def guard_tables() -> dict[GuardId, GuardTable]:
    """Every registered guard as a truth table, by name."""
    return {name: tabulate_guard(name) for name in sorted(GUARDS)}


# -- the procedure as data -------------------------------------------------------------------


def _duration(d: Duration | None) -> dict[str, Any] | None:
    return None if d is None else {"unit": d.unit, "value": d.value, "text": str(d)}


def _resource_text(need: ResourceNeed) -> str:
    text = need.role.replace("_", " ")
    if need.level:
        text += f" ({need.level.replace('_', ' ')})"
    if need.agencies:
        text += ": " + ", ".join(need.agencies)
    if need.when:
        text += f" when {need.when}"
    return text


def _deadline(d: Deadline) -> dict[str, Any]:
    return {
        "id": d.id, "start": str(d.start), "end": str(d.end), "rules": list(d.rules),
        "summary": d.summary, "within": _duration(d.within), "at_least": _duration(d.at_least),
        "when": d.when, "repeats": d.repeats, "cancelled_by": [str(e) for e in d.cancelled_by],
    }


def export_graph(procedure: Procedure) -> dict[str, Any]:
    """The configuration graph as the page reads it: nodes with their moves, and edges.

    Nodes are the reachable configurations, the initial one first; each lists its moves
    (edge indices) in the order the compiled machine offers them, and the moves that wait
    for a state of another region (``when_in``). Each edge carries the transition's trigger,
    guards, rule ids, records, summary and the events it causes.
    """
    graph = build_graph(procedure)
    nodes_in_order = list(graph.graph.nodes)
    index = {config: i for i, config in enumerate(nodes_in_order)}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for config in nodes_in_order:
        options: list[int] = []
        for t in candidates(procedure, config):
            after = apply(procedure, config, t)
            if not graph.graph.has_edge(config, after, key=t.id):  # pragma: no cover
                raise RuntimeError(f"{t.id} from {config} is not in the graph")
            options.append(len(edges))
            edges.append({
                "from": index[config], "to": index[after], "transition": t.id,
                "trigger": t.trigger, "guards": list(t.guards), "rules": list(t.rules),
                "records": list(t.records), "summary": t.summary, "internal": t.internal,
                "resources": [_resource_text(r) for r in t.resources],
                "events": [str(e) for e in events_of(procedure, config, after, t)],
            })
        waiting = [
            {"transition": t.id, "trigger": t.trigger, "guards": list(t.guards),
             "waiting_for": list(t.when_in), "rules": list(t.rules), "summary": t.summary}
            for t in procedure.transitions
            if t.when_in and matched_source(procedure, config, t) is not None
            and not when_in_holds(procedure, config, t)
        ]
        nodes.append({
            "config": list(config), "label": describe(config),
            "active": sorted(active_states(procedure, config)),
            "terminal": is_terminal(procedure, config), "options": options,
            "waiting": waiting,
        })
    return {"nodes": nodes, "edges": edges}


def working_day_numbers(calendar: WorkingCalendar, first: date, last: date) -> list[int]:
    """The calendar's working days from ``first`` to ``last``, as days since ``first``.

    The page's script reads working days from this list, so it skips exactly the days the
    model's calendar skips (1 January 2025 is a bank holiday, 4 and 5 January a weekend):

    >>> days = working_day_numbers(WorkingCalendar(date(2025, 1, 1)), date(2025, 1, 1),
    ...                            date(2025, 12, 31))
    >>> days[:3], len(days)
    ([1, 2, 5], 253)
    """
    return [(d - first).days for d in calendar.working_dates(first, last)]


def explorer_data(compiled: CompiledProcedure) -> dict[str, Any]:
    """Everything the page's script needs, as JSON-ready data.

    Args:
        compiled: The compiled procedure; its calendar's start date is the case's default
            start, and working days are exported for that year and the next three.
    """
    procedure = compiled.procedure
    calendar = compiled.calendar
    rules = load_rules()
    tables = guard_tables()
    facts = list(FACTS) + sorted({f for t in tables.values() for f in t.facts} - set(FACTS))
    first = date(calendar.start.year, 1, 1)
    last = date(calendar.start.year + CALENDAR_YEARS - 1, 12, 31)
    cited = procedure.rule_ids()
    states = {
        sid: {"name": st.name, "parent": st.parent, "summary": st.summary,
              "rules": list(st.rules), "terminal": st.terminal, "compound": st.is_compound,
              "region": st.region}
        for sid, st in procedure.states.items()
    }
    return {
        "procedure": {"id": procedure.id, "title": procedure.title,
                      "description": procedure.description, "regions": list(procedure.regions),
                      "extends": list(procedure.extends)},
        "states": states,
        "graph": export_graph(procedure),
        "initial": {"node": 0, "config": list(compiled.initial),
                    "events": [str(e) for e in initial_events(procedure)]},
        "tops": sorted(top_level_states(procedure)),
        "deadlines": [_deadline(d) for d in procedure.deadlines],
        "guards": {name: t.to_json() for name, t in tables.items()},
        "facts": [{"name": f, "guards": sorted(n for n, t in tables.items() if f in t.facts)}
                  for f in facts],
        "rules": {
            rid: ({"source": rules[rid].source, "document": rules[rid].document,
                   "clause": rules[rid].clause, "summary": rules[rid].summary}
                  if rid in rules else
                  {"source": "", "document": "", "clause": "",
                   "summary": "(not in the rule registry)"})
            for rid in cited
        },
        "calendar": {"start": calendar.start.isoformat(), "first": first.isoformat(),
                     "last": last.isoformat(), "start_hour": calendar.day_starts,
                     "day_starts": calendar.day_starts, "day_ends": calendar.day_ends,
                     "working": working_day_numbers(calendar, first, last)},
    }


def embed_json(data: Any) -> str:
    r"""JSON that is safe as the whole content of a ``<script>`` element.

    ``<``, ``>`` and ``&`` (which JSON allows only inside strings) are written as
    ``\u`` escapes, so the text can never contain ``</script>`` or ``<!--``; the line
    and paragraph separators are escaped too.

    >>> embed_json({"t": "</script><b>&"})
    '{"t":"\\u003c/script\\u003e\\u003cb\\u003e\\u0026"}'
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


# -- the diagram -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaggedDiagram:
    """The diagram as clean SVG markup, with the states and moves tagged in it.

    Attributes:
        svg: The ``<svg>`` element; state boxes carry ``data-state``, move labels (and
            moves listed in a box) ``data-transition`` and ``data-trigger``.
        states: The state ids with a box in the drawing.
        transitions: The transition ids with a clickable label or listed line.
    """

    svg: str
    states: frozenset[str]
    transitions: frozenset[str]


_MARKED: Mapping[str, frozenset[str]] = {
    "state": frozenset({"box", "name"}),
    "transition": frozenset({"label", "text", "rules", "listed"}),
}
"""The parts of a drawn state or move the page marks: the ones its style sheet highlights."""


def read_tags(svg: str, procedure: Procedure) -> dict[str, tuple[str, str, str]]:
    """Which groups of a drawn diagram are which state or move, read from their ids.

    :func:`reports.diagram.draw_diagram` gives every artist of a state or a move an id
    naming it (:func:`reports.diagram.read_gid` reads one), so nothing is guessed: the page
    marks each state's box and name, and each move's label (background, text and rule ids)
    and its line in a box for a move that stays in the box.

    Returns:
        Group id -> (``"state"``, state id, ``""``) or (``"move"``, transition id, trigger).
    """
    triggers = {t.id: t.trigger for t in procedure.transitions}
    tags: dict[str, tuple[str, str, str]] = {}
    for element in ET.fromstring(svg).iter():  # noqa: S314 - our own matplotlib output
        gid = element.get("id", "")
        tag = read_gid(gid)
        if tag is None or tag.part not in _MARKED.get(tag.kind, frozenset()):
            continue
        if tag.kind == "state":
            tags[gid] = ("state", tag.ref, "")
        else:
            tags[gid] = ("move", tag.ref, triggers[tag.ref])
    return tags


_SVG = "{http://www.w3.org/2000/svg}"
_XLINK = "{http://www.w3.org/1999/xlink}"
_ELEMENTS = frozenset({"svg", "g", "path", "defs", "use", "clipPath", "rect", "circle",
                       "ellipse", "line", "polyline", "polygon"})
_ATTRIBUTES = frozenset({"id", "d", "style", "transform", "x", "y", "width", "height",
                         "viewBox", "version", "clip-path", "fill", "stroke", "stroke-width",
                         "opacity", "points", "cx", "cy", "r", "rx", "ry", "x1", "y1", "x2",
                         "y2", "preserveAspectRatio"})
_BAD_STYLE = re.compile(r"url\(\s*(?!#)|expression|javascript|@import|\\|<|>", re.IGNORECASE)


def _clean_attributes(element: ET.Element,
                      tags: Mapping[str, tuple[str, str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in element.attrib.items():
        if name == f"{_XLINK}href" or name == "href":
            if value.startswith("#"):
                out.append(("xlink:href", value))
            continue
        if name not in _ATTRIBUTES or (name in ("style", "clip-path", "fill", "stroke")
                                       and _BAD_STYLE.search(value)):
            continue
        if name == "id" and value in tags:
            kind, ref, trigger = tags[value]
            if kind == "state":
                out += [("class", "cpsim-state"), ("data-state", ref)]
            else:
                out += [("class", "cpsim-move"), ("data-transition", ref),
                        ("data-trigger", trigger)]
            continue
        out.append((name, value))
    return out


def _write(element: ET.Element, tags: Mapping[str, tuple[str, str, str]],
           out: list[str]) -> None:
    name = element.tag.removeprefix(_SVG)
    if name not in _ELEMENTS:
        return  # metadata, style sheets, titles, scripts, anything unknown: dropped whole
    attributes = "".join(f' {k}="{html.escape(v, quote=True)}"'
                         for k, v in _clean_attributes(element, tags))
    out.append(f"<{name}{attributes}>")
    for child in element:
        _write(child, tags, out)
    out.append(f"</{name}>")


def clean_svg(svg: str, tags: Mapping[str, tuple[str, str, str]]) -> str:
    """Rebuild an SVG from an allow-list, ready to sit inside an HTML page.

    Only drawing elements (groups, paths, glyph uses, clip paths and basic shapes) and
    their geometry and style attributes are kept; ``xlink:href`` only when it points inside
    the document; text content, comments, metadata and namespace declarations are dropped,
    and every attribute value is escaped. Groups named in ``tags`` lose their id and get
    ``data-state`` or ``data-transition``/``data-trigger`` instead.

    >>> clean_svg('<svg xmlns="http://www.w3.org/2000/svg"><script>x</script>'
    ...           '<g id="t" onclick="x"><path d="M0 0"/></g></svg>',
    ...           {"t": ("state", "a&b", "")})
    '<svg><g class="cpsim-state" data-state="a&amp;b"><path d="M0 0"></path></g></svg>'
    """
    root = ET.fromstring(svg)  # noqa: S314 - our own matplotlib output, no entities
    out: list[str] = []
    _write(root, tags, out)
    return "".join(out)


def diagram_markup(procedure: Procedure) -> TaggedDiagram:
    """The procedure's diagram as clean, tagged SVG markup.

    Drawn by :func:`reports.diagram.render_diagram` with text as glyph outlines (no font is
    needed to show it) and a fixed hash salt (the same procedure gives the same page).
    """
    with tempfile.TemporaryDirectory() as tmp, matplotlib.rc_context(
            {"svg.hashsalt": f"cpsim:{procedure.id}", "svg.fonttype": "path"}):
        path = Path(tmp) / "diagram.svg"
        render_diagram(procedure, path, "svg", None)
        raw = path.read_text(encoding="utf-8")
    tags = read_tags(raw, procedure)
    markup = clean_svg(raw, tags)
    values = tags.values()
    return TaggedDiagram(markup, frozenset(v[1] for v in values if v[0] == "state"),
                         frozenset(v[1] for v in values if v[0] == "move"))


# -- the page ----------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    from reports.templating import environment  # the one environment of every page

    return environment()


def render_explorer(procedure: Procedure, start: date | None = None) -> str:
    """The explorer page of a procedure as HTML text.

    Args:
        procedure: The procedure to explore.
        start: The case's default start date (today when None); the page can change it
            within the years whose working days it holds.

    Raises:
        GuardNotTabulable: a registered guard cannot be written as a table.
    """
    start = start or date.today()
    compiled = CompiledProcedure(procedure, WorkingCalendar(start))
    data = explorer_data(compiled)
    drawn = diagram_markup(procedure)
    data["diagram"] = {"states": sorted(drawn.states),
                       "transitions": sorted(drawn.transitions)}
    return _environment().get_template("explore.html").render(
        procedure_id=procedure.id,
        procedure_title=procedure.title,
        procedure_description=procedure.description,
        data_json=Markup(embed_json(data)),  # noqa: S704 - escaped by embed_json
        svg=Markup(drawn.svg),  # noqa: S704 - rebuilt from an allow-list by clean_svg
    )


def build_explorer(procedure: Procedure, out: Path, start: date | None = None) -> Path:
    """Write the explorer page of a procedure (atomically: a temporary file, then rename).

    Args:
        procedure: The procedure to explore.
        out: The HTML file to write; missing folders are created.
        start: The case's default start date (today when None).

    Returns:
        The path written.
    """
    text = render_explorer(procedure, start)
    out = Path(out)
    write_text_atomic(out, text)
    return out
