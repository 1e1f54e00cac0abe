"""`cpsim check`: shipped procedures pass; a mutated one fails with a counterexample."""

from __future__ import annotations

import pytest
from helpers import without_plan_agreed

from model.check import check_procedure, format_report
from model.loader import available_procedures, load_procedure


@pytest.mark.parametrize("name", available_procedures())
def test_shipped_procedure_passes_check(name):
    """Every shipped procedure passes every structural check and declared property."""
    report = check_procedure(load_procedure(name))
    assert report.ok, format_report(report)
    assert report.stats["configurations"] > 1


def test_removing_plan_agreed_fails_with_counterexample(tmp_path):
    """Without `plan_agreed`, a conference that opens can never end: check shows the run."""
    report = check_procedure(load_procedure(without_plan_agreed(tmp_path)))
    assert not report.ok
    prop = [f for f in report.findings if f.check == "property:conference_ends_with_plan"]
    assert prop, format_report(report)
    finding = prop[0]
    assert finding.stuck_at is not None and "icpc.session" in finding.stuck_at
    triggers = [s.trigger for s in finding.path]
    # the conference opens with its reports in, or the chair sits without them
    opening = ("icpc_opens", "sit_without_reports")
    assert triggers[-1] in opening
    assert "icpc.session" in str(finding.path[-1].after)
    # into a conference through a strategy discussion, or a transfer-in from another area
    assert triggers[0] in ("decide_strategy_discussion", "transfer_in") \
        or "strategy_discussion_held" in triggers
    assert "WM-25" in finding.rules
    text = format_report(report)
    assert "counterexample" in text and triggers[-1] in text


def test_ladder_that_goes_down_is_caught(tmp_path):
    """A resolution stage that steps back down breaks `resolution_only_goes_up`."""
    path = tmp_path / "walsall-down.yaml"
    path.write_text(
        "procedure: walsall-down\n"
        "extends: walsall-2018-resolution\n"
        "title: Broken ladder\n"
        "transitions:\n"
        "  step_back:\n"
        "    source: resolution.stage_3\n"
        "    dest: resolution.stage_2\n"
        "    rules: [WAL-esc]\n"
    )
    report = check_procedure(load_procedure(path))
    checks = {f.check for f in report.findings}
    assert "property:resolution_only_goes_up" in checks
    assert "ladders" in checks


def test_binding_decision_that_can_be_reopened_is_caught(tmp_path):
    """Letting the executive group's decision be reopened breaks `executive_group_final`."""
    path = tmp_path / "wigan-reopen.yaml"
    path.write_text(
        "procedure: wigan-reopen\n"
        "extends: wigan-2008-change-meetings\n"
        "title: Appeal reopened\n"
        "transitions:\n"
        "  reopen_appeal:\n"
        "    source: arbitration.executive_group\n"
        "    dest: arbitration.coordinator\n"
        "    rules: [WIG-8.7.3]\n"
    )
    report = check_procedure(load_procedure(path))
    assert "property:executive_group_final" in {f.check for f in report.findings}
