"""The hot path's caches give the answers their uncached forms give.

The engine, table machine, monitor and distributions work some things out once (a lognormal's
sigma, the options of a configuration with no guards, the events a step holds); these tests
compare each cached answer with the plain computation it replaces.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np

from model.calendar import WorkingCalendar
from model.compiler import Option, Step
from model.loader import load_procedure
from model.monitor import PropertyMonitor
from model.spec import EventRef
from simulations.distributions import _Z90, Dist
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
