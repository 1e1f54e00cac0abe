"""`cpsim story`: the life of one simulated case, told from a real (short) run's event log."""

from __future__ import annotations

import base64
import io
import itertools
import math
import re
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import EVIL, PNG_SIGNATURE, escaped, evil_baseline, run_into
from matplotlib.image import imread

from cpsim.cli import main
from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure
from model.guards import FACTS, GuardContext, evaluate
from model.loader import load_procedure
from model.types import Duration
from reports.story import (
    Replay,
    amount,
    build_story,
    closest_ids,
    fact_classes,
    first_replay,
    limit_text,
    read_all_cases,
    story_markdown,
)
from simulations.results import read_results

RUN_ARGS = ["-r", "1", "--horizon-days", "400", "--warm-up-days", "60", "-w", "1",
            "--no-report"]
STEP_LINE = re.compile(r"^- \*\*(\w{3} \d{1,2} \w+ \d{4})\*\* (\d\d:\d\d) — ", re.M)
VERDICT_LINE = re.compile(
    r"^  - (?:\*\*Missed\*\*|Met) \((?P<label>[^)]*)\): (?P<amount>[\d.]+) "
    r"(?P<unit>working days?|days?|hours?|months?) after ", re.M)
BREACH = re.compile(r"— (?P<over>[\d.]+) (?:working days?|days?|hours?|months?) over the "
                    r"(?P<limit>\d+)-(?:working-day|day|hour|month) limit \((?P<rules>[^)]+)\)")


def _story(*args: str):
    return CliRunner().invoke(main, ["story", *args])


@pytest.fixture(scope="session")
def baseline_dir(tmp_path_factory):
    return run_into(tmp_path_factory.mktemp("story") / "baseline", "baseline", *RUN_ARGS)


@pytest.fixture(scope="session")
def walsall_dir(tmp_path_factory):
    return run_into(tmp_path_factory.mktemp("story") / "walsall", "walsall", *RUN_ARGS)


@pytest.fixture(scope="session")
def breached(baseline_dir):
    """`cpsim story DIR --pick breached`: the CLI result and the story it told."""
    result = _story(str(baseline_dir), "--pick", "breached")
    assert result.exit_code == 0, result.output
    case = re.search(r"^# The story of case (\S+)$", result.stdout, re.M).group(1)
    return result, build_story(read_results(baseline_dir), case_id=case)


@pytest.fixture(scope="session")
def replays(baseline_dir, walsall_dir):
    """Every case of each run replayed with the most common facts its log allows."""
    out = {}
    for which, folder in (("baseline", baseline_dir), ("walsall", walsall_dir)):
        results = read_results(folder)
        procedure = results.scenario.procedure
        machine = CompiledProcedure(procedure, _calendar(folder))
        classes = fact_classes(procedure, results.scenario.spec.demand.facts)
        out[which] = {cid: first_replay(machine, cid, rows, classes)
                      for cid, rows in read_all_cases(results.event_logs()[0]).items()}
    return out


@pytest.fixture(scope="session")
def log_rows(baseline_dir):
    return pq.read_table(baseline_dir / "events" / "rep-0000.parquet").to_pylist()


def _calendar(results_dir: Path) -> WorkingCalendar:
    return WorkingCalendar(date.fromisoformat(read_results(results_dir).metadata["start_date"]))


def _day(d: date) -> str:
    return f"{d:%a} {d.day} {d:%B %Y}"


# -- picking and telling a breached case ---------------------------------------------------------
def test_pick_breached_tells_a_breach_with_its_limit_and_rule_ids(baseline_dir, breached):
    result, story = breached
    text = result.stdout
    assert story.breaches, "the picked case must have missed a deadline"
    assert "Picked as the most breached case" in text
    procedure = read_results(baseline_dir).scenario.procedure
    rules = {d.id: d.rules for d in procedure.deadlines}
    for _, v in story.breaches:
        # every breach is told with its deadline's own rule ids
        assert v.rules == rules[v.deadline_id]
        assert f"{v.text} ({', '.join(v.rules)})" in text
    lines = BREACH.findall(text)
    assert lines, "an 'N over the M-unit limit (rules)' line is expected"
    late = {", ".join(v.rules) for _, v in story.breaches if " over the " in v.text}
    for over, _limit, rule_text in lines:
        assert float(over) > 0
        assert rule_text in late
    assert "## Highlights" in text and "**Missed, " in text


def test_pick_breached_chooses_the_case_with_most_missed_deadlines(breached, replays):
    _, story = breached
    missed = {}
    for cid, replayed in replays["baseline"].items():
        assert isinstance(replayed, Replay), replayed
        missed[cid] = replayed.missed
    most = max(missed.values())
    assert len(story.breaches) == most
    assert story.case_id == min(c for c, n in missed.items() if n == most)


@pytest.mark.parametrize("which", ["baseline", "walsall"])
def test_replay_reproduces_the_runs_own_deadline_counts(which, baseline_dir, walsall_dir,
                                                        replays):
    """Replaying every case gives exactly the verdicts the simulator recorded after warm-up."""
    record = read_results(baseline_dir if which == "baseline" else walsall_dir).records[0]
    warm, horizon = record["warm_up_hours"], record["horizon_hours"]
    got: Counter[tuple[str, str]] = Counter()
    for cid, replayed in replays[which].items():
        assert isinstance(replayed, Replay), f"{cid}: {replayed}"
        for fired in replayed.results:
            for v in fired.verdicts:
                if v.started >= warm:
                    got[(v.deadline_id, v.outcome)] += 1
        for clock in replayed.open_clocks:
            if clock.started >= warm:
                overdue = clock.due is not None and clock.due < horizon
                got[(clock.deadline.id, "open_overdue" if overdue else "open_not_due")] += 1
    assert sum(got.values()) > 1000
    for did, row in record["deadlines"].items():
        for outcome in ("met", "missed", "cancelled", "open_overdue", "open_not_due"):
            assert got[(did, outcome)] == row[outcome], (did, outcome)


# -- the HTML page -------------------------------------------------------------------------------
def test_html_and_markdown_are_written_next_to_the_results(baseline_dir, breached):
    result, story = breached
    html = baseline_dir / "stories" / f"story-{story.case_id}.html"
    md = baseline_dir / "stories" / f"story-{story.case_id}.md"
    assert html.is_file() and md.is_file()
    assert md.read_text(encoding="utf-8").strip() == result.stdout.strip()
    assert f"story: {html}" in result.stderr
    assert not [p for p in (baseline_dir / "stories").iterdir() if p.name.endswith(".tmp")]


def test_html_is_self_contained_and_its_figure_is_a_real_png(baseline_dir, breached):
    _, story = breached
    page = (baseline_dir / "stories" / f"story-{story.case_id}.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1
    png = base64.b64decode(uris[0])
    assert png.startswith(PNG_SIGNATURE)
    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 600
    rgb = pixels[..., :3]
    assert float(np.std(rgb)) > 0.05, "the figure is blank"
    red = (rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.35) & (rgb[..., 2] < 0.35)
    assert red.sum() > 20, "breaches are drawn in red"
    for _, v in story.breaches:
        assert escaped(v.text) in page


def test_html_escapes_text_from_the_inputs(tmp_path):
    """A scenario whose title is a script tag: the page shows it as text, never as markup."""
    out = run_into(tmp_path / "results", str(evil_baseline(tmp_path)), "-r", "1",
                   "--horizon-days", "150", "--warm-up-days", "30", "-w", "1", "--no-report")
    told = _story(str(out), "--pick", "longest")
    assert told.exit_code == 0, told.output
    case = re.search(r"^# The story of case (\S+)$", told.stdout, re.M).group(1)
    page = (out / "stories" / f"story-{case}.html").read_text(encoding="utf-8")
    assert EVIL not in page and escaped(EVIL) in page
    assert EVIL not in told.stdout  # the Markdown escapes it too
    assert r"\<script\>" in told.stdout


# -- dates and durations ---------------------------------------------------------------------------
def test_dates_and_weekdays_match_the_event_log(baseline_dir, breached, log_rows):
    result, story = breached
    cal = _calendar(baseline_dir)
    rows = [r for r in log_rows if r["case_id"] == story.case_id]
    told = STEP_LINE.findall(result.stdout)
    assert len(told) == len(rows)
    for (day, clock), row in zip(told, rows, strict=True):
        assert day == _day(row["date"])
        assert day.split(" ")[0] == row["date"].strftime("%a")
        assert clock == f"{cal.to_datetime(row['time_hours']):%H:%M}"


def test_durations_agree_with_working_calendar_arithmetic(baseline_dir, breached, log_rows):
    """Each stated time is recomputed from the log's own dates with the working calendar."""
    result, story = breached
    cal = _calendar(baseline_dir)
    procedure = read_results(baseline_dir).scenario.procedure
    deadlines = {d.id: d for d in procedure.deadlines}
    times = {r["time_hours"]: r["date"] for r in log_rows if r["case_id"] == story.case_id}
    judged = [v for s in story.steps for v in s.verdicts if v.outcome != "cancelled"]
    assert len(VERDICT_LINE.findall(result.stdout)) == len(judged)
    assert any(v.unit == "working_days" for v in judged)
    for v in judged:
        d = deadlines[v.deadline_id]
        limit = d.within or d.at_least
        assert v.started in times and v.ended in times  # clocks start and stop at log rows
        a, b = times[v.started], times[v.ended]
        if limit.unit == "working_days":
            expected = float(cal.working_days_between(a, b))
        elif limit.unit == "days":
            expected = float((b - a).days)
        elif limit.unit == "hours":
            expected = v.ended - v.started
        else:
            expected = cal.elapsed(v.started, v.ended, "months")
        assert v.elapsed == pytest.approx(expected)
        assert v.text.startswith(amount(expected, limit.unit) + " after ")
        if v.outcome == "missed" and "over the" in v.text:
            over = expected - limit.value
            assert f"— {amount(over, limit.unit)} over the {limit_text(limit)} limit" in v.text
            assert cal.is_met(v.started, v.ended, limit) is False


def test_an_icpc_breach_reads_like_the_issue_asks():
    assert amount(17, "working_days") == "17 working days"
    assert limit_text(Duration("working_days", 15)) == "15-working-day"
    assert amount(2, "working_days") + " over the " + limit_text(
        Duration("working_days", 15)) + " limit" == "2 working days over the 15-working-day limit"


def test_open_clocks_are_judged_at_the_end_of_the_run(baseline_dir, log_rows):
    """A case still on a plan at the end of the run has clocks running or overdue."""
    last = {}
    for r in log_rows:
        last[r["case_id"]] = r
    case = next(c for c, r in sorted(last.items()) if r["to_state"] == "cp_plan.active")
    story = build_story(read_results(baseline_dir), case_id=case)
    assert story.open_clocks and not story.final_terminal
    text = story_markdown(story)
    assert "## Clocks open at the end of the run" in text
    for c in story.open_clocks:
        assert c.outcome in ("running", "overdue", "open")
        wording = {"running": "still running at the end of the run (due ",
                   "overdue": "overdue at the end of the run — due ",
                   "open": "still open at the end of the run"}[c.outcome]
        assert wording in c.text
        if c.outcome == "overdue":
            assert c.due < story.horizon_hours
        if c.outcome == "running":
            assert c.due >= story.horizon_hours


# -- other ways in --------------------------------------------------------------------------------
def test_case_by_id(baseline_dir, log_rows, tmp_path):
    case = next(r["case_id"] for r in log_rows if r["trigger"] == "icpc_opens")
    out = tmp_path / "one.md"
    result = _story(str(baseline_dir), "--case", case, "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"# The story of case {case}\n")
    assert f"wrote {out}" in result.stdout
    assert "**ICPC opens.**" in text and "Why this case" not in text
    assert (baseline_dir / "stories" / f"story-{case}.html").is_file()


def test_postponements_are_highlighted_with_their_reason(baseline_dir, log_rows):
    row = next(r for r in log_rows if r["trigger"].startswith("postpone")
               and "reason:" in r["actor"])
    result = _story(str(baseline_dir), "--case", row["case_id"])
    assert result.exit_code == 0, result.output
    reason = row["actor"].split("reason:")[1]
    words = {"agency_absent": "an invited agency could not attend",
             "no_slot_in_time": "no chair's slot was free in time",
             "family_unavailable": "the family could not come on the booked day"}[reason]
    assert f"**Postponed, {_day(row['date'])}:** " in result.stdout
    assert words in result.stdout


def test_pick_longest_says_it_counts_steps(baseline_dir, log_rows):
    result = _story(str(baseline_dir), "--pick", "longest")
    assert result.exit_code == 0, result.output
    steps = Counter(r["case_id"] for r in log_rows)
    most = max(steps.values()) - 1
    assert f"the one with the most steps ({most}," in result.stdout
    case = re.search(r"^# The story of case (\S+)$", result.stdout, re.M).group(1)
    assert steps[case] - 1 == most


def test_pick_escalated_tells_a_case_up_the_walsall_ladder(walsall_dir):
    result = _story(str(walsall_dir), "--pick", "escalated")
    assert result.exit_code == 0, result.output
    case = re.search(r"^# The story of case (\S+)$", result.stdout, re.M).group(1)
    rows = pq.read_table(walsall_dir / "events" / "rep-0000.parquet",
                         filters=[("case_id", "=", case)]).to_pylist()
    assert any(re.search(r"resolution\.stage_\d", r["to_state"]) for r in rows)
    assert "Picked as the most escalated case" in result.stdout
    assert re.search(r"Now: [^\n]*resolution stage \d", result.stdout)
    assert "WAL-" in result.stdout
    page = (walsall_dir / "stories" / f"story-{case}.html").read_text(encoding="utf-8")
    assert "resolution stage" in page


def test_walsall_facts_are_inferred_from_the_path(walsall_dir):
    rows = pq.read_table(walsall_dir / "events" / "rep-0000.parquet").to_pylist()
    good = next(r["case_id"] for r in rows if r["trigger"] == "note_good_practice")
    story = build_story(read_results(walsall_dir), case_id=good)
    assert any("The path shows that the coordinator judges the practice on the case to be "
               "good" in n for n in story.facts_notes)


def test_pick_escalated_without_a_ladder_exits_2_and_suggests_walsall(baseline_dir):
    result = _story(str(baseline_dir), "--pick", "escalated")
    assert result.exit_code == 2
    assert "has no resolution ladder" in result.output
    assert "cpsim run walsall" in result.output
    assert "Traceback" not in result.output


def test_unknown_case_exits_2_with_the_closest_ids(baseline_dir):
    result = _story(str(baseline_dir), "--case", "C00131")
    assert result.exit_code == 2
    assert "no case 'C00131'" in result.output
    assert "closest ids are C0000131" in result.output


def test_a_folder_that_is_not_a_results_folder_exits_2(tmp_path):
    result = _story(str(tmp_path), "--case", "C0000001")
    assert result.exit_code == 2
    assert "not a results folder" in result.output


def test_case_or_pick_is_required_and_replication_must_exist(baseline_dir):
    assert _story(str(baseline_dir)).exit_code == 2
    assert _story(str(baseline_dir), "--case", "C0000001", "--pick", "longest").exit_code == 2
    result = _story(str(baseline_dir), "--case", "C0000001", "--replication", "3")
    assert result.exit_code == 2 and "no event log for replication 3" in result.output


def test_closest_ids_by_number_and_spelling():
    ids = ["C0000011", "C0000012", "C0000120", "X9"]
    assert closest_ids("C12", ids)[0] == "C0000012"
    assert closest_ids("nothing", ["C0000001"]) == []


# -- inferring facts -------------------------------------------------------------------------------
@pytest.mark.parametrize("procedure_id", ["newcastle-2010", "walsall-2018-resolution"])
@pytest.mark.parametrize("shares", [
    {"parent_learning_disability": 0.08, "interpreter_needed": 0.06, "pre_birth": 0.08,
     "domestic_abuse": 0.3, "practice_is_good": 0.4, "caf_completed": 0.7},
    {"parent_learning_disability": 0.5, "interpreter_needed": 0.5, "practice_is_good": 0.5,
     "pre_birth": 1.0, "not_a_guard_fact": 0.9},
])
def test_fact_classes_match_every_combination_of_every_fact(procedure_id, shares):
    """Priors, the fact set replayed and the order equal those of all 2**n combinations."""
    procedure = load_procedure(procedure_id)
    used = sorted({g for t in procedure.transitions for g in t.guards}
                  | {d.when for d in procedure.deadlines if d.when is not None})
    names = [*FACTS, *sorted(set(shares) - set(FACTS))]
    expected: dict[tuple[str, ...], list[tuple[float, int, dict[str, bool]]]] = {}
    for i, values in enumerate(itertools.product((False, True), repeat=len(names))):
        facts = dict(zip(names, values, strict=True))
        prior = math.prod(shares.get(k, 0.0) if v else 1.0 - shares.get(k, 0.0)
                          for k, v in facts.items())
        holds = tuple(g for g in used if evaluate(g, GuardContext(facts=facts)))
        expected.setdefault(holds, []).append((prior, i, facts))
    classes = fact_classes(procedure, shares)
    assert len(classes) == len(expected) > 1
    # class order: likelier first, a tie to the class met first among the combinations
    order = sorted(expected, key=lambda h: (-sum(p for p, _, _ in expected[h]),
                                            min(i for _, i, _ in expected[h])))
    constant = set.intersection(*(set(h) for h in expected))
    for got, holds in zip(classes, order, strict=True):
        assert got.holds == tuple(g for g in holds if g not in constant)
        assert got.prior == pytest.approx(sum(p for p, _, _ in expected[holds]), abs=1e-12)
        best = max(expected[holds], key=lambda m: (m[0], -m[1]))[2]
        assert dict(got.facts) == {k: best[k] for k in got.facts}
        assert set(got.facts) <= set(FACTS)
    assert sum(c.prior for c in classes) == pytest.approx(1.0)
