"""`cpsim walk` as a trainer meets it: the real program in a pseudo-terminal, and replays."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import LONG_RUN_TO_SESSION, without_plan_agreed

from cpsim.cli import main

CPSIM = Path(sys.executable).with_name("cpsim")
PROMPT = "walk> "


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def spawn(tmp_path: Path, *args: str):
    pexpect = pytest.importorskip("pexpect")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "dumb"
    child = pexpect.spawn(str(CPSIM), ["walk", *args], cwd=str(tmp_path), env=env,
                          encoding="utf-8", timeout=60, dimensions=(50, 250))
    child.expect_exact(PROMPT)
    return child


def send(child, line: str) -> str:
    """Type a line, wait for the next prompt, and return everything printed in between."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    return child.before


def test_a_trainer_walks_in_a_terminal_then_replays_the_transcript(tmp_path):
    """Pick by number and name, miss a deadline, undo, ask why, go wrong, save, quit."""
    assert CPSIM.exists()
    child = spawn(tmp_path, "west-midlands-2014", "--save", "auto.txt")
    opening = child.before
    assert "referral: Someone who suspects significant harm has referred the child" in opening
    assert "Tue 01 Apr 2025 09:00" in opening
    assert "4. decide_strategy_discussion" in opening

    out = send(child, "4")
    assert "strategy_discussion.convening" in out
    assert "deadline met: referral_decision" in out

    out = send(child, "strategy_discussion_held")
    assert "strategy_discussion.held" in out
    assert "icpc_booked: due end of Thu 03 Apr 2025" in out

    out = send(child, "advance 3 working days")
    assert "Fri 04 Apr 2025 09:00" in out
    assert "MISSED" in out and "icpc_booked" in out
    assert "\x1b[31m\x1b[1mMISSED" in out  # red and bold on a terminal (click.style)

    out = send(child, "undo")
    assert "undid the clock move" in out
    assert "Tue 01 Apr 2025 09:00" in out and "MISSED" not in out

    out = send(child, "why start_cp_plan")
    assert "not offered from strategy_discussion.held" in out
    assert "offered from icpc.outcome" in out
    assert "WM-30:" in out and "Protocol 30" in out

    out = send(child, "plan_agreed")
    assert "plan_agreed is not allowed now" in out
    assert "it is offered from icpc.session" in out

    out = send(child, "1")
    assert "section_47.enquiry" in out

    out = send(child, "save session.txt")
    assert "saved the walk" in out

    child.sendline("quit")
    child.expect(r"saved the walk \(\d+ commands\) to auto\.txt")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0

    transcript = (tmp_path / "session.txt").read_text()
    assert transcript.splitlines()[1] == "cpsim-walk: 1"
    assert "> why plan_agreed" in transcript and "> undo" in transcript
    assert (tmp_path / "auto.txt").read_text() == transcript

    replay = run("walk", "west-midlands-2014", "--replay", str(tmp_path / "session.txt"))
    assert replay.exit_code == 0, replay.output
    assert "replay finished" in replay.output and "all legal" in replay.output
    assert "MISSED" in replay.output  # the screen after 'advance' is shown again
    assert replay.output.rstrip().endswith("all legal")


def test_terminal_walk_with_save_option(tmp_path):
    child = spawn(tmp_path, "west-midlands-2014", "--save", "auto.txt",
                  "--facts", "interpreter_needed=true", "--start-date", "2025-06-02")
    assert "Mon 02 Jun 2025 09:00" in child.before
    assert "interpreter_needed=true" in child.before
    send(child, "decide_early_help")
    child.sendeof()
    child.expect(r"saved the walk \(1 command\) to auto\.txt")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0
    text = (tmp_path / "auto.txt").read_text()
    assert "start-date: 2025-06-02" in text and "facts: interpreter_needed=true" in text


def test_no_color_keeps_a_terminal_walk_plain(tmp_path):
    """Colour follows click's terminal detection, and NO_COLOR switches it off."""
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "TERM": "dumb", "NO_COLOR": "1"}
    child = pexpect.spawn(str(CPSIM), ["walk", "west-midlands-2014"], cwd=str(tmp_path),
                          env=env, encoding="utf-8", timeout=60, dimensions=(50, 250))
    child.expect_exact(PROMPT)
    assert "== west-midlands-2014 | step 0" in child.before
    out = send(child, "advance 30 days")
    assert "MISSED" in out and "\x1b[" not in child.before + out
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_piped_input_and_end_of_input(tmp_path):
    result = run("walk", "west-midlands-2014", input="2\nhistory\n")
    assert result.exit_code == 0, result.output
    assert "walk> 2" in result.output
    assert "decide_early_help: referral -> early_help" in result.output
    assert "\x1b[" not in result.output
    empty = run("walk", "west-midlands-2014", input="")
    assert empty.exit_code == 0


def test_replay_of_an_illegal_move_exits_1_with_the_explanation(tmp_path):
    path = tmp_path / "bad-move.txt"
    path.write_text("cpsim-walk: 1\nprocedure: west-midlands-2014\n> decide_early_help\n"
                    "> start_cp_plan\n> early_help_ends\n")
    result = run("walk", "west-midlands-2014", "--replay", str(path))
    assert result.exit_code == 1
    assert "Why not start_cp_plan? It is not offered from here." in result.output
    assert "The case is in early_help" in result.output
    assert "replay stopped: line 4" in result.output
    assert "Traceback" not in result.output


def test_replay_of_a_malformed_file_exits_2_with_line_numbers(tmp_path):
    path = tmp_path / "broken.txt"
    path.write_text("cpsim-walk: 1\nstart-date: someday\n> decide_early_help\n> advance soon\n")
    result = run("walk", "west-midlands-2014", "--replay", str(path))
    assert result.exit_code == 2
    assert f"{path}:2: start-date: not a date" in result.output
    assert f"{path}:4: command: cannot read 'soon' as a duration" in result.output
    assert "Traceback" not in result.output


def test_bad_facts_and_unknown_procedure_exit_2():
    result = run("walk", "west-midlands-2014", "--facts", "interpreter=yes")
    assert result.exit_code == 2
    assert "did you mean 'interpreter_needed'" in result.output
    assert run("walk", "west-midland-2014").exit_code == 2


def test_replay_a_check_counterexample_on_the_broken_procedure(tmp_path):
    """`cpsim check` output saved to a file walks through exactly how the procedure breaks."""
    procedure = without_plan_agreed(tmp_path)
    check = run("check", str(procedure))
    assert check.exit_code == 1
    output = tmp_path / "check-output.txt"
    output.write_text(check.output)
    result = run("walk", str(procedure), "--replay", str(output))
    assert result.exit_code == 0, result.output
    # Every failing check prints the same shortest run (in by transfer, the chair sits
    # without reports), so it is replayed once.
    assert "different counterexample runs" not in result.output
    assert "walk> transfer_in  (line " in result.output
    assert "walk> sit_without_reports  (line " in result.output
    assert "as the counterexample says: now in icpc.session" in result.output
    # A second, longer run to the same dead end (the one a trainer would walk) is replayed
    # on its own new case.
    output.write_text(check.output + LONG_RUN_TO_SESSION)
    result = run("walk", str(procedure), "--replay", str(output))
    assert result.exit_code == 0, result.output
    assert "2 different counterexample runs" in result.output
    assert "walk> decide_strategy_discussion  (line " in result.output
    assert "walk> icpc_opens  (line " in result.output
    assert "as the counterexample says: now in icpc.session" in result.output
    assert "stuck: nothing leads on from icpc.session, as the counterexample says" in (
        result.output)
    sound = run("walk", "west-midlands-2014", "--replay", str(output))
    assert sound.exit_code == 1
    assert "but here the case can still: plan_agreed" in sound.output


def test_replay_the_json_of_check(tmp_path):
    """`cpsim check --json` saved to a file replays the same run, by step number."""
    procedure = without_plan_agreed(tmp_path)
    check = run("check", "--json", str(procedure))
    assert check.exit_code == 1
    output = tmp_path / "check.json"
    output.write_text(check.output)
    result = run("walk", str(procedure), "--replay", str(output))
    assert result.exit_code == 0, result.output
    assert "walk> transfer_in\n" in result.output
    assert "as the counterexample says: now in icpc.session" in result.output
    assert "(line " not in result.output
    sound = run("walk", "west-midlands-2014", "--replay", str(output))
    assert sound.exit_code == 1
    assert "replay stopped: after the last step: the counterexample says nothing leads on" in (
        sound.output)
