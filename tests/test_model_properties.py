"""Property tests over the compiled machines.

1. A ``RuleBasedStateMachine`` drives each shipped procedure with random legal triggers at
   random times and checks the declared properties as runtime invariants after every step.
2. The networkx graph and the compiled ``transitions`` machine allow exactly the same moves:
   random (legal and illegal) trigger sequences are fired straight at the machine, and each
   outcome is compared with the graph's edges whose guards hold for the case.
"""

from __future__ import annotations

import functools
from datetime import date

import hypothesis.strategies as st
from hypothesis import given, note
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from transitions import MachineError

from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure, IllegalMove
from model.graph import build_graph, is_terminal
from model.guards import evaluate
from model.loader import available_procedures, load_procedure
from model.monitor import PropertyMonitor

CAL = WorkingCalendar(date(2025, 4, 1))
FACT_NAMES = ("parent_learning_disability", "interpreter_needed", "practice_is_good",
              "caf_completed")
facts_strategy = st.fixed_dictionaries({name: st.booleans() for name in FACT_NAMES})


@functools.cache
def compiled(name: str) -> CompiledProcedure:
    return CompiledProcedure(load_procedure(name), CAL)


@functools.cache
def graph(name: str):
    return build_graph(load_procedure(name))


def make_machine_test(name: str) -> type[RuleBasedStateMachine]:
    class CaseWalk(RuleBasedStateMachine):
        """Random legal walks of one case; every step checked against the properties."""

        @initialize(facts=facts_strategy)
        def start(self, facts):
            self.machine = compiled(name)
            self.graph = graph(name)
            self.monitor = PropertyMonitor(self.machine.procedure)
            self.case, _ = self.machine.new_case("h", facts)
            self.monitor.start("h")
            self.now = 0.0
            self.violations = []

        def teardown(self):
            if hasattr(self, "case"):
                self.machine.release(self.case)

        @rule(data=st.data(), hours=st.floats(min_value=0.0, max_value=24.0 * 60))
        def take_a_legal_step(self, data, hours):
            allowed = self.machine.allowed_triggers(self.case)
            if not allowed:
                return
            trigger = data.draw(st.sampled_from(allowed))
            self.now += hours
            before = self.machine.configuration(self.case)
            result = self.machine.fire(self.case, trigger, self.now)
            note(f"{before} --{trigger}--> {result.step.after}")
            assert self.graph.graph.has_edge(before, result.step.after, result.step.transition_id)
            self.violations += self.monitor.observe(result.step)
            self.violations += self.monitor.at_rest("h", result.step.after)
            for verdict in result.verdicts:
                assert verdict.outcome in ("met", "missed", "cancelled")
                assert verdict.ended >= verdict.started

        @rule(trigger=st.sampled_from(sorted(load_procedure(name).triggers)))
        def try_any_trigger(self, trigger):
            before = self.machine.configuration(self.case)
            allowed = self.machine.allowed_triggers(self.case)
            try:
                result = self.machine.fire(self.case, trigger, self.now)
            except IllegalMove as exc:
                assert trigger not in allowed
                assert exc.configuration == before
                assert self.machine.configuration(self.case) == before
            else:
                assert trigger in allowed
                # a legal move made this way is still a step the monitors must see
                self.violations += self.monitor.observe(result.step)
                self.violations += self.monitor.at_rest("h", result.step.after)

        @invariant()
        def no_property_is_violated(self):
            if hasattr(self, "violations"):
                assert not self.violations, self.violations

        @invariant()
        def configuration_is_in_the_graph(self):
            if hasattr(self, "case"):
                assert self.machine.configuration(self.case) in self.graph.graph

    CaseWalk.__name__ = f"CaseWalk_{name.replace('-', '_')}"
    return CaseWalk


for _name in available_procedures():
    _cls = make_machine_test(_name)
    globals()[f"Test{_cls.__name__}"] = _cls.TestCase


def machine_agrees_with_graph(name: str, facts: dict, triggers: list[str]) -> None:
    machine = compiled(name)
    pg = graph(name)
    case, _ = machine.new_case("agree", facts)
    ctx = case.guard_context()
    try:
        for trigger in triggers:
            before = machine.configuration(case)
            moves = [
                (v, pg.graph.edges[before, v, key]["transition"])
                for _, v, key in pg.graph.out_edges(before, keys=True)
            ]
            expected = {
                v for v, t in moves
                if t.trigger == trigger and all(evaluate(g, ctx) for g in t.guards)
            }
            try:
                moved = machine.raw_fire(case, trigger)
            except MachineError:
                moved = False
            after = machine.configuration(case)
            if expected:
                assert moved and after in expected, (before, trigger, after, expected)
                case.counts[trigger] = case.counts.get(trigger, 0) + 1
            else:
                assert not moved and after == before, (before, trigger, after)
            ctx = case.guard_context()
    finally:
        machine.release(case)


@given(data=st.data(), facts=facts_strategy)
def test_graph_and_machine_allow_exactly_the_same_moves(data, facts):
    """Random trigger sequences: the machine moves iff the graph has a matching edge."""
    name = data.draw(st.sampled_from(available_procedures()))
    triggers = data.draw(st.lists(st.sampled_from(sorted(load_procedure(name).triggers)),
                                  max_size=40))
    machine_agrees_with_graph(name, facts, triggers)


@given(data=st.data(), facts=facts_strategy)
def test_random_legal_walks_reach_rest_states_soundly(data, facts):
    """Long legal walks never leave the graph, and terminal configurations really end."""
    name = data.draw(st.sampled_from(available_procedures()))
    machine = compiled(name)
    pg = graph(name)
    case, _ = machine.new_case("walk", facts)
    try:
        for _ in range(60):
            allowed = machine.allowed_triggers(case)
            config = machine.configuration(case)
            if not allowed:
                assert is_terminal(machine.procedure, config), config
                break
            machine.fire(case, data.draw(st.sampled_from(allowed)), 0.0)
            assert machine.configuration(case) in pg.graph
    finally:
        machine.release(case)
