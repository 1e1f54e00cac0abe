"""Timescale consistency: the deadlines can all be kept, or the check names the clash."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cpsim.cli import main
from model.calendar import WorkingCalendar
from model.check import check_procedure
from model.findings import format_report
from model.graph import build_graph
from model.loader import available_procedures, load_procedure
from model.spec import EventRef
from model.timescales import (
    CALENDAR_FIRST,
    CALENDAR_LAST,
    check_timescales,
    fact_cases,
    find_clashes,
    gap_range,
    timescale_bounds,
)
from model.types import Duration

FIXTURE = Path(__file__).parent / "fixtures" / "west-midlands-2014-icpc-3wd-ld.yaml"
DAY = 24.0
CLASH_EVENTS = ("strategy_discussion_held", "start_section_47", "book_icpc",
                "invitations_requested", "proceed_to_icpc", "invitations_sent",
                "reports_received", "icpc_opens")


def variant(tmp_path: Path, name: str, base: str | Path, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"procedure: {name}\nextends: {base}\ntitle: {name}\n{body}")
    return path


# -- shipped procedures ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", available_procedures())
def test_shipped_procedure_deadlines_can_all_be_kept(name):
    """No clash in either reading of the calendar, and the exploration finished."""
    findings = check_timescales(build_graph(load_procedure(name)))
    assert findings == [], "\n".join(f.message for f in findings)


# -- the deliberately inconsistent fixture --------------------------------------------------------
def test_fixture_clash_is_exactly_the_minimal_set_with_its_guard_and_path():
    """3 working days against 7 days' notice: no clash whatever the calendar (Easter makes
    room), one in every ordinary week, named exactly."""
    graph = build_graph(load_procedure(FIXTURE))
    assert find_clashes(graph, "favourable")[0] == []
    clashes, complete = find_clashes(graph, "ordinary")
    assert complete
    assert len(clashes) == 1
    clash = clashes[0]
    assert clash.deadlines == ("icpc_held", "icpc_reports_extended_notice")
    assert clash.rules == ("NCL-7.2.1", "NCL-5.1.5", "NCL-5.1.7")
    assert clash.guards == (("extended_notice_needed", True),)
    assert clash.facts == ("parent_learning_disability",)
    assert clash.reading == "ordinary"
    assert clash.blocked == "icpc_opens"
    # The reports come after the strategy discussion only because the procedure orders
    # the booking, the conference, the invitations and the reports: no other deadline.
    assert clash.events == CLASH_EVENTS
    assert clash.needed == 7 * DAY and clash.allowed == 6 * DAY  # Friday to Wednesday
    triggers = [s.trigger for s in clash.path]
    assert triggers[0] == "decide_strategy_discussion" and triggers[-1] == "icpc_opens"


@pytest.mark.parametrize(("dropped", "relaxed"), [
    ("icpc_held", "within: {working_days: 15}"),
    ("icpc_reports_extended_notice", "at_least: {days: 1}"),
])
def test_fixture_clash_is_minimal_dropping_either_deadline_removes_it(tmp_path, dropped,
                                                                      relaxed):
    """Relaxing either deadline of the clash (removing one would leave its rules, which
    other elements cite, unenforced) makes the clash go away."""
    path = variant(tmp_path, f"without-{dropped.replace('_', '-')}", FIXTURE,
                   f"deadlines:\n  {dropped}:\n    {relaxed}\n")
    clashes, _ = find_clashes(load_procedure(path), "ordinary")
    assert clashes == []


def test_fixture_fails_only_on_timescales():
    report = check_procedure(load_procedure(FIXTURE))
    assert not report.ok
    assert {f.check for f in report.findings} == {"timescales"}, format_report(report)
    assert "property:cp_plan_needs_conference" in report.passed


def test_three_working_days_clash_in_every_ordinary_week(tmp_path):
    """Only across Easter do 3 working days last 8 calendar days: in an ordinary week they
    clash with 7 days' notice, and that is an error naming the bank-holiday exception."""
    path = variant(tmp_path, "icpc-3wd", "newcastle-2010",
                   "deadlines:\n  icpc_held:\n    within: {working_days: 3}\n")
    graph = build_graph(load_procedure(path))
    assert find_clashes(graph, "favourable")[0] == []
    ordinary, _ = find_clashes(graph, "ordinary")
    assert [c.deadlines for c in ordinary] == [("icpc_held", "icpc_reports_extended_notice")]
    findings = check_timescales(graph)
    assert [f.severity for f in findings] == ["error"]
    assert "ordinary week" in findings[0].message and "Easter" in findings[0].message


def test_two_working_days_a_week_apart_only_warn(tmp_path):
    """A clash only at the tightest reading (no weekend to stretch it) is a warning."""
    path = variant(tmp_path, "icpc-5wd", "newcastle-2010",
                   "deadlines:\n  icpc_held:\n    within: {working_days: 5}\n")
    findings = check_timescales(build_graph(load_procedure(path)))
    assert [f.severity for f in findings] == ["warning"]
    assert "on some dates" in findings[0].message


# -- hand-made clashes ----------------------------------------------------------------------------
# These two are built on the national core, which has no conference deadlines of its own, with
# West Midlands' booking and conference timescales (WM-2a, WM-2b) added: the clash search on
# the whole West Midlands procedure, with its many concurrent plan clocks, runs past the state
# budget before it can name the clash.
WM_CONFERENCE_CLOCKS = (
    "sources: [WM, WT, CAL]\n"
    "deadlines:\n"
    "  icpc_booked:\n    from: {trigger: strategy_discussion_held}\n"
    "    to: {trigger: book_icpc}\n    within: {days: 2}\n"
    "    cancelled_by: [{trigger: enquiry_no_conference}, {trigger: no_statutory_action}]\n"
    "    rules: [WM-2a]\n"
    "  icpc_held:\n    from: {trigger: strategy_discussion_held}\n"
    "    to: {enter: icpc.session}\n    within: {working_days: 15}\n"
    "    cancelled_by: [{trigger: enquiry_no_conference}, {trigger: no_statutory_action}]\n"
    "    rules: [WM-2b]\n"
)


def test_at_least_between_the_same_events_as_a_within_is_caught(tmp_path):
    """Booked at least 5 days after the strategy discussion, but within 2 days of it."""
    path = variant(tmp_path, "booking-notice", "national-core-2013", WM_CONFERENCE_CLOCKS + (
        "  booking_notice:\n    from: {trigger: strategy_discussion_held}\n"
        "    to: {trigger: book_icpc}\n    at_least: {days: 5}\n    rules: [WM-2a]\n"))
    clashes, complete = find_clashes(load_procedure(path))
    assert complete
    assert [c.deadlines for c in clashes] == [("icpc_booked", "booking_notice")]
    assert clashes[0].blocked is None and clashes[0].guards == ()
    assert clashes[0].needed == 5 * DAY and clashes[0].allowed == 3 * DAY  # 2 days: end of day


def test_at_least_that_the_path_order_makes_too_long_is_caught(tmp_path):
    """30 days from booking to conference cannot fit in 15 working days from the discussion."""
    path = variant(tmp_path, "late-conference", "national-core-2013", WM_CONFERENCE_CLOCKS + (
        "  conference_notice:\n    from: {trigger: book_icpc}\n"
        "    to: {trigger: icpc_opens}\n    at_least: {days: 30}\n"
        "    basis: {kind: assumption, note: \"A notice period made up to clash.\"}\n"))
    clashes, complete = find_clashes(load_procedure(path))
    assert complete
    assert [c.deadlines for c in clashes] == [("icpc_held", "conference_notice")]
    clash = clashes[0]
    assert clash.blocked == "icpc_opens"
    assert clash.events[0] == "strategy_discussion_held" and clash.events[-1] == "icpc_opens"
    assert clash.allowed == gap_range(Duration("working_days", 15), "within")[1]


def test_an_activity_the_case_may_do_must_not_block_the_procedure(tmp_path):
    """Review reports 7 days ahead cannot fit a review that sits within 4 days of being set up."""
    path = variant(tmp_path, "quick-review", "newcastle-2010", (
        "deadlines:\n  review_sits_quickly:\n    from: {trigger: review_due}\n"
        "    to: {enter: cp_plan.review_conference.session}\n    within: {days: 4}\n"
        "    rules: [NCL-1.3.1]\n"))
    clashes, _ = find_clashes(load_procedure(path))
    assert [(c.deadlines, c.guards) for c in clashes] == [
        (("review_reports_extended_notice", "review_sits_quickly"),
         (("extended_notice_needed", True),))]


def test_a_cadence_that_contradicts_itself_is_caught(tmp_path):
    path = variant(tmp_path, "cadence", "west-midlands-2014",
                   "deadlines:\n  core_group_interval:\n    at_least: {days: 45}\n")
    clashes, _ = find_clashes(load_procedure(path))
    # The cadence is the shortest clash; once core groups are impossible, longer runs of
    # back-to-back reviews (each at least 3 days, WM-13/WM-32) can also outrun the visits.
    assert clashes[0].deadlines == ("core_group_interval",)
    assert clashes[0].blocked is None


def test_guards_that_never_hold_together_do_not_clash(tmp_path):
    path = variant(tmp_path, "exclusive", "newcastle-2010", (
        "deadlines:\n  icpc_reports_quick:\n    from: {trigger: reports_received}\n"
        "    to: {trigger: icpc_opens}\n    within: {hours: 100}\n    when: standard_notice\n"
        "    rules: [NCL-1.4.1]\n"))
    assert find_clashes(load_procedure(path))[0] == []


# -- guards and calendar --------------------------------------------------------------------------
def test_fact_cases_give_complementary_guards_opposite_values():
    found = fact_cases(load_procedure("newcastle-2010").deadlines)
    assert {s.guards for s in found} == {
        (("extended_notice_needed", notice), ("pre_birth", birth), ("standard_notice", not notice))
        for notice in (False, True) for birth in (False, True)
    }
    assert {s.facts for s in found} == {(), ("parent_learning_disability",), ("pre_birth",),
                                        ("parent_learning_disability", "pre_birth")}


def test_guards_that_read_trigger_counts_are_not_fixed_per_case():
    """designated_review_due depends on how many reviews were held: decided at each start."""
    first = load_procedure("west-midlands-2014").deadlines[0]
    counted = replace(first, when="designated_review_due")
    assert fact_cases([counted])[0].guards == ()


@pytest.mark.parametrize(("limit", "kind", "expected"), [
    (Duration("hours", 72), "within", (72.0, 72.0)),
    (Duration("days", 2), "within", (2 * DAY, 3 * DAY)),      # due by the end of the day
    (Duration("days", 7), "at_least", (7 * DAY, 7 * DAY)),
    (Duration("working_days", 1), "within", (DAY, 6 * DAY)),  # Maundy Thursday to Tuesday
    (Duration("working_days", 3), "within", (3 * DAY, 8 * DAY)),
    (Duration("working_days", 15), "within", (19 * DAY, 28 * DAY)),
    (Duration("months", 3), "within", (89 * DAY, 93 * DAY)),
])
def test_gap_ranges_of_known_timescales(limit, kind, expected):
    assert gap_range(limit, kind) == expected


DURATIONS = [Duration("days", 2), Duration("working_days", 1), Duration("working_days", 3),
             Duration("working_days", 10), Duration("months", 1), Duration("months", 3)]


@given(
    day=st.integers(0, (CALENDAR_LAST - CALENDAR_FIRST).days),
    hour=st.floats(0, 23.99),
    limit=st.sampled_from(DURATIONS),
)
def test_gap_range_contains_what_the_calendar_does(day, hour, limit):
    """Every due date and earliest time the runtime computes lies within the range."""
    cal = WorkingCalendar(CALENDAR_FIRST)
    t = cal.to_hours(CALENDAR_FIRST + timedelta(days=day)) + hour
    low, high = gap_range(limit, "within")
    assert low <= cal.due(t, limit) - t <= high
    low, high = gap_range(limit, "at_least")
    assert low - 1e-6 <= cal.earliest(t, limit) - t <= high + 1e-6


def test_calendar_range_covers_the_procedures_and_the_simulated_years():
    """From the oldest shipped procedure (2008) to well past the default walk date (2025)."""
    assert CALENDAR_FIRST <= date(2008, 1, 1) <= date(2040, 12, 31) <= CALENDAR_LAST


# -- the windows of each stage --------------------------------------------------------------------
@pytest.fixture(scope="module")
def west_midlands():
    return build_graph(load_procedure("west-midlands-2014"))


# A child on a plan elsewhere comes in through a transfer-in conference, which no strategy
# discussion of ours times: after a strategy discussion, closure and a new referral, such a
# conference opens with no time limit since that discussion. Without the route, the first
# conference after a strategy discussion is the one it calls.
WITHOUT_TRANSFER_IN = (
    "transitions:\n  transfer_in: {remove: true}\n"
    "deadlines:\n  assessment_complete:\n    cancelled_by:\n"
    "      - {trigger: decide_no_further_action}\n      - {trigger: decide_early_help}\n"
    "      - {trigger: decide_strategy_discussion}\n"
)


@pytest.fixture(scope="module")
def west_midlands_without_transfer_in(tmp_path_factory):
    return variant(tmp_path_factory.mktemp("wm"), "wm-no-transfer-in", "west-midlands-2014",
                   WITHOUT_TRANSFER_IN)


def test_windows_after_the_referral(west_midlands):
    bounds = timescale_bounds(west_midlands)
    assert bounds.complete
    assert (bounds.window("enter:referral").earliest, bounds.window("enter:referral").latest) \
        == (0.0, 0.0)
    # decided within 1 working day, read as the end of the 5th day after (over Easter)
    assert bounds.window("enter:assessment").latest == 6 * DAY
    # an assessment lasts up to 45 working days
    assert bounds.window("exit:assessment").latest == gap_range(
        Duration("working_days", 45), "within")[1]
    # early help may also follow a strategy discussion, which may follow a child in need
    # plan of any length; that plan may step up to a strategy discussion at any time
    assert bounds.window("enter:early_help").latest == float("inf")
    assert bounds.window("enter:strategy_discussion").latest == float("inf")


def test_icpc_opens_within_four_weeks_of_the_strategy_discussion(
        west_midlands_without_transfer_in):
    """15 working days: 21 calendar days in an ordinary three weeks, 28 across Easter 2011."""
    bounds = timescale_bounds(load_procedure(west_midlands_without_transfer_in),
                              EventRef("trigger", "strategy_discussion_held"))
    assert bounds.complete
    opens = bounds.window("enter:icpc.session")
    assert opens.latest == 28 * DAY and opens.latest >= 21 * DAY
    assert opens.earliest == 0.0  # the chair may sit without waiting for the reports
    assert bounds.window("trigger:book_icpc").latest == 3 * DAY  # 2 days, by the end of the day
    assert bounds.window("enter:icpc").latest <= opens.latest
    # nothing limits how long the conference sits, so nothing after it is bounded
    assert bounds.window("enter:cp_plan").latest == float("inf")


def test_a_transfer_in_conference_is_not_timed_from_a_strategy_discussion(west_midlands):
    """With the transfer-in route, a conference can first open long after the discussion."""
    bounds = timescale_bounds(west_midlands, EventRef("trigger", "strategy_discussion_held"))
    assert bounds.window("enter:icpc.session").latest == float("inf")
    assert bounds.window("trigger:book_icpc").latest == 3 * DAY


def test_first_review_within_three_months_of_the_plan(west_midlands):
    bounds = timescale_bounds(west_midlands, EventRef("trigger", "start_cp_plan"))
    review = bounds.window("enter:cp_plan.review_conference.session")
    assert review.latest == gap_range(Duration("months", 3), "within")[1] == 93 * DAY


# -- the command line -----------------------------------------------------------------------------
def test_cli_check_fails_and_prints_the_clash():
    result = CliRunner().invoke(main, ["check", str(FIXTURE)])
    assert result.exit_code == 1
    out = result.output
    assert "west-midlands-2014-icpc-3wd-ld: FAIL" in out
    assert "FAIL timescales: icpc_held and icpc_reports_extended_notice cannot all be kept" in out
    assert "when extended_notice_needed holds" in out and "every ordinary week" in out
    assert " -> ".join(CLASH_EVENTS) in out
    assert "[NCL-7.2.1, NCL-5.1.5, NCL-5.1.7]" in out
    assert "counterexample:" in out


def test_cli_prints_the_windows_from_an_event(west_midlands_without_transfer_in):
    result = CliRunner().invoke(main, ["check", str(west_midlands_without_transfer_in),
                                       "--from", "trigger:strategy_discussion_held"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines()
               if line.strip().startswith("enter:icpc.session"))
    assert row.split()[1:] == ["0.0", "28.0"]
    assert "whatever the calendar" in result.output


def test_cli_rejects_an_unknown_origin_event():
    result = CliRunner().invoke(main, ["check", "west-midlands-2014", "--from",
                                       "trigger:strategy_discusion_held"])
    assert result.exit_code == 2
    assert "did you mean 'trigger:strategy_discussion_held'?" in result.output


def test_a_clash_in_a_state_space_too_large_to_finish_still_ends(tmp_path):
    """Regression: on West Midlands (many concurrent plan clocks) a clashing variant hit the
    state budget and the grouping of blocked moves then ran for many minutes. Now the proof
    stops at the budget, says it is incomplete, and still reports the clash it can see."""
    path = variant(tmp_path, "booking-notice-wm", "west-midlands-2014", (
        "deadlines:\n  booking_notice:\n    from: {trigger: strategy_discussion_held}\n"
        "    to: {trigger: book_icpc}\n    at_least: {days: 5}\n    rules: [WM-2a]\n"))
    clashes, complete = find_clashes(load_procedure(path))
    assert ("icpc_booked", "booking_notice") in [c.deadlines for c in clashes]
    assert complete is False


# -- grouping runs by what is imposed: the antichain search against the plain subset search ------
def _blocked_by_every_group(self):
    """The plain subset construction the antichain search replaced (every group followed)."""
    service = {}
    for key in self.order:
        for step, outcome, child in self.nodes[key].tried:
            if step.move.service and outcome == "ok" and child is not None:
                service.setdefault(key, []).append(child)

    def closure(keys):
        seen = set(keys)
        stack = list(seen)
        while stack:
            for child in service.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return frozenset(seen)

    rank = {key: i for i, key in enumerate(self.order)}
    first = closure(k for k in self.order if self.nodes[k].parent is None)
    groups, queue, out = {first}, [first], []
    while queue:
        group = queue.pop(0)
        moves = {}
        for key in sorted(group, key=rank.__getitem__):
            for step, outcome, child in self.nodes[key].tried:
                if not step.move.service:
                    ident = (step.move.before, step.move.transition.id, step.move.after)
                    moves.setdefault(ident, []).append((key, step, outcome, child))
        for tries in moves.values():
            reached = [c for _, _, o, c in tries if o == "ok" and c is not None]
            if not reached:
                out.append([(k, s) for k, s, _, _ in tries])
                continue
            nxt = closure(reached)
            if nxt not in groups:
                groups.add(nxt)
                queue.append(nxt)
    return out


@pytest.mark.parametrize("case", ["late-conference", "quick-review", "fixture", "cadence"])
def test_antichain_grouping_finds_the_same_clashes_as_following_every_group(
        tmp_path, monkeypatch, case):
    """Skipping a group that contains one already found loses no clash (and names the same)."""
    import model.timescales as ts
    if case == "late-conference":
        path = variant(tmp_path, case, "national-core-2013", WM_CONFERENCE_CLOCKS + (
            "  conference_notice:\n    from: {trigger: book_icpc}\n"
            "    to: {trigger: icpc_opens}\n    at_least: {days: 30}\n"
            "    basis: {kind: assumption, note: \"A notice period made up to clash.\"}\n"))
    elif case == "quick-review":
        path = variant(tmp_path, case, "newcastle-2010", (
            "deadlines:\n  review_sits_quickly:\n    from: {trigger: review_due}\n"
            "    to: {enter: cp_plan.review_conference.session}\n    within: {days: 4}\n"
            "    rules: [NCL-1.3.1]\n"))
    elif case == "fixture":
        path = FIXTURE
    else:  # clashes found only after many groups (82 steps in)
        path = variant(tmp_path, case, "west-midlands-2014",
                       "deadlines:\n  core_group_interval:\n    at_least: {days: 45}\n")
    graph = build_graph(load_procedure(path))
    readings = ("favourable", "ordinary")
    fast = [find_clashes(graph, r) for r in readings]
    monkeypatch.setattr(ts._Explorer, "blocked", _blocked_by_every_group)
    plain = [find_clashes(graph, r) for r in readings]
    assert [(sorted(c.key for c in cl), done) for cl, done in fast] == [
        (sorted(c.key for c in cl), done) for cl, done in plain]
    assert any(cl for cl, _ in fast)
    if case == "cadence":
        assert max(len(c.path) for cl, _ in fast for c in cl) > 50


def test_review_restricted_information_is_timed_like_the_initial_conference():
    """WM-32 through WM-35: the chair hears of restricted information 3 days before a review."""
    wm = load_procedure("west-midlands-2014")
    d = next(d for d in wm.deadlines if d.id == "review_restricted_info_notice")
    assert d.start == EventRef("trigger", "review_restricted_info_notified")
    assert d.end == EventRef("enter", "cp_plan.review_conference.session")
    assert d.rules == ("WM-32",)
    t = next(t for t in wm.transitions if t.id == "review_restricted_info_notified")
    assert t.internal and "restricted_information" in t.records
