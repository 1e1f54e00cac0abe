"""Walsall's resolution ladder wired to the case, and Wigan's change meetings fixed.

Each test is named after the rule it protects and drives the compiled machine (or checks a
declared property), so it fails on the procedure as it was before the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import CAL, TO_ICPC, checks_with_move

from model.check import check_procedure
from model.compiler import Case, CompiledProcedure, IllegalMove
from model.loader import load_procedure
from model.spec import Procedure

DAY = 24.0

# The procedures under test; set these to an older file's path to see the tests fail on it.
WALSALL = os.environ.get("CPSIM_TEST_WALSALL", "walsall-2018-resolution")
WIGAN = os.environ.get("CPSIM_TEST_WIGAN", "wigan-2008-change-meetings")


class Walker:
    """A case on a compiled machine, with its own clock."""

    def __init__(self, procedure: Procedure, **facts: object) -> None:
        self.machine = CompiledProcedure(procedure, CAL)
        self.case: Case
        self.case, _ = self.machine.new_case("c1", facts=facts)
        self.now = 9.0
        self.verdicts: dict[str, str] = {}

    def fire(self, *triggers: str, gap: float = 1.0) -> Walker:
        for trigger in triggers:
            self.now += gap
            result = self.machine.fire(self.case, trigger, self.now)
            self.verdicts.update({v.deadline_id: v.outcome for v in result.verdicts})
        return self

    def allowed(self) -> tuple[str, ...]:
        return self.machine.allowed_triggers(self.case)

    def where(self) -> tuple[str, ...]:
        return self.machine.configuration(self.case)


@pytest.fixture(scope="module")
def walsall() -> Procedure:
    return load_procedure(WALSALL)


@pytest.fixture(scope="module")
def wigan() -> Procedure:
    return load_procedure(WIGAN)


# -- Walsall -----------------------------------------------------------------------------------
def test_wal_rep_late_report_starts_resolution(walsall):
    """A report not in at the pre-conference discussion gives grounds, whatever the practice."""
    w = Walker(walsall, practice_is_good=True).fire(*TO_ICPC, "invitations_sent")
    assert "icpc_report_not_shared" in w.allowed()
    w.fire("icpc_report_not_shared")
    assert w.where()[-1] == "resolution.grounds"
    w.fire("start_at_stage_1")
    assert w.where()[-1] == "resolution.stage_1"


def test_wal_rep_shared_report_gives_no_report_grounds(walsall):
    """Once the report is shared, the late-report grounds are no longer open."""
    w = Walker(walsall, practice_is_good=True).fire(*TO_ICPC, "invitations_sent",
                                                     "reports_received")
    assert "icpc_report_not_shared" not in w.allowed()
    with pytest.raises(IllegalMove):
        w.fire("icpc_report_not_shared")


def test_wal_rep_one_day_notice_before_initial_conference(walsall):
    """Walsall's notice is one day, replacing West Midlands' three: 30 hours is in time."""
    assert {d.id: d.at_least.value for d in walsall.deadlines if d.at_least}[
        "icpc_reports"] == 1
    w = Walker(walsall, practice_is_good=True).fire(*TO_ICPC, "invitations_sent",
                                                     "reports_received")
    w.fire("icpc_opens", gap=30.0)
    assert w.verdicts["icpc_reports"] == "met"
    rules = {d.id: d.rules for d in walsall.deadlines}
    assert "WAL-rep" in rules["icpc_reports"] and "WAL-rep" in rules["review_reports"]


def test_wal_rep_late_review_report_starts_resolution(walsall):
    """Before a review, a report not yet shared gives grounds too."""
    w = Walker(walsall, practice_is_good=True).fire(
        *TO_ICPC, "invitations_sent", "reports_received")
    w.fire("icpc_opens", gap=2 * DAY).fire("plan_agreed", "start_cp_plan", "review_due")
    assert "review_report_not_shared" in w.allowed()
    w.fire("review_report_not_shared")
    assert w.where()[-1] == "resolution.grounds"


def test_wal_canc_cancelled_conference_starts_resolution(walsall):
    """A conference date that does not go ahead gives grounds, once per cancelled date."""
    w = Walker(walsall, practice_is_good=True).fire(*TO_ICPC, "invitations_sent",
                                                     "reports_received")
    assert "conference_cancelled" not in w.allowed()
    w.fire("postpone_icpc")
    assert "conference_cancelled" in w.allowed()
    w.fire("conference_cancelled", "start_informal", "resolve", "close_resolution")
    assert "conference_cancelled" not in w.allowed()


def test_wal_mid_midway_check_little_progress_starts_resolution(walsall):
    """The coordinator's midway check on the plan can find little progress: grounds."""
    w = Walker(walsall, practice_is_good=True).fire(*TO_ICPC, "invitations_sent",
                                                     "reports_received")
    w.fire("icpc_opens", gap=2 * DAY).fire("plan_agreed", "start_cp_plan")
    w.fire("midway_check", gap=40 * DAY)
    assert w.where()[-1] == "resolution.midway_review"
    w.fire("little_progress_at_midway")
    assert w.where()[-1] == "resolution.grounds"


def test_wal_mid_little_progress_at_review_starts_resolution(walsall):
    """Straight after a review the coordinator can raise little progress since the last one."""
    w = Walker(walsall, practice_is_good=True).fire(*TO_ICPC, "invitations_sent",
                                                     "reports_received")
    w.fire("icpc_opens", gap=2 * DAY).fire("plan_agreed", "start_cp_plan", "review_due")
    w.fire("review_reports_received").fire("review_opens", gap=4 * DAY)
    w.fire("review_plan_agreed", "little_progress_at_review")
    assert w.where()[-1] == "resolution.grounds"


def test_wal_trig_resolution_starts_only_from_grounds(walsall):
    """No stage can be started straight from idle: a resolution needs grounds first."""
    w = Walker(walsall, practice_is_good=False).fire(*TO_ICPC)
    allowed = w.allowed()
    assert not {"start_informal", "start_at_stage_1", "start_at_stage_5"} & set(allowed)
    assert "practice_concern_found" in allowed
    w.fire("practice_concern_found", "start_at_stage_3")
    assert w.where()[-1] == "resolution.stage_3"


def test_wal_esc_grounds_always_lead_to_a_settled_resolution(walsall):
    """Declared and proved: from grounds the case cannot rest until the concern is resolved."""
    report = check_procedure(walsall)
    checks = {f.check: f for f in report.findings}
    assert "property:grounds_lead_to_a_settled_resolution" not in checks
    assert report.ok
    assert any(p.id == "grounds_lead_to_a_settled_resolution" for p in walsall.properties)


# -- Wigan ------------------------------------------------------------------------------------
def test_wig_8_5_1_clock_runs_when_caf_predates_the_change_meeting(wigan):
    """A common assessment written before the meeting still starts the 20-day notes clock."""
    w = Walker(wigan, caf_completed=True)
    assert "review_notes_20_days_earlier_caf" in w.case.clocks
    w.fire("convene_change_meeting", "action_plan_agreed")
    w.fire("hold_review_meeting", gap=25 * DAY).fire("review_notes_sent")
    assert w.verdicts["review_notes_20_days_earlier_caf"] == "missed"


def test_wig_8_5_1_clock_from_caf_written_still_runs(wigan):
    w = Walker(wigan, caf_completed=False)
    w.fire("convene_planning_meeting", "caf_agreed", "caf_written", "action_plan_agreed",
           "hold_review_meeting", "review_notes_sent")
    assert w.verdicts["review_notes_20_days"] == "met"
    assert "review_notes_20_days_earlier_caf" not in w.verdicts


def _to_coordinator(wigan: Procedure) -> Walker:
    return Walker(wigan, caf_completed=True).fire(
        "convene_change_meeting", "disagreement_raised", "refer_to_coordinator")


def test_wig_8_7_3_coordinator_decides_before_any_appeal(wigan):
    """The appeal follows the co-ordinator's recorded decision; it never replaces it."""
    w = _to_coordinator(wigan)
    assert "appeal_to_executive_group" not in w.allowed()
    with pytest.raises(IllegalMove):
        w.fire("appeal_to_executive_group")
    w.fire("coordinator_decides")
    decide = next(t for t in wigan.transitions if t.id == "coordinator_decides")
    assert "coordinator_decision" in decide.records
    assert "appeal_to_executive_group" in w.allowed()


def test_wig_8_7_4_binding_decision_settles_the_matter_and_a_new_one_can_be_raised(wigan):
    """After the Executive Group decides, no appeal; the matter closes; a new one may start."""
    w = _to_coordinator(wigan).fire("coordinator_decides", "appeal_to_executive_group",
                                    "executive_group_decides")
    assert w.where()[-1] == "arbitration.binding_decision"
    assert not {"appeal_to_executive_group", "coordinator_decides",
                "refer_to_coordinator"} & set(w.allowed())
    w.fire("close_disagreement")
    assert "disagreement_raised" in w.allowed()
    w.fire("disagreement_raised")
    assert w.where()[-1] == "arbitration.line_managers"


def test_wig_8_7_4_reopening_a_binding_decision_breaks_the_property(tmp_path: Path, wigan):
    checks = checks_with_move(tmp_path, "wigan-reopen-binding", WIGAN, "reopen",
                              "arbitration.binding_decision", "arbitration.coordinator_decided",
                              "WIG-8.7.4")
    assert "property:executive_group_final" in checks


def test_wig_6_2_cited_only_where_the_family_is_recorded_present(wigan):
    """WIG-6.2 is cited by the steps that record the family present and the property."""
    citing_states = [s.id for s in wigan.states.values() if "WIG-6.2" in s.rules]
    assert citing_states == []
    for t in wigan.transitions:
        if "WIG-6.2" in t.rules:
            assert "family_present" in t.records, t.id
    step_up = next(t for t in wigan.transitions if t.id == "refer_to_social_care")
    assert "WIG-6.2" not in step_up.rules
    assert any("WIG-6.2" in p.rules and p.pattern == "co_recorded" for p in wigan.properties)
