"""Building the frozen :class:`~model.spec.Procedure` from one merged procedure file.

:class:`ProcedureBuilder` reads what :class:`~model.load_states.MachineReader` does not (the
top-level fields, deadlines, properties, the CIN-flat mapping), checks the citations against
the file's ``sources`` and, once the whole procedure stands, that each cited rule is enforced
by its element; then freezes the procedure, or raises every problem found at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import cast

from model.errors import InputError
from model.load_states import IncludeLoader, MachineReader
from model.rules import SOURCE_TITLES
from model.spec import (
    CIN_EVENT_TYPES,
    PATTERNS,
    CinEvent,
    CinEventType,
    Deadline,
    EventRef,
    Procedure,
    Property,
)
from model.trace import unenforced
from model.types import RuleId
from model.yamlsrc import LList, LMap, Where

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


class ProcedureBuilder(MachineReader):
    """Normalise, validate and construct one procedure, collecting every problem.

    Args:
        name: The procedure's name (the file stem, or a scenario's derived name).
        raw: The file, merged over everything it extends.
        chain: The procedures it extends, nearest first.
        stack: The files being loaded, outermost first, this one last.
        files: Every file read so far, with its SHA-256.
        load_included: Loads a procedure that a state includes.
    """

    def __init__(self, name: str, raw: LMap, chain: tuple[str, ...], stack: tuple[Path, ...],
                 files: list[tuple[str, str]], load_included: IncludeLoader) -> None:
        """Keep the merged file; nothing is read until :meth:`build`."""
        super().__init__(stack, load_included)
        self.name = name
        self.raw = raw
        self.chain = chain
        self.files = list(files)

    # -- top-level fields ---------------------------------------------------------------------
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
            if not self.known(code, SOURCE_TITLES, value.at(i), f"sources[{i}]",
                              "unknown source code (one of " + ", ".join(SOURCE_TITLES) + ")"):
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
            if not self.known(rid, self.rules, value.at(rid), f"not_encoded.{rid}",
                              "unknown rule id (see model/rules.yaml)"):
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

    # -- deadlines and properties -------------------------------------------------------
    def events(self, value: LList, triggers: set[str], field: str) -> list[EventRef]:
        """A list of events, each checked to name a trigger or state that exists."""
        out: list[EventRef] = []
        for i, item in enumerate(value):
            ev = self.event_value(item, value.at(i), f"{field}[{i}]")
            self.check_event(ev, triggers, value.at(i), f"{field}[{i}]")
            if ev is not None:
                out.append(ev)
        return out

    def build_deadlines(self, m: LMap, triggers: set[str]) -> list[Deadline]:
        """The ``deadlines:`` block."""
        out: list[Deadline] = []
        for did, spec, field in self.entries(m, "deadlines", DEADLINE_KEYS):
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
            if when is not None and not self.guard(when, spec.at("when"), f"{field}.when"):
                when = None
            repeats = self.flag(spec, "repeats", field)
            cancelled: list[EventRef] = []
            raw_cancel = spec.get("cancelled_by")
            if raw_cancel is not None:
                if not isinstance(raw_cancel, LList):
                    self.err(spec.at("cancelled_by"), f"{field}.cancelled_by",
                             "must be a list of events", raw_cancel)
                else:
                    cancelled = self.events(raw_cancel, triggers, f"{field}.cancelled_by")
            rules, basis, summary = self.element(spec, field)
            if start is None or end is None:
                continue
            out.append(
                Deadline(
                    did, start, end, rules, summary, self.origin(m, did),
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
        """The ``properties:`` block; which fields apply depends on each one's pattern."""
        out: list[Property] = []
        for pid, spec, field in self.entries(m, "properties", PROPERTY_KEYS):
            pattern = spec.get("pattern")
            if not self.known(pattern, PATTERNS, spec.at("pattern"), f"{field}.pattern",
                              "unknown property pattern"):
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
                self.known(name, recorded, m.at(pid), field, "no transition records this field")
            rules, basis, summary = self.element(spec, field)
            out.append(
                Property(
                    pid, pattern, rules, summary, self.origin(m, pid),
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

        def kind_ok(kind: str, where: Where, field: str) -> bool:
            return self.known(kind, CIN_EVENT_TYPES, where, field,
                              "unknown CIN-flat event type (one of "
                              + ", ".join(CIN_EVENT_TYPES) + ")")

        found: dict[str, CinEvent] = {}
        claimed: dict[str, str] = {}
        for kind, spec, field in self.entries(
                m, "cin_flat", CIN_FLAT_KEYS,
                "must be {events: [EVENT, ...], activities: [TRIGGER, ...]}", kind_ok):
            value = spec.get("events")
            if not isinstance(value, LList) or not value:
                self.err(spec.at("events") if "events" in spec else m.at(kind),
                         f"{field}.events", "must be a non-empty list of events "
                         "({trigger: NAME}, {enter: STATE} or {exit: STATE})", value)
                continue
            events = self.events(value, triggers, f"{field}.events")
            raw_acts = spec.get("activities")
            acts = raw_acts if isinstance(raw_acts, LList) else (
                [] if raw_acts is None else [raw_acts])
            activities: list[str] = []
            for i, trig in enumerate(acts):
                where = raw_acts.at(i) if isinstance(raw_acts, LList) else spec.at("activities")
                afield = f"{field}.activities[{i}]"
                if not self.known(trig, triggers, where, afield, "unknown trigger"):
                    continue
                if trig in claimed:
                    self.err(where, afield, f"already stands for {claimed[trig]}", trig)
                else:
                    claimed[trig] = kind
                    activities.append(trig)
            found[kind] = CinEvent(cast(CinEventType, kind), tuple(events), tuple(activities),
                                   self.origin(m, kind))
        return tuple(found[k] for k in CIN_EVENT_TYPES if k in found)

    # -- whole procedure ---------------------------------------------------------------------
    def build(self) -> Procedure:
        """Read the whole file and freeze the procedure.

        Raises:
            InputError: listing every problem found, each with file, line, field and value.
        """
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
            self.build_regions(regions_map)
        initial = raw.get("initial")
        if initial is None:
            self.err((raw.file, raw.line), "initial", "is required (the first state)")
        else:
            self.known(initial, top, raw.at("initial"), "initial",
                       "must name a top-level state of the main flow")
        self.check_exhaustive(raw)
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
