"""Structural diff of two procedures: elements matched by id, details in plain words."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from model.diff import ELEMENT_ORDER, Change, ProcedureDiff, diff_procedures, diff_rows, format_diff
from model.loader import available_procedures, load_procedure
from model.spec import Procedure


@pytest.fixture(scope="module")
def wm() -> Procedure:
    return load_procedure("west-midlands-2014")


def by_id(diff: ProcedureDiff, element: str, id_: str) -> Change:
    found = [c for c in diff.changes if c.element == element and c.id == id_]
    assert len(found) == 1, (element, id_, diff.changes)
    return found[0]


def ids(diff: ProcedureDiff, kind: str, element: str) -> set[str]:
    return {c.id for c in diff.changes if c.kind == kind and c.element == element}


def write_variant(tmp_path: Path, name: str, body: str) -> Procedure:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"procedure: {name}\nextends: west-midlands-2014\ntitle: Variant\n"
        f"description: A test variant.\n" + textwrap.dedent(body)
    )
    return load_procedure(path)


def test_a_procedure_against_itself_is_empty(wm):
    diff = diff_procedures(wm, wm)
    assert diff.is_empty and diff.changes == () and diff.initial is None
    assert format_diff(diff) == "no structural differences"
    assert diff_rows(diff) == []


def test_freshly_loaded_copy_differs_only_in_identity(wm):
    again = load_procedure("west-midlands-2014")
    assert diff_procedures(wm, again).is_empty


def test_origin_title_and_description_are_ignored(wm):
    moved = dataclasses.replace(
        wm,
        title="Another title",
        description="Another description",
        transitions=tuple(
            dataclasses.replace(t, origin=dataclasses.replace(t.origin, line=t.origin.line + 9))
            for t in wm.transitions
        ),
    )
    assert diff_procedures(wm, moved).is_empty


def test_icpc_10wd_is_one_deadline_change(wm):
    """The variant changes one deadline; the rule it replaces (WM-2b, now listed as not
    encoded) is also no longer cited by the conference state, and nothing else changes."""
    diff = diff_procedures(wm, load_procedure("west-midlands-2014-icpc-10wd"))
    assert len(diff.changes) == 2
    state, change = diff.changes
    assert (state.kind, state.element, state.id) == ("changed", "state", "icpc")
    assert state.details == ("rules: WM-2b removed",)
    assert (change.kind, change.element, change.id) == ("changed", "deadline", "icpc_held")
    assert change.rules == ("WM-2b",)
    assert "within: 15 working days → 10 working days" in change.details
    assert "rules: WM-2b removed" in change.details
    assert "summary changed" in change.details
    assert format_diff(diff).splitlines()[2:4] == [
        "changed deadline icpc_held [WM-2b]",
        "    within: 15 working days → 10 working days",
    ]


def test_newcastle_against_west_midlands(wm):
    """Two authorities on the same national core: each one's own moves, rules and clocks."""
    diff = diff_procedures(wm, load_procedure("newcastle-2010"))
    assert {
        "decisions_distributed", "minutes_distributed", "birth_plan_distributed",
        "designated_review_opens", "continue_plan_after_designated", "briefing_note_sent",
        "end_plan_step_down", "end_plan_caf_lead", "step_down_ends",
    } <= ids(diff, "added", "transition")
    assert {
        "sit_without_reports", "sit_review_without_reports", "end_plan_child_in_need",
        "end_plan_family_support", "strategy_early_help", "restricted_info_notified",
    } <= ids(diff, "removed", "transition")
    # Both have the review's reports step now: it is changed, not added.
    assert by_id(diff, "transition", "review_reports_received").kind == "changed"

    postpone = by_id(diff, "transition", "postpone_icpc")
    assert postpone.kind == "changed"
    assert ("records: exceptional_circumstances, head_of_service_consulted, reason_shared "
            "added") in postpone.details
    assert "rules: WM-11, WM-12 removed" in postpone.details
    assert "rules: NCL-1.1.2, NCL-7.1.1 added" in postpone.details
    assert set(postpone.rules) == {"WM-11", "WM-12", "NCL-1.1.2", "NCL-7.1.1"}

    assert {
        "icpc_decisions_24h", "icpc_minutes", "review_decisions_24h", "review_minutes",
        "icpc_reports_extended_notice", "review_reports_extended_notice", "designated_review",
    } <= ids(diff, "added", "deadline")
    assert by_id(diff, "deadline", "review_reports").kind == "changed"

    reports = by_id(diff, "deadline", "icpc_reports")
    assert reports.kind == "changed"
    assert "at_least: 3 days → 48 hours" in reports.details
    assert "when: standard_notice added" in reports.details
    assert set(reports.rules) == {"WM-13", "NCL-1.4.1", "NCL-2.2.1", "NCL-2.2.3"}

    # Newcastle's guards on shared transitions, its extra resources and its own states.
    assert {"review_opens/ordinary_review_due",
            "continue_plan/designated_review_not_just_held"} == ids(diff, "added", "guard")
    assert "postpone_icpc/manager:head_of_service" in ids(diff, "added", "resource")
    assert {"cp_plan.designated_follow_up", "step_down", "step_down_caf"} <= ids(
        diff, "added", "state")


def test_walsall_adds_a_region_with_its_states_and_elements(wm):
    walsall = load_procedure("walsall-2018-resolution")
    diff = diff_procedures(wm, walsall)
    assert ids(diff, "added", "region") == {"resolution"}
    region_states = {s for s in walsall.states if s.startswith("resolution.")}
    assert ids(diff, "added", "state") == region_states
    assert {"start_informal", "escalate_1", "resolve"} <= ids(diff, "added", "transition")
    assert {"stage_1_response", "stage_5_response"} <= ids(diff, "added", "deadline")
    assert ids(diff, "added", "property") == {"resolution_only_goes_up",
                                              "grounds_lead_to_a_settled_resolution"}
    # Walsall's one-day report notice (WAL-rep) replaces WM-13's three days before an ICPC.
    changed = {(c.element, c.id) for c in diff.changes if c.kind == "changed"}
    assert changed == {("deadline", "icpc_reports"), ("deadline", "review_reports"),
                       ("state", "icpc.preparation"),
                       ("state", "icpc.preparation.awaiting_reports"),
                       ("state", "icpc.preparation.ready"), ("transition", "reports_received")}
    assert {c.kind for c in diff.changes} == {"added", "changed"}
    assert by_id(diff, "region", "resolution").rules == ("WAL-trig", "WAL-esc", "WAL-inv")


def test_removed_transition_in_an_extending_file(wm, tmp_path):
    cancelled_by = ("[{trigger: enquiry_no_conference}, {trigger: enquiry_no_further_action},"
                    " {trigger: no_statutory_action}, {trigger: strategy_early_help},"
                    " {trigger: strategy_no_further_action}]")
    variant = write_variant(tmp_path, "wm-no-enquiry-early-help", f"""\
        transitions:
          enquiry_early_help: {{remove: true}}
        deadlines:
          icpc_booked:
            cancelled_by: {cancelled_by}
          icpc_held:
            cancelled_by: {cancelled_by}
        """)
    diff = diff_procedures(wm, variant)
    removed = by_id(diff, "transition", "enquiry_early_help")
    assert removed.kind == "removed" and removed.rules == ("WM-2a",)
    held = by_id(diff, "deadline", "icpc_held")
    assert held.details == ("cancelled_by: trigger:enquiry_early_help removed",)
    assert len(diff.changes) == 3


def test_guard_and_resource_changes_on_a_shared_transition(wm, tmp_path):
    # West Midlands guards no review; a variant that does is the base here, so a guard can
    # be both removed and added on the shared review_opens.
    guarded = write_variant(tmp_path, "wm-guarded", """\
        transitions:
          review_opens:
            guard: ordinary_review_due
        """)
    variant = write_variant(tmp_path, "wm-tweaked", """\
        transitions:
          plan_agreed:
            guard: interpreter_needed
            resources: [conference_chair, {role: interpreter, when: interpreter_needed}]
          review_opens:
            guard: designated_review_due
          core_group_held:
            resources: [social_worker, {role: agency, agencies: [health, school, police]}]
        """)
    diff = diff_procedures(guarded, variant)

    plan = by_id(diff, "transition", "plan_agreed")
    assert plan.details == (
        "guards: interpreter_needed added",
        "resources: minute_taker removed",
        "resources: interpreter when interpreter_needed added",
    )
    assert by_id(diff, "guard", "plan_agreed/interpreter_needed").kind == "added"
    minute_taker = by_id(diff, "resource", "plan_agreed/minute_taker")
    assert minute_taker.kind == "removed" and minute_taker.rules == plan.rules
    assert minute_taker.details == ()
    interpreter = by_id(diff, "resource", "plan_agreed/interpreter")
    assert interpreter.kind == "added" and interpreter.details == ("when: interpreter_needed",)

    review = by_id(diff, "transition", "review_opens")
    assert review.details == (
        "guards: ordinary_review_due removed",
        "guards: designated_review_due added",
    )
    assert by_id(diff, "guard", "review_opens/ordinary_review_due").kind == "removed"
    assert by_id(diff, "guard", "review_opens/designated_review_due").kind == "added"

    core = by_id(diff, "transition", "core_group_held")
    assert core.details == (
        "resources: agency [health, school] → agency [health, school, police]",
    )
    agency = by_id(diff, "resource", "core_group_held/agency")
    assert agency.kind == "changed" and agency.details == ("agencies: police added",)

    text = format_diff(diff)
    assert "removed resource plan_agreed/minute_taker" in text
    assert "    resources: minute_taker removed" in text


def test_dest_and_flags_are_described_old_to_new(wm):
    t = wm.transition("no_statutory_action")
    changed = dataclasses.replace(
        wm,
        transitions=tuple(
            dataclasses.replace(x, dest="closed", internal=True) if x is t else x
            for x in wm.transitions
        ),
    )
    change = by_id(diff_procedures(wm, changed), "transition", "no_statutory_action")
    assert change.details == ("dest: child_in_need → closed", "internal: no → yes")


def test_swapping_turns_added_into_removed(wm):
    newcastle = load_procedure("newcastle-2010")
    forward = diff_procedures(wm, newcastle)
    backward = diff_procedures(newcastle, wm)
    flip = {"added": "removed", "removed": "added", "changed": "changed"}
    assert sorted((flip[c.kind], c.element, c.id) for c in forward.changes) == sorted(
        (c.kind, c.element, c.id) for c in backward.changes
    )
    assert by_id(backward, "transition", "decisions_distributed").kind == "removed"
    assert "at_least: 48 hours → 3 days" in by_id(backward, "deadline", "icpc_reports").details
    assert "when: standard_notice removed" in by_id(backward, "deadline", "icpc_reports").details


@pytest.mark.parametrize("name", [n for n in available_procedures() if n != "west-midlands-2014"])
def test_order_is_deterministic_by_element_then_id(wm, name):
    other = load_procedure(name)
    diff = diff_procedures(wm, other)
    keys = [(ELEMENT_ORDER.index(c.element), c.id) for c in diff.changes]
    assert keys == sorted(keys)
    assert diff == diff_procedures(wm, load_procedure(name))
    assert diff_procedures(other, other).is_empty


def test_initial_state_change_is_reported(wm):
    moved = dataclasses.replace(wm, initial="child_in_need")
    diff = diff_procedures(wm, moved)
    assert not diff.is_empty and diff.changes == ()
    assert diff.initial == ("referral", "child_in_need")
    assert format_diff(diff).splitlines()[1] == "    initial: referral → child_in_need"
    assert diff_rows(diff)[0]["element"] == "procedure"


def test_rows_join_rules_and_details(wm):
    diff = diff_procedures(wm, load_procedure("newcastle-2010"))
    rows = diff_rows(diff)
    assert len(rows) == len(diff.changes)
    row = next(r for r in rows if r["id"] == "icpc_reports")
    assert row["kind"] == "changed" and row["element"] == "deadline"
    assert row["rules"] == "WM-13, NCL-1.4.1, NCL-2.2.1, NCL-2.2.3"
    assert row["details"].startswith("end: enter:icpc.session → trigger:icpc_opens; "
                                     "at_least: 3 days → 48 hours; when: standard_notice added")
    assert all(set(r) == {"kind", "element", "id", "rules", "details"} for r in rows)
