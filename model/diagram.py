"""Diagrams of a procedure as Mermaid and DOT text, and the drawing model behind them.

:func:`build_diagram` picks what to draw (the whole procedure, or one stage with the states
just outside it as small *boundary* boxes) and labels every arrow with its trigger, the
timescales it starts or ends and the rule ids it encodes. :func:`to_mermaid` and
:func:`to_dot` write that model as text; ``reports.diagram`` lays it out and draws it with
matplotlib. Nothing here needs Graphviz or a browser.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from model.errors import InputError, Problem, did_you_mean
from model.spec import Deadline, EventRef, Procedure, Transition
from model.types import RuleId, StateId, TriggerId

BoxKind = Literal["state", "stage", "region", "boundary"]
"""``state`` a leaf; ``stage`` a compound state; ``region`` a parallel region's root;
``boundary`` a state outside the drawn stage that an arrow leads in from or out to."""


@dataclass(frozen=True, slots=True)
class Box:
    """One state as drawn.

    Attributes:
        id: The state id (dotted path).
        label: The text shown: the state's name, or its full id for a boundary box.
        summary: The state's summary from the procedure file.
        kind: What sort of box it is (see :data:`BoxKind`).
        parent: The enclosing drawn box, or None at the top of the drawing.
        children: Drawn child boxes in declared order (clusters only).
        initial: The child entered first (clusters only).
        terminal: A case may end here.
        rules: The rule ids the state cites.
    """

    id: StateId
    label: str
    summary: str
    kind: BoxKind
    parent: StateId | None = None
    children: tuple[StateId, ...] = ()
    initial: StateId | None = None
    terminal: bool = False
    rules: tuple[RuleId, ...] = ()

    @property
    def is_cluster(self) -> bool:
        """True for a box drawn with other boxes inside it (a stage or a region)."""
        return self.kind in ("stage", "region")


@dataclass(frozen=True, slots=True)
class Arrow:
    """One move as drawn: a transition from one of its sources.

    Attributes:
        transition: The transition id.
        trigger: The trigger that fires it.
        source: The drawn box it leaves from.
        dest: The drawn box it leads to (the source itself for a loop).
        rules: The rule ids the transition cites.
        timing: Timescale phrases, e.g. ``≤15 working days`` for a deadline this move
            must meet, ``from here ≤2 days`` for clocks it starts, ``every 28–42 days``
            for a repeating one it both ends and restarts.
        summary: The transition's summary from the procedure file.
        internal: The move records something without leaving the state.
    """

    transition: str
    trigger: TriggerId
    source: StateId
    dest: StateId
    rules: tuple[RuleId, ...]
    timing: tuple[str, ...]
    summary: str
    internal: bool = False

    @property
    def is_loop(self) -> bool:
        """True when the move leaves the case in the state it was in."""
        return self.source == self.dest

    @property
    def head(self) -> str:
        """The trigger and its timescales: ``icpc_opens · ≤15 working days``."""
        text = " · ".join((self.trigger, *self.timing))
        return f"{text} (internal)" if self.internal else text

    @property
    def rule_text(self) -> str:
        """The rule ids in brackets, e.g. ``[WM-2b, NCL-7.2.1]``; empty when there are none."""
        return f"[{', '.join(self.rules)}]" if self.rules else ""

    @property
    def label(self) -> str:
        """The whole label on one line: ``icpc_opens · ≤15 working days [WM-2b, ...]``."""
        return f"{self.head} {self.rule_text}".rstrip()


@dataclass(frozen=True)
class Diagram:
    """What one diagram shows, independent of the output format.

    Attributes:
        procedure: The procedure's id.
        title: The procedure's title.
        stage: The stage drawn, or None for the whole procedure.
        boxes: Every drawn box by state id: the drawn states, then boundary boxes.
        roots: The boxes at the top of the drawing, in order (main flow, regions, boundary).
        arrows: Every drawn move, in the order the transitions are written.
        initial: The state a new case starts in, when it is part of the drawing.
    """

    procedure: str
    title: str
    stage: StateId | None
    boxes: Mapping[StateId, Box]
    roots: tuple[StateId, ...]
    arrows: tuple[Arrow, ...]
    initial: StateId | None

    def within(self, box: StateId, outer: StateId) -> bool:
        """True when ``box`` is ``outer`` or drawn inside it."""
        current: StateId | None = box
        while current is not None:
            if current == outer:
                return True
            current = self.boxes[current].parent
        return False

    def loops_of(self, box: StateId) -> tuple[Arrow, ...]:
        """The moves that stay in ``box`` (internal transitions and self-loops)."""
        return tuple(a for a in self.arrows if a.is_loop and a.source == box)


def resolve_stage(proc: Procedure, stage: str) -> StateId:
    """The state id a ``--stage`` value names: an exact id, or a name used only once.

    Raises:
        InputError: when no state has that id or (unique) name; suggests the closest.
    """
    if stage in proc.states:
        return stage
    by_name = [sid for sid in proc.states if proc.states[sid].name == stage]
    if len(by_name) == 1:
        return by_name[0]
    choices = list(proc.states)
    hint = did_you_mean(stage, choices)
    if len(by_name) > 1:
        message = f"stage name is ambiguous; use the full id ({', '.join(by_name)})"
    else:
        message = "unknown stage: not a state of this procedure"
    raise InputError([Problem(_procedure_file(proc), None, "--stage", message, stage, hint)])


def _procedure_file(proc: Procedure) -> str:
    """The file that defines ``proc`` itself (the last of its provenance list)."""
    for name, _sha in proc.files:
        stem = name.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".yaml")
        if stem == proc.id:
            return name
    return proc.files[-1][0] if proc.files else proc.id


def build_diagram(proc: Procedure, stage: str | None = None) -> Diagram:
    """Choose and label what to draw: the whole procedure, or one stage and its boundary.

    Args:
        proc: The procedure.
        stage: A state id (compound or leaf; a name used only once also works), or None for
            the whole procedure.

    Returns:
        The drawing model shared by the Mermaid, DOT, PNG and SVG outputs.

    Raises:
        InputError: when ``stage`` names no state of the procedure.
    """
    root = resolve_stage(proc, stage) if stage is not None else None
    if root is None:
        scope = set(proc.states)
    else:
        scope = {sid for sid in proc.states if root in proc.ancestors(sid)}

    boxes: dict[StateId, Box] = {}
    for sid in _declared_order(proc, root):
        st = proc.states[sid]
        if st.region is not None and st.parent is None:
            kind: BoxKind = "region"
        else:
            kind = "stage" if st.is_compound else "state"
        parent = None if sid == root else st.parent
        label = st.name
        boxes[sid] = Box(sid, label, st.summary, kind, parent, st.children,
                         st.initial, st.terminal, st.rules)

    arrows: list[Arrow] = []
    boundary: list[StateId] = []
    timings = _timings(proc)
    for t in proc.transitions:
        for source in t.sources:
            drawn_source = source
            if root is not None and source != root and source in proc.ancestors(root):
                drawn_source = root  # "from anywhere in" an enclosing state includes the stage
            drawn_dest = drawn_source if t.internal else t.dest
            if drawn_source not in scope and drawn_dest not in scope:
                continue
            for end in (drawn_source, drawn_dest):
                if end not in scope and end not in boundary:
                    boundary.append(end)
            arrows.append(Arrow(t.id, t.trigger, drawn_source, drawn_dest, t.rules,
                                timings(t, source), t.summary, t.internal))

    for sid in boundary:
        st = proc.states[sid]
        boxes[sid] = Box(sid, sid, st.summary, "boundary", None, (), None, st.terminal, st.rules)
    if root is None:
        roots = tuple(sid for sid in boxes if proc.states[sid].parent is None
                      and proc.states[sid].region is None)
        roots += tuple(r for r in proc.regions if r in boxes)
    else:
        roots = (root, *boundary)
    initial = proc.initial if proc.initial in scope and boxes[proc.initial].parent is None else None
    return Diagram(proc.id, proc.title, root, MappingProxyType(boxes), roots, tuple(arrows),
                   initial)


def _declared_order(proc: Procedure, root: StateId | None) -> list[StateId]:
    """State ids parents-first, children in declared order (main flow, then regions)."""
    out: list[StateId] = []

    def visit(sid: StateId) -> None:
        out.append(sid)
        for child in proc.states[sid].children:
            visit(child)

    if root is not None:
        visit(root)
        return out
    for sid, st in proc.states.items():
        if st.parent is None and st.region is None:
            visit(sid)
    for region in proc.regions:
        if region in proc.states:
            visit(region)
    return out


# -- timescales on arrows ------------------------------------------------------------------


def _moves(proc: Procedure, source: StateId, t: Transition) -> set[EventRef]:
    """The enter and exit events that firing ``t`` from ``source`` is sure to cause."""
    if t.internal:
        return set()
    old = list(reversed(proc.ancestors(source)))
    new = list(reversed(proc.ancestors(proc.entry_leaf(t.dest))))
    common = 0
    while common < min(len(old), len(new)) and old[common] == new[common]:
        common += 1
    if t.dest in old:
        common = min(common, old.index(t.dest))
    top = proc.states[old[0]]
    common = max(common, 1 if top.region is not None and top.parent is None else 0)
    events = {EventRef("exit", s) for s in old[common:]}
    events |= {EventRef("enter", s) for s in new[common:]}
    return events


def bounds_text(deadline: Deadline) -> str:
    """A deadline's limits in short form: ``≤15 working days``, ``≥3 days``, ``28–42 days``.

    A deadline that applies only under a guard says so: ``≤5 working days if urgent``.
    """
    within, least = deadline.within, deadline.at_least
    if within is not None and least is not None:
        same = within.unit == least.unit
        text = f"{least.value}–{within}" if same else f"≥{least}, ≤{within}"
    elif within is not None:
        text = f"≤{within}"
    elif least is not None:
        text = f"≥{least}"
    else:
        text = "timed"
    return f"{text} if {deadline.when}" if deadline.when else text


def _timings(proc: Procedure) -> Callable[[Transition, StateId], tuple[str, ...]]:
    """A function giving the timescale phrases for a transition fired from a source."""

    def timing(t: Transition, source: StateId) -> tuple[str, ...]:
        events = _moves(proc, source, t)
        events.add(EventRef("trigger", t.trigger))
        ends: list[str] = []
        starts: list[str] = []
        for d in proc.deadlines:
            is_start, is_end = d.start in events, d.end in events
            text = bounds_text(d)
            if is_start and is_end and d.repeats:
                text = f"every {text}"
            if is_end:
                ends.append(text)
            elif is_start:
                starts.append(text)
        phrases: list[str] = []
        if ends:
            phrases.append(", ".join(_unique(ends)))
        if starts:
            phrases.append("from here " + ", ".join(_unique(starts)))
        return tuple(phrases)

    return timing


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


# -- Mermaid -----------------------------------------------------------------------------

_MERMAID_RESERVED = frozenset({
    "state", "note", "end", "direction", "class", "classdef", "style", "click", "as",
    "left", "right", "of", "hide", "scale", "accTitle", "accDescr", "default", "graph",
})
_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    ";": "#59;",
    ":": "#58;",
    "<": "#lt;",
    ">": "#gt;",
    "{": "#123;",
    "}": "#125;",
    "%": "#37;",
    "`": "#96;",
    "|": "#124;",
}


def mermaid_text(text: str) -> str:
    """Make free text safe inside a Mermaid label: one line, special characters as entities.

    >>> mermaid_text('say "no"; a: b')
    'say #quot;no#quot;#59; a#58; b'
    """
    flat = " ".join(text.split())
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in flat)


def _comment(text: str) -> str:
    """Text for a ``%%`` comment: one line, never a directive."""
    return " ".join(text.split()).replace("%%{", "%% {")


def _mermaid_ids(diagram: Diagram) -> dict[StateId, str]:
    """A Mermaid identifier for every box; clusters keep their plain name when it is unique."""
    ids: dict[StateId, str] = {}
    taken: set[str] = set()

    def claim(sid: StateId, wanted: str, fallback: str) -> None:
        for candidate in (wanted, fallback, f"s_{fallback}"):
            if candidate.lower() not in _MERMAID_RESERVED and candidate not in taken:
                break
        else:  # pragma: no cover - dotted paths are unique, so the prefixed form is free
            candidate = f"s{len(taken)}_{fallback}"
        ids[sid] = candidate
        taken.add(candidate)

    def safe(sid: StateId) -> str:
        return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in sid.replace(".", "__"))

    for sid, box in diagram.boxes.items():
        if not box.is_cluster:
            prefix = "b_" if box.kind == "boundary" else ""
            claim(sid, prefix + safe(sid), f"{prefix}s_{safe(sid)}")
    for sid, box in diagram.boxes.items():
        if box.is_cluster:
            name = safe(box.label)
            unique = sum(1 for b in diagram.boxes.values()
                         if b.is_cluster and b.label == box.label) == 1
            claim(sid, name if unique else safe(sid), safe(sid))
    return ids


def to_mermaid(proc: Procedure, stage: str | None) -> str:
    """Write the procedure, or one stage of it, as a Mermaid ``stateDiagram-v2``.

    Stages are composite states (``state icpc { ... }``); a parallel region is its own
    composite; boundary boxes carry the ``boundary`` class. Loops on simple states are
    self-transitions; loops on composite states are listed in a small box inside them.
    Every label is escaped with Mermaid entity codes, and each state's id and summary are
    kept in a ``%%`` comment beside its declaration.

    Args:
        proc: The procedure.
        stage: A state id to draw alone with its boundary, or None for the whole procedure.

    Returns:
        The diagram text, ending in a newline.

    Raises:
        InputError: when ``stage`` names no state of the procedure.
    """
    diagram = build_diagram(proc, stage)
    ids = _mermaid_ids(diagram)
    scope = f"stage {diagram.stage}" if diagram.stage else "whole procedure"
    title = diagram.title + (f" — {diagram.stage}" if diagram.stage else "")
    lines = [
        "---",
        f"title: {json.dumps(title, ensure_ascii=False)}",
        "---",
        "stateDiagram-v2",
        "    direction LR",
        f"    %% {_comment(diagram.procedure)}: {scope}",
        "    classDef boundary fill:#f4f4f4,stroke:#999999,stroke-dasharray:4 3,color:#555555",
        "    classDef terminal stroke-width:3px",
        "    classDef listed fill:#fffbe6,stroke:#c9b458,color:#5a4b00",
    ]
    if diagram.initial is not None:
        lines.append(f"    [*] --> {ids[diagram.initial]}")

    def declare(sid: StateId, depth: int) -> None:
        box = diagram.boxes[sid]
        pad = "    " * depth
        note = f"region {box.id} runs beside the main flow" if box.kind == "region" else box.id
        lines.append(f"{pad}%% {_comment(note)}: {_comment(box.summary)}")
        if not box.is_cluster:
            lines.append(f'{pad}state "{mermaid_text(box.label)}" as {ids[sid]}')
            return
        lines.append(f"{pad}state {ids[sid]} {{")
        if box.initial is not None and box.initial in diagram.boxes:
            lines.append(f"{pad}    [*] --> {ids[box.initial]}")
        for child in box.children:
            declare(child, depth + 1)
        loops = diagram.loops_of(sid)
        if loops:
            listed = f"{ids[sid]}__stays"
            lines.append(f'{pad}    state "↻ stays in {mermaid_text(box.label)}" as {listed}')
            lines.extend(f"{pad}    {listed} : {mermaid_text(a.label)}" for a in loops)
        for child in box.children:
            if diagram.boxes[child].terminal and not diagram.boxes[child].is_cluster:
                lines.append(f"{pad}    {ids[child]} --> [*]")
        lines.append(f"{pad}}}")

    for sid in diagram.roots:
        declare(sid, 1)
    for a in diagram.arrows:
        if a.is_loop and diagram.boxes[a.source].is_cluster:
            continue  # listed inside the composite (Mermaid cannot draw these reliably)
        lines.append(f"    {ids[a.source]} --> {ids[a.dest]} : {mermaid_text(a.label)}")
    for sid in diagram.roots:
        box = diagram.boxes[sid]
        if box.terminal and box.kind != "boundary" and not box.is_cluster:
            lines.append(f"    {ids[sid]} --> [*]")
    boundary = [ids[s] for s, b in diagram.boxes.items() if b.kind == "boundary"]
    terminal = [ids[s] for s, b in diagram.boxes.items() if b.terminal and b.kind == "state"]
    listed = [f"{ids[s]}__stays" for s, b in diagram.boxes.items()
              if b.is_cluster and diagram.loops_of(s)]
    for names, cls in ((boundary, "boundary"), (terminal, "terminal"), (listed, "listed")):
        if names:
            lines.append(f"    class {','.join(names)} {cls}")
    return "\n".join(lines) + "\n"


# -- DOT ---------------------------------------------------------------------------------


def dot_text(text: str) -> str:
    r"""Make text safe inside a DOT double-quoted string (backslashes, quotes, newlines).

    >>> dot_text('say "no" \\ done')
    'say \\"no\\" \\\\ done'
    """
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def _q(text: str) -> str:
    return f'"{dot_text(text)}"'


def _dot_label(lines: Iterable[str]) -> str:
    """Several lines as one quoted DOT label, each line escaped, joined by a DOT newline."""
    return '"' + "\\n".join(dot_text(line) for line in lines if line) + '"'


def to_dot(proc: Procedure, stage: str | None) -> str:
    """Write the procedure, or one stage of it, as a Graphviz ``digraph``.

    Stages and parallel regions are ``subgraph cluster_...``; arrows to or from a stage
    clip at its border (``compound=true`` with ``lhead``/``ltail``); a small dot marks each
    initial state and terminal states have a double border and an end marker. Loops on
    clusters are listed in a note inside them. Summaries become tooltips; every string is
    escaped for DOT.

    Args:
        proc: The procedure.
        stage: A state id to draw alone with its boundary, or None for the whole procedure.

    Returns:
        The diagram text, starting with ``digraph`` and ending in a newline.

    Raises:
        InputError: when ``stage`` names no state of the procedure.
    """
    diagram = build_diagram(proc, stage)
    title = diagram.title + (f" — stage {diagram.stage}" if diagram.stage else "")
    lines = [
        f"digraph {_q(diagram.procedure)} {{",
        f"    graph [rankdir=LR, compound=true, newrank=true, label={_q(title)}, labelloc=t,"
        ' fontname="Helvetica", fontsize=14, nodesep=0.3, ranksep=0.5];',
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#4a5a70",'
        ' fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9, color="#444444"];',
    ]

    def anchor(sid: StateId) -> str:
        """A node that stands for ``sid``: its start dot for a cluster, itself otherwise."""
        return f"{sid}.__start" if diagram.boxes[sid].is_cluster else sid

    def declare(sid: StateId, depth: int) -> None:
        box = diagram.boxes[sid]
        pad = "    " * depth
        if not box.is_cluster:
            attrs = [f"label={_q(box.label)}", f"tooltip={_q(box.summary)}"]
            if box.kind == "boundary":
                attrs += ['style="rounded,dashed,filled"', 'fillcolor="#f4f4f4"',
                          'color="#999999"', 'fontcolor="#555555"', "fontsize=9"]
            if box.terminal:
                attrs.append("peripheries=2")
            lines.append(f"{pad}{_q(sid)} [{', '.join(attrs)}];")
            return
        fill = "#fbf3e4" if box.kind == "region" else "#eef2f8"
        label = f"{box.label} (parallel region)" if box.kind == "region" else box.label
        lines.append(f"{pad}subgraph {_q('cluster_' + sid)} {{")
        lines.append(f"{pad}    label={_q(label)}; tooltip={_q(box.summary)};"
                     f' style="rounded,filled"; fillcolor="{fill}"; color="#8aa0c0";')
        lines.append(f'{pad}    {_q(anchor(sid))} [shape=point, width=0.12, label="",'
                     ' color="#222222"];')
        for child in box.children:
            declare(child, depth + 1)
        loops = diagram.loops_of(sid)
        if loops:
            text = "".join(f"↻ {dot_text(a.label)}\\l" for a in loops)
            lines.append(f'{pad}    {_q(sid + ".__stays")} [shape=note, style=filled,'
                         f' fillcolor="#fffbe6", color="#c9b458", fontsize=9, label="{text}"];')
        if box.initial is not None and box.initial in diagram.boxes:
            lines.append(f"{pad}    {_q(anchor(sid))} -> {_q(anchor(box.initial))}"
                         f"{_attrs(_clip(diagram, None, box.initial))};")
        ends = [c for c in box.children if diagram.boxes[c].terminal
                and not diagram.boxes[c].is_cluster]
        if ends:
            lines.append(f"{pad}    {_q(sid + '.__end')} [shape=doublecircle, width=0.1,"
                         ' label="", style=filled, fillcolor="#222222"];')
            lines.extend(f"{pad}    {_q(c)} -> {_q(sid + '.__end')};" for c in ends)
        lines.append(f"{pad}}}")

    if diagram.initial is not None:
        lines.append('    "__start" [shape=point, width=0.15, label="", color="#222222"];')
        lines.append(f"    \"__start\" -> {_q(anchor(diagram.initial))}"
                     f"{_attrs(_clip(diagram, None, diagram.initial))};")
    for sid in diagram.roots:
        declare(sid, 1)
    for a in diagram.arrows:
        if a.is_loop and diagram.boxes[a.source].is_cluster:
            continue
        attrs = [f"label={_dot_label((a.head, a.rule_text))}", f"tooltip={_q(a.summary)}",
                 *_clip(diagram, a.source, a.dest)]
        lines.append(f"    {_q(anchor(a.source))} -> {_q(anchor(a.dest))}{_attrs(attrs)};")
    top_ends = [s for s in diagram.roots if diagram.boxes[s].terminal
                and diagram.boxes[s].kind == "state"]
    if top_ends:
        lines.append('    "__end" [shape=doublecircle, width=0.1, label="", style=filled,'
                     ' fillcolor="#222222"];')
        lines.extend(f'    {_q(s)} -> "__end";' for s in top_ends)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _clip(diagram: Diagram, source: StateId | None, dest: StateId) -> list[str]:
    """``lhead``/``ltail`` attributes so an arrow to or from a cluster stops at its border."""
    attrs: list[str] = []
    if source is not None and diagram.boxes[source].is_cluster and not diagram.within(
            dest, source):
        attrs.append(f"ltail={_q('cluster_' + source)}")
    if diagram.boxes[dest].is_cluster and (source is None or not diagram.within(source, dest)):
        attrs.append(f"lhead={_q('cluster_' + dest)}")
    return attrs


def _attrs(attrs: list[str]) -> str:
    return f" [{', '.join(attrs)}]" if attrs else ""

