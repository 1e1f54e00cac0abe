"""Scenario files: every shipped one loads; a broken one gets every error at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_procedure, write_scenario

from cpsim.cli import main
from model.errors import InputError
from simulations.scenario import SCENARIO_DIR, available_scenarios, load_scenario

REQUIRED = {"baseline", "england", "understaffed", "surge", "newcastle"}


def test_required_scenarios_are_shipped():
    assert set(available_scenarios()) >= REQUIRED


@pytest.mark.parametrize("name", available_scenarios())
def test_shipped_scenario_loads_and_opens_with_covers_and_scenario(name):
    """Each shipped scenario validates against its procedure and starts with its comments."""
    sc = load_scenario(name)
    assert sc.name == name
    head = (SCENARIO_DIR / f"{name}.yaml").read_text().splitlines()
    assert head[0].startswith("# Covers:")
    assert any(line.startswith("# Scenario:") for line in head[:8])


def test_understaffed_and_surge_change_only_what_they_say():
    base, under, surge = (load_scenario(n) for n in ("baseline", "understaffed", "surge"))
    assert under.spec.staffing.social_workers.vacancy_rate == 0.20
    assert under.spec.behaviour == base.spec.behaviour
    assert surge.spec.demand.referrals_per_year == pytest.approx(
        1.25 * base.spec.demand.referrals_per_year)
    assert surge.spec.staffing == base.spec.staffing


BAD = """\
scenario: bad
extends: baseline
title: Broken on purpose
demand:
  referals_per_year: 4100
behaviour:
  referral:
    after: {uniform: [0.5, 7.5], unit: working_hours}
    choose: {decide_no_further_acton: 0.5, decide_assessment: 0.5}
  assesment:
    after: {fixed: 3, unit: days}
    choose: {assessment_no_further_action: 1}
  early_help:
    after: {fixed: 3, unit: fortnights}
    choose: {early_help_ends: 1}
staffing:
  social_workers:
    vacancy_rate: 1.5
"""


def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def test_bad_scenario_reports_every_problem_at_once_with_lines(tmp_path):
    """Shape errors (unknown key, bad unit, out-of-range value) and unknown names together."""
    with pytest.raises(InputError) as exc:
        load_scenario(bad_file(tmp_path))
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "bad.yaml:5: demand.referals_per_year: unknown key" in text
    assert "did you mean 'referrals_per_year'?" in text
    assert "bad.yaml:14: behaviour.early_help.after.unit" in text
    assert "bad.yaml:18: staffing.social_workers.vacancy_rate" in text
    assert "bad.yaml:9: behaviour.referral.choose.decide_no_further_acton" in text
    assert "bad.yaml:10: behaviour.assesment: no such state" in text
    assert len(exc.value.problems) == 5
    lines = [p.line for p in exc.value.problems]
    assert lines == sorted(lines)


def test_scenario_naming_unknown_states_and_triggers_is_refused(tmp_path):
    """Cross-checks against the procedure: every unknown name, with its line and a hint."""
    text = BAD.replace("  referals_per_year", "  referrals_per_year").replace(
        "fortnights", "days").replace("1.5", "0.5")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    found = "\n".join(str(p) for p in exc.value.problems)
    assert "bad.yaml:9: behaviour.referral.choose.decide_no_further_acton" in found
    assert "did you mean 'decide_no_further_action'?" in found
    assert "bad.yaml:10: behaviour.assesment: no such state" in found
    assert "did you mean 'assessment'?" in found


def test_cli_run_on_a_bad_scenario_exits_2_without_traceback(tmp_path):
    result = CliRunner().invoke(main, ["run", str(bad_file(tmp_path)), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "5 problems found; nothing was written." in result.output
    assert not (tmp_path / "out").exists()


def test_unknown_scenario_name_suggests_the_closest():
    result = CliRunner().invoke(main, ["run", "baselin"])
    assert result.exit_code == 2
    assert "did you mean 'baseline'?" in result.output


def test_yaml_tags_in_a_scenario_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("scenario: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    assert "tags are not allowed" in str(exc.value)


def test_a_problem_in_an_inherited_key_names_the_file_it_was_written_in(tmp_path):
    """Errors point at the file that holds the key, even through `extends`."""
    base = tmp_path / "base.yaml"
    base.write_text((SCENARIO_DIR / "baseline.yaml").read_text().replace(
        "scenario: baseline", "scenario: base").replace(
        "choose: {review_opens: 1}", "choose: {review_open: 1}"))
    child = tmp_path / "child.yaml"
    child.write_text("scenario: child\nextends: base.yaml\ntitle: Child\n")
    with pytest.raises(InputError) as exc:
        load_scenario(child)
    (problem,) = exc.value.problems
    assert problem.file == str(base) and problem.hint == "review_opens"


def test_every_shipped_procedure_has_a_shipped_scenario_that_runs_it():
    """A trainer or policy designer can simulate any procedure we ship (each scenario is
    smoke-run in test_simulations_engine)."""
    from model.loader import available_procedures

    run = {load_scenario(name).procedure.id for name in available_scenarios()}
    assert set(available_procedures()) - run == set()


def test_a_meeting_named_in_by_meeting_must_be_a_trigger(tmp_path):
    path = write_scenario(tmp_path, "staffing:\n  by_meeting:\n"
                          "    review_open: {family_unavailable: 0.1}\n", "meet")
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    found = str(exc.value)
    assert "meet.yaml:6: staffing.by_meeting.review_open: no such trigger" in found
    assert "did you mean 'review_opens'?" in found


def test_a_choice_cannot_have_both_its_own_timing_and_an_early_share(tmp_path):
    path = write_scenario(
        tmp_path, "behaviour:\n  icpc.preparation:\n"
        "    choose:\n      icpc_opens:\n        weight: 1\n"
        "        after: {fixed: 1, unit: days}\n"
        "        early: {share: 0.1, after: {fixed: 1, unit: days}}\n", "both")
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    assert "either after" in str(exc.value)


# -- plan_state and history.returns_from come from the procedure's CIN-flat mapping ------------
def variant(tmp_path: Path, cin_flat: str) -> Path:
    """A West Midlands variant with ``cin_flat`` entries changed, and a baseline scenario on it."""
    procedure = write_procedure(tmp_path, "wm-variant", "west-midlands-2014",
                                f"title: Variant\ncin_flat:\n{cin_flat}")
    return write_scenario(tmp_path, f"procedure: {procedure}\n", "on-variant")


def test_plan_state_and_returns_from_default_to_the_states_the_mapping_enters(tmp_path):
    """Nothing names a procedure's states in code: the mapping says which is the plan."""
    baseline = load_scenario("baseline")
    assert baseline.spec.plan_state == "cp_plan"
    assert baseline.spec.demand.history is not None
    assert baseline.spec.demand.history.returns_from == "closed"
    sc = load_scenario(variant(tmp_path, "  cp_plan_start: {events: [{enter: cp_plan.active}]}\n"
                                         "  closure: {events: [{enter: early_help}]}\n"))
    assert sc.spec.plan_state == "cp_plan.active"
    assert sc.spec.demand.history is not None
    assert sc.spec.demand.history.returns_from == "early_help"


def test_a_mapping_that_does_not_name_one_state_asks_for_the_field(tmp_path):
    path = variant(tmp_path, "  cp_plan_start: {events: [{enter: cp_plan}, "
                             "{enter: child_in_need}]}\n")
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    (problem,) = exc.value.problems
    assert problem.file == str(path) and problem.field == "plan_state"
    assert "cp_plan_start` entry enters 2 states (cp_plan, child_in_need), not one" in str(
        problem)
    path.write_text(path.read_text() + "plan_state: cp_plan\n")
    assert load_scenario(path).spec.plan_state == "cp_plan"


def test_a_procedure_without_a_mapping_needs_both_fields_set(tmp_path):
    """Wigan's procedure maps no CIN-flat types: its scenario must name its plan state."""
    text = (SCENARIO_DIR / "wigan.yaml").read_text().replace("scenario: wigan", "scenario: w")
    assert "\nplan_state: plan_in_progress" in text
    path = tmp_path / "w.yaml"
    path.write_text(text.replace("\nplan_state: plan_in_progress", "\n").replace(
        "\ndemand:\n", "\ndemand:\n  history: {plan_share: 0.1, basis: test}\n"))
    with pytest.raises(InputError) as exc:
        load_scenario(path)
    found = {p.field: str(p) for p in exc.value.problems}
    assert set(found) == {"plan_state", "demand.history.returns_from"}
    assert all(str(path) in text and "procedure wigan-2008-change-meetings declares no "
               "CIN-flat mapping" in text for text in found.values())
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "plan_state: is not set" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
