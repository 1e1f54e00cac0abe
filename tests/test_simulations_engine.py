"""The engine: every scenario runs; seeds reproduce; cases are conserved; capacity bites."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from model.calendar import WorkingCalendar
from simulations.engine import Engine
from simulations.observers import InvariantMonitor, InvariantViolated
from simulations.runner import make_machine, run_scenario, settings_for
from simulations.scenario import available_scenarios, load_scenario


def short(name_or_path, horizon=120, warm_up=30, replications=1, seed=7, machine="table",
          event_log=False):
    sc = load_scenario(name_or_path)
    return sc, settings_for(sc, replications, seed, horizon, warm_up, machine, event_log)


def run_once(sc, settings, replication=0, observers=()):
    sc = settings.for_scenario(sc)
    machine, calendar = make_machine(sc, settings.machine)
    engine = Engine(sc, machine, calendar, replication, settings.seed,
                    [InvariantMonitor(sc.procedure), *observers])
    return engine, engine.run()


@pytest.mark.parametrize("name", available_scenarios())
def test_every_shipped_scenario_runs_with_invariants_checked(name, tmp_path):
    """Smoke run (short horizon) of every scenario, with the runtime monitors on."""
    horizon = 10 if name == "england" else 120
    sc, settings = short(name, horizon=horizon, warm_up=horizon // 4, event_log=True)
    result = run_scenario(sc, settings, tmp_path / name)
    assert result.records[0]["transitions"] > 0
    assert (tmp_path / name / "kpis.csv").is_file()
    assert (tmp_path / name / "events" / "rep-0000.parquet").is_file()


def test_same_seed_same_record_and_different_seed_differs():
    sc, settings = short("baseline")
    _, a = run_once(sc, settings)
    _, b = run_once(sc, settings)
    assert json.dumps(a.to_json(), sort_keys=True) == json.dumps(b.to_json(), sort_keys=True)
    _, c = run_once(sc, dataclasses.replace(settings, seed=8))
    assert json.dumps(a.to_json(), sort_keys=True) != json.dumps(c.to_json(), sort_keys=True)


def test_table_machine_and_transitions_machine_give_identical_runs():
    """Decision 5 at run level: the fast table and the transitions machine agree exactly."""
    sc, settings = short("baseline", horizon=90, warm_up=20)
    _, fast = run_once(sc, settings)
    _, slow = run_once(sc, dataclasses.replace(settings, machine="transitions"))
    assert json.dumps(fast.to_json(), sort_keys=True) == json.dumps(slow.to_json(),
                                                                    sort_keys=True)


def test_one_and_two_workers_write_byte_identical_kpi_tables(tmp_path):
    sc, settings = short("baseline", horizon=90, warm_up=20, replications=3)
    run_scenario(sc, settings, tmp_path / "one", workers=1)
    run_scenario(sc, settings, tmp_path / "two", workers=2)
    for name in ("kpis.csv", "kpis.md"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_every_referral_is_accounted_for_in_exactly_one_place():
    """Conservation: cases created = cases finished + cases still open at the horizon."""
    sc, settings = short("baseline", horizon=200, warm_up=50)
    engine, rec = run_once(sc, settings)
    assert rec.cases_created == rec.cases_finished + sum(rec.open_by_state.values())
    assert sum(rec.open_by_state.values()) == len(engine.live)


def test_littles_law_holds_for_open_plans():
    """Average open plans ~ plan starts per year x mean plan length (within 15%)."""
    sc, settings = short("baseline", horizon=1460, warm_up=730)
    _, rec = run_once(sc, settings)
    data = rec.to_json()
    years = (rec.horizon_hours - rec.warm_up_hours) / (24 * 365.25)
    open_plans = float(np.mean(data["series"]["stage:cp_plan"]))
    starts = rec.plans_started / years
    mean_length_years = data["plan_lengths_days"]["mean"] / 365.25
    assert open_plans == pytest.approx(starts * mean_length_years, rel=0.15)


def test_baseline_is_calibrated_to_the_national_shape():
    """Flow per year near CAL-1/153, CAL-5, CAL-6, CAL-7 (loose: one short replication)."""
    sc, settings = short("baseline", horizon=1095, warm_up=545)
    _, rec = run_once(sc, settings)
    years = (rec.horizon_hours - rec.warm_up_hours) / (24 * 365.25)
    referrals = rec.entries["referral"] / years
    assert referrals == pytest.approx(4136, rel=0.08)
    assert rec.entries["section_47"] / years / referrals == pytest.approx(0.364, abs=0.06)
    assert rec.triggers["icpc_opens"] / rec.entries["section_47"] == pytest.approx(0.313,
                                                                                    abs=0.06)
    assert rec.plans_started / years == pytest.approx(400, rel=0.25)


def test_meetings_happen_on_working_days_in_working_hours(tmp_path):
    sc, settings = short("baseline", horizon=150, warm_up=30, event_log=True)
    run_scenario(sc, settings, tmp_path)
    events = pq.read_table(tmp_path / "events" / "rep-0000.parquet").to_pylist()
    cal = WorkingCalendar(sc.spec.run.start_date)
    meetings = [e for e in events if e["trigger"] in ("icpc_opens", "review_opens",
                                                      "designated_review_opens")]
    assert meetings
    for e in meetings:
        when = cal.to_datetime(e["time_hours"])
        assert cal.is_working_day(when.date()), e
        assert 9 <= when.hour + when.minute / 60 <= 17 - 1.5, e
        assert e["date"] == sc.spec.run.start_date + timedelta(hours=e["time_hours"]) \
            or e["date"] == (sc.spec.run.start_date
                             + timedelta(hours=e["time_hours"])).date() if isinstance(
                                 e["date"], date) else True
    assert {"replication", "case_id", "time_hours", "date", "from_state", "trigger",
            "to_state", "rules", "actor"} <= set(events[0])


def scarce_chairs(tmp_path: Path) -> Path:
    path = tmp_path / "scarce.yaml"
    path.write_text(
        "scenario: scarce\nextends: baseline\ntitle: One chair\n"
        "staffing:\n  conference_chairs: {count: 1, slots_per_day: 1}\n")
    return path


def test_scarce_chairs_breach_the_icpc_timescale_and_record_the_chairs_decision():
    """When no slot is free in time, postpone_icpc fires (recorded) and the breach counts."""
    base_sc, base = short("baseline", horizon=200, warm_up=50)
    _, ok = run_once(base_sc, base)
    sc, settings = short(scarce_chairs(Path(__import__("tempfile").mkdtemp())),
                         horizon=200, warm_up=50)
    _, tight = run_once(sc, settings)
    assert tight.postponements["postpone_icpc:no_slot_in_time"] > 0
    assert tight.triggers["postpone_icpc"] >= tight.postponements[
        "postpone_icpc:no_slot_in_time"] > ok.postponements["postpone_icpc:no_slot_in_time"]

    def share(rec):
        row = rec.deadlines["icpc_held"]
        return row["met"] / (row["met"] + row["missed"] + row["open_overdue"])

    assert share(tight) < share(ok) - 0.2


def test_too_few_social_workers_leaves_cases_unallocated(tmp_path):
    path = tmp_path / "few.yaml"
    path.write_text("scenario: few\nextends: baseline\ntitle: Few workers\n"
                    "staffing:\n  social_workers: {establishment_fte: 30}\n")
    sc, settings = short(path, horizon=200, warm_up=50)
    _, rec = run_once(sc, settings)
    assert max(rec.series["unallocated_queue"]) > 10
    assert rec.allocation_waits_hours
    assert max(rec.series["caseload_max"]) <= sc.spec.staffing.social_workers.caseload_cap


def test_the_invariant_monitor_stops_a_run_that_breaks_a_property(tmp_path):
    """A procedure override that ends plans without the plan put in place is caught at run
    time."""
    path = tmp_path / "broken.yaml"
    path.write_text(
        "scenario: broken\nextends: baseline\ntitle: Plans end unrecorded\n"
        "procedure_overrides:\n  transitions:\n    end_plan_child_in_need:\n"
        "      records: [plan_type]\n")
    sc, settings = short(path, horizon=900, warm_up=10)
    with pytest.raises(InvariantViolated) as exc:
        run_once(sc, settings)
    assert exc.value.violation.property_id == "plan_end_leaves_a_plan_in_place"
    assert "end_plan_child_in_need" in str(exc.value)
    assert "start_cp_plan" in str(exc.value)


def test_advance_lands_in_working_hours_on_the_calendars_working_days():
    """Sampled working days and hours land where the one working-day calendar says."""
    from simulations.distributions import advance

    cal = WorkingCalendar(date(2025, 4, 1))
    rng = np.random.default_rng(3)
    for _ in range(400):
        t = float(rng.uniform(0, 1500 * 24))
        x = float(rng.uniform(0, 30))
        later = advance(cal, t, x, "working_days")
        assert cal.working_days_between(cal.date_of(t), cal.date_of(later)) in (
            int(x), int(x) + 1)
        assert cal.is_working_day(cal.date_of(later))
        assert cal.day_starts <= later % 24 <= cal.day_ends
        hours = advance(cal, t, x, "working_hours")
        assert cal.is_working_day(cal.date_of(hours)) and hours >= t
        assert cal.day_starts <= hours % 24 <= cal.day_ends
