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
  arithmetic, from the list of bank holidays on weekdays that the model's own calendar
  reports for the start year and the three years after it.
* **Guards** are Python functions (:mod:`model.guards`), so each is turned into a *truth
  table* by probing it (:func:`tabulate_guard`): it is run on mappings that record which
  facts and trigger counts it reads, then evaluated on every combination of those facts
  (yes/no) and counts (0 to a cap, :data:`COUNT_CAP` at first). The table is used only once
  it is shown to agree with the guard: an absent fact reads as "no", an absent count as 0,
  and every count above the cap, probed one by one up to :data:`PROBE_TOP`, gives the same
  answer as the cap itself (while one does not, the cap is doubled). A guard that reads a
  whole mapping, tells an absent fact from "no", or whose answer still changes at
  :data:`PROBE_TOP`, cannot be tabulated and the page is not written
  (:class:`GuardNotTabulable`).

The page embeds its data as JSON in a ``<script type="application/json">`` element, with
``<``, ``>`` and ``&`` written as ``\u003c``, ``\u003e`` and ``\u0026`` so no text in a
procedure can close the element (:func:`embed_json`), and one generic script (the same for
every procedure) reads it and puts text on the page only as text nodes. The diagram is the
matplotlib drawing of :func:`reports.diagram.draw_diagram`, written as SVG with its text as
glyph outlines. Each state's box and each move's label is found in the figure by geometry
and tagged (:func:`tag_diagram`), then the SVG is rebuilt from an allow-list of drawing
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
from markupsafe import Markup
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text

from model.atomic import write_text_atomic
from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure, top_level_states
from model.diagram import Box, Diagram, build_diagram
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
from model.guards import FACTS, GUARDS, GuardContext
from model.rules import load_rules
from model.spec import Deadline, Procedure, ResourceNeed
from model.types import Duration, GuardId
from reports.diagram import draw_diagram

COUNT_CAP = 8
"""Trigger counts are tabulated from 0 to at least this; larger counts read as the cap."""

PROBE_TOP = 64
"""Guards are probed with counts up to this; the cap grows (doubling) while it must."""

CALENDAR_YEARS = 4
"""Bank holidays are exported for the start year and the years after it, this many in all."""

_PROBE_LIMIT = 200_000  # most guard evaluations one table may take


# -- guards as truth tables ------------------------------------------------------------------


class GuardNotTabulable(ValueError):
    """A guard cannot be written as a finite truth table the page can look up."""


class _Probe(Mapping[str, Any]):
    """A read-only mapping that records every key looked up and refuses to be iterated."""

    def __init__(self, values: Mapping[str, Any], seen: set[str], what: str) -> None:
        self._values = values
        self._seen = seen
        self._what = what

    def __getitem__(self, key: str) -> Any:
        self._seen.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        raise GuardNotTabulable(f"it reads the whole of ctx.{self._what}")

    def __len__(self) -> int:
        raise GuardNotTabulable(f"it reads the size of ctx.{self._what}")


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
        cap: The largest count tabulated.
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


_ABSENT = object()


def _context(keys: list[tuple[str, str]], values: tuple[Any, ...]) -> GuardContext:
    parts: dict[str, dict[str, Any]] = {"facts": {}, "counts": {}, "episode": {}}
    for (part, key), value in zip(keys, values, strict=True):
        if value is not _ABSENT:
            parts[part][key] = value
    return GuardContext(parts["facts"], parts["counts"], parts["episode"])


def _probe_run(name: GuardId, ctx: GuardContext, seen: Mapping[str, set[str]]) -> bool:
    probe = GuardContext(
        facts=_Probe(ctx.facts, seen["facts"], "facts"),
        counts=_Probe(ctx.counts, seen["counts"], "counts"),
        episode=_Probe(ctx.episode, seen["episode"], "episode"),
    )
    try:
        return bool(GUARDS[name].fn(probe))
    except GuardNotTabulable as exc:
        raise GuardNotTabulable(f"guard {name!r} cannot be tabulated: {exc}") from None


def _probes(keys: list[tuple[str, str]], cap: int, top: int) -> Iterator[tuple[Any, ...]]:
    """Contexts that test a table with counts up to ``cap`` against the guard itself.

    Every combination of facts (absent, no, yes) and counts (absent, 0 to ``cap``, just
    above it, and ``top``); then, one count at a time, every value from ``cap + 1`` to
    ``top`` with the facts yes or no and the other counts from 0 to ``cap``.
    """
    facts: tuple[Any, ...] = (_ABSENT, False, True)
    counts: tuple[Any, ...] = (_ABSENT, *range(cap + 2), top)
    yield from itertools.product(*[facts if p == "facts" else counts for p, _ in keys])
    for i, (part, _) in enumerate(keys):
        if part == "facts":
            continue
        others = [(False, True) if p == "facts" else tuple(range(cap + 1)) for p, _ in keys]
        others[i] = tuple(range(cap + 1, top + 1))
        yield from itertools.product(*others)


def _probe_count(keys: list[tuple[str, str]], cap: int, top: int) -> int:
    facts = sum(1 for p, _ in keys if p == "facts")
    counts = len(keys) - facts
    total: int = pow(3, facts) * pow(cap + 4, counts)
    if counts:
        total += counts * pow(2, facts) * pow(cap + 1, counts - 1) * max(0, top - cap)
    return total


def _attempt(name: GuardId, found: Mapping[str, set[str]], cap: int, top: int,
             seen: Mapping[str, set[str]]) -> tuple[GuardTable, str | None, bool]:
    """Tabulate with counts up to ``cap`` and check the table against the guard.

    Returns:
        The table, the first mismatch found (None when there is none), and whether that
        mismatch needed a count above ``cap`` (so a larger cap may cure it).
    """
    keys = [(part, key) for part in ("facts", "counts", "episode")
            for key in sorted(found[part])]
    if _probe_count(keys, cap, top) + 2 ** len(keys) * (cap + 1) ** len(keys) > _PROBE_LIMIT:
        raise GuardNotTabulable(f"guard {name!r} reads too many facts and counts to "
                                f"tabulate: {', '.join(k for _, k in keys)}")
    shape = GuardTable(name, GUARDS[name].summary, tuple(sorted(found["facts"])),
                       tuple(sorted(found["counts"])), tuple(sorted(found["episode"])), cap, "")
    cells = ["0"] * (2 ** len(shape.facts) * (cap + 1) ** (len(keys) - len(shape.facts)))
    domains = [(False, True) if p == "facts" else tuple(range(cap + 1)) for p, _ in keys]
    for values in itertools.product(*domains):
        ctx = _context(keys, values)
        cells[shape.index(ctx)] = "1" if _probe_run(name, ctx, seen) else "0"
    table = GuardTable(shape.name, shape.summary, shape.facts, shape.counts, shape.episode,
                       cap, "".join(cells))
    for values in _probes(keys, cap, top):
        ctx = _context(keys, values)
        result = _probe_run(name, ctx, seen)
        if table.holds(ctx) != result:
            above = any(not isinstance(v, bool) and v is not _ABSENT and v > cap
                        for v in values)
            return table, (
                f"guard {name!r} cannot be tabulated: on facts {dict(ctx.facts)}, counts "
                f"{dict(ctx.counts)} and episode {dict(ctx.episode)} it gives {result}, but "
                f"its table (absent = no or 0, counts above {cap} read as {cap}) gives "
                f"{not result}"), above
    return table, None, False


def tabulate_guard(name: GuardId, cap: int = COUNT_CAP, top: int = PROBE_TOP) -> GuardTable:
    """Probe a registered guard and write it as an exact truth table.

    The facts and counts the guard reads are found by running it on recording mappings
    over every combination of what has been found so far, until no new key turns up (a
    guard may read a key only when another has some value). The table covers counts from 0
    to ``cap`` and is then checked against the guard with absent keys and with counts above
    the cap up to ``top`` (see :func:`_probes`); while a count above the cap still changes
    the answer, the cap is doubled, up to ``top``. Counts above ``top`` are taken to answer
    as ``top`` does.

    Args:
        name: A guard registered in :data:`model.guards.GUARDS`.
        cap: The smallest cap to try.
        top: The largest count probed.

    Returns:
        The guard's table.

    Raises:
        KeyError: no guard of that name is registered.
        GuardNotTabulable: the guard reads a whole mapping or too many keys, tells an
            absent fact or count from "no" or 0, or never settles up to ``top``.

    >>> t = tabulate_guard("extended_notice_needed")
    >>> t.facts, t.counts, t.table
    (('interpreter_needed', 'parent_learning_disability'), (), '0111')
    """
    found: dict[str, set[str]] = {"facts": set(), "counts": set(), "episode": set()}
    while True:
        seen: dict[str, set[str]] = {"facts": set(), "counts": set(), "episode": set()}
        size = cap
        while True:
            table, failure, above = _attempt(name, found, size, top, seen)
            if failure is None or not above or size >= top:
                break
            size = min(2 * size, top)
        if all(seen[part] <= found[part] for part in found):
            if failure is not None:
                raise GuardNotTabulable(failure)
            return table
        for part in found:
            found[part] |= seen[part]


def guard_tables(cap: int = COUNT_CAP) -> dict[GuardId, GuardTable]:
    """Every registered guard as a truth table, by name."""
    return {name: tabulate_guard(name, cap) for name in sorted(GUARDS)}


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


def non_working_weekdays(calendar: WorkingCalendar, first_year: int, last_year: int) -> list[str]:
    """Every Monday-to-Friday date the model's calendar treats as a holiday, ISO format.

    >>> days = non_working_weekdays(WorkingCalendar(date(2025, 1, 1)), 2025, 2025)
    >>> days[:3], len(days)
    (['2025-01-01', '2025-04-18', '2025-04-21'], 8)
    """
    out = []
    day = date(first_year, 1, 1)
    while day.year <= last_year:
        if day.weekday() < 5 and not calendar.is_working_day(day):
            out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def explorer_data(compiled: CompiledProcedure) -> dict[str, Any]:
    """Everything the page's script needs, as JSON-ready data.

    Args:
        compiled: The compiled procedure; its calendar's start date is the case's default
            start, and bank holidays are exported for that year and the next three.
    """
    procedure = compiled.procedure
    calendar = compiled.calendar
    rules = load_rules()
    tables = guard_tables()
    facts = list(FACTS) + sorted({f for t in tables.values() for f in t.facts} - set(FACTS))
    first, last = calendar.start.year, calendar.start.year + CALENDAR_YEARS - 1
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
        "calendar": {"start": calendar.start.isoformat(), "first": f"{first}-01-01",
                     "last": f"{last}-12-31", "start_hour": calendar.day_starts,
                     "day_starts": calendar.day_starts, "day_ends": calendar.day_ends,
                     "holidays": non_working_weekdays(calendar, first, last)},
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
    """The diagram as clean SVG markup, with what could be tagged in it.

    Attributes:
        svg: The ``<svg>`` element; state boxes carry ``data-state``, move labels
            ``data-transition`` and ``data-trigger``.
        states: The state ids with a box in the drawing.
        transitions: The transition ids with a clickable label.
    """

    svg: str
    states: frozenset[str]
    transitions: frozenset[str]


_Rect = tuple[float, float, float, float]


def _rect(patch: FancyBboxPatch) -> _Rect:
    return (patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height())


def _inside(x: float, y: float, r: _Rect) -> bool:
    return r[0] <= x <= r[0] + r[2] and r[1] <= y <= r[1] + r[3]


def _encloses(outer: _Rect, inner: _Rect) -> bool:
    return (outer != inner and outer[0] <= inner[0] and outer[1] <= inner[1]
            and inner[0] + inner[2] <= outer[0] + outer[2]
            and inner[1] + inner[3] <= outer[1] + outer[3])


def _alpha(patch: FancyBboxPatch) -> float:
    return float(to_rgba(patch.get_facecolor())[3])


def _title(box: Box) -> str:
    return f"{box.label} — parallel region" if box.kind == "region" else box.label


def tag_diagram(fig: Figure, diagram: Diagram) -> dict[str, tuple[str, str, str]]:
    """Give each state box and move label of a drawn diagram an SVG group id.

    Nothing in the figure says which artist is which state, so they are matched by
    geometry: a text is owned by the smallest filled box that contains it. A centred text
    equal to a state's label, centred on its box, names that state; a left-aligned one
    equal to a stage's title names the stage; a box on a translucent background whose first
    line is a trigger is that move's label; ``↻``/``↪`` lines list moves inside a box.
    States sharing a name (``icpc.session``, ``cp_plan.review_conference.session``) are
    told apart by the stage box around them. Anything ambiguous is left untagged.

    Returns:
        Group id -> (``"state"``, state id, ``""``) or (``"move"``, transition id, trigger).
    """
    ax = fig.axes[0]
    patches = [p for p in ax.patches
               if isinstance(p, FancyBboxPatch) and _alpha(p) > 0]
    boxes = list(diagram.boxes.values())
    tags: dict[str, tuple[str, str, str]] = {}
    state_of: dict[int, tuple[_Rect, str]] = {}

    def tag(artist: FancyBboxPatch | Text, value: tuple[str, str, str]) -> None:
        gid = f"cpsim-tag-{len(tags)}"
        artist.set_gid(gid)
        tags[gid] = value

    def move_for(trigger: str, loops: bool | None) -> tuple[str, str, str] | None:
        arrows = {a.transition for a in diagram.arrows
                  if a.trigger == trigger and (loops is None or a.is_loop == loops)}
        return ("move", arrows.pop(), trigger) if len(arrows) == 1 else None

    owned: list[tuple[float, Text, FancyBboxPatch]] = []
    for text in ax.texts:
        x, y = text.get_position()
        around = [p for p in patches if _inside(x, y, _rect(p))]
        if around:
            patch = min(around, key=lambda p: p.get_width() * p.get_height())
            owned.append((patch.get_width() * patch.get_height(), text, patch))
    owned.sort(key=lambda item: -item[0])  # stages before what they hold
    labels: dict[int, list[Text]] = {}
    for _, text, patch in owned:
        content = text.get_text()
        x, _ = text.get_position()
        r = _rect(patch)
        if _alpha(patch) < 1:
            labels.setdefault(id(patch), []).append(text)
            continue
        centred = text.get_horizontalalignment() == "center" and abs(r[0] + r[2] / 2 - x) < 1.0
        if centred:
            found = [b for b in boxes if not b.is_cluster and b.label == content]
        elif text.get_horizontalalignment() == "left":
            found = [b for b in boxes if b.is_cluster and _title(b) == content]
        else:
            found = []
        if found:
            around_states = [v for v in state_of.values() if _encloses(v[0], r)]
            parent = (min(around_states, key=lambda v: v[0][2] * v[0][3])[1]
                      if around_states else None)
            if len(found) > 1:
                found = [b for b in found if b.parent == parent]
            if len(found) == 1:
                state_of[id(patch)] = (r, found[0].id)
                tag(patch, ("state", found[0].id, ""))
                tag(text, ("state", found[0].id, ""))
            continue
        if content[:2] in ("↻ ", "↪ ") and len(content.split()) > 1:
            value = move_for(content.split()[1], content.startswith("↻"))
            if value is not None:
                tag(text, value)
    for patch in patches:
        texts = labels.get(id(patch), [])
        heads = [t.get_text().split("\n", 1)[0].removesuffix(" (internal)") for t in texts]
        values = {v for v in (move_for(h, False) for h in heads) if v is not None}
        if len(values) == 1:
            value = values.pop()
            tag(patch, value)
            for text in texts:
                tag(text, value)
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

    Drawn by :func:`reports.diagram.draw_diagram` with text as glyph outlines (no font is
    needed to show it) and a fixed hash salt (the same procedure gives the same page).
    """
    diagram = build_diagram(procedure)
    with matplotlib.rc_context({"svg.hashsalt": f"cpsim:{procedure.id}",
                                "svg.fonttype": "path"}):
        fig = draw_diagram(procedure)
        tags = tag_diagram(fig, diagram)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "diagram.svg"
            fig.savefig(path, format="svg", dpi=72, metadata={"Date": None})
            raw = path.read_text(encoding="utf-8")
    markup = clean_svg(raw, tags)
    values = tags.values()
    return TaggedDiagram(markup, frozenset(v[1] for v in values if v[0] == "state"),
                         frozenset(v[1] for v in values if v[0] == "move"))


# -- the page ----------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_explorer(procedure: Procedure, start: date | None = None) -> str:
    """The explorer page of a procedure as HTML text.

    Args:
        procedure: The procedure to explore.
        start: The case's default start date (today when None); the page can change it
            within the years whose bank holidays it holds.

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
