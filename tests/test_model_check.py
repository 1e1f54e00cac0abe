"""`cpsim check`: shipped procedures pass; a mutated one fails with a counterexample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import LONG_RUN_TO_SESSION, checks_with_move, without_plan_agreed

from model.check import check_procedure
from model.errors import InputError
from model.findings import (
    CheckReport,
    Finding,
    JsonShapeError,
    PathStep,
    format_report,
    read_counterexamples,
    reports_from_json,
    reports_to_json,
)
from model.loader import available_procedures, load_procedure

FIXTURES = Path(__file__).parent / "fixtures"


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
    checks = checks_with_move(tmp_path, "walsall-down", "walsall-2018-resolution", "step_back",
                              "resolution.stage_3", "resolution.stage_2", "WAL-esc")
    assert "property:resolution_only_goes_up" in checks
    assert "ladders" in checks


def test_binding_decision_that_can_be_reopened_is_caught(tmp_path):
    """Letting the executive group's decision be reopened breaks `executive_group_final`."""
    checks = checks_with_move(tmp_path, "wigan-reopen", "wigan-2008-change-meetings",
                              "reopen_appeal", "arbitration.executive_group",
                              "arbitration.coordinator", "WIG-8.7.3")
    assert "property:executive_group_final" in checks


# -- the report's JSON form and reading counterexamples back ------------------------------------
@pytest.fixture(scope="module")
def broken_report(tmp_path_factory) -> CheckReport:
    """West Midlands without `plan_agreed`: failures with and without a run, one stuck."""
    return check_procedure(load_procedure(without_plan_agreed(tmp_path_factory.mktemp("b"))))


def through_json(data: object) -> object:
    return json.loads(json.dumps(data))


def test_report_round_trips_through_json_exactly(broken_report):
    """Every field of every finding survives JSON text, including runs and stuck configs."""
    assert any(f.path and f.stuck_at for f in broken_report.findings)
    assert any(not f.path for f in broken_report.findings)
    data = through_json(broken_report.to_json())
    assert CheckReport.from_json(data) == broken_report
    assert data["ok"] is False and data["procedure"] == "wm-without-plan-agreed"
    step = data["findings"][-1]["path"][0]
    assert set(step) == {"before", "trigger", "transition_id", "after", "rules"}
    warning = Finding("timescales", "warning", "two lines\nof message", ("R-1",),
                      (PathStep(("a", "r.x"), "go", "go_now", ("b", "r.x"), ()),), ("b", "r.x"))
    mixed = CheckReport("p", (warning,), ("reachability",), {"states": 2})
    assert mixed.ok
    document = through_json(reports_to_json([broken_report, mixed]))
    assert document["format"] == "cpsim-check" and document["version"] == 1
    assert document["ok"] is False
    assert reports_from_json(document) == (broken_report, mixed)


@pytest.mark.parametrize(("data", "where"), [
    ({"format": "other", "version": 1, "reports": []}, "format"),
    ({"format": "cpsim-check", "version": 2, "reports": []}, "version"),
    ({"format": "cpsim-check", "version": 1, "reports": [{"findings": []}]},
     "reports[0].procedure"),
    ({"procedure": "p", "findings": [{"check": "c", "severity": "fatal", "message": "m"}]},
     "report.findings[0].severity"),
    ({"procedure": "p", "findings": [{"check": "c", "severity": "error", "message": "m",
                                      "path": [{"trigger": "t"}]}]},
     "report.findings[0].path[0].before"),
    ({"procedure": "p", "stats": {"states": "many"}}, "report.stats"),
])
def test_json_of_the_wrong_shape_names_the_field(data, where):
    with pytest.raises(JsonShapeError) as err:
        reports_from_json(data)
    assert err.value.where == where


def test_saved_text_output_reads_as_counterexamples():
    """The old text form: each run with its steps, lines, rules, where it is stuck."""
    text = "wm-without-plan-agreed: FAIL  (28 states)\n" + LONG_RUN_TO_SESSION
    (cx,) = read_counterexamples(text, "check.txt")
    assert cx.title.startswith("FAIL can_end: dead end: in icpc.session")
    assert cx.procedure == "wm-without-plan-agreed"
    assert cx.line == 3
    assert [s.trigger for s in cx.steps] == [
        "decide_strategy_discussion", "strategy_discussion_held", "start_section_47",
        "book_icpc", "proceed_to_icpc", "invitations_sent", "reports_received", "icpc_opens"]
    assert [s.line for s in cx.steps] == list(range(4, 12))
    assert cx.steps[2].rules == () and cx.steps[0].rules == ("WT-17a",)
    assert cx.steps[1].after == ("strategy_discussion.held",)  # its line is wrapped in helpers.py
    assert cx.stuck == ("icpc.session",)


def test_json_and_text_of_one_check_give_the_same_counterexamples(broken_report):
    """The JSON form reads back to the runs the text form does (only line numbers differ)."""
    from_text = read_counterexamples(format_report(broken_report), "check.txt")
    from_json = read_counterexamples(json.dumps(reports_to_json([broken_report])), "c.json")
    assert all(c.line is not None for c in from_text)
    assert all(c.line is None and all(s.line is None for s in c.steps) for c in from_json)

    def runs(found):
        return [(c.title, c.also, c.stuck, c.procedure,
                 [(s.before, s.trigger, s.rules, s.after) for s in c.steps]) for c in found]

    assert runs(from_json) == runs(from_text)
    first = from_json[0]
    assert first.title.startswith("FAIL can_end: dead end")
    assert any("conference_ends_with_plan" in t for t in first.also)  # same run, once
    assert first.stuck == ("icpc.session",)


def test_a_message_on_several_lines_is_titled_by_its_fail_line():
    """A timescale clash prints its deadlines below its FAIL line; the title is the FAIL line."""
    report = check_procedure(load_procedure(FIXTURES / "west-midlands-2014-icpc-3wd-ld.yaml"))
    text = format_report(report)
    from_text = read_counterexamples(text, "check.txt")
    from_json = read_counterexamples(json.dumps(reports_to_json([report])), "c.json")
    clash = [c for c in from_text if c.title.startswith("FAIL timescales:")]
    assert clash, text
    assert [c.title for c in from_json] == [c.title for c in from_text]
    assert all("\n" not in c.title for c in from_json)


def test_runs_of_different_procedures_are_kept_apart(broken_report):
    """In an `--all` document the same run under two procedures is two counterexamples."""
    other = CheckReport("other", broken_report.findings, (), dict(broken_report.stats))
    document = json.dumps(reports_to_json([broken_report, other]))
    found = read_counterexamples(document, "all.json")
    text = format_report(broken_report) + "\n" + format_report(other)
    assert [c.procedure for c in found] == ["wm-without-plan-agreed", "other"]
    assert [c.procedure for c in read_counterexamples(text, "all.txt")] == [
        "wm-without-plan-agreed", "other"]


def test_unreadable_check_output_is_an_input_error(broken_report):
    with pytest.raises(InputError, match="not `cpsim check` output"):
        read_counterexamples("hello\n", "x.txt")
    with pytest.raises(InputError) as err:
        read_counterexamples('{"format": "cpsim-check",\n "version": 1,\n}', "x.json")
    assert err.value.problems[0].line == 3
    passing = CheckReport("p", (), ("reachability",))
    with pytest.raises(InputError, match="no counterexample"):
        read_counterexamples(json.dumps(reports_to_json([passing])), "x.json")
    data = reports_to_json([broken_report])
    path = data["reports"][0]["findings"][-1]["path"]
    path[1]["before"] = ["somewhere.else"]
    with pytest.raises(InputError, match=r"step 2 starts in somewhere\.else"):
        read_counterexamples(json.dumps(data), "x.json")
    with pytest.raises(InputError) as err:
        read_counterexamples("counterexample:\n  1. a --go []--> b\n  3. c --go []--> d\n",
                             "c.txt")
    assert [p.line for p in err.value.problems] == [3, 3]
