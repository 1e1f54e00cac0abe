"""The transition table agrees with the compiled ``transitions`` machine (decision 5).

The same random trigger sequences (legal and illegal, at random non-decreasing times) are
fired at a ``CompiledProcedure`` case and a ``TableMachine`` case of every shipped procedure.
After every trigger both must raise the same refusal or return the same step, verdicts and
started clocks, and leave the case with the same configuration, counts and running clocks.
"""

from __future__ import annotations

import functools
import itertools
import math
import textwrap
from collections import Counter
from datetime import date

import hypothesis.strategies as st
import networkx as nx
import pytest
from hypothesis import currently_in_test_context, given, note

from model.calendar import WorkingCalendar
from model.compiler import Case, CompiledProcedure, FireResult, GuardBlocked, IllegalMove
from model.graph import build_graph
from model.loader import available_procedures, load_procedure
from simulations.table import TableMachine

CAL = WorkingCalendar(date(2025, 4, 1))
FACT_NAMES = ("parent_learning_disability", "interpreter_needed", "practice_is_good",
              "caf_completed")
PROCEDURES = available_procedures()
NOT_A_TRIGGER = "teleport"
TIE_BREAKS = "table-tie-breaks"
# No shipped procedure offers one trigger twice from the same configuration, nor ends a
# deadline with an event that also cancels it; this variant does both.
TIE_BREAKS_YAML = """\
    procedure: table-tie-breaks
    extends: west-midlands-2014
    title: Tie-breaks for the transition table
    transitions:
      escalate_outer:
        trigger: escalate
        source: strategy_discussion
        dest: closed
        guard: practice_is_good
        rules: [WM-1a]
        summary: Outer source, declared first; loses to an enabled inner source.
      escalate_inner_a:
        trigger: escalate
        source: strategy_discussion.convening
        dest: child_in_need
        guard: interpreter_needed
        rules: [WM-1a]
        summary: Inner source, declared second.
      escalate_inner_b:
        trigger: escalate
        source: strategy_discussion.convening
        dest: family_support
        guard: caf_completed
        rules: [WM-1a]
        summary: Inner source, declared third; loses to inner_a when both hold.
    deadlines:
      escalation_window:
        from: {enter: strategy_discussion}
        to: {trigger: escalate}
        within: {working_days: 2}
        cancelled_by: [{trigger: escalate}, {trigger: start_section_47}]
        rules: [WM-1a]
        summary: Escalate within two working days; the end event also cancels it.
    """

# Some facts may be missing altogether; guards must then read them as false in both.
facts_strategy = st.fixed_dictionaries({}, optional={n: st.booleans() for n in FACT_NAMES})
# Gaps in hours: simultaneous moves, whole hours (clock edges) and arbitrary fractions.
gap_strategy = st.one_of(
    st.just(0.0),
    st.integers(min_value=0, max_value=24 * 120).map(float),
    st.floats(min_value=0.0, max_value=24.0 * 60, allow_nan=False),
)


@pytest.fixture(scope="session")
def tie_breaks(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("procedures") / f"{TIE_BREAKS}.yaml"
    path.write_text(textwrap.dedent(TIE_BREAKS_YAML))
    return str(path)


@pytest.fixture(scope="module", params=[*PROCEDURES, TIE_BREAKS])
def source(request, tie_breaks) -> str:
    """A shipped procedure's name, or the path of the tie-breaks variant."""
    return tie_breaks if request.param == TIE_BREAKS else request.param


@functools.cache
def reference(name: str) -> CompiledProcedure:
    return CompiledProcedure(load_procedure(name), CAL)


@functools.cache
def table(name: str) -> TableMachine:
    return TableMachine(load_procedure(name), CAL)


@functools.cache
def all_triggers(name: str) -> tuple[str, ...]:
    return (*reference(name).procedure.triggers, NOT_A_TRIGGER)


class Pair:
    """One case in each machine, driven in lockstep and compared after every trigger."""

    def __init__(self, name: str, facts: dict[str, bool]) -> None:
        self.ref, self.fast = reference(name), table(name)
        self.ref_case, ref_started = self.ref.new_case("ref", facts)
        self.fast_case, fast_started = self.fast.new_case("ref", facts)
        assert ref_started == fast_started
        self.now = 0.0
        self.check_cases()

    def close(self) -> None:
        self.ref.release(self.ref_case)
        self.fast.release(self.fast_case)

    def fire(self, trigger: str, gap: float) -> FireResult | None:
        self.now += gap
        ref_result = fast_result = None
        ref_error = fast_error = None
        try:
            ref_result = self.ref.fire(self.ref_case, trigger, self.now)
        except IllegalMove as exc:
            ref_error = exc
        try:
            fast_result = self.fast.fire(self.fast_case, trigger, self.now)
        except IllegalMove as exc:
            fast_error = exc
        if currently_in_test_context():
            note(f"t={self.now}: {trigger} -> {ref_error or ref_result}")
        if ref_error is not None or fast_error is not None:
            assert type(ref_error) is type(fast_error), (ref_error, fast_error)
            assert ref_error is not None and fast_error is not None
            same_refusal(ref_error, fast_error)
        else:
            assert ref_result == fast_result
        self.check_cases()
        return ref_result

    def check_cases(self) -> None:
        ref, fast = self.ref_case, self.fast_case
        assert self.ref.configuration(ref) == self.fast.configuration(fast)
        assert self.ref.allowed_triggers(ref) == self.fast.allowed_triggers(fast)
        assert self.ref.options(ref) == self.fast.options(fast)
        assert ref.counts == fast.counts
        assert ref.episode == fast.episode
        assert list(ref.clocks) == list(fast.clocks)  # same ids, same order
        assert ref.clocks == fast.clocks  # same deadlines, start, due and earliest times
        assert self.ref.overdue(ref, self.now) == self.fast.overdue(fast, self.now)
        for state in self.ref.procedure.states:
            assert self.ref.is_active(ref, state) == self.fast.is_active(fast, state)

    def set_fact(self, fact: str, value: bool) -> None:
        self.ref_case.facts[fact] = value
        self.fast_case.facts[fact] = value


def same_refusal(ref: IllegalMove, fast: IllegalMove) -> None:
    assert fast.configuration == ref.configuration
    assert fast.allowed == ref.allowed
    assert (fast.trigger, fast.reason, fast.rules) == (ref.trigger, ref.reason, ref.rules)
    assert str(fast) == str(ref)
    if isinstance(ref, GuardBlocked):
        assert isinstance(fast, GuardBlocked)
        assert fast.guards == ref.guards


@given(data=st.data(), facts=facts_strategy)
def test_random_triggers_give_the_same_results(source, data, facts):
    """Any triggers, mostly illegal: the same refusals and the same moves."""
    moves = data.draw(st.lists(st.tuples(st.sampled_from(all_triggers(source)), gap_strategy),
                               max_size=60))
    pair = Pair(source, facts)
    try:
        for trigger, gap in moves:
            pair.fire(trigger, gap)
    finally:
        pair.close()


@functools.cache
def distances(name: str) -> tuple[nx.MultiDiGraph, dict[tuple[str, ...], dict]]:
    graph = build_graph(reference(name).procedure).graph
    return graph, dict(nx.all_pairs_shortest_path_length(graph))


def towards(name: str, config, allowed, target) -> tuple[str, ...]:
    """The allowed triggers that lead (guards aside) closest to ``target``; () if none can."""
    graph, distance = distances(name)
    left: dict[str, float] = {}
    for _, after, key in graph.out_edges(config, keys=True):
        trigger = graph.edges[config, after, key]["transition"].trigger
        if trigger in allowed:
            left[trigger] = min(left.get(trigger, math.inf),
                                distance[after].get(target, math.inf))
    best = min(left.values(), default=math.inf)
    return tuple(t for t, d in left.items() if d == best) if best < math.inf else ()


@given(data=st.data(), facts=facts_strategy)
def test_long_mostly_legal_walks_give_the_same_results(source, data, facts):
    """Walks that mostly take allowed moves reach deep into the procedure; now and then an
    illegal trigger or a changed fact.

    Half of the moves head for a target configuration drawn from the procedure graph, a new
    one each time the last is reached, so walks go round the core group and review loops
    again and again (up to the designated 4th review); others are moves the walk has taken
    least often from here, or any allowed move.
    """
    pair = Pair(source, facts)
    configurations = sorted(distances(source)[0].nodes)
    taken: Counter[tuple[tuple[str, ...], str]] = Counter()
    target = None
    try:
        for _ in range(data.draw(st.integers(min_value=1, max_value=200), label="steps")):
            allowed = pair.ref.allowed_triggers(pair.ref_case)
            config = pair.ref.configuration(pair.ref_case)
            choice = data.draw(st.integers(min_value=0, max_value=19), label="choice")
            if choice == 0:
                fact = data.draw(st.sampled_from(FACT_NAMES), label="fact")
                pair.set_fact(fact, data.draw(st.booleans(), label="value"))
                pair.check_cases()
                continue
            if choice <= 2:
                trigger = data.draw(st.sampled_from(all_triggers(source)), label="any")
            elif not allowed:
                break  # at rest: the random-trigger test covers refusals from here
            else:
                if target is None or target == config:
                    target = data.draw(st.sampled_from(configurations), label="target")
                route = towards(source, config, allowed, target)
                if not route:
                    target = None
                if choice >= 10 and route:
                    allowed = route
                elif choice >= 6:
                    fewest = min(taken[config, t] for t in allowed)
                    allowed = tuple(t for t in allowed if taken[config, t] == fewest)
                trigger = data.draw(st.sampled_from(allowed), label="legal")
                taken[config, trigger] += 1
            pair.fire(trigger, data.draw(gap_strategy, label="gap"))
    finally:
        pair.close()


WEST_MIDLANDS_PATH = (
    "decide_strategy_discussion", "strategy_discussion_held", "start_section_47", "book_icpc",
    "proceed_to_icpc", "invitations_sent", "reports_received", "icpc_opens", "plan_agreed",
    "start_cp_plan", "core_group_held", "statutory_visit", "review_due",
    "review_reports_received", "review_opens", "review_plan_agreed", "end_plan_family_support",
    "family_support_ends", "re_referral",
)


def test_west_midlands_path_agrees_step_by_step():
    """The whole West Midlands pathway, twice round, in working-hours steps."""
    pair = Pair("west-midlands-2014", {})
    try:
        for trigger in WEST_MIDLANDS_PATH * 2:
            assert pair.fire(trigger, 26.0) is not None, trigger
    finally:
        pair.close()


def test_table_covers_exactly_the_graph(source):
    """Every configuration in the table is a configuration of the procedure graph."""
    machine = table(source)
    graph = build_graph(machine.procedure)
    assert machine.initial == reference(source).initial == graph.initial
    case = Case("probe")
    for config in graph.graph.nodes:
        case.state = machine._index[config]
        assert machine.configuration(case) == config
    assert len(machine._nodes) == graph.graph.number_of_nodes()


@pytest.mark.parametrize("facts", list(itertools.product([False, True], repeat=len(FACT_NAMES))))
@pytest.mark.parametrize("held", [False, True])
def test_one_trigger_offered_twice_picks_the_same_move(tie_breaks, facts, held):
    """Innermost source first, then declared order; an end that also cancels is an end."""
    given_facts = dict(zip(FACT_NAMES, facts, strict=True))
    pair = Pair(tie_breaks, given_facts)
    inner = [] if held else [
        ("escalate_inner_a", given_facts["interpreter_needed"]),
        ("escalate_inner_b", given_facts["caf_completed"]),
    ]
    expected = [tid for tid, ok in [*inner, ("escalate_outer", given_facts["practice_is_good"])]
                if ok]
    try:
        pair.fire("decide_strategy_discussion", 1.0)
        if held:
            pair.fire("strategy_discussion_held", 2.0)
        result = pair.fire("escalate", 30.0)
        if expected:
            assert result is not None and result.step.transition_id == expected[0]
            assert [v.outcome for v in result.verdicts] == ["met"]
        else:
            assert result is None
    finally:
        pair.close()


def test_a_case_is_plain_data_in_the_table():
    """The table keeps no reference to its cases, so releasing one is a no-op."""
    machine = table("west-midlands-2014")
    case, _ = machine.new_case("plain")
    machine.release(case)
    machine.fire(case, "decide_strategy_discussion", 1.0)
    assert machine.configuration(case) == ("strategy_discussion.convening",)

