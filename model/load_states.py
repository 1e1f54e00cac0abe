"""Reading the state machine of a procedure file: states, regions, includes and transitions.

:class:`MachineReader` builds the states (grafting in any included procedure), the regions,
and the transitions with the resources they need, checking every reference to a state and
every guard name. Deadlines, properties and the whole procedure are
:mod:`model.load_build`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from model.errors import InputError, did_you_mean
from model.load_fields import ID_RE, NAME_RE, FieldReader
from model.spec import (
    MANAGER_LEVELS,
    ROLES,
    Deadline,
    EventRef,
    Procedure,
    Property,
    ResourceNeed,
    State,
    Transition,
)
from model.trace import used_sources
from model.types import RuleId, StateId
from model.yamlsrc import LList, LMap, Where

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

IncludeLoader = Callable[[str, Path, tuple[Path, ...]], Procedure]
"""Loads the procedure an ``include`` names: (its name, the including file, the files being
loaded). Raises :class:`InputError`; a problem with no line is reported at the ``include``."""


class MachineReader(FieldReader):
    """Reads the states, regions and transitions of one procedure, collecting problems.

    Args:
        stack: The files being loaded, outermost first (to catch an include cycle).
        load_included: Loads an included procedure (the loader's, which reads files).
    """

    def __init__(self, stack: tuple[Path, ...], load_included: IncludeLoader) -> None:
        """Start with no states."""
        super().__init__()
        self.stack = stack
        self.load_included = load_included
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

    # -- states -----------------------------------------------------------------------
    def build_states(
        self, m: LMap, parent: StateId | None, region: str | None, field: str
    ) -> tuple[StateId, ...]:
        """The states of one ``states:`` block, and (recursively) their children."""

        def name_ok(name: str, where: Where, sfield: str) -> bool:
            if not NAME_RE.match(name):
                self.err(where, sfield, "state names are lower_snake_case (letters, digits, _)",
                         name)
                return False
            sid = f"{parent}.{name}" if parent else name
            if sid in self.states:
                self.err(where, sfield, "state defined twice", sid)
                return False
            return True

        ids: list[StateId] = []
        for name, spec, sfield in self.entries(m, field, STATE_KEYS,
                                               "must be a mapping with `rules` or `basis`",
                                               name_ok):
            sid = f"{parent}.{name}" if parent else name
            rules, basis, summary = self.element(spec, sfield)
            terminal = self.flag(spec, "terminal", sfield)
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
                else:
                    initial = self.child(sid, init_name, children, spec.at("initial"),
                                         f"{sfield}.initial", "not one of its states")
            elif "initial" in spec and not children:
                self.err(spec.at("initial"), f"{sfield}.initial",
                         "only a state with child states has `initial`", spec.get("initial"))
            if terminal and children:
                self.err(spec.at("terminal"), f"{sfield}.terminal",
                         "only a leaf state can be terminal (mark its end states instead)")
                terminal = False
            self.states[sid] = State(
                sid, rules, summary, self.origin(m, name),
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

    def child(self, parent: StateId, name: object, children: tuple[StateId, ...],
              where: Where, field: str, message: str) -> StateId | None:
        """The child ``name`` of ``parent`` (its ``initial``); None, reported, if no child."""
        if f"{parent}.{name}" in children:
            return f"{parent}.{name}"
        self.err(where, field, message, name,
                 did_you_mean(name, [c.rsplit(".", 1)[-1] for c in children]))
        return None

    def build_regions(self, m: LMap) -> None:
        """The ``regions:`` block: each region and its states."""

        def name_ok(rname: str, where: Where, rfield: str) -> bool:
            if not NAME_RE.match(rname):
                self.err(where, rfield, "region names are lower_snake_case", rname)
                return False
            if rname in self.states or rname in self.regions:
                self.err(where, rfield, "region name clashes with a state or region", rname)
                return False
            return True

        for rname, rspec, rfield in self.entries(m, "regions", REGION_KEYS,
                                                 name_ok=name_ok):
            rules, basis, summary = self.element(rspec, rfield)
            self.regions.append(rname)
            # Placeholder first so the region precedes its states in declared order.
            self.states[rname] = State(rname, rules, summary, self.origin(m, rname),
                                       region=rname, basis=basis)
            sub = self.mapping(rspec, "states", rfield)
            children = (self.build_states(sub, rname, rname, f"{rfield}.states")
                        if sub is not None else ())
            initial = None
            if not children:
                self.err(m.at(rname), f"{rfield}.states", "a region needs states")
            else:
                initial = self.child(rname, rspec.get("initial"), children, rspec.at("initial"),
                                     f"{rfield}.initial", "must name one of the region's states")
            self.states[rname] = replace(self.states[rname], children=children, initial=initial)

    def check_exhaustive(self, raw: LMap) -> None:
        """Every guard a state lists as ``exhaustive`` is registered."""
        for sid, st in list(self.states.items()):
            for g in st.exhaustive:
                spec, sfield = self.state_where.get(sid, (raw, f"states.{sid}"))
                self.guard(g, spec.at("exhaustive"), f"{sfield}.exhaustive")

    def include(
        self, spec: LMap, sid: StateId, region: str | None, field: str
    ) -> tuple[tuple[StateId, ...], StateId] | None:
        """Graft the procedure ``spec`` includes under ``sid``: its children and initial."""
        target = spec.get("include")
        where = spec.at("include")
        if not isinstance(target, str):
            self.err(where, f"{field}.include", "must name a procedure", target)
            return None
        if region is not None:
            self.err(where, f"{field}.include", "a procedure can only be included in the main flow")
            return None
        try:
            sub = self.load_included(target, Path(spec.file), self.stack)
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
        """``value`` when it names a state; otherwise report it."""
        if self.known(value, self.states, where, field, "unknown state"):
            return value
        return None

    def state_refs(self, m: LMap, key: str, field: str) -> tuple[StateId, ...]:
        """A field that names one state or a list of states."""
        value = m.get(key)
        out: list[StateId] = []
        for i, name in enumerate(self.names(m, key, field)):
            where = value.at(i) if isinstance(value, LList) else m.at(key)
            ref = self.state_ref(name, where, f"{field}.{key}")
            if ref is not None:
                out.append(ref)
        return tuple(out)

    def check_event(self, ev: EventRef | None, triggers: set[str], where: Where,
                    field: str) -> None:
        """The trigger or state an event names exists."""
        if ev is None:
            return
        if ev.kind == "trigger":
            self.known(ev.name, triggers, where, field, "unknown trigger")
        else:
            self.known(ev.name, self.states, where, field, "unknown state")

    # -- transitions ----------------------------------------------------------------------
    def build_transitions(self, m: LMap) -> list[Transition]:
        """The ``transitions:`` block."""

        def name_ok(tid: str, where: Where, field: str) -> bool:
            if not ID_RE.match(tid):
                self.err(where, field, "transition ids are lower_snake_case", tid)
            return True

        out: list[Transition] = []
        for tid, spec, field in self.entries(
                m, "transitions", TRANSITION_KEYS,
                "must be a mapping with source, dest and rules or basis", name_ok):
            trigger = spec.get("trigger", tid)
            if not isinstance(trigger, str) or not NAME_RE.match(trigger):
                self.err(spec.at("trigger"), f"{field}.trigger",
                         "triggers are lower_snake_case names", trigger)
                trigger = tid
            if "source" not in spec:
                self.err(m.at(tid), f"{field}.source", "is required")
            internal = self.flag(spec, "internal", field)
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
                self.guard(g, spec.at("guard"), f"{field}.guard")
            when_in = self.state_refs(spec, "when_in", field)
            resources = self.build_resources(spec, field)
            records = self.names(spec, "records", field)
            for r in records:
                if not NAME_RE.match(r):
                    self.err(spec.at("records"), f"{field}.records",
                             "recorded fields are lower_snake_case", r)
            rules, basis, summary = self.element(spec, field)
            if dest is None or not sources:
                continue
            t = Transition(
                tid, trigger, sources, dest, rules, summary, self.origin(m, tid),
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
        """A transition stays in one region, and ``when_in`` looks into another."""
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
        """A transition's ``resources``: role names, or ``{role: ..., level: ..., ...}``."""
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
            if not self.known(role, ROLES, item.at("role"), f"{rfield}.role", "unknown role"):
                continue
            level = item.get("level")
            if level is not None and not self.known(level, MANAGER_LEVELS, item.at("level"),
                                                    f"{rfield}.level", "unknown manager level"):
                level = None
            if role == "manager" and level is None and "level" not in item:
                self.err(item.at("role"), f"{rfield}.level", "a manager needs a level", role)
            when = item.get("when")
            if when is not None and not self.guard(when, item.at("when"), f"{rfield}.when"):
                when = None
            agencies = self.names(item, "agencies", rfield)
            out.append(
                ResourceNeed(
                    role=role,
                    level=level,
                    agencies=agencies,
                    when=when,
                )
            )
        return tuple(out)

    def check_triggers(self, transitions: list[Transition], m: LMap) -> None:
        """A trigger belongs to one region, and never moves ambiguously."""
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
