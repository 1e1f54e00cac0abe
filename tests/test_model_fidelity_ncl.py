"""Newcastle 2010 as its own procedure: each test protects one of Newcastle's clauses.

The tests walk the compiled machine (fire triggers, read verdicts and states) or read the
declared elements, and each fails on the earlier `newcastle-2010`, which extended the West
Midlands pathway.
"""

from __future__ import annotations

import functools

import pytest
from helpers import CAL
from helpers import TO_ICPC as CORE_TO_ICPC

from model.check import check_procedure
from model.compiler import CompiledProcedure, IllegalMove
from model.loader import load_procedure
from model.rules import load_rules

NAME = "newcastle-2010"
TO_ICPC = (*CORE_TO_ICPC, "invitations_sent")
"""The national core's way to an initial conference, then Newcastle's invitations going out."""
REVIEW = ("review_due", "review_reports_received")


@functools.cache
def procedure(name: str = NAME):
    return load_procedure(name)


@functools.cache
def report(name: str = NAME):
    return check_procedure(procedure(name))


def machine(name: str = NAME) -> CompiledProcedure:
    return CompiledProcedure(procedure(name), CAL)


class Walk:
    """One case moved through the machine, collecting every deadline verdict."""

    def __init__(self, facts: dict[str, bool] | None = None, name: str = NAME) -> None:
        self.machine = machine(name)
        self.case, _ = self.machine.new_case("ncl", dict(facts or {}), at=0.0)
        self.now = 0.0
        self.verdicts: dict[str, list[str]] = {}

    def fire(self, *triggers: str, gap: float = 1.0) -> Walk:
        for trigger in triggers:
            self.now += gap
            result = self.machine.fire(self.case, trigger, self.now)
            for v in result.verdicts:
                self.verdicts.setdefault(v.deadline_id, []).append(v.outcome)
        return self

    def at(self, state: str) -> bool:
        return self.machine.is_active(self.case, state)

    def to_plan(self) -> Walk:
        """Referral to a child protection plan, reports in 3 days before the conference."""
        self.fire(*TO_ICPC, "reports_received")
        return self.fire("icpc_opens", gap=72.0).fire("plan_agreed", "start_cp_plan")

    def review(self, opens: str = "review_opens") -> Walk:
        self.fire(*REVIEW, gap=24.0 * 30)
        return self.fire(opens, gap=24.0 * 8).fire("review_plan_agreed")


def transition(trigger: str, name: str = NAME):
    return [t for t in procedure(name).transitions if t.trigger == trigger]


# -- reports before the conference (NCL-1.4.1, NCL-2.2.1) -----------------------------------------
def test_ncl_1_4_1_conference_cannot_sit_without_reports_and_late_reports_breach():
    walk = Walk().fire(*TO_ICPC)
    assert walk.at("icpc.preparation.awaiting_reports")
    with pytest.raises(IllegalMove):
        walk.fire("icpc_opens")  # a conference that sat with no reports was never a breach
    walk.fire("reports_received").fire("icpc_opens", gap=2.0)
    assert walk.verdicts["icpc_reports"] == ["missed"]


def test_ncl_2_2_1_review_cannot_sit_without_reports():
    walk = Walk().to_plan().fire("review_due", gap=24.0 * 60)
    with pytest.raises(IllegalMove):
        walk.fire("review_opens")
    walk.fire("review_reports_received").fire("review_opens", gap=24.0)
    assert walk.verdicts["review_reports"] == ["missed"]


def test_ncl_1_4_1_declared_property_proves_reports_come_first():
    assert "property:icpc_sits_only_with_reports" in report().passed


# -- plan endings (NCL-2.1.2, NCL-2.2.4, NCL-2.2.5) -----------------------------------------------
def test_ncl_2_2_5_plan_end_puts_child_in_need_plan_in_place():
    """Today's `end_plan_close` (review outcome straight to closed) is gone; stepping out
    of social care leads to a child in need plan with a lead professional under the CAF."""
    proc = procedure()
    assert "end_plan_close" not in proc.triggers
    for t in proc.transitions:
        if any(s.startswith("cp_plan") for s in t.sources) and t.dest == "closed":
            assert {"transfer_accepted", "adult_services_handover"} & set(t.records), t.id
    (caf,) = transition("end_plan_caf_lead")
    assert caf.dest == "step_down_caf"
    assert {"cin_plan", "lead_professional", "caf_lead"} <= set(caf.records)
    walk = Walk().to_plan().review().fire("end_plan_caf_lead")
    assert walk.at("step_down_caf")


def test_ncl_2_1_2_declared_property_proves_no_plan_ends_with_nothing():
    proc = procedure()
    props = {p.id: p for p in proc.properties}
    checked = report()
    for pid in ("plan_end_leaves_a_plan_in_place", "review_end_leaves_a_plan_in_place"):
        assert f"property:{pid}" in checked.passed
        assert {"NCL-2.1.2", "NCL-2.2.4", "NCL-2.2.5"} <= set(props[pid].rules)
        assert all("closure_decision" not in group for group in props[pid].records_any)


def test_ncl_2_2_4_step_down_names_lead_professional():
    (step,) = transition("end_plan_step_down")
    assert {"step_down_plan", "lead_professional"} <= set(step.records)
    assert any(r.role == "lead_professional" for r in step.resources)


# -- core groups (NCL-5.3.1, NCL-7.2.3, NCL-5.2.14) -----------------------------------------------
def test_ncl_5_3_1_extra_core_group_is_never_a_breach():
    walk = Walk().to_plan().fire("core_group_held", gap=24.0 * 5)
    walk.fire("core_group_held", gap=24.0 * 3).fire("core_group_held", gap=24.0 * 40)
    assert "missed" not in walk.verdicts["core_group_interval"]
    interval = next(d for d in procedure().deadlines if d.id == "core_group_interval")
    assert interval.at_least is None and interval.within is not None


def test_ncl_5_3_1_core_group_more_than_six_weeks_apart_is_missed():
    walk = Walk().to_plan().fire("core_group_held", gap=24.0 * 5)
    walk.fire("core_group_held", gap=24.0 * 43)
    assert walk.verdicts["core_group_interval"] == ["missed"]


def test_ncl_7_2_3_urgent_core_group_is_never_a_breach():
    walk = Walk().to_plan().fire("core_group_held", gap=24.0 * 5)
    walk.fire("urgent_core_group", gap=24.0).fire("urgent_core_group", gap=24.0)
    assert all("missed" not in v for v in walk.verdicts.values())
    assert walk.at("cp_plan.active")


def test_ncl_5_2_14_core_group_plan_update_within_5_days():
    walk = Walk().to_plan().fire("core_group_held", gap=24.0 * 5)
    walk.fire("core_group_notes_shared", gap=24.0 * 6)
    assert walk.verdicts["core_group_notes"] == ["missed"]


# -- the designated review (NCL-7.1.5, NCL-7.1.6, NCL-7.3.8, NCL-2.2.3) ---------------------------
def test_ncl_7_1_6_designated_review_continuing_plan_needs_briefing_and_legal_advice():
    walk = Walk().to_plan()
    for _ in range(3):
        walk.review().fire("continue_plan")
        assert walk.at("cp_plan.active")
    walk.review("designated_review_opens").fire("continue_plan")
    assert walk.at("cp_plan.designated_follow_up.briefing")
    with pytest.raises(IllegalMove):
        walk.fire("legal_advice_received")
    walk.fire("briefing_note_sent", "legal_advice_received")
    assert walk.at("cp_plan.active")


def test_ncl_7_3_8_legal_advice_can_lead_to_proceedings():
    (advised,) = transition("proceedings_advised")
    assert advised.sources == ("cp_plan.designated_follow_up.legal_advice",)
    assert advised.dest == "looked_after" and "care_plan" in advised.records


def test_ncl_2_2_3_designated_review_reports_five_days():
    walk = Walk().to_plan()
    for _ in range(3):
        walk.review().fire("continue_plan")
    walk.fire(*REVIEW, gap=24.0 * 30).fire("designated_review_opens", gap=24.0 * 4)
    assert walk.verdicts["designated_review_reports"] == ["cancelled"] * 3 + ["missed"]


# -- conference running (NCL-1.1.1, NCL-1.1.2, NCL-7.1.1, NCL-4.1.5, NCL-5.1.2) -------------------
def test_ncl_7_1_1_postponement_consults_head_of_service_and_records_reason():
    for trigger in ("postpone_icpc", "postpone_review"):
        (t,) = transition(trigger)
        assert any(r.role == "manager" and r.level == "head_of_service" for r in t.resources)
        assert {"exceptional_circumstances", "postponement_reason"} <= set(t.records)
        assert {"NCL-1.1.2", "NCL-7.1.1"} <= set(t.rules)


def test_ncl_4_1_5_translator_for_the_child():
    for trigger in ("icpc_opens", "review_opens", "designated_review_opens"):
        (t,) = transition(trigger)
        assert any(r.role == "interpreter" and r.when == "child_needs_translator"
                   for r in t.resources), trigger
        assert "NCL-1.1.1" in t.rules and any(r.role == "conference_chair" for r in t.resources)


def test_ncl_5_1_2_split_conference_where_there_is_domestic_abuse():
    walk = Walk({"domestic_abuse": True}).fire(*TO_ICPC, "reports_received")
    walk.fire("icpc_opens", gap=72.0).fire("split_conference")
    assert walk.at("icpc.session")
    other = Walk().fire(*TO_ICPC, "reports_received").fire("icpc_opens", gap=72.0)
    with pytest.raises(IllegalMove):
        other.fire("split_conference")


# -- after the conference (NCL-1.2.2, NCL-1.2.3, NCL-2.1.6b, NCL-5.2.2, NCL-6.1.3) ----------------
def test_ncl_2_1_6b_pre_birth_birth_plan_within_24_hours():
    walk = Walk({"pre_birth": True}).to_plan().fire("birth_plan_distributed", gap=30.0)
    assert walk.verdicts["birth_plan_24h"] == ["missed"]
    on_time = Walk({"pre_birth": True}).to_plan().fire("birth_plan_distributed", gap=2.0)
    assert on_time.verdicts["birth_plan_24h"] == ["met"]
    with pytest.raises(IllegalMove):
        Walk().to_plan().fire("birth_plan_distributed")


def test_ncl_1_2_3_minutes_ship_the_stricter_reading():
    minutes = next(d for d in procedure().deadlines if d.id == "icpc_minutes")
    assert (minutes.within.unit, minutes.within.value) == ("days", 25)
    assert minutes.basis is not None and "stricter" in minutes.basis.note


def test_ncl_1_2_2_decisions_within_24_hours():
    walk = Walk().to_plan().fire("decisions_distributed", gap=25.0)
    assert walk.verdicts["icpc_decisions_24h"] == ["missed"]


def test_ncl_5_2_2_invitations_requested_next_working_day():
    walk = Walk().fire(*TO_ICPC[:4]).fire("invitations_requested", gap=24.0 * 3)
    assert walk.verdicts["invitation_request"] == ["missed"]


def test_ncl_6_1_3_family_group_conference_considered():
    walk = Walk().to_plan().fire("family_group_conference_considered")
    assert walk.at("cp_plan.active")


# -- the IRO's dispute resolution (NCL-2.1.11) ----------------------------------------------------
def test_ncl_2_1_11_iro_resolves_informally_then_formally():
    with pytest.raises(IllegalMove):
        Walk().fire("iro_raises_problem")  # only about a child on a plan
    walk = Walk().to_plan()
    with pytest.raises(IllegalMove):
        walk.fire("formal_dispute_resolution")
    walk.fire("iro_raises_problem", "formal_dispute_resolution", "formal_resolution_concluded")
    assert walk.at("cp_plan.active")
    assert "property:iro_resolution_only_escalates" in report().passed


# -- sources and the 2010 combination (NCL-7.2.1, NCL-7.3.4) --------------------------------------
def test_ncl_7_2_1_newcastle_cites_only_its_own_and_national_rules():
    proc = procedure()
    registry = load_rules()
    assert set(proc.sources) == {"NCL", "WT", "CAL"}
    assert {registry[r].source for r in proc.rule_ids()} <= {"NCL", "WT", "CAL"}
    held = next(d for d in proc.deadlines if d.id == "icpc_held")
    assert held.rules == ("NCL-7.2.1",)
    assert (held.within.unit, held.within.value) == ("working_days", 15)


def test_ncl_7_3_4_core_assessment_only_in_the_2010_combination():
    ncl = procedure()
    assert "core_assessment" not in {d.id for d in ncl.deadlines}
    assert "NCL-7.3.4" in ncl.not_encoded
    old = procedure("newcastle-2010-core-assessment")
    core = next(d for d in old.deadlines if d.id == "core_assessment")
    assert (core.within.unit, core.within.value) == ("working_days", 35)
    assert "assessment_complete" not in {d.id for d in old.deadlines}
    assert "NCL-7.3.4" not in old.not_encoded and "2010" in old.description
    walk = Walk(name="newcastle-2010-core-assessment").to_plan()
    walk.fire("core_assessment_completed", gap=24.0 * 60)
    assert walk.verdicts["core_assessment"] == ["missed"]
