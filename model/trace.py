"""Which cited rules each element enforces, and how: the classifier and the rule trace matrix.

A rule an element cites is a promise (``docs/citations.md``): the element must *enforce* it. For
an element E citing rule R whose registry kinds are K (S structural, D deadline, I invariant,
R resource, Q quality), :func:`classify` returns how E enforces R:

* a **deadline** enforces R as ``deadline`` when D is in K;
* a **property** always enforces R as ``property`` (it is checked over every path);
* a **transition** enforces R as ``structure`` when S is in K; as ``resource`` (``record``)
  when R (Q) is in K and it has ``resources`` (``records``); as ``deadline`` when D is in K
  and a deadline citing R starts, ends or is cancelled by its trigger; as ``property`` when I
  is in K and a property citing R refers to it (its trigger, its source or destination
  states, or a record it makes);
* a **state or region** enforces R as ``structure`` when S is in K; as ``deadline`` when D
  is in K and a deadline citing R starts, ends or is cancelled on entering or leaving it (or
  a state inside it), or by the trigger of a move into, out of or inside it; as ``property``
  when I is in K and a property citing R refers to it or a state inside it (``scope``,
  ``state``, ``order``, ``exits``, enter and exit events); as ``resource`` (``record``) when
  R (Q) is in K and a move into, out of or inside it cites R and has ``resources``
  (``records``).

"Inside" a state means the state itself or any state below it. A move is *into* E when its
destination (or the leaf it lands in) is inside E, *out of* E when one of its sources is
inside E or encloses E (a compound source fires from any state within it).

A citation that fits no row is not enforced: the loader rejects it (:func:`unenforced` gives
each with a message saying what would make it valid). :func:`trace` builds the matrix of every
rule in the registry, encoded or not and why; :func:`check_encoding` turns its gaps into
``cpsim check`` findings. Everything here is pure: no file is read except the shipped rule
registry, and nothing is printed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal, TypeAlias

from model.findings import Finding
from model.graph import possible_events
from model.rules import SOURCE_TITLES, Rule, load_rules
from model.spec import Basis, Deadline, EventRef, Origin, Procedure, Property, State, Transition
from model.types import RuleId, StateId

EnforcementKind = Literal["structure", "deadline", "property", "record", "resource"]
ENFORCEMENT_KINDS: tuple[EnforcementKind, ...] = (
    "structure",
    "deadline",
    "property",
    "record",
    "resource",
)
ElementKind = Literal["state", "region", "transition", "deadline", "property"]
Element: TypeAlias = State | Transition | Deadline | Property
Status = Literal["encoded", "not encoded"]

SOURCE_NOT_USED = "source not used by this procedure"
NO_REASON = "NOT ENCODED and no reason given"

_KIND_NAMES = {"S": "structural", "D": "deadline", "I": "invariant", "R": "resource",
               "Q": "quality"}


@dataclass(frozen=True, slots=True)
class Citation:
    """One rule cited by one element, and how the element enforces it.

    Attributes:
        element_kind: ``state``, ``region``, ``transition``, ``deadline`` or ``property``.
        element_id: The element's id in the procedure.
        rule: The cited rule id.
        index: The rule's position in the element's ``rules``.
        origin: Where the element was written.
        how: The enforcement kinds, in :data:`ENFORCEMENT_KINDS` order; empty when the
            element does not enforce the rule.
        summary: The element's summary.
    """

    element_kind: ElementKind
    element_id: str
    rule: RuleId
    index: int
    origin: Origin
    how: tuple[EnforcementKind, ...]
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Unenforced:
    """A citation its element does not enforce, with what would make it valid.

    Attributes:
        element_kind: The citing element's kind.
        element_id: The citing element's id.
        rule: The rule it cites.
        index: The rule's position in the element's ``rules``.
        origin: Where the element was written.
        message: "cites R (kind K) but does not enforce it here: ..." and the fix.
    """

    element_kind: ElementKind
    element_id: str
    rule: RuleId
    index: int
    origin: Origin
    message: str


@dataclass(frozen=True, slots=True)
class Encoding:
    """One element that enforces a rule, and how."""

    element_kind: ElementKind
    element_id: str
    how: tuple[EnforcementKind, ...]
    origin: Origin
    summary: str = ""


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One rule of the registry in one procedure.

    Attributes:
        rule: The rule id.
        source: Its source code.
        kinds: Its registry kinds (letters).
        status: ``encoded`` when some element enforces it, else ``not encoded``.
        encodings: The elements that enforce it (empty when not encoded).
        reason: For a rule not encoded, why: the procedure's own reason (``not_encoded``),
            :data:`SOURCE_NOT_USED`, or :data:`NO_REASON`. For an encoded rule also listed in
            ``not_encoded``, that listed reason.
        failure: Not encoded, of a source the procedure uses, and no reason given.
        conflict: Encoded and yet listed in ``not_encoded``.
    """

    rule: RuleId
    source: str
    kinds: tuple[str, ...]
    status: Status
    encodings: tuple[Encoding, ...] = ()
    reason: str = ""
    failure: bool = False
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class SourceCount:
    """How much of one source a procedure encodes.

    Attributes:
        source: The source code.
        title: The source document's title.
        used: The procedure draws on this source.
        rules: Rules of the source in the registry.
        encoded: Rules enforced by some element.
        not_encoded: Rules not enforced (whatever the reason).
        unexplained: Rules of a used source neither enforced nor given a reason.
        by_how: For each enforcement kind, how many encoded rules are enforced that way.
    """

    source: str
    title: str
    used: bool
    rules: int
    encoded: int
    not_encoded: int
    unexplained: int
    by_how: tuple[tuple[EnforcementKind, int], ...]


@dataclass(frozen=True, slots=True)
class BasisRow:
    """An element that carries a ``basis`` (a move, number or stage no source states)."""

    element_kind: ElementKind
    element_id: str
    kind: str
    note: str
    origin: Origin


@dataclass(frozen=True)
class TraceMatrix:
    """Every rule of the registry against one procedure: where it is encoded and how, or why not.

    Attributes:
        procedure: The procedure's id.
        title: Its title.
        sources: The sources it uses (declared, or else every source it cites).
        sources_declared: Whether the procedure declares ``sources``.
        rows: One row per rule of the registry: sources in ``SOURCE_TITLES`` order, each
            source's rules in registry order.
        counts: One count per source, in :data:`model.rules.SOURCE_TITLES` order.
        bases: The elements that carry a ``basis``, in declared order.
    """

    procedure: str
    title: str
    sources: tuple[str, ...]
    sources_declared: bool
    rows: tuple[TraceRow, ...]
    counts: tuple[SourceCount, ...]
    bases: tuple[BasisRow, ...] = ()

    @property
    def failures(self) -> tuple[TraceRow, ...]:
        """Rules of a used source neither enforced nor listed in ``not_encoded``."""
        return tuple(r for r in self.rows if r.failure)


# -- elements and their relations ----------------------------------------------------------
def is_region(state: State) -> bool:
    """True for a region's root (an orthogonal region, not a stage a case is in)."""
    return state.parent is None and state.region is not None


def element_kind(element: Element) -> ElementKind:
    """The kind of an element, as the classifier and the trace name it."""
    if isinstance(element, State):
        return "region" if is_region(element) else "state"
    if isinstance(element, Transition):
        return "transition"
    if isinstance(element, Deadline):
        return "deadline"
    return "property"


def elements(procedure: Procedure) -> Iterator[Element]:
    """Every element in declared order: states and regions, transitions, deadlines, properties."""
    yield from procedure.states.values()
    yield from procedure.transitions
    yield from procedure.deadlines
    yield from procedure.properties


def _inside(procedure: Procedure, state: StateId, container: StateId) -> bool:
    """``state`` is ``container`` or a state below it."""
    return state in procedure.states and container in procedure.ancestors(state)


def _involves(procedure: Procedure, t: Transition, state: StateId) -> bool:
    """``t`` moves into, out of or inside ``state``."""
    for s in t.sources:
        if _inside(procedure, s, state) or _inside(procedure, state, s):
            return True
    if _inside(procedure, t.dest, state):
        return True
    return t.dest in procedure.states and _inside(procedure, procedure.entry_leaf(t.dest), state)


def _events(d: Deadline) -> tuple[EventRef, ...]:
    return (d.start, d.end, *d.cancelled_by)


def _property_events(p: Property) -> tuple[EventRef, ...]:
    return tuple(ev for ev in (p.of, p.requires, p.then) if ev is not None)


def _property_states(p: Property) -> tuple[StateId, ...]:
    """Every state a property refers to: scope, state, order, exits, enter and exit events."""
    named = [p.scope, p.state, *p.order, *p.exits]
    named += [ev.name for ev in _property_events(p) if ev.kind != "trigger"]
    return tuple(s for s in named if s is not None)


def _property_records(p: Property) -> frozenset[str]:
    names = {n for group in p.records_any for n in group} | set(p.also)
    if p.if_records is not None:
        names.add(p.if_records)
    return frozenset(names)


def _property_refers_to_state(procedure: Procedure, p: Property, state: StateId) -> bool:
    return any(_inside(procedure, s, state) for s in _property_states(p))


def _property_refers_to_transition(procedure: Procedure, p: Property, t: Transition) -> bool:
    if any(ev.kind == "trigger" and ev.name == t.trigger for ev in _property_events(p)):
        return True
    if any(_involves(procedure, t, s) for s in _property_states(p)):
        return True
    return bool(set(t.records) & _property_records(p))


def _deadline_touches_transition(procedure: Procedure, d: Deadline, t: Transition) -> bool:
    """``t`` starts, stops or cancels ``d``'s clock, by its trigger or a state it crosses."""
    caused = possible_events(procedure, t)
    return any(ev in caused for ev in _events(d))


def _deadline_touches_state(procedure: Procedure, d: Deadline, state: StateId) -> bool:
    for ev in _events(d):
        if ev.kind != "trigger":
            if _inside(procedure, ev.name, state):
                return True
        elif any(t.trigger == ev.name and _involves(procedure, t, state)
                 for t in procedure.transitions):
            return True
    return False


# -- the classifier ------------------------------------------------------------------------
def classify(procedure: Procedure, element: Element, rule: Rule) -> tuple[EnforcementKind, ...]:
    """How ``element`` enforces ``rule`` in ``procedure``; empty when it does not.

    Args:
        procedure: The whole procedure (other elements decide some rows of the table).
        element: A state, region, transition, deadline or property of ``procedure``.
        rule: The cited rule, with its registry kinds.

    Returns:
        The enforcement kinds, in :data:`ENFORCEMENT_KINDS` order.
    """
    k = set(rule.kind)
    rid = rule.id
    how: set[EnforcementKind] = set()
    deadlines = [d for d in procedure.deadlines if rid in d.rules]
    properties = [p for p in procedure.properties if rid in p.rules]
    if isinstance(element, Deadline):
        if "D" in k:
            how.add("deadline")
    elif isinstance(element, Property):
        how.add("property")
    elif isinstance(element, Transition):
        t = element
        if "S" in k:
            how.add("structure")
        if "R" in k and t.resources:
            how.add("resource")
        if "Q" in k and t.records:
            how.add("record")
        if "D" in k and any(_deadline_touches_transition(procedure, d, t) for d in deadlines):
            how.add("deadline")
        if "I" in k and any(_property_refers_to_transition(procedure, p, t)
                            for p in properties):
            how.add("property")
    else:
        sid = element.id
        if "S" in k:
            how.add("structure")
        if "D" in k and any(_deadline_touches_state(procedure, d, sid) for d in deadlines):
            how.add("deadline")
        if "I" in k and any(_property_refers_to_state(procedure, p, sid) for p in properties):
            how.add("property")
        if k & {"R", "Q"}:
            moves = [t for t in procedure.transitions
                     if rid in t.rules and _involves(procedure, t, sid)]
            if "R" in k and any(t.resources for t in moves):
                how.add("resource")
            if "Q" in k and any(t.records for t in moves):
                how.add("record")
    return tuple(h for h in ENFORCEMENT_KINDS if h in how)


def _kind_text(rule: Rule) -> str:
    label = "kinds" if len(rule.kind) > 1 else "kind"
    return f"{label} {', '.join(rule.kind)}"


def explain_unenforced(procedure: Procedure, element: Element, rule: Rule) -> str:
    """Why ``element`` does not enforce ``rule``, and what would: for someone fixing YAML."""
    rid = rule.id
    kind = element_kind(element)
    why: list[str] = []
    fix: list[str] = []
    if isinstance(element, Deadline):
        why.append("a deadline enforces only deadline (D) rules")
        fix.append(f"cite {rid} on the move, stage or property that enforces it")
    elif isinstance(element, Transition):
        t = element
        for letter in rule.kind:
            if letter == "D":
                why.append(f"no deadline citing {rid} starts, ends or is cancelled by this "
                           f"transition's trigger ({t.trigger})")
                fix.append(f"add a deadline citing {rid} whose from, to or cancelled_by is "
                           f"{{trigger: {t.trigger}}}")
            elif letter == "I":
                why.append(f"no property citing {rid} refers to this transition (its trigger, "
                           "its source or destination states, or a record it makes)")
                fix.append(f"declare a property citing {rid} that refers to it")
            elif letter == "R":
                why.append("the transition has no `resources`")
                fix.append("add the `resources` it needs")
            elif letter == "Q":
                why.append("the transition has no `records`")
                fix.append("add the `records` it makes")
    elif isinstance(element, State):
        sid = element.id
        for letter in rule.kind:
            if letter == "D":
                why.append(f"no deadline citing {rid} starts, ends or is cancelled on entering "
                           f"or leaving {sid} (or a state inside it), or by a move into, out of "
                           "or inside it")
                fix.append(f"add such a deadline citing {rid}")
            elif letter == "I":
                why.append(f"no property citing {rid} refers to {sid} or a state inside it")
                fix.append(f"declare a property citing {rid} that refers to it")
            elif letter in ("R", "Q"):
                field = "resources" if letter == "R" else "records"
                why.append(f"no move into, out of or inside {sid} cites {rid} and has "
                           f"`{field}`")
                fix.append(f"cite {rid} on such a move with `{field}`")
    if not why:  # pragma: no cover - every (element, kind) pair is covered above
        why.append("no row of the table applies")
    fixes = "; or ".join([*fix, f"stop citing {rid} on this {kind}"])
    return (f"cites {rid} ({_kind_text(rule)}) but does not enforce it here: "
            f"{'; '.join(why)}. To fix: {fixes}")


def citations(procedure: Procedure,
              rules: Mapping[RuleId, Rule] | None = None) -> tuple[Citation, ...]:
    """Every (element, cited rule) of ``procedure`` with how it is enforced, in declared order.

    A rule id missing from the registry (possible only in a procedure not built by the
    loader) is left out.
    """
    registry = load_rules() if rules is None else rules
    out: list[Citation] = []
    for element in elements(procedure):
        for index, rid in enumerate(element.rules):
            rule = registry.get(rid)
            if rule is None:
                continue
            out.append(Citation(element_kind(element), element.id, rid, index, element.origin,
                                classify(procedure, element, rule), element.summary))
    return tuple(out)


def unenforced(procedure: Procedure,
               rules: Mapping[RuleId, Rule] | None = None) -> list[Unenforced]:
    """Every citation of ``procedure`` its element does not enforce, in declared order."""
    registry = load_rules() if rules is None else rules
    out: list[Unenforced] = []
    for element in elements(procedure):
        for index, rid in enumerate(element.rules):
            rule = registry.get(rid)
            if rule is None or classify(procedure, element, rule):
                continue
            out.append(Unenforced(element_kind(element), element.id, rid, index,
                                  element.origin,
                                  explain_unenforced(procedure, element, rule)))
    return out


# -- sources and the matrix -----------------------------------------------------------------
def _source_order(codes: set[str]) -> tuple[str, ...]:
    known = [c for c in SOURCE_TITLES if c in codes]
    return (*known, *sorted(codes - set(known)))


def cited_sources(procedure: Procedure,
                  rules: Mapping[RuleId, Rule] | None = None) -> tuple[str, ...]:
    """The sources of every rule the procedure cites, in ``SOURCE_TITLES`` order."""
    registry = load_rules() if rules is None else rules
    return _source_order({registry[r].source for r in procedure.rule_ids() if r in registry})


def used_sources(procedure: Procedure,
                 rules: Mapping[RuleId, Rule] | None = None) -> tuple[str, ...]:
    """The sources a procedure draws on: those it declares, or else every source it cites."""
    return procedure.sources or cited_sources(procedure, rules)


def trace(procedure: Procedure, rules: Mapping[RuleId, Rule] | None = None) -> TraceMatrix:
    """The trace matrix: every rule of the registry, encoded where and how, or why not."""
    registry = load_rules() if rules is None else rules
    used = used_sources(procedure, registry)
    by_rule: dict[RuleId, list[Encoding]] = {}
    for c in citations(procedure, registry):
        if c.how:
            by_rule.setdefault(c.rule, []).append(
                Encoding(c.element_kind, c.element_id, c.how, c.origin, c.summary))
    rows: list[TraceRow] = []
    order = {code: i for i, code in enumerate(_source_order({r.source for r in
                                                              registry.values()}))}
    for rid, rule in sorted(registry.items(), key=lambda item: order[item[1].source]):
        encodings = tuple(by_rule.get(rid, ()))
        listed = procedure.not_encoded.get(rid)
        if encodings:
            rows.append(TraceRow(rid, rule.source, rule.kind, "encoded", encodings,
                                 listed or "", conflict=listed is not None))
        elif rule.source not in used:
            rows.append(TraceRow(rid, rule.source, rule.kind, "not encoded",
                                 reason=SOURCE_NOT_USED))
        elif listed is not None:
            rows.append(TraceRow(rid, rule.source, rule.kind, "not encoded", reason=listed))
        else:
            rows.append(TraceRow(rid, rule.source, rule.kind, "not encoded", reason=NO_REASON,
                                 failure=True))
    counts: list[SourceCount] = []
    for source in _source_order({r.source for r in registry.values()}):
        mine = [r for r in rows if r.source == source]
        encoded = [r for r in mine if r.status == "encoded"]
        by_how = tuple(
            (h, sum(1 for r in encoded if any(h in e.how for e in r.encodings)))
            for h in ENFORCEMENT_KINDS
        )
        counts.append(SourceCount(source, SOURCE_TITLES.get(source, source), source in used,
                                  len(mine), len(encoded), len(mine) - len(encoded),
                                  sum(1 for r in mine if r.failure), by_how))
    bases = tuple(
        BasisRow(element_kind(e), e.id, e.basis.kind, e.basis.note, e.origin)
        for e in elements(procedure) if isinstance(e.basis, Basis)
    )
    return TraceMatrix(procedure.id, procedure.title, used, bool(procedure.sources),
                       tuple(rows), tuple(counts), bases)


def check_encoding(procedure: Procedure,
                   rules: Mapping[RuleId, Rule] | None = None) -> list[Finding]:
    """``cpsim check`` findings about what the procedure encodes (check name ``encoding``).

    An error for: no ``sources`` declared; each rule of a used source neither enforced nor
    listed in ``not_encoded``; each rule listed in ``not_encoded`` and yet enforced.
    """
    registry = load_rules() if rules is None else rules
    matrix = trace(procedure, registry)
    out: list[Finding] = []
    if not matrix.sources_declared:
        cited = ", ".join(matrix.sources)
        out.append(Finding(
            "encoding", "error",
            f"declare sources: the procedure names no `sources:`, so every source it cites "
            f"counts as used; add `sources: [{cited}]` (or the sources it draws on)"))
    for row in matrix.rows:
        if row.failure:
            out.append(Finding(
                "encoding", "error",
                f"{row.rule} ({row.source}, {_kind_text(registry[row.rule])}) is neither "
                "enforced by any element nor listed in `not_encoded`: encode it, or add "
                f'`{row.rule}: "reason"` to `not_encoded`', (row.rule,)))
        elif row.conflict:
            where = ", ".join(f"{e.element_kind} {e.element_id}" for e in row.encodings)
            out.append(Finding(
                "encoding", "error",
                f"{row.rule} is listed in `not_encoded` but enforced by {where}: remove it "
                "from `not_encoded` or stop citing it", (row.rule,)))
    return out


# -- renderers -------------------------------------------------------------------------------
def where_text(origin: Origin) -> str:
    """``file:line`` with the file's name only, so the output does not depend on the cwd."""
    return f"{PurePath(origin.file).name}:{origin.line}"


def _md(text: str) -> str:
    """Text safe in a Markdown table cell: no pipes, no raw HTML, one line."""
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "|", "\\|")


def _encoding_text(e: Encoding) -> str:
    return f"{e.element_kind} `{e.element_id}` ({', '.join(e.how)}) at {where_text(e.origin)}"


def _counts_head(first: str, second: str, not_encoded: str) -> list[str]:
    """Head of a table of :class:`SourceCount` rows, for ``cpsim trace`` and the summary.

    Two naming columns, the rule counts (``not_encoded`` heads the count of rules left
    out), then one column per enforcement kind.
    """
    return [f"| {first} | {second} | Rules | Encoded | {not_encoded} | No reason | "
            + " | ".join(ENFORCEMENT_KINDS) + " |",
            "|---|---|---:|---:|---:|---:|" + "---:|" * len(ENFORCEMENT_KINDS)]


def _counts_row(first: str, second: str, c: SourceCount, not_encoded: int) -> str:
    """One row under :func:`_counts_head`."""
    return (f"| {first} | {second} | {c.rules} | {c.encoded} | {not_encoded} | "
            f"{c.unexplained} | " + " | ".join(str(n) for _, n in c.by_how) + " |")


def trace_markdown(matrix: TraceMatrix) -> str:
    """The matrix as Markdown: sources, per-source counts, then one row per rule."""
    lines = [
        "<!-- Generated by `cpsim trace` from the procedure file and model/rules.yaml; "
        "do not edit. -->",
        f"# Rule trace: {_md(matrix.title)}",
        "",
        f"Procedure `{matrix.procedure}`. Each rule of the registry (`model/rules.yaml`) with "
        "the elements that enforce it and how (`docs/citations.md`), or why it is not encoded.",
        "",
    ]
    if matrix.sources_declared:
        lines.append("Sources: " + "; ".join(
            f"{s} ({_md(SOURCE_TITLES.get(s, s))})" for s in matrix.sources) + ".")
    else:
        lines.append("**Sources not declared**: counted as every source it cites ("
                     + ", ".join(matrix.sources) + "). Declare `sources:`.")
    failures = matrix.failures
    verdict = (
        f"**{len(failures)} rule{'s' if len(failures) != 1 else ''} of a used source "
        "neither encoded nor explained.**"
        if failures else "Every rule of a used source is encoded or has a reason."
    )
    lines += [
        "",
        verdict,
        "",
        "## By source",
        "",
        *_counts_head("Source", "Used", "Not encoded"),
    ]
    lines += [_counts_row(c.source, "yes" if c.used else "no", c, c.not_encoded)
              for c in matrix.counts]
    lines += [
        "",
        "## Rules",
        "",
        "| Rule | Source | Kind | Status | Where and how, or why not |",
        "|---|---|---|---|---|",
    ]
    for row in matrix.rows:
        if row.status == "encoded":
            detail = "<br>".join(_encoding_text(e) for e in row.encodings)
            if row.conflict:
                detail += f"<br>**also listed in `not_encoded`**: {_md(row.reason)}"
            status = "encoded"
        else:
            detail = f"**{NO_REASON}**" if row.failure else _md(row.reason)
            status = "**not encoded**" if row.failure else "not encoded"
        lines.append(f"| `{row.rule}` | {row.source} | {''.join(row.kinds)} | {status} | "
                     f"{detail} |")
    if matrix.bases:
        lines += [
            "",
            "## Elements resting on a basis (no source states them)",
            "",
            "| Element | Basis | Note | Where |",
            "|---|---|---|---|",
        ]
        for b in matrix.bases:
            lines.append(f"| {b.element_kind} `{b.element_id}` | {b.kind} | {_md(b.note)} | "
                         f"{where_text(b.origin)} |")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("rule", "source", "kinds", "status", "element_kind", "element_id", "how",
               "origin", "reason")
"""The columns of :func:`trace_csv`: one line per (rule, enforcing element), or per rule."""


def trace_csv(matrix: TraceMatrix) -> str:
    """The matrix as CSV: one line per rule and enforcing element; one per rule not encoded."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for row in matrix.rows:
        kinds = "+".join(row.kinds)
        if row.status == "encoded":
            for e in row.encodings:
                w.writerow([row.rule, row.source, kinds, row.status, e.element_kind,
                            e.element_id, "+".join(e.how), where_text(e.origin), row.reason])
        else:
            w.writerow([row.rule, row.source, kinds, row.status, "", "", "", "", row.reason])
    return buf.getvalue()


def kind_names(kinds: tuple[str, ...]) -> str:
    """The registry kinds spelt out, e.g. ``structural, invariant``."""
    return ", ".join(_KIND_NAMES.get(k, k) for k in kinds)


def faithfulness_markdown(matrices: Sequence[TraceMatrix]) -> str:
    """How faithful every procedure is: per procedure and used source, what is encoded.

    Rules encoded (and how) and not encoded (with a reason), then every basis by kind.

    This is the text of ``docs/trace/README.md`` and of the README's "How faithful is it"
    section, so both always agree with ``cpsim trace``.
    """
    lines = _counts_head("Procedure", "Source", "Not encoded (reason given)")
    lines += [_counts_row(f"`{m.procedure}`", c.source, c, c.not_encoded - c.unexplained)
              for m in matrices for c in m.counts if c.used]
    lines += [
        "",
        "Elements that rest on a basis instead of (or beside) a cited rule:",
        "",
        "| Procedure | assumption | local-standard |",
        "|---|---:|---:|",
    ]
    for m in matrices:
        kinds = [b.kind for b in m.bases]
        lines.append(f"| `{m.procedure}` | {kinds.count('assumption')} | "
                     f"{kinds.count('local-standard')} |")
    return "\n".join(lines) + "\n"
