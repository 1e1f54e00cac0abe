"""West Midlands (2014) from its own text, on the national core (Working Together 2013).

Each test is named after the rule it protects. The checks take the procedure as an argument
so that the same check can be run against an older version of a file (see the report of the
change that added them: every one failed on the West Midlands file that cited Newcastle).
"""

from __future__ import annotations

import pytest
from helpers import CAL, TO_ICPC

from model.compiler import CompiledProcedure
from model.loader import load_procedure
from model.rules import load_rules
from model.spec import Procedure

INVITED = [*TO_ICPC, "invitations_sent"]
"""To the ICPC with its invitations sent (West Midlands asks for reports next)."""
TO_PLAN = [*INVITED, "reports_received", "icpc_opens", "plan_agreed", "start_cp_plan"]
TO_REVIEW_OUTCOME = [*TO_PLAN, "review_due", "review_reports_received", "review_opens",
                     "review_plan_agreed"]


@pytest.fixture(scope="module")
def wm() -> Procedure:
    return load_procedure("west-midlands-2014")


def machine_at(proc: Procedure, triggers: list[str], facts: dict | None = None):
    machine = CompiledProcedure(proc, CAL)
    case, _ = machine.new_case("wm", facts=facts or {})
    t = 0.0
    steps = []
    for trig in triggers:
        t += 1.0
        steps.append(machine.fire(case, trig, t).step)
    return machine, case, steps


def transitions_from(proc: Procedure, state: str):
    return [t for t in proc.transitions if state in t.sources]


# -- checks (each takes the procedure) -------------------------------------------------------

def check_review_outcome_always_leaves_a_plan(proc: Procedure) -> None:
    plan_states = {"cp_plan.active", "child_in_need", "family_support"}
    outs = transitions_from(proc, "cp_plan.review_conference.outcome")
    assert outs
    for t in outs:
        assert t.dest in plan_states, f"{t.id} ends a review in {t.dest}, not a plan"
        assert {"cin_plan", "family_support_plan", "child_protection_plan"} & set(t.records), \
            f"{t.id} records no plan"


def check_review_property_requires_a_real_plan(proc: Procedure) -> None:
    plans = {"child_protection_plan", "cin_plan", "family_support_plan"}
    prop = next(p for p in proc.properties if p.id == "review_ends_with_plan")
    assert all(plans & set(alt) for alt in prop.records_any), prop.records_any
    ending = next(p for p in proc.properties if p.id == "plan_end_leaves_a_plan_in_place")
    assert not any("closure_decision" in alt for alt in ending.records_any)
    assert "WM-27" in ending.rules
    assert not any(r.startswith("NCL") for r in ending.rules)


def check_conference_cannot_sit_without_reports_unrecorded(proc: Procedure) -> None:
    machine, case, _ = machine_at(proc, INVITED)
    assert machine.configuration(case)[0] == "icpc.preparation.awaiting_reports"
    allowed = machine.allowed_triggers(case)
    assert "icpc_opens" not in allowed
    sitting = [t for t in transitions_from(proc, "icpc.preparation.awaiting_reports")
               if t.dest == "icpc.session"]
    assert sitting, "no recorded way for the chair to sit without reports"
    for t in sitting:
        assert {"chair_decision", "reports_missing"} <= set(t.records)
        assert "WM-12" in t.rules


def check_reviews_have_the_same_report_deadlines(proc: Procedure) -> None:
    session = "cp_plan.review_conference.session"
    ends = {(r, d.end.name) for d in proc.deadlines for r in d.rules}
    assert ("WM-13", session) in ends


def check_escalating_agency_still_contributes(proc: Procedure) -> None:
    machine, case, _ = machine_at(proc, TO_PLAN)
    assert "agency_escalates_dissent" in machine.allowed_triggers(case)
    step = machine.fire(case, "agency_escalates_dissent", 100.0).step
    assert {"dissent_escalated", "agency_contribution"} <= set(step.records)
    assert machine.configuration(case)[0] == "cp_plan.active"
    prop = next(p for p in proc.properties if "WM-22b" in p.rules)
    assert prop.if_records == "dissent_escalated" and "agency_contribution" in prop.also


def check_participation_recorded(proc: Procedure) -> None:
    *_, steps = machine_at(proc, [*INVITED, "reports_received", "icpc_opens"])
    opened = steps[-1]
    assert {"child_views", "parent_attendance_arrangements"} <= set(opened.records)
    advocate = [t for t in proc.transitions if "WM-19" in t.rules]
    assert advocate and all("advocate_agreed" in t.records for t in advocate)
    assert all("conference_chair" in [r.role for r in t.resources] for t in advocate)


def check_strategy_and_enquiry_outcomes(proc: Procedure) -> None:
    held = {t.dest for t in transitions_from(proc, "strategy_discussion.held")}
    assert {"section_47", "child_in_need", "early_help", "closed"} <= held
    enquiry = {t.dest for t in transitions_from(proc, "section_47")}
    assert {"child_in_need", "early_help", "closed"} <= enquiry
    for t in (*transitions_from(proc, "strategy_discussion.held"),
              *transitions_from(proc, "section_47")):
        assert "WM-25" not in t.rules, f"{t.id} cites a conference rule"


def check_core_groups(proc: Procedure) -> None:
    core = [d for d in proc.deadlines if d.start.name == "core_group_held"
            and d.end.name == "core_group_held"]
    assert core and all(d.at_least is None for d in core), "an extra core group is a breach"
    assert all(d.basis is not None and not d.rules for d in core)
    machine, case, _ = machine_at(proc, TO_PLAN)
    t = 100.0
    for trig in ["core_group_held", "core_group_held", "core_group_notes_shared",
                 "chronology_sent_to_chair"]:
        t += 2.0
        result = machine.fire(case, trig, t)
        assert not [v for v in result.verdicts if v.outcome == "missed"], result.verdicts
    chronology = next(x for x in proc.transitions if x.id == "chronology_sent_to_chair")
    assert "WM-33e" in chronology.rules and chronology.records
    held = next(x for x in proc.transitions if x.id == "core_group_held")
    assert {"WM-33a", "WM-33d"} <= set(held.rules)
    assert "social_worker" in [r.role for r in held.resources]


def check_plans_end_outside_reviews(proc: Procedure) -> None:
    machine, case, _ = machine_at(proc, TO_PLAN)
    allowed = machine.allowed_triggers(case)
    for trig in ("plan_ends_looked_after", "plan_ends_moved_away", "plan_ends_turns_18",
                 "legal_planning"):
        assert trig in allowed
    ends = {t.id: set(t.records) for t in proc.transitions if t.id.startswith("plan_ends_")}
    assert "care_plan" in ends["plan_ends_looked_after"]
    assert "transfer_accepted" in ends["plan_ends_moved_away"]
    assert "adult_services_handover" in ends["plan_ends_turns_18"]
    machine, case, _ = machine_at(proc, [])
    assert "transfer_in" in machine.allowed_triggers(case)


def check_cites_only_its_own_sources(proc: Procedure) -> None:
    registry = load_rules()
    cited = {r for el in (*proc.states.values(), *proc.transitions, *proc.deadlines,
                          *proc.properties) for r in el.rules}
    foreign = sorted(r for r in cited if registry[r].source not in {"WM", "WT", "CAL"})
    assert not foreign, foreign


def check_visits_are_a_local_standard(proc: Procedure) -> None:
    visits = [d for d in proc.deadlines if "statutory_visit" in (d.start.name, d.end.name)]
    assert visits
    for d in visits:
        assert not any(r.startswith("NCL") for r in d.rules)
        assert d.basis is not None and d.basis.kind == "local-standard"
        assert "CAL-T3" in d.basis.note


# -- tests -------------------------------------------------------------------------------------

def test_wm_25_27_35_review_ends_in_a_child_in_need_or_family_support_plan(wm):
    check_review_outcome_always_leaves_a_plan(wm)


def test_wm_25_27_35_plan_properties_require_a_plan_not_a_closure(wm):
    check_review_property_requires_a_real_plan(wm)


def test_wm_13_wm_12_conference_sits_without_reports_only_by_recorded_chair_decision(wm):
    check_conference_cannot_sit_without_reports_unrecorded(wm)


def test_wm_35_reviews_have_the_report_deadline(wm):
    check_reviews_have_the_same_report_deadlines(wm)


def test_wm_22b_agency_escalating_dissent_still_contributes(wm):
    check_escalating_agency_still_contributes(wm)


def test_wm_17_18_19_parents_child_and_advocates_take_part(wm):
    check_participation_recorded(wm)


def test_wm_1f_strategy_and_enquiry_outcomes_without_citing_wm_25(wm):
    check_strategy_and_enquiry_outcomes(wm)


def test_wm_33_core_groups_extra_meeting_is_never_a_breach(wm):
    check_core_groups(wm)


def test_cal_plans_end_outside_reviews_with_something_in_place(wm):
    check_plans_end_outside_reviews(wm)


def test_wm_cites_only_west_midlands_and_national_rules(wm):
    check_cites_only_its_own_sources(wm)


def test_cal_t3_statutory_visits_are_a_local_standard(wm):
    check_visits_are_a_local_standard(wm)


def test_wm_2b_ten_day_variant_is_a_policy_assumption():
    proc = load_procedure("west-midlands-2014-icpc-10wd")
    held = next(d for d in proc.deadlines if d.id == "icpc_held")
    assert not held.rules
    assert held.basis is not None and held.basis.kind == "assumption"
    assert "WM-2b" in proc.not_encoded
