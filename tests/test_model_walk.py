"""The walk session: screens, actions, clock, undo, explanations, transcripts, replays."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import click
import pytest
from helpers import TO_ICPC, without_plan_agreed

from cpsim.transcript import Transcript, parse_walk_file, replay_transcript
from cpsim.walk_commands import (
    CommandError,
    HelpRequest,
    parse_command,
    parse_facts,
    run_command,
)
from cpsim.walk_render import render_replay, render_result, render_screen
from model.check import check_procedure
from model.counterexample import choose_facts, replay_counterexample
from model.errors import InputError, Problem
from model.findings import Counterexample, format_report, reports_to_json
from model.loader import load_procedure
from model.session import DEFAULT_START, Move, WalkSession

TO_PLAN = [*TO_ICPC, "invitations_sent", "reports_received", "icpc_opens", "plan_agreed",
           "start_cp_plan"]


@pytest.fixture(scope="module")
def wm():
    return load_procedure("west-midlands-2014")


@pytest.fixture(scope="module")
def ncl():
    return load_procedure("newcastle-2010")


def walk_to(procedure, triggers, **kwargs) -> WalkSession:
    session = WalkSession(procedure, **kwargs)
    for trigger in triggers:
        result = session.apply(Move.act(trigger))
        assert result.status == "ok", render_result(result)
    return session


# -- commands --------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "verb"), [
    ("", "look"), ("look", "look"), ("help", "help"), ("?", "help"), ("quit", "quit"),
    ("exit", "quit"), ("undo", "undo"), ("history", "history"), ("facts", "facts"),
    ("facts interpreter_needed=true", "set"), ("set caf_completed=yes", "set"),
    ("why", "why"), ("why plan_agreed", "why"), ("why 2", "why"),
    ("advance 3 working days", "advance"), ("+2 days", "advance"), ("wait 24 hours", "advance"),
    ("advance to 2025-04-10 14:30", "advance"), ("save x.txt", "save"), ("3", "pick"),
    ("plan_agreed", "act"), ("Plan_Agreed", "act"), ("do undo", "act"), ("> 3", "pick"),
])
def test_commands_are_read(text, verb):
    assert parse_command(text).verb == verb


@pytest.mark.parametrize("text", [
    "advance banana", "advance", "+", "advance to 2025-02-30", "advance 0 days", "undo now",
    "set", "set nonsense=true", "set interpreter_needed=perhaps", "why not-a-name",
    "save", "two words", "do 1x",
])
def test_bad_commands_are_refused_with_a_message(text):
    with pytest.raises(CommandError) as err:
        parse_command(text)
    assert str(err.value)


def test_facts_are_checked_against_the_registry():
    assert parse_facts("interpreter_needed=true caf_completed=0") == {
        "interpreter_needed": True, "caf_completed": False}
    with pytest.raises(ValueError, match="did you mean 'interpreter_needed'"):
        parse_facts("interpreter_neded=true")


# -- the screen ------------------------------------------------------------------------------
def test_first_screen_shows_state_clock_deadlines_and_numbered_actions(wm):
    screen = WalkSession(wm).screen()
    assert screen.configuration == ("referral",)
    assert screen.now == datetime(2025, 4, 1, 9, 0)
    assert date(2025, 4, 1) == DEFAULT_START
    assert [c.deadline_id for c in screen.clocks] == ["referral_decision",
                                                      "assessment_complete"]
    assert screen.clocks[0].due == datetime(2025, 4, 3, 0, 0)  # end of Wed 2 April
    assert [a.number for a in screen.actions] == [1, 2, 3, 4, 5]
    assert screen.actions[3].trigger == "decide_strategy_discussion"
    assert screen.actions[4].trigger == "transfer_in"
    # The referral decision is the national core's (WT-17a); West Midlands' own rule WM-1a
    # is on the strategy discussion that follows it.
    wt17a = next(r for r in screen.actions[3].rules if r.id == "WT-17a")
    assert wt17a.clause == "Slide 17"
    assert "Working Together" in wt17a.document and "referral" in wt17a.summary
    text = render_screen(screen)
    assert "referral_decision: due end of Wed 02 Apr 2025 (1 working day left) [CAL-T1]" in text
    assert "4. decide_strategy_discussion:" in text
    assert "WT-17a: A qualified social worker responds to each referral" in text
    assert "\x1b[" not in text
    held = WalkSession(wm)
    run_command(held, "decide_strategy_discussion")
    action = next(a for a in held.screen().actions if a.trigger == "strategy_discussion_held")
    wm1a = next(r for r in action.rules if r.id == "WM-1a")
    assert wm1a.clause == "Protocol 1, first point"
    assert "West Midlands" in wm1a.document and "24 hours" in wm1a.summary
    assert "WM-1a: Once a social worker sees concerns" in render_screen(held.screen())


def test_pick_by_number_and_by_name(wm):
    session = WalkSession(wm)
    first = run_command(session, "4")
    assert first.status == "ok" and first.changed
    assert session.configuration == ("strategy_discussion.convening",)
    assert any("deadline met: referral_decision" in n.text for n in first.notes)
    assert any("cancelled" in n.text and "assessment_complete" in n.text for n in first.notes)
    second = run_command(session, "strategy_discussion_held")
    assert second.status == "ok"
    assert session.configuration == ("strategy_discussion.held",)
    assert any("clock started: icpc_booked" in n.text for n in second.notes)
    assert run_command(session, "9").status == "invalid"
    assert session.commands == ["decide_strategy_discussion", "strategy_discussion_held"]


def test_clock_passing_a_due_time_turns_the_deadline_missed(wm):
    session = walk_to(wm, ["decide_strategy_discussion", "strategy_discussion_held"])
    result = run_command(session, "advance 3 days")
    assert result.status == "ok"
    assert session.screen().now == datetime(2025, 4, 4, 9, 0)
    missed = [n for n in result.notes if n.text.startswith("MISSED: icpc_booked")]
    assert missed and missed[0].level == "alert"
    clock = next(c for c in result.screen.clocks if c.deadline_id == "icpc_booked")
    assert clock.overdue
    plain = render_screen(result.screen)
    assert "icpc_booked: MISSED: overdue, was due end of Thu 03 Apr 2025" in plain
    coloured = render_screen(result.screen, colour=True)
    assert click.style("MISSED: overdue", fg="red", bold=True)[:-4] in coloured
    assert click.unstyle(coloured) == plain
    late = run_command(session, "start_section_47")
    assert late.status == "ok"
    booked = run_command(session, "book_icpc")
    assert any(n.text.startswith("deadline MISSED: icpc_booked") and n.level == "alert"
               for n in booked.notes)


def test_working_days_skip_weekends_and_bank_holidays(wm):
    session = WalkSession(wm, start_date=date(2025, 4, 17))  # Thursday before Easter
    run_command(session, "advance 1 working day")
    assert session.screen().now == datetime(2025, 4, 22, 9, 0)  # Good Friday, Easter Monday
    run_command(session, "undo")
    run_command(session, "advance 1 day")
    assert session.screen().day_kind == "bank holiday"
    run_command(session, "advance to 2025-04-19")
    assert session.screen().day_kind == "weekend"
    assert run_command(session, "advance to 2025-04-01").status == "invalid"


def test_undo_goes_back_one_step_clock_included(wm):
    session = walk_to(wm, ["decide_strategy_discussion"])
    run_command(session, "advance 2 days")
    run_command(session, "strategy_discussion_held")
    back = run_command(session, "undo")
    assert back.screen.configuration == ("strategy_discussion.convening",)
    assert session.screen().now == datetime(2025, 4, 3, 9, 0)
    assert run_command(session, "undo").screen.now == datetime(2025, 4, 1, 9, 0)
    assert not any(c.overdue for c in session.screen().clocks)
    assert run_command(session, "undo").screen.configuration == ("referral",)
    assert [c.deadline_id for c in session.screen().clocks] == ["referral_decision",
                                                                "assessment_complete"]
    nothing = run_command(session, "undo")
    assert nothing.status == "ok" and "nothing to undo" in nothing.notes[0].text
    assert session.history == []


# -- why ---------------------------------------------------------------------------------------
def test_why_names_the_state_and_where_the_action_is_offered(wm):
    session = walk_to(wm, ["decide_strategy_discussion"])
    e = session.explain("start_cp_plan")
    assert e.kind == "not_here"
    assert e.configuration == ("strategy_discussion.convening",)
    assert e.offered_from == ("icpc.outcome",)
    wm30 = next(r for r in e.rules if r.id == "WM-30")
    assert wm30.clause == "Protocol 30" and wm30.summary
    assert e.allowed_now == ("strategy_discussion_held",)
    text = render_result(run_command(session, "why start_cp_plan"))
    assert "not offered from strategy_discussion.convening" in text
    assert "it is offered from icpc.outcome" in text


def test_why_a_guard_blocks_the_designated_review(ncl):
    # The designated review is Newcastle's (NCL-7.1.5); West Midlands has none.
    session = walk_to(ncl, [*TO_PLAN, "review_due", "review_reports_received"])
    assert "designated_review_opens" in [b.trigger for b in session.screen().blocked]
    e = session.explain("designated_review_opens")
    assert e.kind == "blocked"
    assert e.guards[0][0] == "designated_review_due"
    assert "4th (designated)" in e.guards[0][1]
    assert any(r.id == "NCL-7.1.5" and r.clause == "Section 7.1.5" for r in e.rules)
    for _ in range(3):
        for trigger in ("review_opens", "review_plan_agreed", "continue_plan", "review_due",
                        "review_reports_received"):
            run_command(session, trigger)
    assert session.explain("designated_review_opens").kind == "allowed"
    assert session.explain("review_opens").kind == "blocked"


def test_an_illegal_choice_explains_itself_and_changes_nothing(wm):
    session = walk_to(wm, ["decide_strategy_discussion"])
    before = session.screen()
    result = run_command(session, "plan_agreed")
    assert result.status == "illegal"
    assert result.explanation is not None and result.explanation.kind == "not_here"
    assert result.screen == before
    assert session.commands[-1] == "why plan_agreed"
    unknown = run_command(session, "plan_agred")
    assert unknown.status == "illegal"
    assert unknown.explanation is not None and unknown.explanation.hint == "plan_agreed"
    assert "Did you mean 'plan_agreed'?" in render_result(unknown)


def test_setting_a_fact_changes_the_guards():
    wigan = load_procedure("wigan-2008-change-meetings")
    session = WalkSession(wigan)
    assert session.allowed() == ("convene_planning_meeting",)
    assert session.explain("convene_change_meeting").kind == "blocked"
    result = run_command(session, "set caf_completed=true")
    assert result.status == "ok" and result.changed
    assert session.allowed() == ("convene_change_meeting",)
    assert "caf_completed = true" in run_command(session, "facts").text
    assert run_command(session, "undo").status == "ok"
    assert session.allowed() == ("convene_planning_meeting",)


def test_a_region_waiting_for_the_main_flow_is_shown_as_blocked():
    walsall = load_procedure("walsall-2018-resolution")
    session = WalkSession(walsall, facts={"practice_is_good": True})
    assert session.configuration == ("referral", "resolution.idle")
    blocked = {b.trigger: b.reason for b in session.screen().blocked}
    assert "waits for icpc.preparation" in blocked["note_good_practice"]
    assert session.explain("note_good_practice").kind == "blocked"


def test_help_is_answered_by_the_command_line_not_the_session(wm):
    """The grammar owns the help text; asking for it records nothing in the walk."""
    assert isinstance(parse_command("?"), HelpRequest)
    session = WalkSession(wm)
    assert "advance 3 working days" in run_command(session, "help").text
    assert session.commands == [] and session.history == []


def test_the_session_takes_moves_not_text(wm):
    """The pure session is driven by Move records; the transcript spells them out."""
    session = WalkSession(wm)
    assert session.apply(Move.advance("2 days")).status == "ok"
    assert session.now == 9.0 + 48
    assert session.apply(Move.act("decide_early_help")).status == "ok"
    assert session.apply(Move("why", "why 1", number=1)).explanation is not None
    assert session.commands == ["advance 2 days", "decide_early_help", "why early_help_ends"]


def test_help_history_and_quit(wm):
    session = walk_to(wm, ["decide_early_help"])
    assert "advance 3 working days" in run_command(session, "help").text
    assert "decide_early_help: referral -> early_help" in run_command(session, "history").text
    assert run_command(session, "quit").status == "quit"


# -- transcripts -------------------------------------------------------------------------------
def test_save_returns_a_transcript_that_replays(wm, tmp_path):
    session = WalkSession(wm, start_date=date(2025, 5, 6), facts={"interpreter_needed": True})
    for command in ["4", "advance 3 hours", "why start_cp_plan", "strategy_discussion_held",
                    "plan_agreed", "set parent_learning_disability=true", "2", "undo"]:
        run_command(session, command)
    result = run_command(session, "save out.txt")
    assert result.save is not None
    name, text = result.save
    assert name == "out.txt"
    assert text.splitlines()[1:5] == [
        "cpsim-walk: 1", "procedure: west-midlands-2014", "start-date: 2025-05-06",
        "facts: interpreter_needed=true"]
    assert "> why plan_agreed" in text and "> undo" in text and "> no_statutory_action" in text
    parsed = parse_walk_file(text, "out.txt")
    assert isinstance(parsed, Transcript)
    replay = replay_transcript(wm, parsed)
    assert replay.ok, render_replay(replay)
    assert replay.session.configuration == session.configuration
    assert replay.session.now == session.now
    assert replay.session.current_facts == session.current_facts


def refused(text: str, name: str) -> tuple[Problem, ...]:
    """The problems for which ``parse_walk_file`` refuses ``text`` (it must refuse it)."""
    with pytest.raises(InputError) as err:
        parse_walk_file(text, name)
    return tuple(err.value.problems)


def test_malformed_transcripts_list_every_problem_with_its_line():
    text = ("# a comment\ncpsim-walk: 1\nprocedure: west-midlands-2014\nstart-date: 2025-02-30\n"
            "facts: interpreter=yes\nstart_dates: 2025-01-01\n> decide_early_help\n"
            "> advance lots\n> set foo=1\n")
    problems = refused(text, "t.txt")
    lines = [(p.line, p.field) for p in problems]
    assert lines == [(4, "start-date"), (5, "facts"), (6, "start_dates"), (8, "command"),
                     (9, "command")]
    assert problems[2].hint == "start-date"
    with pytest.raises(InputError, match="version 7"):
        parse_walk_file("cpsim-walk: 7\n> look\n", "t.txt")
    with pytest.raises(InputError, match="not a walk transcript"):
        parse_walk_file("hello\n", "t.txt")


def test_replay_stops_at_an_illegal_move(wm):
    parsed = parse_walk_file("cpsim-walk: 1\n> decide_assessment\n> icpc_opens\n> 1\n", "x")
    assert isinstance(parsed, Transcript)
    replay = replay_transcript(wm, parsed)
    assert not replay.ok
    assert replay.failure is not None and replay.failure.startswith("line 3:")
    assert len(replay.steps) == 2
    text = render_replay(replay)
    assert "Why not icpc_opens? It is not offered from here." in text
    assert "replay stopped: line 3" in text


def test_transcript_from_another_procedure_is_noted(wm):
    parsed = parse_walk_file("cpsim-walk: 1\nprocedure: newcastle-2010\n> 1\n", "x")
    assert isinstance(parsed, Transcript)
    replay = replay_transcript(wm, parsed)
    assert replay.ok
    assert "recorded on newcastle-2010" in replay.intro[0].text


# -- counterexamples ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    return without_plan_agreed(tmp_path_factory.mktemp("mutated"))


@pytest.fixture(scope="module")
def broken_check(broken) -> str:
    """What `cpsim check` prints for the broken procedure."""
    return format_report(check_procedure(load_procedure(broken)))


def test_check_output_becomes_counterexamples(broken_check):
    parsed = parse_walk_file(broken_check, "check.txt")
    assert isinstance(parsed, tuple) and all(isinstance(c, Counterexample) for c in parsed)
    first = parsed[0]
    assert first.title.startswith("FAIL can_end: dead end")
    # The shortest run in is now the national core's transfer-in (it cites no rule, only a
    # basis), then West Midlands' invitations and the chair's decision to sit without reports.
    assert [s.trigger for s in first.steps] == ["transfer_in", "invitations_sent",
                                                "sit_without_reports"]
    assert first.steps[0].rules == ()
    assert first.steps[1].rules == ("WM-3", "WM-4", "WM-5", "WM-6")
    assert first.stuck == ("icpc.session",)
    # can_end and conference_ends_with_plan print the same run: replayed once.
    assert any("conference_ends_with_plan" in t for t in first.also)
    assert len({tuple(s.trigger for s in c.steps) for c in parsed}) == len(parsed)


def test_counterexample_replay_ends_stuck_on_the_broken_procedure(broken, broken_check):
    procedure = load_procedure(broken)
    for cx in parse_walk_file(broken_check, "check.txt"):
        replay = replay_counterexample(procedure, cx)
        assert replay.ok, render_replay(replay)
        assert replay.session.configuration == ("icpc.session",)
        assert replay.session.screen().stuck
        rendered = render_replay(replay)
        assert "stuck: nothing leads on from icpc.session" in rendered
        assert "as the counterexample says: now in icpc.session" in rendered


def test_counterexample_does_not_reproduce_on_the_sound_procedure(wm, broken_check):
    cx = parse_walk_file(broken_check, "check.txt")[0]
    replay = replay_counterexample(wm, cx)
    assert not replay.ok
    assert replay.failure is not None and "can still: plan_agreed" in replay.failure


def test_counterexample_steps_must_chain_and_be_numbered():
    text = ("    counterexample:\n"
            "      1. referral --decide_early_help [CAL-T1]--> early_help\n"
            "      3. closed --re_referral [CAL-T1]--> referral\n")
    assert [p.line for p in refused(text, "c.txt")] == [3, 3]


def test_json_check_output_replays_like_the_text(wm, broken):
    """`cpsim check --json` gives the same runs as the text, without line numbers."""
    report = check_procedure(load_procedure(broken))
    from_text = parse_walk_file(format_report(report), "check.txt")
    from_json = parse_walk_file(json.dumps(reports_to_json([report])), "check.json")
    assert isinstance(from_json, tuple) and isinstance(from_text, tuple)
    assert [(c.title, c.stuck, c.also, [(s.before, s.trigger, s.after) for s in c.steps])
            for c in from_json] == [
        (c.title, c.stuck, c.also, [(s.before, s.trigger, s.after) for s in c.steps])
        for c in from_text]
    assert all(c.line is None and all(s.line is None for s in c.steps) for c in from_json)
    replay = replay_counterexample(load_procedure(broken), from_json[0])
    assert replay.ok, render_replay(replay)
    assert "(line " not in render_replay(replay)
    assert f"counterexample (check of {report.procedure}):" in render_replay(replay)
    sound = replay_counterexample(wm, from_json[0])
    assert sound.failure is not None
    assert sound.failure.startswith("after the last step: ")


def test_counterexample_facts_are_chosen_so_guards_hold():
    wigan = load_procedure("wigan-2008-change-meetings")
    assert choose_facts(wigan, ["convene_change_meeting"]) == {"caf_completed": True}
    text = ("counterexample:\n"
            "  1. need_identified + arbitration.none --convene_change_meeting [WIG-6.1.1]--> "
            "change_meeting + arbitration.none\n")
    cx = parse_walk_file(text, "c.txt")[0]
    replay = replay_counterexample(wigan, cx)
    assert replay.ok, render_replay(replay)
    assert "caf_completed=true" in render_replay(replay)
    assert not replay_counterexample(wigan, cx, facts={}).ok


def test_chosen_facts_are_only_those_the_run_s_guards_read(ncl):
    """Fact classes of the run's guards: domestic abuse to split, pre-birth for a birth plan."""
    into_icpc = [*TO_ICPC, "invitations_sent", "reports_received", "icpc_opens"]
    assert choose_facts(ncl, into_icpc) == {}
    assert choose_facts(ncl, [*into_icpc, "split_conference"]) == {"domestic_abuse": True}
    assert choose_facts(ncl, [*into_icpc, "split_conference", "plan_agreed",
                              "birth_plan_distributed"]) == {"pre_birth": True,
                                                             "domestic_abuse": True}
    assert choose_facts(ncl, ["no_such_action"]) == {}
