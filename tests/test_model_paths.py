"""`cpsim paths`: planned walkthroughs replay, and together cover everything they claim."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import without_plan_agreed

from cpsim.cli import main
from cpsim.transcript import Transcript, parse_walk_file, replay_transcript
from cpsim.walk_render import render_replay
from model.loader import available_procedures, load_procedure
from model.paths import (
    COVER_MODES,
    count_cap,
    counted_triggers,
    fact_variants,
    format_plan,
    plan_walks,
    universe,
)

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = ROOT / "trainers" / "west-midlands-2014"


@functools.cache
def plan(name: str, mode: str):
    return plan_walks(load_procedure(name), mode)


@pytest.mark.parametrize("mode", COVER_MODES)
@pytest.mark.parametrize("name", available_procedures())
def test_every_walkthrough_replays_and_together_they_cover_everything(name, mode):
    procedure = load_procedure(name)
    result = plan(name, mode)
    assert result.walks
    assert not result.uncovered, format_plan(result)
    covered: set[str] = set()
    for walk in result.walks:
        transcript = parse_walk_file(walk.transcript, walk.file_name)
        assert isinstance(transcript, Transcript)
        replay = replay_transcript(procedure, transcript)
        assert replay.ok, render_replay(replay)
        got = replay.session.coverage().of(mode)
        assert set(walk.covers) <= got
        assert replay.session.screen().terminal  # every walkthrough ends where a case may end
        covered |= got
    assert covered >= set(result.universe) == set(universe(procedure, mode))
    assert sum(len(w.new) for w in result.walks) == len(result.universe)
    assert all(w.new for w in result.walks)


def test_plans_are_deterministic():
    again = plan_walks(load_procedure("walsall-2018-resolution"), "transitions")
    assert again == plan("walsall-2018-resolution", "transitions")


def test_guards_are_satisfied_by_counts_and_by_facts():
    ncl_transitions = plan("newcastle-2010", "transitions")
    designated = [w for w in ncl_transitions.walks if "designated_review_opens" in w.covers]
    assert designated
    commands = list(designated[0].commands)
    assert commands.index("designated_review_opens") > 0
    assert commands[: commands.index("designated_review_opens")].count("review_opens") >= 3
    ncl = plan("newcastle-2010", "deadlines")
    extended = [w for w in ncl.walks if "icpc_reports_extended_notice" in w.covers]
    standard = [w for w in ncl.walks if "icpc_reports" in w.covers]
    assert extended and extended[0].facts == {"parent_learning_disability": True}
    # standard notice needs no fact; the walk sets pre_birth only for the birth plan it covers
    assert standard and standard[0].facts in ({}, {"pre_birth": True})
    assert ("pre_birth" in standard[0].facts) == ("birth_plan_24h" in standard[0].covers)


def test_minimum_gaps_are_waited_out_on_the_clock():
    wm = plan("west-midlands-2014", "deadlines")
    walk = next(w for w in wm.walks if "icpc_reports" in w.covers)
    commands = list(walk.commands)
    opens = commands.index("icpc_opens")
    assert commands[opens - 1] == "advance 3 days"
    replay = replay_transcript(load_procedure("west-midlands-2014"),
                               parse_walk_file(walk.transcript, "w"))  # type: ignore[arg-type]
    assert replay.ok
    fired = [e.fired for e in replay.session.history if e.fired is not None]
    verdicts = {v.deadline_id: v.outcome for f in fired for v in f.verdicts}
    assert verdicts["icpc_reports"] == "met"


def test_fact_variants_and_counted_triggers():
    assert fact_variants(load_procedure("west-midlands-2014")) == ({},)
    assert fact_variants(load_procedure("walsall-2018-resolution")) == (
        {}, {"practice_is_good": True})
    assert counted_triggers(load_procedure("wigan-2008-change-meetings")) == ((), ())
    walsall = load_procedure("walsall-2018-resolution")
    assert counted_triggers(walsall) == (
        (), ("conference_cancelled", "postpone_icpc", "postpone_review"))


def test_counts_are_tracked_up_to_the_largest_declared_saturation():
    """Walsall's only count guard settles at 1; Newcastle's review guards need up to 4."""
    assert count_cap(load_procedure("walsall-2018-resolution")) == 1
    assert count_cap(load_procedure("newcastle-2010")) == 4
    assert count_cap(load_procedure("wigan-2008-change-meetings")) == 0


def test_summary_says_greedy_and_lists_each_walk():
    text = format_plan(plan("west-midlands-2014", "transitions"))
    lines = text.splitlines()
    assert lines[0].startswith("west-midlands-2014 --cover transitions: ")
    assert lines[0].endswith("cover all 60 transitions")
    assert "greedy" in lines[1] and "not proven minimal" in lines[1]
    assert lines[2].startswith("01 covers ") and " new: referral → " in lines[2]
    assert lines[2].endswith(" steps)")


def test_what_cannot_be_covered_is_said(tmp_path):
    procedure = load_procedure(without_plan_agreed(tmp_path))
    states = plan_walks(procedure, "states")
    reasons = dict(states.uncovered)
    assert reasons["icpc.outcome"] == "never reached from a new case, even with guards ignored"
    assert reasons["icpc.session"].startswith("reachable, but every run through it gets stuck")
    assert "cp_plan" in reasons and "closed" not in reasons
    text = format_plan(states)
    assert "cannot be covered (" in text and "icpc.session: reachable" in text
    for walk in states.walks:
        transcript = parse_walk_file(walk.transcript, walk.file_name)
        assert replay_transcript(procedure, transcript).ok  # type: ignore[arg-type]


def test_cli_writes_transcripts_and_replaces_old_ones(tmp_path):
    out = tmp_path / "paths"
    out.mkdir()
    (out / "walk-99.txt").write_text("stale")
    (out / "notes.md").write_text("mine")
    result = CliRunner().invoke(main, ["paths", "wigan-2008-change-meetings", "--cover",
                                       "states", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "01 covers " in result.output and "greedy" in result.output
    names = sorted(p.name for p in out.iterdir())
    walks = [n for n in names if n.startswith("walk-")]
    assert walks == [f"walk-{i:02d}.txt" for i in range(1, len(walks) + 1)]
    assert "notes.md" in names and "index.txt" in names
    replay = CliRunner().invoke(main, ["walk", "wigan-2008-change-meetings", "--replay",
                                       str(out / "walk-01.txt")])
    assert replay.exit_code == 0, replay.output


def test_cli_exits_1_when_something_cannot_be_covered(tmp_path):
    result = CliRunner().invoke(main, ["paths", str(without_plan_agreed(tmp_path)), "--cover",
                                       "transitions", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "cannot be covered" in result.output


def test_cli_rejects_bad_input():
    result = CliRunner().invoke(main, ["paths", "west-midland-2014", "--cover", "states"])
    assert result.exit_code == 2
    assert "did you mean 'west-midlands-2014'" in result.output
    result = CliRunner().invoke(main, ["paths", "west-midlands-2014", "--cover", "lines"])
    assert result.exit_code == 2


def test_shipped_trainer_walkthroughs_are_up_to_date(tmp_path):
    """`trainers/west-midlands-2014/` is what `cpsim paths ... --cover transitions` writes."""
    result = CliRunner().invoke(main, ["paths", "west-midlands-2014", "--cover", "transitions",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir()}
    shipped = {p.name: p.read_text() for p in TRAINERS.iterdir()}
    assert sorted(shipped) == sorted(fresh), (
        "regenerate: cpsim paths west-midlands-2014 --cover transitions "
        "--out trainers/west-midlands-2014")
    for name in fresh:
        assert shipped[name] == fresh[name], f"{name} is stale; regenerate it"


@pytest.mark.parametrize("name", sorted(p.name for p in TRAINERS.glob("walk-*.txt")))
def test_shipped_trainer_walkthroughs_replay(name):
    result = CliRunner().invoke(main, ["walk", "west-midlands-2014", "--replay",
                                       str(TRAINERS / name)])
    assert result.exit_code == 0, result.output
    assert "all legal" in result.output
