"""Read procedure files: resolve ``extends`` and ``include``, normalise, validate, construct.

Every problem in a file is collected and reported together, each naming the file, line,
field and offending value, with "did you mean" for near-miss names. Nothing in a file is
evaluated as code: guards are names looked up in :mod:`model.guards`.

Every element cites ``rules``, gives a ``basis``, or both; a cited rule must come from one of
the file's ``sources`` (when it declares them) and, once the whole procedure is built, must be
enforced by its element (:func:`model.trace.unenforced`, the table of ``docs/citations.md``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from model.errors import InputError, Problem, did_you_mean
from model.guards import GUARDS
from model.rules import SOURCE_TITLES, load_rules
from model.spec import (
    BASIS_KINDS,
    CIN_EVENT_TYPES,
    MANAGER_LEVELS,
    PATTERNS,
    ROLES,
    Basis,
    BasisKind,
    CinEvent,
    Deadline,
    EventKind,
    EventRef,
    ManagerLevel,
    Origin,
    Pattern,
    Procedure,
    Property,
    ResourceNeed,
    Role,
    State,
    Transition,
)
from model.trace import unenforced, used_sources
from model.types import DURATION_UNITS, Duration, RuleId, StateId
from model.yamlsrc import LList, LMap, Where, load_yaml_text

BUILTIN_DIR = Path(__file__).resolve().parent / "procedures"
"""Where the shipped procedures live."""

TOP_KEYS = (
    "procedure",
    "title",
    "description",
    "extends",
    "initial",
    "states",
    "regions",
    "transitions",
    "deadlines",
    "properties",
    "sources",
    "not_encoded",
    "cin_flat",
)
STATE_KEYS = ("rules", "basis", "summary", "terminal", "initial", "states", "include",
              "exhaustive")
REGION_KEYS = ("rules", "basis", "summary", "initial", "states")
TRANSITION_KEYS = (
    "trigger",
    "source",
    "dest",
    "guard",
    "when_in",
    "rules",
    "basis",
    "summary",
    "resources",
    "records",
    "internal",
)
RESOURCE_KEYS = ("role", "level", "agencies", "when")
DEADLINE_KEYS = (
    "from",
    "to",
    "within",
    "at_least",
    "when",
    "repeats",
    "cancelled_by",
    "rules",
    "basis",
    "summary",
)
PROPERTY_KEYS = (
    "pattern",
    "of",
    "requires",
    "then",
    "scope",
    "records_any",
    "if_records",
    "also",
    "order",
    "exits",
    "state",
    "rules",
    "basis",
    "summary",
)
BASIS_KEYS = ("kind", "note")
CIN_FLAT_KEYS = ("events", "activities")
PATTERN_FIELDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # pattern: (required fields, optional fields)
    "absence": (("of",), ()),
    "existence": (("of",), ()),
    "precedence": (("of", "requires"), ()),
    "response": (("of", "then"), ()),
    "never_ends_without": (("scope", "records_any"), ()),
    "co_recorded": (("if_records", "also"), ()),
    "monotone": (("order",), ("exits",)),
    "final": (("state",), ()),
}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def available_procedures() -> tuple[str, ...]:
    """Names of the shipped procedures, sorted."""
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_procedure_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """Find a procedure file from a shipped name or a path.

    A bare name (no slash, no ``.yaml``) is looked up among the shipped procedures, then
    beside ``relative_to`` (the file that mentions it, for ``extends`` and ``include``).

    Raises:
        InputError: when no such procedure exists, with the closest shipped name.
    """
    text = str(name_or_path)
    candidate = Path(text)
    looks_like_path = "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path:
        if relative_to is not None and not candidate.is_absolute():
            beside = relative_to.parent / candidate
            if beside.is_file():
                return beside
        if candidate.is_file():
            return candidate
    else:
        builtin = BUILTIN_DIR / f"{text}.yaml"
        if builtin.is_file():
            return builtin
        if relative_to is not None:
            beside = relative_to.parent / f"{text}.yaml"
            if beside.is_file():
                return beside
    raise InputError(
        [
            Problem(
                str(name_or_path),
                None,
                "",
                "no such procedure (a shipped name or a path to a .yaml file)",
                text,
                did_you_mean(text, available_procedures()),
            )
        ]
    )


ATOMIC_KEYS = frozenset({"within", "at_least", "from", "to", "of", "requires", "then"})
"""Mapping-valued fields that are single values (a duration, an event): replaced whole."""


def merge(base: LMap, over: LMap, atomic: frozenset[str] = ATOMIC_KEYS) -> LMap:
    """Deep-merge ``over`` onto ``base``: mappings merge key by key, anything else replaces.

    A mapping ``{remove: true}`` in ``over`` deletes that key from ``base``. Durations and
    events (``within``, ``from``, ...) are values and replace rather than merge. Each key
    keeps the file and line it came from. ``atomic`` names the keys whose mapping values
    replace rather than merge.
    """
    out = LMap(over.file, over.line)
    for key, value in base.items():
        out[key] = value
        out.where[key] = base.at(key)
    for key, value in over.items():
        if isinstance(value, LMap) and value.get("remove") is True and len(value) == 1:
            out.pop(key, None)
            out.where.pop(key, None)
            continue
        if isinstance(value, LMap) and isinstance(out.get(key), LMap) and key not in atomic:
            out[key] = merge(out[key], value, atomic)
        else:
            out[key] = value
        out.where[key] = over.at(key)
    return out


class _Builder:
    """Normalise, validate and construct one procedure, collecting every problem."""

    def __init__(self, name: str, raw: LMap, chain: tuple[str, ...], stack: tuple[Path, ...]):
        self.name = name
        self.raw = raw
        self.chain = chain
        self.stack = stack
        self.rules = load_rules()
        self.problems: list[Problem] = []
        self.states: dict[StateId, State] = {}
        self.state_where: dict[StateId, tuple[LMap, str]] = {}
        self.regions: list[str] = []
        self.includes: list[str] = []
        self.files: list[tuple[str, str]] = []
        self.included_transitions: list[Transition] = []
        self.included_deadlines: list[Deadline] = []
        self.included_properties: list[Property] = []
        self.included_sources: list[str] = []
        self.included_not_encoded: dict[RuleId, str] = {}
        self.citations: list[tuple[Where, str, RuleId]] = []
        self.cite_at: dict[str, dict[RuleId, tuple[Where, int]]] = {}

    # -- small helpers --------------------------------------------------------------------
    def err(
        self,
        where: Where,
        field: str,
        message: str,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        self.problems.append(Problem(where[0], where[1], field, message, value, hint))

    def origin(self, m: LMap | LList, key: str | int) -> Origin:
        file, line = m.at(str(key)) if isinstance(m, LMap) else m.at(int(key))
        return Origin(file, line)

    def mapping(self, parent: LMap, key: str, field: str) -> LMap | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, LMap):
            self.err(parent.at(key), field, "must be a mapping of names to entries", value)
            return None
        return value

    def check_keys(self, m: LMap, allowed: Iterable[str], field: str) -> None:
        allowed = tuple(allowed)
        for key in m:
            if key not in allowed:
                self.err(
                    m.at(key),
                    f"{field}.{key}" if field else key,
                    "unknown key",
                    key,
                    did_you_mean(key, allowed),
                )

    def text(self, m: LMap, key: str, field: str, required: bool = False) -> str:
        value = m.get(key)
        if value is None:
            if required:
                self.err(m.at(key), f"{field}.{key}", "is required")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.err(m.at(key), f"{field}.{key}", "must be non-empty text", value)
            return ""
        return " ".join(value.split())

    def names(self, m: LMap, key: str, field: str) -> tuple[str, ...]:
        """A field that may be one name or a list of names."""
        value = m.get(key)
        if value is None:
            return ()
        items = list(value) if isinstance(value, LList) else [value]
        out: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                where = value.at(i) if isinstance(value, LList) else m.at(key)
                self.err(where, f"{field}.{key}", "must be a name or a list of names", item)
                continue
            out.append(item)
        return tuple(out)

    def rule_ids(self, m: LMap, field: str) -> tuple[RuleId, ...]:
        """The element's ``rules``; remembers where each was written for later checks.

        An element needs ``rules`` (a non-empty list), a ``basis``, or both.
        """
        value = m.get("rules")
        if value is None:
            if m.get("basis") is None:
                self.err(m.at("rules") if "rules" in m else (m.file, m.line), f"{field}.rules",
                         "every element cites the rule ids it encodes (`rules: [...]`) or says "
                         "why it is there without one (`basis: {kind: assumption | "
                         "local-standard, note: ...}`), or both")
            return ()
        if not isinstance(value, LList) or not value:
            self.err(m.at("rules"), f"{field}.rules", "must be a non-empty list of rule ids",
                     value)
            return ()
        out: list[RuleId] = []
        for i, rid in enumerate(value):
            if not isinstance(rid, str) or rid not in self.rules:
                self.err(
                    value.at(i),
                    f"{field}.rules[{i}]",
                    "unknown rule id (see model/rules.yaml)",
                    rid,
                    did_you_mean(rid, self.rules),
                )
                continue
            out.append(rid)
            self.citations.append((value.at(i), f"{field}.rules[{i}]", rid))
            self.cite_at.setdefault(field, {}).setdefault(rid, (value.at(i), i))
        return tuple(out)

    def basis(self, m: LMap, field: str) -> Basis | None:
        """The element's ``basis: {kind: assumption | local-standard, note: ...}``, if any."""
        value = m.get("basis")
        if value is None:
            return None
        fld = f"{field}.basis"
        if not isinstance(value, LMap):
            self.err(m.at("basis"), fld,
                     'must be {kind: assumption | local-standard, note: "one sentence"}', value)
            return None
        self.check_keys(value, BASIS_KEYS, fld)
        kind = value.get("kind")
        if kind is None:
            self.err(value.at("kind"), f"{fld}.kind", "is required (assumption or local-standard)")
        elif kind not in BASIS_KINDS:
            self.err(value.at("kind"), f"{fld}.kind", "must be assumption or local-standard",
                     kind, did_you_mean(kind, BASIS_KINDS))
            kind = None
        note = self.text(value, "note", fld, required=True)
        if kind is None or not note:
            return None
        return Basis(cast(BasisKind, kind), note)

    def sources(self, raw: LMap) -> tuple[str, ...] | None:
        """The top-level ``sources: [CODE, ...]``; None when the file declares none."""
        value = raw.get("sources")
        if value is None:
            return None
        if not isinstance(value, LList) or not value:
            self.err(raw.at("sources"), "sources",
                     "must be a non-empty list of source codes, e.g. [WM, WT, CAL]", value)
            return None
        out: list[str] = []
        for i, code in enumerate(value):
            if not isinstance(code, str) or code not in SOURCE_TITLES:
                self.err(value.at(i), f"sources[{i}]",
                         "unknown source code (one of " + ", ".join(SOURCE_TITLES) + ")",
                         code, did_you_mean(code, SOURCE_TITLES))
                continue
            if code in out:
                self.err(value.at(i), f"sources[{i}]", "source listed twice", code)
                continue
            out.append(code)
        return tuple(out)

    def not_encoded(self, raw: LMap) -> dict[RuleId, str]:
        """The top-level ``not_encoded: {RULE-ID: reason}``."""
        value = raw.get("not_encoded")
        if value is None:
            return {}
        if not isinstance(value, LMap):
            self.err(raw.at("not_encoded"), "not_encoded",
                     'must be a mapping of rule ids to reasons, e.g. {WM-1c: "..."}', value)
            return {}
        out: dict[RuleId, str] = {}
        for rid in value:
            if rid not in self.rules:
                self.err(value.at(rid), f"not_encoded.{rid}",
                         "unknown rule id (see model/rules.yaml)", rid,
                         did_you_mean(rid, self.rules))
                continue
            if value[rid] is None:
                self.err(value.at(rid), f"not_encoded.{rid}",
                         "needs the reason the rule is left out, as text")
                continue
            reason = self.text(value, rid, "not_encoded")
            if reason:
                out[rid] = reason
        return out

    def check_sources(self, sources: tuple[str, ...]) -> None:
        """Every rule this file cites comes from one of its declared sources."""
        for where, field, rid in self.citations:
            source = self.rules[rid].source
            if source not in sources:
                self.err(where, field,
                         f"cites {rid} of source {source}, which is not in `sources` "
                         f"({', '.join(sources)}): add {source} to `sources` (if this procedure "
                         f"draws on it) or stop citing {rid}", rid)

    def check_enforced(self, procedure: Procedure) -> None:
        """Every citation is enforced by its element (the classifier of model.trace)."""
        for item in unenforced(procedure):
            if item.element_kind == "state" and item.element_id in self.state_where:
                field = self.state_where[item.element_id][1]
            elif item.element_kind == "region":
                field = f"regions.{item.element_id}"
            else:
                field = f"{item.element_kind}s.{item.element_id}"
            where: Where = (item.origin.file, item.origin.line)
            found = self.cite_at.get(field, {}).get(item.rule)
            index = item.index
            if found is not None:
                where, index = found
            self.err(where, f"{field}.rules[{index}]", item.message, item.rule)

    def duration(self, m: LMap, key: str, field: str) -> Duration | None:
        value = m.get(key)
        if value is None:
            return None
        fld = f"{field}.{key}"
        if not isinstance(value, LMap) or len(value) != 1:
            self.err(m.at(key), fld,
                     "must be one unit and a number, e.g. {working_days: 15}", value)
            return None
        unit, amount = next(iter(value.items()))
        if unit not in DURATION_UNITS:
            self.err(value.at(unit), f"{fld}.{unit}", "unknown unit", unit,
                     did_you_mean(unit, DURATION_UNITS))
            return None
        if isinstance(amount, bool) or not isinstance(amount, int):
            self.err(value.at(unit), f"{fld}.{unit}", "must be a whole number", amount)
            return None
        if amount <= 0:
            self.err(value.at(unit), f"{fld}.{unit}", "must be positive", amount)
            return None
        return Duration(unit, amount)

    def event(self, m: LMap, key: str, field: str) -> EventRef | None:
        value = m.get(key)
        if value is None:
            return None
        return self.event_value(value, m.at(key), f"{field}.{key}")

    def event_value(self, value: Any, where: Where, field: str) -> EventRef | None:
        if (
            not isinstance(value, LMap)
            or len(value) != 1
            or next(iter(value)) not in ("trigger", "enter", "exit")
        ):
            self.err(where, field, "must be {trigger: NAME}, {enter: STATE} or {exit: STATE}",
                     value)
            return None
        kind, name = next(iter(value.items()))
        if not isinstance(name, str):
            self.err(value.at(kind), f"{field}.{kind}", "must be a name", name)
            return None
        return EventRef(cast(EventKind, kind), name)

    # -- states -----------------------------------------------------------------------
    def build_states(
        self, m: LMap, parent: StateId | None, region: str | None, field: str
    ) -> tuple[StateId, ...]:
        ids: list[StateId] = []
        for name, spec in m.items():
            sfield = f"{field}.{name}"
            if not NAME_RE.match(name):
                self.err(m.at(name), sfield,
                         "state names are lower_snake_case (letters, digits, _)", name)
                continue
            sid = f"{parent}.{name}" if parent else name
            if sid in self.states:
                self.err(m.at(name), sfield, "state defined twice", sid)
                continue
            if not isinstance(spec, LMap):
                self.err(m.at(name), sfield, "must be a mapping with `rules` or `basis`", spec)
                continue
            self.check_keys(spec, STATE_KEYS, sfield)
            rules = self.rule_ids(spec, sfield)
            basis = self.basis(spec, sfield)
            summary = self.text(spec, "summary", sfield)
            terminal = spec.get("terminal", False)
            if not isinstance(terminal, bool):
                self.err(spec.at("terminal"), f"{sfield}.terminal", "must be true or false",
                         terminal)
                terminal = False
            exhaustive = self.names(spec, "exhaustive", sfield)
            children: tuple[StateId, ...] = ()
            initial: StateId | None = None
            included_from: str | None = None
            if "include" in spec:
                if "states" in spec:
                    self.err(spec.at("include"), f"{sfield}.include",
                             "a state either includes a procedure or lists its own states")
                included = self.include(spec, sid, region, sfield)
                if included is not None:
                    children, initial = included
                    included_from = str(spec["include"])
            else:
                sub = self.mapping(spec, "states", sfield)
                if sub is not None:
                    children = self.build_states(sub, sid, region, f"{sfield}.states")
            if children and included_from is None:
                init_name = spec.get("initial")
                if init_name is None:
                    self.err(m.at(name), f"{sfield}.initial",
                             "a state with child states needs `initial`")
                elif f"{sid}.{init_name}" not in children:
                    self.err(spec.at("initial"), f"{sfield}.initial", "not one of its states",
                             init_name,
                             did_you_mean(init_name, [c.rsplit(".", 1)[-1] for c in children]))
                else:
                    initial = f"{sid}.{init_name}"
            elif "initial" in spec and not children:
                self.err(spec.at("initial"), f"{sfield}.initial",
                         "only a state with child states has `initial`", spec.get("initial"))
            if terminal and children:
                self.err(spec.at("terminal"), f"{sfield}.terminal",
                         "only a leaf state can be terminal (mark its end states instead)")
                terminal = False
            self.states[sid] = State(
                id=sid,
                rules=rules,
                summary=summary,
                origin=self.origin(m, name),
                parent=parent,
                children=children,
                initial=initial,
                terminal=terminal,
                region=region,
                exhaustive=exhaustive,
                included_from=included_from,
                basis=basis,
            )
            self.state_where[sid] = (spec, sfield)
            ids.append(sid)
        # Keep declared order: a parent precedes its children in self.states.
        return tuple(ids)

    def include(
        self, spec: LMap, sid: StateId, region: str | None, field: str
    ) -> tuple[tuple[StateId, ...], StateId] | None:
        target = spec.get("include")
        where = spec.at("include")
        if not isinstance(target, str):
            self.err(where, f"{field}.include", "must name a procedure", target)
            return None
        if region is not None:
            self.err(where, f"{field}.include", "a procedure can only be included in the main flow")
            return None
        try:
            path = resolve_procedure_path(target, Path(spec.file))
            if path.resolve() in self.stack:
                self.err(where, f"{field}.include", "procedures include each other in a cycle",
                         target)
                return None
            sub = _load(path, self.stack)
        except InputError as exc:
            if len(exc.problems) == 1 and exc.problems[0].line is None:
                p = exc.problems[0]
                self.err(where, f"{field}.include", p.message, p.value, p.hint)
            else:
                self.problems.extend(exc.problems)
            return None
        self.includes.append(sub.id)
        self.included_sources.extend(used_sources(sub))
        for rid, reason in sub.not_encoded.items():
            self.included_not_encoded.setdefault(rid, reason)
        self.files.extend(f for f in sub.files if f not in self.files)
        sub_regions = set(sub.regions)

        def rename(state: StateId) -> StateId:
            return state if state.split(".", 1)[0] in sub_regions else f"{sid}.{state}"

        def rename_event(ev: EventRef | None) -> EventRef | None:
            if ev is None or ev.kind == "trigger":
                return ev
            return EventRef(ev.kind, rename(ev.name))

        for st in sub.states.values():
            new_id = rename(st.id)
            if new_id in self.states or (st.region is not None and st.id in self.regions):
                self.err(where, f"{field}.include", "included state clashes with an existing one",
                         new_id)
                continue
            parent = sid if st.parent is None and st.region is None else (
                rename(st.parent) if st.parent is not None else None)
            self.states[new_id] = replace(
                st,
                id=new_id,
                parent=parent,
                children=tuple(rename(c) for c in st.children),
                initial=rename(st.initial) if st.initial else None,
                included_from=st.included_from or sub.id,
            )
        for reg in sub.regions:
            if reg not in self.regions:
                self.regions.append(reg)
        for t in sub.transitions:
            self.included_transitions.append(
                replace(
                    t,
                    id=f"{sid}.{t.id}",
                    sources=tuple(rename(s) for s in t.sources),
                    dest=rename(t.dest),
                    when_in=tuple(rename(s) for s in t.when_in),
                )
            )
        for d in sub.deadlines:
            start = rename_event(d.start)
            end = rename_event(d.end)
            assert start is not None and end is not None
            self.included_deadlines.append(
                replace(
                    d,
                    id=f"{sid}.{d.id}",
                    start=start,
                    end=end,
                    cancelled_by=tuple(
                        e for e in (rename_event(c) for c in d.cancelled_by) if e is not None
                    ),
                )
            )
        for prop in sub.properties:
            self.included_properties.append(
                replace(
                    prop,
                    id=f"{sid}.{prop.id}",
                    of=rename_event(prop.of),
                    requires=rename_event(prop.requires),
                    then=rename_event(prop.then),
                    scope=rename(prop.scope) if prop.scope else None,
                    order=tuple(rename(s) for s in prop.order),
                    exits=tuple(rename(s) for s in prop.exits),
                    state=rename(prop.state) if prop.state else None,
                )
            )
        top = [s for s in sub.states.values() if s.parent is None and s.region is None]
        return tuple(rename(s.id) for s in top), rename(sub.initial)

    # -- references ---------------------------------------------------------------------
    def state_ref(self, value: object, where: Where, field: str) -> StateId | None:
        if isinstance(value, str) and value in self.states:
            return value
        self.err(where, field, "unknown state", value, did_you_mean(value, self.states))
        return None

    def state_refs(self, m: LMap, key: str, field: str) -> tuple[StateId, ...]:
        value = m.get(key)
        out: list[StateId] = []
        for i, name in enumerate(self.names(m, key, field)):
            where = value.at(i) if isinstance(value, LList) else m.at(key)
            ref = self.state_ref(name, where, f"{field}.{key}")
            if ref is not None:
                out.append(ref)
        return tuple(out)

    # -- transitions ----------------------------------------------------------------------
    def build_transitions(self, m: LMap) -> list[Transition]:
        out: list[Transition] = []
        for tid, spec in m.items():
            field = f"transitions.{tid}"
            if not ID_RE.match(tid):
                self.err(m.at(tid), field, "transition ids are lower_snake_case", tid)
            if not isinstance(spec, LMap):
                self.err(m.at(tid), field,
                         "must be a mapping with source, dest and rules or basis", spec)
                continue
            self.check_keys(spec, TRANSITION_KEYS, field)
            trigger = spec.get("trigger", tid)
            if not isinstance(trigger, str) or not NAME_RE.match(trigger):
                self.err(spec.at("trigger"), f"{field}.trigger",
                         "triggers are lower_snake_case names", trigger)
                trigger = tid
            if "source" not in spec:
                self.err(m.at(tid), f"{field}.source", "is required")
            internal = spec.get("internal", False)
            if not isinstance(internal, bool):
                self.err(spec.at("internal"), f"{field}.internal", "must be true or false",
                         internal)
                internal = False
            if internal and "dest" in spec:
                self.err(spec.at("dest"), f"{field}.dest",
                         "an internal transition stays where it is and has no dest")
            if "dest" not in spec and not internal:
                self.err(m.at(tid), f"{field}.dest", "is required (or `internal: true`)")
            sources = self.state_refs(spec, "source", field)
            dest = (
                self.state_ref(spec["dest"], spec.at("dest"), f"{field}.dest")
                if "dest" in spec
                else (sources[0] if internal and sources else None)
            )
            guards = self.names(spec, "guard", field)
            for g in guards:
                if g not in GUARDS:
                    self.err(spec.at("guard"), f"{field}.guard",
                             "no guard of that name is registered", g, did_you_mean(g, GUARDS))
            when_in = self.state_refs(spec, "when_in", field)
            resources = self.build_resources(spec, field)
            records = self.names(spec, "records", field)
            for r in records:
                if not NAME_RE.match(r):
                    self.err(spec.at("records"), f"{field}.records",
                             "recorded fields are lower_snake_case", r)
            rules = self.rule_ids(spec, field)
            basis = self.basis(spec, field)
            summary = self.text(spec, "summary", field)
            if dest is None or not sources:
                continue
            t = Transition(
                id=tid,
                trigger=trigger,
                sources=sources,
                dest=dest,
                rules=rules,
                summary=summary,
                origin=self.origin(m, tid),
                guards=guards,
                when_in=when_in,
                resources=resources,
                records=records,
                internal=internal,
                basis=basis,
            )
            self.check_transition_regions(t, spec, field)
            out.append(t)
        return out

    def check_transition_regions(self, t: Transition, spec: LMap, field: str) -> None:
        dest_region = self.states[t.dest].region
        for s in t.sources:
            if self.states[s].region != dest_region:
                self.err(spec.at("dest"), f"{field}.dest",
                         "a transition cannot cross from one region to another", t.dest)
        for w in t.when_in:
            if self.states[w].region == dest_region:
                self.err(spec.at("when_in"), f"{field}.when_in",
                         "when_in names a state of another region", w)
        if any(self.states[s].region is not None and self.states[s].parent is None
               for s in (*t.sources, t.dest)):
            self.err(spec.at("source"), f"{field}.source",
                     "a region itself cannot be a source or destination; name its states", t.id)

    def build_resources(self, spec: LMap, field: str) -> tuple[ResourceNeed, ...]:
        value = spec.get("resources")
        if value is None:
            return ()
        if not isinstance(value, LList):
            self.err(spec.at("resources"), f"{field}.resources", "must be a list", value)
            return ()
        out: list[ResourceNeed] = []
        for i, item in enumerate(value):
            rfield = f"{field}.resources[{i}]"
            if isinstance(item, str):
                item_map = LMap(*value.at(i))
                item_map["role"] = item
                item_map.where["role"] = value.at(i)
                item = item_map
            if not isinstance(item, LMap):
                self.err(value.at(i), rfield, "must be a role name or {role: ..., ...}", item)
                continue
            self.check_keys(item, RESOURCE_KEYS, rfield)
            role = item.get("role")
            if role not in ROLES:
                self.err(item.at("role"), f"{rfield}.role", "unknown role", role,
                         did_you_mean(role, ROLES))
                continue
            level = item.get("level")
            if level is not None and level not in MANAGER_LEVELS:
                self.err(item.at("level"), f"{rfield}.level", "unknown manager level", level,
                         did_you_mean(level, MANAGER_LEVELS))
                level = None
            if role == "manager" and level is None and "level" not in item:
                self.err(item.at("role"), f"{rfield}.level", "a manager needs a level", role)
            when = item.get("when")
            if when is not None and when not in GUARDS:
                self.err(item.at("when"), f"{rfield}.when", "no guard of that name is registered",
                         when, did_you_mean(when, GUARDS))
                when = None
            agencies = self.names(item, "agencies", rfield)
            out.append(
                ResourceNeed(
                    role=cast(Role, role),
                    level=cast(ManagerLevel | None, level),
                    agencies=agencies,
                    when=when,
                )
            )
        return tuple(out)

    def check_triggers(self, transitions: list[Transition], m: LMap) -> None:
        region_of_trigger: dict[str, tuple[str | None, str]] = {}
        for t in transitions:
            region = self.states[t.dest].region
            seen = region_of_trigger.setdefault(t.trigger, (region, t.id))
            if seen[0] != region:
                self.err(m.at(t.id) if t.id in m else (t.origin.file, t.origin.line),
                         f"transitions.{t.id}.trigger",
                         f"trigger is also used in another region (by {seen[1]}); "
                         "a trigger belongs to one region", t.trigger)
        for i, a in enumerate(transitions):
            for b in transitions[i + 1:]:
                if a.trigger != b.trigger or a.guards or b.guards or a.when_in or b.when_in:
                    continue
                overlap = [
                    s for s in a.sources for u in b.sources
                    if s == u or s.startswith(u + ".") or u.startswith(s + ".")
                ]
                if overlap:
                    self.err((b.origin.file, b.origin.line), f"transitions.{b.id}",
                             f"same trigger as {a.id} from the same state with no guard: "
                             "the move would be ambiguous", b.trigger)

    # -- deadlines and properties -------------------------------------------------------
    def check_event(self, ev: EventRef | None, triggers: set[str], where: Where,
                    field: str) -> None:
        if ev is None:
            return
        if ev.kind == "trigger" and ev.name not in triggers:
            self.err(where, field, "unknown trigger", ev.name, did_you_mean(ev.name, triggers))
        if ev.kind in ("enter", "exit") and ev.name not in self.states:
            self.err(where, field, "unknown state", ev.name, did_you_mean(ev.name, self.states))

    def build_deadlines(self, m: LMap, triggers: set[str]) -> list[Deadline]:
        out: list[Deadline] = []
        for did, spec in m.items():
            field = f"deadlines.{did}"
            if not isinstance(spec, LMap):
                self.err(m.at(did), field, "must be a mapping", spec)
                continue
            self.check_keys(spec, DEADLINE_KEYS, field)
            start = self.event(spec, "from", field)
            end = self.event(spec, "to", field)
            for key, ev in (("from", start), ("to", end)):
                if key not in spec:
                    self.err(m.at(did), f"{field}.{key}", "is required")
                self.check_event(ev, triggers, spec.at(key), f"{field}.{key}")
            within = self.duration(spec, "within", field)
            at_least = self.duration(spec, "at_least", field)
            if "within" not in spec and "at_least" not in spec:
                self.err(m.at(did), f"{field}.within", "a deadline needs `within` or `at_least`")
            when = spec.get("when")
            if when is not None and when not in GUARDS:
                self.err(spec.at("when"), f"{field}.when", "no guard of that name is registered",
                         when, did_you_mean(when, GUARDS))
                when = None
            repeats = spec.get("repeats", False)
            if not isinstance(repeats, bool):
                self.err(spec.at("repeats"), f"{field}.repeats", "must be true or false", repeats)
                repeats = False
            cancelled: list[EventRef] = []
            raw_cancel = spec.get("cancelled_by")
            if raw_cancel is not None:
                if not isinstance(raw_cancel, LList):
                    self.err(spec.at("cancelled_by"), f"{field}.cancelled_by",
                             "must be a list of events", raw_cancel)
                else:
                    for i, item in enumerate(raw_cancel):
                        ev = self.event_value(item, raw_cancel.at(i), f"{field}.cancelled_by[{i}]")
                        self.check_event(ev, triggers, raw_cancel.at(i),
                                         f"{field}.cancelled_by[{i}]")
                        if ev is not None:
                            cancelled.append(ev)
            rules = self.rule_ids(spec, field)
            basis = self.basis(spec, field)
            summary = self.text(spec, "summary", field)
            if start is None or end is None:
                continue
            out.append(
                Deadline(
                    id=did,
                    start=start,
                    end=end,
                    rules=rules,
                    summary=summary,
                    origin=self.origin(m, did),
                    within=within,
                    at_least=at_least,
                    when=when,
                    repeats=repeats,
                    cancelled_by=tuple(cancelled),
                    basis=basis,
                )
            )
        return out

    def build_properties(self, m: LMap, triggers: set[str], recorded: set[str]) -> list[Property]:
        out: list[Property] = []
        for pid, spec in m.items():
            field = f"properties.{pid}"
            if not isinstance(spec, LMap):
                self.err(m.at(pid), field, "must be a mapping", spec)
                continue
            self.check_keys(spec, PROPERTY_KEYS, field)
            pattern = spec.get("pattern")
            if pattern not in PATTERNS:
                self.err(spec.at("pattern"), f"{field}.pattern", "unknown property pattern",
                         pattern, did_you_mean(pattern, PATTERNS))
                self.rule_ids(spec, field)
                self.basis(spec, field)
                continue
            required, optional = PATTERN_FIELDS[pattern]
            for key in required:
                if spec.get(key) is None:  # missing, or written with no value (`of:`)
                    self.err(m.at(pid), f"{field}.{key}", f"is required for pattern {pattern}")
            for key in spec:
                if key in PROPERTY_KEYS and key not in (*required, *optional, "pattern", "rules",
                                                        "basis", "summary"):
                    self.err(spec.at(key), f"{field}.{key}",
                             f"does not apply to pattern {pattern}", key)
            events: dict[str, EventRef | None] = {}
            for key in ("of", "requires", "then"):
                events[key] = self.event(spec, key, field)
                self.check_event(events[key], triggers, spec.at(key), f"{field}.{key}")
            scope = (
                self.state_ref(spec["scope"], spec.at("scope"), f"{field}.scope")
                if "scope" in spec else None
            )
            state = (
                self.state_ref(spec["state"], spec.at("state"), f"{field}.state")
                if "state" in spec else None
            )
            order = self.state_refs(spec, "order", field)
            exits = self.state_refs(spec, "exits", field)
            records_any: list[tuple[str, ...]] = []
            raw_any = spec.get("records_any")
            if raw_any is not None:
                if not isinstance(raw_any, LList) or not raw_any:
                    self.err(spec.at("records_any"), f"{field}.records_any",
                             "must be a list of lists of recorded fields", raw_any)
                else:
                    for i, group in enumerate(raw_any):
                        names = [group] if isinstance(group, str) else group
                        if not isinstance(names, list) or not all(isinstance(n, str)
                                                                  for n in names):
                            self.err(raw_any.at(i), f"{field}.records_any[{i}]",
                                     "must be a list of recorded fields", group)
                            continue
                        records_any.append(tuple(names))
            if_records = spec.get("if_records")
            also = self.names(spec, "also", field)
            for name in [n for g in records_any for n in g] + list(also) + (
                [if_records] if isinstance(if_records, str) else []
            ):
                if name not in recorded:
                    self.err(m.at(pid), field, "no transition records this field", name,
                             did_you_mean(name, recorded))
            rules = self.rule_ids(spec, field)
            basis = self.basis(spec, field)
            summary = self.text(spec, "summary", field)
            out.append(
                Property(
                    id=pid,
                    pattern=cast(Pattern, pattern),
                    rules=rules,
                    summary=summary,
                    origin=self.origin(m, pid),
                    of=events["of"],
                    requires=events["requires"],
                    then=events["then"],
                    scope=scope,
                    records_any=tuple(records_any),
                    if_records=if_records if isinstance(if_records, str) else None,
                    also=also,
                    order=order,
                    exits=exits,
                    state=state,
                    basis=basis,
                )
            )
        return out

    # -- CIN-flat mapping -------------------------------------------------------------------
    def build_cin_flat(self, raw: LMap, triggers: set[str]) -> tuple[CinEvent, ...] | None:
        """The ``cin_flat`` block: which events make each CIN-flat event type.

        None when the procedure declares no mapping. Entries come out in the table's order
        (:data:`model.spec.CIN_EVENT_TYPES`), whatever order the file lists them in.
        """
        m = self.mapping(raw, "cin_flat", "cin_flat")
        if m is None:
            return None
        if not m:
            self.err(raw.at("cin_flat"), "cin_flat", "must map at least one CIN-flat event type")
            return None
        found: dict[str, CinEvent] = {}
        claimed: dict[str, str] = {}
        for kind, spec in m.items():
            field = f"cin_flat.{kind}"
            if kind not in CIN_EVENT_TYPES:
                self.err(m.at(kind), field, "unknown CIN-flat event type (one of "
                         + ", ".join(CIN_EVENT_TYPES) + ")", kind,
                         did_you_mean(kind, CIN_EVENT_TYPES))
                continue
            if not isinstance(spec, LMap):
                self.err(m.at(kind), field,
                         "must be {events: [EVENT, ...], activities: [TRIGGER, ...]}", spec)
                continue
            self.check_keys(spec, CIN_FLAT_KEYS, field)
            value = spec.get("events")
            if not isinstance(value, LList) or not value:
                self.err(spec.at("events") if "events" in spec else m.at(kind),
                         f"{field}.events", "must be a non-empty list of events "
                         "({trigger: NAME}, {enter: STATE} or {exit: STATE})", value)
                continue
            events: list[EventRef] = []
            for i, item in enumerate(value):
                ev = self.event_value(item, value.at(i), f"{field}.events[{i}]")
                self.check_event(ev, triggers, value.at(i), f"{field}.events[{i}]")
                if ev is not None:
                    events.append(ev)
            raw_acts = spec.get("activities")
            acts = raw_acts if isinstance(raw_acts, LList) else (
                [] if raw_acts is None else [raw_acts])
            activities: list[str] = []
            for i, trig in enumerate(acts):
                where = raw_acts.at(i) if isinstance(raw_acts, LList) else spec.at("activities")
                afield = f"{field}.activities[{i}]"
                if not isinstance(trig, str) or trig not in triggers:
                    self.err(where, afield, "unknown trigger", trig,
                             did_you_mean(trig, triggers))
                elif trig in claimed:
                    self.err(where, afield, f"already stands for {claimed[trig]}", trig)
                else:
                    claimed[trig] = kind
                    activities.append(trig)
            found[kind] = CinEvent(kind, tuple(events), tuple(activities), self.origin(m, kind))
        return tuple(found[k] for k in CIN_EVENT_TYPES if k in found)

    # -- whole procedure ---------------------------------------------------------------------
    def build(self) -> Procedure:
        raw = self.raw
        self.check_keys(raw, TOP_KEYS, "")
        declared = raw.get("procedure")
        if declared is None:
            self.err((raw.file, raw.line), "procedure", "is required (the procedure's name)")
        elif declared != self.name:
            self.err(raw.at("procedure"), "procedure",
                     f"must match the file name '{self.name}'", declared)
        title = self.text(raw, "title", "", required=True)
        description = self.text(raw, "description", "")
        declared_sources = self.sources(raw)
        not_encoded = self.not_encoded(raw)
        states_map = self.mapping(raw, "states", "states")
        if states_map is None:
            self.err((raw.file, raw.line), "states", "is required")
            states_map = LMap(raw.file, raw.line)
        top = self.build_states(states_map, None, None, "states")
        regions_map = self.mapping(raw, "regions", "regions")
        if regions_map is not None:
            for rname, rspec in regions_map.items():
                rfield = f"regions.{rname}"
                if not NAME_RE.match(rname):
                    self.err(regions_map.at(rname), rfield, "region names are lower_snake_case",
                             rname)
                    continue
                if rname in self.states or rname in self.regions:
                    self.err(regions_map.at(rname), rfield,
                             "region name clashes with a state or region", rname)
                    continue
                if not isinstance(rspec, LMap):
                    self.err(regions_map.at(rname), rfield, "must be a mapping", rspec)
                    continue
                self.check_keys(rspec, REGION_KEYS, rfield)
                rules = self.rule_ids(rspec, rfield)
                basis = self.basis(rspec, rfield)
                summary = self.text(rspec, "summary", rfield)
                self.regions.append(rname)
                # Placeholder first so the region precedes its states in declared order.
                self.states[rname] = State(rname, rules, summary, self.origin(regions_map, rname),
                                           region=rname, basis=basis)
                sub = self.mapping(rspec, "states", rfield)
                children = (self.build_states(sub, rname, rname, f"{rfield}.states")
                            if sub is not None else ())
                init = rspec.get("initial")
                initial = f"{rname}.{init}" if isinstance(init, str) else None
                if not children:
                    self.err(regions_map.at(rname), f"{rfield}.states", "a region needs states")
                elif initial not in children:
                    self.err(rspec.at("initial"), f"{rfield}.initial",
                             "must name one of the region's states", init,
                             did_you_mean(init, [c.rsplit(".", 1)[-1] for c in children]))
                    initial = None
                self.states[rname] = replace(self.states[rname], children=children,
                                             initial=initial)
        initial = raw.get("initial")
        if initial is None:
            self.err((raw.file, raw.line), "initial", "is required (the first state)")
        elif initial not in top:
            self.err(raw.at("initial"), "initial", "must name a top-level state of the main flow",
                     initial, did_you_mean(initial, top))
        for sid, st in list(self.states.items()):
            for g in st.exhaustive:
                if g not in GUARDS:
                    spec, sfield = self.state_where.get(sid, (raw, f"states.{sid}"))
                    self.err(spec.at("exhaustive"), f"{sfield}.exhaustive",
                             "no guard of that name is registered", g, did_you_mean(g, GUARDS))
        trans_map = self.mapping(raw, "transitions", "transitions")
        transitions = self.included_transitions + (
            self.build_transitions(trans_map) if trans_map is not None else []
        )
        if trans_map is None:
            self.err((raw.file, raw.line), "transitions", "is required")
        ids = [t.id for t in transitions]
        for t in transitions:
            if ids.count(t.id) > 1:
                self.err((t.origin.file, t.origin.line), f"transitions.{t.id}",
                         "transition id used twice", t.id)
        self.check_triggers(transitions, trans_map or LMap(raw.file, raw.line))
        triggers = {t.trigger for t in transitions}
        recorded = {r for t in transitions for r in t.records}
        dl_map = self.mapping(raw, "deadlines", "deadlines")
        deadlines = self.included_deadlines + (
            self.build_deadlines(dl_map, triggers) if dl_map is not None else []
        )
        pr_map = self.mapping(raw, "properties", "properties")
        properties = self.included_properties + (
            self.build_properties(pr_map, triggers, recorded) if pr_map is not None else []
        )
        cin_flat = self.build_cin_flat(raw, triggers)
        sources: tuple[str, ...] = ()
        if declared_sources is not None:
            sources = tuple(dict.fromkeys((*declared_sources, *self.included_sources)))
            self.check_sources(sources)
        # An included procedure's reasons come along, for the rules nothing here cites.
        cited = {r for group in (self.states.values(), transitions, deadlines, properties)
                 for e in group for r in e.rules}
        not_encoded = {**{r: why for r, why in self.included_not_encoded.items()
                          if r not in cited}, **not_encoded}
        if self.problems:
            raise InputError(self.problems)
        assert isinstance(initial, str)
        procedure = Procedure(
            id=self.name,
            title=title,
            description=description,
            initial=initial,
            states=MappingProxyType(dict(self.states)),
            transitions=tuple(transitions),
            deadlines=tuple(deadlines),
            properties=tuple(properties),
            regions=tuple(self.regions),
            extends=self.chain,
            includes=tuple(self.includes),
            files=tuple(self.files),
            sources=sources,
            not_encoded=MappingProxyType(not_encoded),
            cin_flat=cin_flat,
        )
        # Whether each citation is enforced depends on the whole procedure: check it last.
        self.check_enforced(procedure)
        if self.problems:
            raise InputError(self.problems)
        return procedure


def _read_chain(path: Path, stack: tuple[Path, ...]) -> tuple[LMap, tuple[str, ...],
                                                            list[tuple[str, str]]]:
    """Read a file and everything it extends, merged; return (raw, chain, files)."""
    display = _display(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            [Problem(display, None, "", f"cannot read file: {exc.strerror}")]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError([Problem(display, None, "", "file is not UTF-8 text")]) from None
    raw = load_yaml_text(text, display)
    if not isinstance(raw, LMap):
        raise InputError([Problem(display, 1, "", "a procedure file must be a YAML mapping")])
    files = [(display, hashlib.sha256(data).hexdigest())]
    base_name = raw.get("extends")
    if base_name is None:
        return raw, (), files
    if not isinstance(base_name, str):
        raise InputError([Problem(display, raw.at("extends")[1], "extends",
                                  "must name one procedure", base_name)])
    try:
        base_path = resolve_procedure_path(base_name, path)
    except InputError as exc:
        p = exc.problems[0]
        raise InputError([Problem(display, raw.at("extends")[1], "extends", p.message,
                                  base_name, p.hint)]) from None
    if base_path.resolve() in stack or base_path.resolve() == path.resolve():
        raise InputError([Problem(display, raw.at("extends")[1], "extends",
                                  "procedures extend each other in a cycle", base_name)])
    base_raw, base_chain, base_files = _read_chain(base_path, (*stack, path.resolve()))
    override = LMap(raw.file, raw.line)
    for key, value in raw.items():
        if key != "extends":
            override[key] = value
            override.where[key] = raw.at(key)
    merged = merge(base_raw, override)
    return merged, (base_path.stem, *base_chain), base_files + files


def _load(path: Path, stack: tuple[Path, ...]) -> Procedure:
    raw, chain, files = _read_chain(path, stack)
    builder = _Builder(path.stem, raw, chain, (*stack, path.resolve()))
    builder.files = list(files)
    return builder.build()


def load_procedure(name_or_path: str | Path) -> Procedure:
    """Load, validate and freeze a procedure by shipped name or file path.

    Raises:
        InputError: listing every problem found, each with file, line, field and value.
    """
    return _load(resolve_procedure_path(name_or_path), ())


def load_procedure_with_overrides(
    base: str | Path, overrides: LMap, name: str, relative_to: Path, provenance: tuple[str, str]
) -> Procedure:
    """Load ``base`` with ``overrides`` merged over it, exactly as a variant file would be.

    Used by scenarios ("this procedure, but the ICPC within 10 working days"): the overrides
    are a mapping in the variant-file format, validated as a whole with the base.

    Args:
        base: The procedure the overrides apply to (shipped name or path).
        overrides: The override mapping, with the file and lines it was written at.
        name: The derived procedure's name.
        relative_to: The file that names ``base`` (paths are resolved beside it).
        provenance: ``(file, sha256)`` of the file holding the overrides.

    Raises:
        InputError: listing every problem in the merged procedure.
    """
    base_path = resolve_procedure_path(base, relative_to)
    base_raw, chain, files = _read_chain(base_path, ())
    over = LMap(overrides.file, overrides.line)
    for key, value in overrides.items():
        over[key] = value
        over.where[key] = overrides.at(key)
    over["procedure"] = name
    over.where["procedure"] = (overrides.file, overrides.line)
    merged = merge(base_raw, over)
    builder = _Builder(name, merged, (base_path.stem, *chain), (base_path.resolve(),))
    builder.files = [*files, provenance]
    return builder.build()


def content_hash(procedure: Procedure) -> str:
    """A SHA-256 over every file that went into the procedure, in order."""
    digest = hashlib.sha256()
    for name, sha in procedure.files:
        digest.update(f"{Path(name).name}:{sha}\n".encode())
    return digest.hexdigest()
