"""The compiled machine: strict triggers, clear refusals, clocks on the case's own time."""

from __future__ import annotations

import pytest
from helpers import CAL, TO_ICPC

from model.compiler import CompiledProcedure, GuardBlocked, NotAllowedHere, UnknownTrigger
from model.loader import load_procedure


@pytest.fixture(scope="module")
def wm() -> CompiledProcedure:
    return CompiledProcedure(load_procedure("west-midlands-2014"), CAL)


def walk(machine, case, triggers, start=0.0, gap=1.0):
    t = start
    results = []
    for trig in triggers:
        results.append(machine.fire(case, trig, t))
        t += gap
    return results


def test_machine_is_strict_no_auto_transitions(wm):
    """No `to_<state>` convenience triggers exist; only the procedure's triggers."""
    case, _ = wm.new_case("strict")
    assert not hasattr(case, "to_closed")
    assert set(wm._machine.events) == set(wm.procedure.triggers)


def test_unknown_trigger_names_case_state_and_allowed(wm):
    """An unknown trigger is refused with the case, its state and what is allowed there."""
    case, _ = wm.new_case("c-unknown")
    with pytest.raises(UnknownTrigger) as info:
        wm.fire(case, "teleport", 0.0)
    message = str(info.value)
    assert "c-unknown" in message and "referral" in message and "teleport" in message
    assert "decide_strategy_discussion" in message


def test_trigger_not_offered_here_is_refused(wm):
    """A real trigger fired from the wrong state is refused, and the case does not move."""
    case, _ = wm.new_case("c-wrong")
    with pytest.raises(NotAllowedHere) as info:
        wm.fire(case, "plan_agreed", 0.0)
    assert info.value.configuration == ("referral",)
    assert "decide_assessment" in info.value.allowed
    assert wm.configuration(case) == ("referral",)


def test_one_machine_serves_many_cases(wm):
    """Two cases on the same machine move independently."""
    a, _ = wm.new_case("many-a")
    b, _ = wm.new_case("many-b")
    wm.fire(a, "decide_assessment", 1.0)
    assert wm.configuration(a) == ("assessment",)
    assert wm.configuration(b) == ("referral",)
    wm.release(a)
    wm.release(b)


def test_path_to_icpc_and_plan(wm):
    """A case walks from referral through the ICPC to a CP plan."""
    case, _ = wm.new_case("c-path")
    walk(wm, case, TO_ICPC)
    assert wm.configuration(case)[0].startswith("icpc.preparation")
    walk(wm, case, ["invitations_sent", "reports_received", "icpc_opens", "plan_agreed",
                    "start_cp_plan"], start=100)
    assert wm.configuration(case) == ("cp_plan.active",)


def test_deadline_met_and_missed_on_working_days(wm):
    """ICPC within 15 working days of the strategy discussion: met at day 10, missed at day 30."""
    for days, outcome in ((10, "met"), (30, "missed")):
        case, _ = wm.new_case(f"c-icpc-{days}")
        walk(wm, case, [*TO_ICPC, "invitations_sent", "reports_received"], gap=0.5)
        result = wm.fire(case, "icpc_opens", 24.0 * days)
        verdicts = {v.deadline_id: v for v in result.verdicts}
        assert verdicts["icpc_held"].outcome == outcome


def test_strategy_discussion_deadline_in_hours(wm):
    """The strategy discussion is due 24 hours after the decision to hold one."""
    case, _ = wm.new_case("c-sd")
    wm.fire(case, "decide_strategy_discussion", 10.0)
    clock = case.clocks["strategy_discussion_24h"]
    assert clock.due == pytest.approx(34.0)
    late = wm.fire(case, "strategy_discussion_held", 40.0)
    assert {v.deadline_id: v.outcome for v in late.verdicts}["strategy_discussion_24h"] == "missed"


def test_cancelled_deadline_has_no_verdict_of_met_or_missed(wm):
    """An enquiry that needs no conference voids the ICPC clocks rather than breaching them."""
    case, _ = wm.new_case("c-cancel")
    walk(wm, case, TO_ICPC[:3])
    result = wm.fire(case, "enquiry_no_conference", 24.0 * 40)
    outcomes = {v.deadline_id: v.outcome for v in result.verdicts}
    assert outcomes["icpc_held"] == "cancelled"


def test_guard_blocked_explains_which_guard():
    """A guarded move that does not hold for this case names the guard and its rules."""
    proc = load_procedure("walsall-2018-resolution")
    machine = CompiledProcedure(proc, CAL)
    case, _ = machine.new_case("c-guard", facts={"practice_is_good": True})
    walk(machine, case, TO_ICPC)
    with pytest.raises(GuardBlocked) as info:
        machine.fire(case, "practice_concern_found", 50.0)
    assert "practice_concern" in info.value.guards
    assert info.value.rules


def test_region_transition_waits_for_main_flow():
    """The resolution ladder cannot start until the case is at a conference."""
    proc = load_procedure("walsall-2018-resolution")
    machine = CompiledProcedure(proc, CAL)
    case, _ = machine.new_case("c-region", facts={"practice_is_good": False})
    with pytest.raises(GuardBlocked) as info:
        machine.fire(case, "practice_concern_found", 0.0)
    assert "icpc.preparation" in str(info.value)
    walk(machine, case, TO_ICPC)
    machine.fire(case, "practice_concern_found", 60.0)
    machine.fire(case, "start_informal", 61.0)
    assert machine.configuration(case)[1] == "resolution.informal"


def test_designated_review_is_the_fourth_review_of_the_current_plan():
    """NCL-7.1.5 counts reviews within a plan: a second plan starts counting again."""
    # The designated review is Newcastle's (NCL-7.1.5); West Midlands has none.
    machine = CompiledProcedure(load_procedure("newcastle-2010"), CAL)
    case, _ = machine.new_case("d")
    to_plan = [*TO_ICPC, "invitations_sent", "reports_received", "icpc_opens", "plan_agreed",
               "start_cp_plan"]
    review = ["review_due", "review_reports_received", "review_opens", "review_plan_agreed"]
    t = 0.0
    for trig in to_plan + review + ["continue_plan"] + review + [
            "end_plan_step_down", "step_down_ends", "re_referral"] + to_plan:
        t += 1.0
        machine.fire(case, trig, t)
    for _ in range(3):
        for trig in [*review, "continue_plan"]:
            t += 1.0
            machine.fire(case, trig, t)
    machine.fire(case, "review_due", t + 1)
    machine.fire(case, "review_reports_received", t + 2)
    assert "designated_review_opens" in machine.allowed_triggers(case)
    assert "review_opens" not in machine.allowed_triggers(case)
    assert case.counts["review_opens"] == 5 and case.episode["review_opens"] == 3
