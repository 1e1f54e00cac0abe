"""A scenario held against its procedure: every name it uses must exist there.

The scenario's states, triggers, deadlines, manager levels and facts are looked up in the
compiled procedure, with "did you mean" for a near miss; a state a case can reach and
leave needs a behaviour. Two fields name the procedure's own states and default to what
its CIN-flat mapping says (:func:`fill_from_procedure`), so no procedure's state names
are written into the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model.errors import Problem, did_you_mean
from model.graph import build_graph
from model.guards import FACTS
from model.spec import MANAGER_LEVELS, CinEventType, Procedure, Transition
from model.types import StateId
from model.yamlsrc import LMap
from simulations.casedata import cin_mapping
from simulations.scenario_locate import locate


@dataclass(frozen=True)
class Derived:
    """A scenario field whose default is a state the procedure's CIN-flat mapping names.

    Attributes:
        loc: Where the field is in the scenario file.
        event_type: The CIN-flat event type whose entered state is the default.
        meaning: What the state is, to say when it must be written out.
    """

    loc: tuple[str, ...]
    event_type: CinEventType
    meaning: str

    @property
    def field(self) -> str:
        """The field's dotted name."""
        return ".".join(self.loc)


DERIVED: tuple[Derived, ...] = (
    Derived(("plan_state",), "cp_plan_start", "the state whose stays count as plans"),
    Derived(("demand", "history", "returns_from"), "closure",
            "the state whose behaviour gives a closed case's chance and gap of returning"),
)
"""The scenario fields taken from the procedure's CIN-flat mapping when left out."""


def fill_from_procedure(data: dict[str, Any], procedure: Procedure, raw: LMap, file: str
                        ) -> list[Problem]:
    """Fill each :data:`DERIVED` field the scenario leaves out from the procedure's mapping.

    The default is the one state the field's CIN-flat event type enters (``cp_plan_start``
    enters the plan state, ``closure`` the state a closed case rests in). A field inside a
    mapping the scenario does not give (no ``demand.history``) is left alone.

    Args:
        data: The scenario as plain data; filled in place.
        procedure: The scenario's procedure.
        raw: The YAML as read, to say where a problem is.
        file: The scenario file.

    Returns:
        A problem for each field left out that the mapping cannot give: the procedure has
        no mapping, or the event type does not enter exactly one state.
    """
    problems: list[Problem] = []
    for derived in DERIVED:
        *outer, key = derived.loc
        node: Any = data
        for part in outer:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or key in node:
            continue
        if procedure.cin_flat is None:
            why = f"procedure {procedure.id} declares no CIN-flat mapping to take it from"
        else:
            entered = cin_mapping(procedure).entered(derived.event_type)
            if len(entered) == 1:
                node[key] = entered[0]
                continue
            why = (f"procedure {procedure.id}'s CIN-flat `{derived.event_type}` entry enters "
                   + (f"{len(entered)} states ({', '.join(entered)})" if entered else
                      "no state") + ", not one, to take it from")
        where, line, _ = locate(raw, derived.loc, file)
        problems.append(Problem(where, line, derived.field, f"is not set, and {why}: name "
                                f"{derived.meaning}"))
    return problems


def _offers(procedure: Procedure, state: StateId, t: Transition) -> bool:
    """True when ``t`` may start in ``state``: from it, an ancestor, or a state inside it."""
    chain = set(procedure.ancestors(state))
    if chain & set(t.sources):
        return True
    return any(state in procedure.ancestors(s) for s in t.sources)


class _Checker:
    """Cross-checks a scenario against its procedure, collecting every problem."""

    def __init__(self, procedure: Procedure, raw: LMap, data: dict[str, Any], file: str
                 ) -> None:
        self.proc = procedure
        self.raw = raw
        self.data = data
        self.file = file
        self.problems: list[Problem] = []
        self.deadlines = [d.id for d in procedure.deadlines]

    def err(self, loc: tuple[str | int, ...], message: str, value: object = None,
            hint: str | None = None) -> None:
        file, line, _ = locate(self.raw, loc, self.file)
        self.problems.append(Problem(file, line, ".".join(map(str, loc)), message,
                                     value, hint))

    def state(self, loc: tuple[str | int, ...], sid: str) -> bool:
        if sid in self.proc.states and not (
            self.proc.states[sid].parent is None and self.proc.states[sid].region
        ):
            return True
        self.err(loc, "no such state in the procedure", sid,
                 did_you_mean(sid, list(self.proc.states)))
        return False

    def trigger_from(self, loc: tuple[str | int, ...], trigger: str, state: StateId) -> None:
        ts = [t for t in self.proc.transitions if t.trigger == trigger]
        if not ts:
            self.err(loc, "no such trigger in the procedure", trigger,
                     did_you_mean(trigger, self.proc.triggers))
        elif not any(_offers(self.proc, state, t) for t in ts):
            offered = sorted({t.trigger for t in self.proc.transitions
                              if _offers(self.proc, state, t)})
            self.err(loc, f"the procedure does not offer this trigger in {state}", trigger,
                     did_you_mean(trigger, offered))

    def deadline_ids(self, loc: tuple[str | int, ...], ids: list[str]) -> None:
        for i, d in enumerate(ids):
            if d not in self.deadlines:
                self.err((*loc, i), "no such deadline in the procedure", d,
                         did_you_mean(d, self.deadlines))

    def run(self) -> list[Problem]:
        """Check every name the scenario uses against the procedure.

        Works on the plain data (with what :func:`fill_from_procedure` filled in), so it
        also runs when the shape check failed, and its problems are reported together with
        those.
        """
        d = self.data
        demand = _dict(d.get("demand"))
        for fact in _dict(demand.get("facts")):
            if fact not in FACTS:
                self.err(("demand", "facts", fact), "no guard reads this fact", fact,
                         did_you_mean(fact, FACTS))
        returns = _dict(demand.get("history")).get("returns_from")
        if isinstance(returns, str):
            rb = _dict(_dict(d.get("behaviour")).get(returns))
            if not rb or rb.get("after") is None:
                self.err(("demand", "history", "returns_from"), "needs the behaviour of this "
                         "state, with a chance and an after (the gap before a child returns)",
                         returns, did_you_mean(returns, _dict(d.get("behaviour"))))
        for sid, b in _dict(d.get("behaviour")).items():
            loc: tuple[str | int, ...] = ("behaviour", sid)
            if not self.state(loc, sid):
                continue
            b = _dict(b)
            branches: list[tuple[tuple[str | int, ...], str]] = [
                ((*loc, "choose", t), t) for t in _dict(b.get("choose"))]
            visits = b.get("choose_by_visit")
            for k, table in enumerate(visits if isinstance(visits, list) else []):
                branches += [((*loc, "choose_by_visit", k, t), t) for t in _dict(table)]
            branches += [((*loc, "choose_if_previous_plan", t), t)
                         for t in _dict(b.get("choose_if_previous_plan"))]
            for where, trig in branches:
                self.trigger_from(where, trig, sid)
            if isinstance(b.get("postpone"), str):
                self.trigger_from((*loc, "postpone"), b["postpone"], sid)
            deadlines = _dict(b.get("aim")).get("deadlines")
            if isinstance(deadlines, list):
                self.deadline_ids((*loc, "aim", "deadlines"), deadlines)
            meeting = _dict(b.get("before_meeting")).get("trigger")
            if isinstance(meeting, str) and meeting not in self.proc.triggers:
                self.err((*loc, "before_meeting", "trigger"), "no such trigger in the procedure",
                         meeting, did_you_mean(meeting, self.proc.triggers))
        ends = {dl.end.name for dl in self.proc.deadlines if dl.end.kind == "trigger"}
        for trig in _dict(d.get("tasks")):
            if trig not in self.proc.triggers:
                self.err(("tasks", trig), "no such trigger in the procedure", trig,
                         did_you_mean(trig, self.proc.triggers))
            elif trig not in ends:
                self.err(("tasks", trig), "no deadline ends with this trigger, so nothing "
                         "would ever plan it", trig)
        plan_state = d.get("plan_state")
        if isinstance(plan_state, str) and plan_state not in self.proc.states:
            self.err(("plan_state",), "no such state in the procedure", plan_state,
                     did_you_mean(plan_state, list(self.proc.states)))
        includes = d.get("plan_includes")
        for k, sid in enumerate(includes if isinstance(includes, list) else []):
            if sid not in self.proc.states:
                self.err(("plan_includes", k), "no such state in the procedure", sid,
                         did_you_mean(str(sid), list(self.proc.states)))
        for trig, c in _dict(d.get("before_meetings")).items():
            if trig not in self.proc.triggers:
                self.err(("before_meetings", trig), "no such trigger in the procedure", trig,
                         did_you_mean(trig, self.proc.triggers))
            meetings = _dict(c).get("meetings")
            for k, meeting in enumerate(meetings if isinstance(meetings, list) else []):
                if meeting not in self.proc.triggers:
                    self.err(("before_meetings", trig, "meetings", k),
                             "no such trigger in the procedure", meeting,
                             did_you_mean(str(meeting), self.proc.triggers))
        staffing = _dict(d.get("staffing"))
        holds = _dict(staffing.get("social_workers")).get("holds_cases_in")
        for i, sid in enumerate(holds if isinstance(holds, list) else []):
            self.state(("staffing", "social_workers", "holds_cases_in", i), str(sid))
        for trig in _dict(staffing.get("by_meeting")):
            if trig not in self.proc.triggers:
                self.err(("staffing", "by_meeting", trig),
                         "no such trigger in the procedure", trig,
                         did_you_mean(str(trig), self.proc.triggers))
        for level in _dict(staffing.get("managers")):
            if level not in MANAGER_LEVELS:
                self.err(("staffing", "managers", level), "unknown manager level", level,
                         did_you_mean(level, MANAGER_LEVELS))
        self.every_state_has_behaviour(set(_dict(d.get("behaviour"))))
        return self.problems

    def every_state_has_behaviour(self, covered: set[str]) -> None:
        """A state a case can reach, with moves out, needs a behaviour to leave it."""
        proc = self.proc
        graph = build_graph(proc)
        reached = {leaf for config in graph.graph.nodes for leaf in config}
        for leaf in proc.leaves():
            if leaf not in reached:
                continue
            moves = [t for t in proc.transitions if not t.internal and _offers(proc, leaf, t)
                     and any(s in proc.ancestors(leaf) for s in t.sources)]
            if not moves:
                continue
            if covered & set(proc.ancestors(leaf)):
                continue
            if proc.states[leaf].terminal:
                continue  # a case may simply rest here
            self.err(("behaviour",), f"no behaviour covers state {leaf}: cases would wait "
                     "there for ever", leaf)


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else an empty one (shape errors are reported apart)."""
    return value if isinstance(value, dict) else {}


def check_against_procedure(procedure: Procedure, raw: LMap, data: dict[str, Any], file: str
                            ) -> list[Problem]:
    """Every problem with the names ``data`` (the scenario as plain data) uses in ``procedure``.

    ``raw`` is the YAML as read, to say where each problem was written.
    """
    return _Checker(procedure, raw, data, file).run()
