"""Each mechanism behind a published outcome does its work: switched off, its figure moves.

Every test runs the shipped baseline twice from the same seed (common random numbers), once
as shipped and once with one mechanism switched off through scenario overrides, and measures
both as ``cpsim validate`` does (:func:`simulations.validate.measure_results`).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from simulations.results import read_results
from simulations.runner import run_scenario, settings_for
from simulations.scenario import load_scenario
from simulations.validate import measure_results

pytestmark = pytest.mark.slow  # long runs or real processes: `make test-fast` skips them

ACTIVE = "behaviour[cp_plan.active].choose_by_visit"
ENDINGS = ("plan_ends_looked_after", "plan_ends_moved_away", "plan_ends_turns_18")


def measured(out: Path, overrides: dict[str, object] | None = None, reps: int = 2,
             horizon: int = 1096, warm_up: int = 365) -> dict[str, float]:
    """Mean over replications of every measure, over the run's whole years."""
    sc = load_scenario("baseline", overrides)
    run_scenario(sc, settings_for(sc, reps, 7, horizon, warm_up, "table", True), out, 2)
    _, per_rep = measure_results(read_results(out))
    return {m: statistics.fmean(r[m] for r in per_rep) for m in per_rep[0]}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return measured(tmp_path_factory.mktemp("mech") / "shipped")


ENDINGS_OFF = {f"{ACTIVE}[{k}].{e}.weight": 0.0 for k in (0, 1) for e in ENDINGS}
EARLY_OFF = {f"{ACTIVE}[1].review_due.early.share": 0.0}


def test_plan_endings_between_reviews_fill_the_three_to_six_month_band(shipped, tmp_path):
    """Without endings between reviews (looked after, moved away, 18) the band shrinks."""
    without = measured(tmp_path / "off", ENDINGS_OFF)
    assert shipped["plans_ended_3m_to_6m"] > 8.0
    assert without["plans_ended_3m_to_6m"] < shipped["plans_ended_3m_to_6m"] - 2


def test_reviews_brought_forward_fill_the_three_to_six_month_band(shipped, tmp_path):
    """Without reviews brought forward (WM-33b) the band loses more than a third."""
    without = measured(tmp_path / "off", EARLY_OFF)
    assert without["plans_ended_3m_to_6m"] < shipped["plans_ended_3m_to_6m"] * 2 / 3


def test_without_either_mechanism_the_three_to_six_month_band_collapses(shipped, tmp_path):
    """Plans then end only at reviews: the first within 3 months, the next about 8 months."""
    without = measured(tmp_path / "off", {**ENDINGS_OFF, **EARLY_OFF})
    assert without["plans_ended_3m_to_6m"] < shipped["plans_ended_3m_to_6m"] / 3


def test_rebooking_for_the_family_makes_conferences_late(shipped, tmp_path):
    """Without the family's unavailability (and its rebooking delay) ICPCs are on time."""
    without = measured(tmp_path / "off", {
        "staffing.family_unavailable": 0.0,
        "staffing.by_meeting.review_opens.family_unavailable": 0.0})
    assert without["icpc_within_15_working_days"] > shipped["icpc_within_15_working_days"] + 5
    assert without["reviews_in_time"] > shipped["reviews_in_time"]


def test_urgent_conferences_make_the_ten_day_bin(shipped, tmp_path):
    """Without urgent initial conferences hardly any sits within 10 working days."""
    without = measured(tmp_path / "off", {
        "behaviour[icpc.preparation].choose.icpc_opens.early.share": 0.0})
    assert shipped["icpc_0_to_10_working_days"] > without["icpc_0_to_10_working_days"] + 2


def test_histories_make_second_and_later_plans(shipped, tmp_path):
    """Without children known before the run (and history-aware decisions), repeat plans
    are rare: only children re-referred inside the run can have had a plan."""
    off = {"demand.history.plan_share": 0.0,
           "behaviour[referral].choose_if_previous_plan": None,
           "behaviour[section_47.enquiry].choose_if_previous_plan": None,
           "behaviour[closed].chance_if_previous_plan": None}
    without = measured(tmp_path / "off", off)
    assert shipped["second_or_later_plans"] > without["second_or_later_plans"] + 3


def test_children_who_had_a_plan_come_back_with_their_own_chance(shipped, tmp_path):
    """A child who had a plan never comes back when its own chance is 0, inside the run or
    from the history before it: the only second plans left are those that follow a first
    within one episode (a child in need plan stepped up again)."""
    without = measured(tmp_path / "off", {"behaviour[closed].chance_if_previous_plan": 0.0})
    assert shipped["second_or_later_plans"] > 8
    assert without["second_or_later_plans"] < shipped["second_or_later_plans"] / 4


def test_a_statutory_visit_is_not_a_new_visit_to_the_plan(tmp_path):
    """Routine tasks re-enter cp_plan.active; they must not count as visits (nor re-draw
    its choice). With the second table ending plans at once, a plan reaches its first
    review only if visits are counted from the review, not from every statutory visit."""
    import pyarrow.parquet as pq

    path = tmp_path / "visits.yaml"
    path.write_text(
        "scenario: visits\nextends: baseline\ntitle: t\nbehaviour:\n  cp_plan.active:\n"
        "    choose_by_visit:\n      - {review_due: 1}\n"
        "      - plan_ends_looked_after: {weight: 1, after: {fixed: 1, unit: days}}\n")
    sc = load_scenario(path)
    out = tmp_path / "run"
    run_scenario(sc, settings_for(sc, 1, 3, 300, 0, "table", True), out, 1)
    rows = pq.read_table(next((out / "events").glob("*.parquet"))).to_pylist()
    first: dict[str, str] = {}
    for r in rows:
        if r["trigger"] in ("review_due", "plan_ends_looked_after"):
            first.setdefault(r["case_id"], r["trigger"])
    assert len(first) > 100
    reviewed = sum(t == "review_due" for t in first.values())
    assert reviewed == len(first)


def test_a_choice_with_its_own_timing_is_not_timed_by_the_states_aim(tmp_path):
    """A plan ending between reviews happens on its own timing, spread over the interval,
    not at the moment the review would be arranged (the aim)."""
    out = tmp_path / "run"
    sc = load_scenario("baseline", {f"{ACTIVE}[0].plan_ends_looked_after.weight": 0.5})
    run_scenario(sc, settings_for(sc, 1, 3, 400, 0, "table", True), out, 1)
    import pyarrow.parquet as pq

    table = pq.read_table(next((out / "events").glob("*.parquet"))).to_pylist()
    starts = {r["case_id"]: r["time_hours"] for r in table
              if r["trigger"] == "start_cp_plan"}
    days = [(r["time_hours"] - starts[r["case_id"]]) / 24 for r in table
            if r["trigger"] == "plan_ends_looked_after" and r["case_id"] in starts]
    assert len(days) > 20
    assert min(days) < 20 and max(days) > 55  # uniform over 1-72 days, not all at ~73


def test_a_plan_reviewed_beside_it_is_one_plan_not_one_per_review(tmp_path):
    """Wigan's plan_in_progress is re-entered after every review meeting: with the review
    in `plan_includes` a plan starts once, when the child first enters it."""
    import json

    sc = load_scenario("wigan")
    out = tmp_path / "wigan"
    run_scenario(sc, settings_for(sc, 1, 5, 365, 60, "table", False), out, 1)
    rec = json.loads(next((out / "replications").glob("*.json")).read_text())["record"]
    assert rec["entries"]["plan_in_progress"] > 1.5 * rec["plans_started"]
    assert rec["plans_started"] <= 1.05 * rec["entries"]["change_meeting"]  # warm-up edge
    assert rec["repeat_plans"] == 0
    flat = tmp_path / "wigan-flat.yaml"
    flat.write_text("scenario: wigan-flat\nextends: wigan\ntitle: Wigan, reviews as new plans\n"
                    "plan_includes: []\n")
    without = load_scenario(flat)
    out2 = tmp_path / "flat"
    run_scenario(without, settings_for(without, 1, 5, 365, 60, "table", False), out2, 1)
    rec2 = json.loads(next((out2 / "replications").glob("*.json")).read_text())["record"]
    assert rec2["plans_started"] == rec2["entries"]["plan_in_progress"]


def test_leaving_the_stage_ends_the_haste_of_a_review_brought_forward():
    """A review brought forward hurries the plan's aimed steps until it sits; a case that
    leaves the stage first (the plan ends) must not carry that into a later episode, whose
    steps are timed by their own aims (issue 10's flag outlived its stage before)."""
    from helpers import engine_for

    engine = engine_for("baseline", 3, 400, 0)
    engine.run()
    live = next(v for v in engine.live.values() if v.here.top == "cp_plan"
                and "plan_ends_looked_after" in engine._enabled(v))
    live.hurried = True
    engine._fire(live, "plan_ends_looked_after", "social_worker:0")
    assert live.here.top != "cp_plan"
    assert live.hurried is False
