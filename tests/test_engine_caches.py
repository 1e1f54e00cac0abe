"""The hot path's caches give the answers their uncached forms give.

The engine, table machine, monitor and distributions work some things out once (a lognormal's
sigma, the options of a configuration with no guards, the events a step holds); these tests
compare each cached answer with the plain computation it replaces.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import math
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import engine_for
from hypothesis import given
from hypothesis import strategies as st

from model.calendar import WorkingCalendar
from model.compiler import Case, Option, Step
from model.graph import active_states, possible_events
from model.loader import load_procedure
from model.monitor import TRACE_STEPS, PropertyMonitor
from model.spec import EventRef
from simulations.behaviour import ChoiceTable
from simulations.distributions import _Z90, Dist
from simulations.engine import Engine, caseload_summary
from simulations.eventlog import EventLogWriter, arrow_column
from simulations.runner import make_machine
from simulations.scenario import load_scenario
from simulations.table import TableMachine


def test_lognormal_draws_match_the_formula() -> None:
    dist = Dist("lognormal", "days", (3.0, 9.0))
    mine, plain = np.random.default_rng(7), np.random.default_rng(7)
    sigma = math.log(9.0 / 3.0) / _Z90
    for _ in range(50):
        assert dist.sample(mine) == float(3.0 * math.exp(sigma * plain.standard_normal()))
    assert dist == Dist("lognormal", "days", (3.0, 9.0))  # the cache is not compared


def test_empirical_draws_match_normalised_shares() -> None:
    bins = ((0.0, 1.0, 1.0), (1.0, 4.0, 3.0))
    dist = Dist("empirical", "days", (), bins)
    mine, plain = np.random.default_rng(3), np.random.default_rng(3)
    shares = np.array([1.0, 3.0])
    for _ in range(50):
        index = int(plain.choice(2, p=shares / shares.sum()))
        low, high, _ = bins[index]
        assert dist.sample(mine) == float(plain.uniform(low, high))


@pytest.mark.parametrize("params", [(0.0, 1.0), (2.5, 7.25), (-3.0, 1e5), (12.0, 12.0 + 1e-9)])
def test_uniform_draws_match_numpy(params: tuple[float, float]) -> None:
    dist = Dist("uniform", "days", params)
    mine, plain = np.random.default_rng(11), np.random.default_rng(11)
    for _ in range(2000):
        assert dist.sample(mine) == float(plain.uniform(*params))


@pytest.mark.parametrize("params", [(1.0, 2.0, 4.0), (0.0, 0.0, 3.0), (2.0, 5.0, 5.0),
                                    (0.5, 0.7, 90.0), (3.0, 3.0, 3.0)])
def test_triangular_draws_match_numpy(params: tuple[float, float, float]) -> None:
    dist = Dist("triangular", "days", params)
    mine, plain = np.random.default_rng(12), np.random.default_rng(12)
    for _ in range(2000):
        expected = params[0] if params[0] == params[2] else float(plain.triangular(*params))
        assert dist.sample(mine) == expected


def test_empirical_draws_match_numpy_with_many_uneven_bins() -> None:
    shares = np.random.default_rng(2).random(9) ** 3
    bins = tuple((float(i), float(i) + 0.5 * (i % 3), float(w)) for i, w in enumerate(shares))
    dist = Dist("empirical", "days", (), bins)
    mine, plain = np.random.default_rng(13), np.random.default_rng(13)
    for _ in range(3000):
        low, high, _ = bins[int(plain.choice(len(bins), p=shares / shares.sum()))]
        assert dist.sample(mine) == (float(plain.uniform(low, high)) if high > low else low)


@pytest.mark.parametrize("name", ["baseline", "walsall"])
def test_a_run_leaves_no_cyclic_garbage(name: str) -> None:
    """Engine.run turns the cycle collector off: that is sound only while it makes none."""
    engine = engine_for(name, 3, 150, 30)
    gc.collect()
    assert gc.isenabled()
    engine.run()
    assert gc.isenabled()  # back on after the run
    assert gc.collect() == 0


def test_table_options_prebuilt_equal_computed() -> None:
    machine = TableMachine(load_procedure("west-midlands-2014"),
                           WorkingCalendar(date(2025, 4, 1)))
    case, _ = machine.new_case("c1")
    prebuilt = 0
    for index, node in enumerate(machine._nodes):
        case.state = index
        ctx = case.guard_context()
        computed = tuple(Option(o.transition, not o.failing(ctx) and not o.waiting,
                                o.failing(ctx), o.waiting) for o in node.offers)
        assert machine.options(case) == computed
        prebuilt += node.options is not None
    assert prebuilt > 0


def test_monitor_reads_events_of_a_fresh_tuple_afresh() -> None:
    procedure = load_procedure("west-midlands-2014")
    prop = next(p for p in procedure.properties if p.pattern == "response")
    assert prop.of is not None and prop.then is not None
    monitor = PropertyMonitor(procedure)
    monitor.start("c1")
    config = TableMachine(procedure, WorkingCalendar(date(2025, 4, 1))).initial
    first = Step("c1", 1.0, "t", "t", config, config, (), (), (prop.of,))
    monitor.observe(first)
    assert prop.id in monitor._cases["c1"].pending
    # a different tuple with the answer's event: the cache must not reuse the first one's
    second = Step("c1", 2.0, "t", "t", config, config, (), (),
                  (EventRef(prop.then.kind, prop.then.name),))
    monitor.observe(second)
    assert prop.id not in monitor._cases["c1"].pending


def _shuffled_steps(procedure_name: str, seed: int, n: int) -> list[Step]:
    """Steps made of the table's moves in random order, with records borrowed at random.

    They do not follow the graph, so precedence, scope and co-recorded properties break.
    """
    machine = TableMachine(load_procedure(procedure_name), WorkingCalendar(date(2025, 4, 1)))
    moves = [m for node in machine._nodes for t in node.triggers.values() for m in t.moves]
    records = sorted({m.transition.records for m in moves})
    rng = np.random.default_rng(seed)
    steps = []
    for i in range(n):
        m = moves[int(rng.integers(len(moves)))]
        kept = m.transition.records if rng.random() < 0.8 else records[
            int(rng.integers(len(records)))]
        steps.append(Step(f"c{i % 3}", float(i), m.transition.trigger, m.transition.id,
                          m.before, m.after, m.transition.rules, kept, m.events))
    return steps


@pytest.mark.parametrize("procedure", ["west-midlands-2014", "newcastle-2010"])
def test_monitor_quick_checks_give_the_full_checks_answers(procedure: str) -> None:
    quick, full = PropertyMonitor(load_procedure(procedure)), PropertyMonitor(
        load_procedure(procedure))
    for case_id in ("c0", "c1", "c2"):
        quick.start(case_id)
        full.start(case_id)
    broken = 0
    for step in _shuffled_steps(procedure, 5, 3000):
        found = [(v.property_id, v.message) for v in quick.observe(step)]
        track = full._cases[step.case_id]
        track.trace.append(step)
        expected = [(v.property_id, v.message) for v in full._observe_all(step, track)]
        assert found == expected
        broken += bool(found)
        mine, theirs = quick._cases[step.case_id], full._cases[step.case_id]
        assert (mine.seen, mine.pending, mine.scope_records) == (
            theirs.seen, theirs.pending, theirs.scope_records)
    assert broken > 0  # the walk does break properties, so both paths were compared


def test_the_monitor_keeps_only_a_cases_most_recent_steps() -> None:
    """A case's trace holds its last TRACE_STEPS steps (it was a bounded deque)."""
    monitor = PropertyMonitor(load_procedure("west-midlands-2014"), keep_trace=True)
    monitor.start("c0")
    steps = [s for s in _shuffled_steps("west-midlands-2014", 7, 3 * TRACE_STEPS + 90)
             if s.case_id == "c0"]
    assert len(steps) > TRACE_STEPS
    for step in steps:
        monitor.observe(step)
    assert list(monitor._cases["c0"].trace) == steps[-TRACE_STEPS:]


def test_event_log_dates_match_timedelta(tmp_path: Path) -> None:
    start = date(2025, 4, 1)
    log = EventLogWriter(tmp_path / "events.parquet", 0, start)
    hair = 1e-10
    times = [0.0, hair, 24.0 - hair, 24.0, 24.0 + hair, -hair, -24.0, 12.5, 8759.999999999,
             *np.random.default_rng(1).uniform(-100.0, 20000.0, 500)]
    for t in times:
        assert log._date(float(t)) == (start + timedelta(hours=float(t))
                                       - date(1970, 1, 1)).days, t
    log.abort()


@pytest.mark.parametrize("values", [
    ["a", "", "conference + plan", "x" * 300],
    ["café", "", "Ünïcode — dash", "a"],  # not ASCII: bytes and characters differ
    [],
])
def test_event_log_string_columns_match_pyarrow(values: list[str]) -> None:
    built = arrow_column(pa.string(), values)
    built.validate(full=True)
    assert built.equals(pa.array(values, pa.string()))


def test_event_log_number_columns_match_pyarrow() -> None:
    times = [0.0, 1.5, -2.25, 1e9]
    assert arrow_column(pa.float64(), times).equals(pa.array(times, pa.float64()))
    days = [0, 20000, -3]
    assert arrow_column(pa.date32(), days).equals(pa.array(days, pa.int32()).view(pa.date32()))
    assert arrow_column(pa.int32(), [7, 7]).equals(pa.array([7, 7], pa.int32()))


def test_writing_an_event_log_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow's converter from Python objects imports pandas, ~0.1 s a process for nothing."""
    script = f"""
import sys
from datetime import date
from pathlib import Path
from model.compiler import Step
from simulations.eventlog import EventLogWriter
log = EventLogWriter(Path({str(tmp_path / "events.parquet")!r}), 0, date(2025, 4, 1))
log.case_started("c1", 0.5, ("referral",), {{"disabled": True}})
log.step(Step("c1", 3.0, "decide", "t1", ("referral",), ("assessment",), ("R-1",), (), ()),
         "social_worker:1")
log.close()
print("pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[1])
    assert done.stdout.strip() == "False"
    table = pq.read_table(tmp_path / "events.parquet")
    assert table.column("to_state").to_pylist() == ["referral", "assessment"]
    assert table.column("facts").to_pylist() == ["disabled", ""]


def test_engine_per_configuration_views_match_plain_computation() -> None:
    engine = engine_for("baseline", 3, 120, 30)
    engine.run()
    procedure = engine.procedure
    assert len(engine._heres) > 5
    for config, here in engine._heres.items():
        active = active_states(procedure, config)
        assert here.active == active
        assert here.behaving == tuple(s for leaf in config
                                      for s in reversed(procedure.ancestors(leaf))
                                      if s in engine.behaviour)
        assert here.holds == bool(engine.holding & active)
        assert here.top == procedure.ancestors(config[0])[-1]
        assert here.offered == {t.trigger for t in procedure.transitions
                                if active & set(t.sources)}
    for t in procedure.transitions:
        kind = engine._kind(t)
        roles = [r.role for r in t.resources]
        assert kind.people == bool(roles)
        assert kind.social == ("social_worker" in roles)
        assert kind.actor == (roles[0] if roles else "case")
        assert kind.managers == tuple(r.level for r in t.resources if r.role == "manager"
                                      and r.level in engine.managers)


def test_engine_views_kept_by_the_tables_numbers_match_plain_computation() -> None:
    """Enabled triggers per configuration (where no guard decides) and each move's shape."""
    engine = engine_for("baseline", 3, 120, 30)
    engine.run()
    table = engine._table
    assert table is not None
    moves = {m.number: m for node in table._nodes for trig in node.triggers.values()
             for m in trig.moves}
    assert sorted(moves) == list(range(table.move_count))  # each move numbered once
    kept_shapes = [(n, s) for n, s in enumerate(engine._move_shapes) if s is not None]
    assert len(kept_shapes) > 10
    for number, shape in kept_shapes:
        events = moves[number].events
        exited = tuple(e.name for e in events if e.kind == "exit")
        entered = tuple(e.name for e in events if e.kind == "enter")
        assert shape == (exited, entered, exited == entered[::-1])
    kept_enabled = [(i, e) for i, e in enumerate(engine._node_enabled) if e is not None]
    assert len(kept_enabled) > 5
    for index, enabled in kept_enabled:
        probe = Case("probe")
        probe.state = index
        assert table.fixed_options(probe)
        plain: dict[str, object] = {}
        for o in table.options(probe):
            if o.enabled and o.transition.trigger not in plain:
                plain[o.transition.trigger] = engine._kind(o.transition)
        assert enabled == plain


def test_the_table_numbers_the_move_it_fires() -> None:
    procedure = load_procedure("west-midlands-2014")
    table = TableMachine(procedure, WorkingCalendar(date(2025, 4, 1)))
    case, _ = table.new_case("c1")
    result, number = table.fire_move(case, "decide_strategy_discussion", 2.0)
    moves = {m.number: m for node in table._nodes for trig in node.triggers.values()
             for m in trig.moves}
    assert moves[number].events == result.step.events
    assert moves[number].transition_id == result.step.transition_id
    again, _ = table.new_case("c2")
    assert table.fire(again, "decide_strategy_discussion", 2.0).step.after == \
        result.step.after


@pytest.mark.parametrize("name", ["baseline", "walsall", "wigan", "newcastle"])
def test_deadlines_a_trigger_ends_are_worked_out_once_per_procedure(name: str) -> None:
    scenario = load_scenario(name)
    procedure = scenario.procedure
    machine, calendar = make_machine(scenario, "table")
    first = Engine(scenario, machine, calendar, 0, 1)
    second = Engine(scenario, machine, calendar, 1, 1)
    assert first.ends_with is second.ends_with  # shared, and read only (tuples)
    plain: dict[str, list[str]] = {}
    for d in procedure.deadlines:
        for t in procedure.transitions:
            stops = (d.end.kind == "trigger" and d.end.name == t.trigger) or (
                d.end.kind == "enter" and d.end in possible_events(procedure, t))
            if stops and d.id not in plain.setdefault(t.trigger, []):
                plain[t.trigger].append(d.id)
    assert {k: [d.id for d in v] for k, v in first.ends_with.items()} == {
        k: v for k, v in plain.items() if v}


@given(st.lists(st.integers(0, 80), min_size=1, max_size=400))
def test_caseload_summary_gives_numpys_floats(loads: list[int]) -> None:
    values = np.array(loads, dtype=float)
    assert caseload_summary(loads) == (
        float(values.mean()), float(np.median(values)), float(np.percentile(values, 90)),
        float(values.max()))


@given(weights=st.lists(st.integers(0, 5), min_size=1, max_size=6), seed=st.integers(0, 99))
def test_choosing_among_every_move_draws_as_bisect_does(weights: list[int], seed: int) -> None:
    """The compiled loop in ChoiceTable.choose picks what bisect_right on the weights did."""
    cumulative = tuple(float(c) for c in itertools.accumulate(weights))
    if cumulative[-1] == 0:
        cumulative = (*cumulative[:-1], 1.0)
    triggers = tuple(f"t{i}" for i in range(len(cumulative)))
    table = ChoiceTable(triggers, cumulative, (None,) * len(triggers))
    mine, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(20):
        x = theirs.random() * cumulative[-1]
        expected = min(bisect.bisect_right(cumulative, x), len(triggers) - 1)
        assert table.choose(frozenset(triggers), mine) == (triggers[expected], None)
