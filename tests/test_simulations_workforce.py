"""Social work teams, turnover and the spread of caseloads between teams and people."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest
import simpy
from helpers import engine_for

from model.calendar import WorkingCalendar
from model.errors import InputError
from simulations.engine import _Here, _Live, replication_streams
from simulations.kpi import compute_kpis
from simulations.record import RunRecord
from simulations.scenario import DistSpec, TurnoverSpec, load_scenario
from simulations.staff import Workers

SW = "staffing.social_workers."
NO_WORKFORCE = {SW + "teams": None, SW + "turnover": None}
"""Overrides that switch teams and turnover off (the behaviour before they existed)."""


def run(overrides, horizon=240, warm_up=120, seed=7):
    engine = engine_for(load_scenario("baseline", overrides), seed, horizon, warm_up,
                        monitor=True)
    return engine, engine.run()


def spread(rec):
    """Time-averaged 90th percentile caseload over the time-averaged median."""
    return float(np.mean(rec.series["caseload_p90"]) / np.mean(rec.series["caseload_median"]))


NOWHERE = _Here(config=(), active=frozenset(), behaving=(), holds=True, top="",
               offered=frozenset(), in_plan=False)
"""Where a stand-in case is: the staff pool only reads its id and allocation fields."""


def case(case_id):
    return _Live(SimpleNamespace(case_id=case_id), 0, NOWHERE)


def cases_of_team(workers, team, n, prefix="C"):
    """``n`` fresh cases whose ids put them in ``team``."""
    found = []
    k = 0
    while len(found) < n:
        live = case(f"{prefix}{k:07d}")
        if workers.team(live) == team:
            found.append(live)
        k += 1
    return found


def test_with_turnover_off_nobody_leaves_and_no_case_is_reallocated():
    _, off = run({SW + "turnover": None}, horizon=200, warm_up=50)
    assert off.leavers == 0 and off.reallocations == 0
    _, on = run({}, horizon=200, warm_up=50)  # the shipped baseline turns it on
    assert on.leavers > 0 and on.reallocations > 0


def test_leavers_and_reallocations_follow_the_turnover_rate():
    """Each post cycles through a stay (mean 1/rate) and a fixed gap: a renewal process."""
    rate, gap_days, measured_days = 2.0, 20.0, 365
    engine, rec = run({SW + "turnover.rate_per_year": rate,
                       SW + "turnover.vacancy_gap": {"fixed": gap_days, "unit": "days"},
                       SW + "turnover.agency_cover": 0.0},
                      horizon=measured_days + 35, warm_up=35)
    posts = len(engine.workers.load)
    cycle_days = 365.25 / rate + gap_days
    expected = posts * measured_days / cycle_days  # about 160: Poisson sd about 13
    assert 0.75 * expected < rec.leavers < 1.25 * expected
    # a leaver's caseload is handed on: about the mean caseload per leaver
    caseload = float(np.mean(rec.series["caseload_mean"]))
    assert 0.5 * caseload * rec.leavers < rec.reallocations < 1.5 * caseload * rec.leavers
    assert rec.allocation_waits_hours  # every handover takes time
    kpis = {k.id: k.mean for k in compute_kpis([rec.to_json()], engine.procedure)}
    assert kpis["capacity:leavers_per_year"] == pytest.approx(rec.leavers * 365.25
                                                              / measured_days)
    assert kpis["capacity:reallocations_per_year"] > 0


def test_a_full_team_queues_its_cases_while_another_team_has_room():
    env = simpy.Environment()
    rng = np.random.default_rng(1)
    workers = Workers(env, 4, 2, 0.0, 5.0, rng, teams=2)
    assert workers.team_of_post == [0, 1, 0, 1]
    first = cases_of_team(workers, 0, 5)
    for live in first:
        workers.request(live)
    assert [live.worker for live in first[:4]] == [0, 2, 0, 2]
    assert first[4].worker is None and first[4].allocated is not None
    assert workers.load == [2, 0, 2, 0]  # team 1 has room for four, but not for team 0's case
    assert workers.unallocated() == 1
    other = cases_of_team(workers, 1, 1, prefix="D")[0]
    workers.request(other)
    assert other.worker in (1, 3)
    workers.release(other)  # room in team 1 does not serve team 0's queue
    assert first[4].worker is None
    workers.drive.run(30.0)
    workers.release(first[1])  # room in team 0 does
    assert first[4].worker == 2 and first[4].allocated is None
    assert workers.waits == [30.0]


def test_a_case_that_closes_while_waiting_to_be_handed_on_is_not_reallocated():
    env = simpy.Environment()
    record = RunRecord(0, 0.0, 1e9)
    turnover = TurnoverSpec(rate_per_year=1e-9, basis="test",
                            reallocation_delay=DistSpec(fixed=5, unit="days"),
                            vacancy_gap=DistSpec(fixed=100, unit="days"))
    workers = Workers(env, 2, 3, 0.0, 5.0, np.random.default_rng(1), turnover=turnover,
                      calendar=WorkingCalendar(date(2025, 4, 1)), record=record)
    a, b, c = case("A"), case("B"), case("C")
    for live in (a, b, c):
        workers.request(live)
    assert (a.worker, b.worker, c.worker) == (0, 1, 0)
    workers._leave(0, np.random.default_rng(2))
    assert a.worker is None and c.worker is None and a.allocated is not None
    assert workers.unallocated() == 2
    assert workers.caseloads() == [1]  # the vacant post is not a worker with no cases
    workers.release(a)  # closes while waiting
    assert a.allocated is None and workers.unallocated() == 1
    workers.drive.run(5 * 24.0 + 1)
    assert a.worker is None
    assert c.worker == 1 and workers.load == [0, 2]
    assert workers.waits == [120.0]
    assert (record.leavers, record.reallocations) == (1, 1)


def test_teams_spread_caseloads():
    small = {SW + "establishment_fte": 30, "demand.referrals_per_year": 1400,
             SW + "turnover": None}
    _, pooled = run({**small, SW + "teams": None})
    _, teams = run({**small, SW + "teams": {"count": 15, "basis": "test"}})
    assert spread(pooled) < 1.12
    assert spread(teams) >= 1.2
    assert max(max(rec.series["caseload_max"]) for rec in (pooled, teams)) <= 22


def test_one_team_is_the_authority_wide_pool_drawing_nothing_new():
    """Defaults draw nothing: a single team gives the very same replication as no teams."""
    _, none = run(NO_WORKFORCE, horizon=150, warm_up=30)
    _, one = run({**NO_WORKFORCE, SW + "teams": {"count": 1, "basis": "test"}},
                 horizon=150, warm_up=30)
    assert json.dumps(none.to_json(), sort_keys=True) == json.dumps(one.to_json(),
                                                                    sort_keys=True)
    assert none.leavers == 0 and none.reallocations == 0


def test_team_settings_are_checked():
    with pytest.raises(InputError, match="teams but only"):
        load_scenario("baseline", {SW + "teams": {"count": 500, "basis": "test"}})
    with pytest.raises(InputError, match="exactly one of count, fte_per_team"):
        load_scenario("baseline", {SW + "teams": {"count": 5, "fte_per_team": 10,
                                                  "basis": "test"}})
    sc = load_scenario("baseline")
    assert sc.spec.staffing.social_workers.team_count() == 10  # about 99 FTE in post


def test_streams_are_unchanged_by_spawning_workforce_streams():
    """Spawning the teams and turnover streams draws nothing from the staff stream."""
    a = replication_streams(3, 0)["staff"]
    b = replication_streams(3, 0)["staff"]
    a.spawn(2)
    assert a.random() == b.random()


# -- caseload spread: areas unequal in demand, people unequal in capacity ---------------------
SMALL = {SW + "establishment_fte": 30, SW + "vacancy_rate": 0.0, SW + "turnover": None,
         SW + "part_time": None, SW + "newly_qualified": None,
         "demand.referrals_per_year": 1400}
"""A small authority with every spreading mechanism off (teams are set per test)."""
FIVE = {"count": 5, "basis": "test"}
HOT = {**FIVE, "demand_spread": {"cv": 0.4, "basis": "test"}}
PART_TIME = {"share": 0.25, "fte": 0.5, "basis": "test"}
ASYE = {"share": 0.25, "cap_factor": 0.6, "basis": "test"}


def test_unequal_areas_spread_caseloads_more_than_equal_ones():
    """Over a few replications: with five teams one draw of shares can come out nearly even."""
    even = [spread(run({**SMALL, SW + "teams": FIVE}, seed=s)[1]) for s in (7, 8, 9)]
    hot = [spread(run({**SMALL, SW + "teams": HOT}, seed=s)[1]) for s in (7, 8, 9)]
    assert np.mean(hot) > np.mean(even) + 0.1


def test_part_timers_and_protected_caseloads_widen_the_spread_of_hot_and_cold_teams():
    _, full = run({**SMALL, SW + "teams": HOT})
    _, part = run({**SMALL, SW + "teams": HOT, SW + "part_time": PART_TIME})
    _, asye = run({**SMALL, SW + "teams": HOT, SW + "newly_qualified": ASYE})
    assert spread(part) > spread(full) + 0.05
    assert spread(asye) > spread(full) + 0.05


def test_part_timers_hold_fewer_cases_in_proportion_to_their_fte():
    engine, _ = run({**SMALL, SW + "teams": None,
                       SW + "part_time": {"share": 0.3, "fte": 0.6, "basis": "test"}})
    workers = engine.workers
    part = [n for n, f in zip(workers.load, workers.fte, strict=True) if f < 1]
    full = [n for n, f in zip(workers.load, workers.fte, strict=True) if f == 1]
    assert part and full
    assert np.mean(part) < np.mean(full)
    assert 0.45 < np.mean(part) / np.mean(full) < 0.75
    # the caseload series count people, part-timers included
    assert len(workers.caseloads()) == len(part) + len(full)


def test_part_time_heads_add_up_to_the_same_fte_in_post():
    sc = load_scenario("baseline", {SW + "part_time": {"share": 0.2, "fte": 0.6,
                                                       "basis": "test"}})
    sw = sc.spec.staffing.social_workers
    heads = sw.heads()
    assert len(heads) > sw.effective_workers()
    assert abs(sum(f for f, _ in heads) - sw.effective_workers()) <= 0.5
    assert sum(f < 1 for f, _ in heads) == pytest.approx(0.2 * len(heads), abs=1)
    assert {c for f, c in heads if f < 1} == {round(0.6 * sw.caseload_cap)}
    asye = [c for f, c in heads if f == 1 and c < sw.caseload_cap]
    assert len(asye) == round(0.1 * len(heads))  # the shipped baseline's ASYE share


def test_explicit_zero_spread_settings_change_nothing():
    zero = {SW + "teams.demand_spread": {"cv": 0.0, "basis": "test"},
            SW + "part_time": {"share": 0.0, "fte": 0.5, "basis": "test"},
            SW + "newly_qualified": {"share": 0.0, "cap_factor": 0.5, "basis": "test"}}
    absent = {SW + "teams.demand_spread": None, SW + "part_time": None,
              SW + "newly_qualified": None}
    _, a = run(absent, horizon=150, warm_up=30)
    _, b = run(zero, horizon=150, warm_up=30)
    assert json.dumps(a.to_json(), sort_keys=True) == json.dumps(b.to_json(), sort_keys=True)


def test_allocation_is_by_load_relative_to_each_workers_cap():
    env = simpy.Environment()
    workers = Workers(env, 2, 10, 0.0, 5.0, np.random.default_rng(1), fte=[1.0, 0.5],
                      caps=[10, 5])
    cases = [case(f"C{k}") for k in range(16)]
    for live in cases[:6]:
        workers.request(live)
    assert workers.load == [4, 2]
    for live in cases[6:15]:
        workers.request(live)
    assert workers.load == [10, 5] and workers.unallocated() == 0
    workers.request(cases[15])
    assert cases[15].worker is None and workers.unallocated() == 1


def test_teams_are_dealt_equal_fte_and_areas_get_their_drawn_shares():
    assert Workers._deal([1.0] * 7, 3) == [0, 1, 2, 0, 1, 2, 0]  # in turn, as before
    dealt = Workers._deal([1.0] * 7 + [0.5] * 4, 3)
    per_team = [sum(f for f, t in zip([1.0] * 7 + [0.5] * 4, dealt, strict=True) if t == k)
                for k in range(3)]
    assert max(per_team) - min(per_team) <= 0.5
    workers = Workers(simpy.Environment(), 6, 20, 0.0, 5.0, np.random.default_rng(4),
                      teams=3, demand_spread=0.5)
    assert workers._bounds is not None and workers._bounds[-1] == pytest.approx(1.0)
    shares = np.diff([0.0, *workers._bounds])
    counts = np.bincount([workers.team(case(f"C{k}")) for k in range(20000)], minlength=3)
    assert counts / 20000 == pytest.approx(shares, abs=0.015)
    assert np.std(shares) > 0.05  # unequal areas


def test_spread_settings_are_checked():
    with pytest.raises(InputError, match="sum must be below 1"):
        load_scenario("baseline", {SW + "part_time": {"share": 0.6, "fte": 0.5, "basis": "t"},
                                   SW + "newly_qualified": {"share": 0.4, "cap_factor": 0.8,
                                                            "basis": "t"}})
    with pytest.raises(InputError, match="fte"):
        load_scenario("baseline", {SW + "part_time": {"share": 0.2, "fte": 1.5, "basis": "t"}})


def test_cases_wait_for_allocation_at_baseline_and_longer_when_understaffed():
    """Waits for a worker are not only a symptom of vacancies: turnover, absence and busy
    teams make some at baseline staffing, and a fifth of posts vacant makes many more."""
    _, base = run({}, horizon=400, warm_up=100)
    short = engine_for("understaffed", 7, 400, 100).run()
    assert len(base.allocation_waits_hours) > 10
    assert len(short.allocation_waits_hours) > 2 * len(base.allocation_waits_hours)
    # and longer in all (the mean wait of those who wait need not rise: many more short ones)
    assert sum(short.allocation_waits_hours) > 1.3 * sum(base.allocation_waits_hours)
