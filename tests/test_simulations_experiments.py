"""compare, sweep, precision and Dask: the questions users ask, answered reproducibly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpsim.cli import main
from model.errors import InputError
from simulations.experiments import (
    compare,
    parse_target,
    parse_vary,
    resolve_subject,
    run_to_precision,
    sweep,
)
from simulations.kpi import Kpi, kpi_ids
from simulations.results import (
    Answer,
    RunResult,
    RunSettings,
    SweepPoint,
    Target,
    Vary,
    answer,
    load_comparison,
    load_sweep,
    recorded_settings,
)
from simulations.runner import run_scenario, settings_for

CPSIM = str(Path(sys.executable).parent / "cpsim")
SHORT = ["--horizon-days", "120", "--warm-up-days", "30", "--no-report", "--no-event-log"]


def short_settings(sc, replications=2, seed=3, horizon=120, warm_up=30):
    return settings_for(sc, replications, seed, horizon, warm_up, "table", False)


def test_a_procedure_runs_on_the_baseline_and_a_scenario_as_itself():
    wm = resolve_subject("west-midlands-2014-icpc-10wd")
    assert wm.name == "baseline" and wm.procedure.id == "west-midlands-2014-icpc-10wd"
    assert resolve_subject("surge").name == "surge"
    with pytest.raises(InputError) as exc:
        resolve_subject("west-midlands-2041")
    assert exc.value.problems[0].hint == "west-midlands-2014"


def test_comparing_a_scenario_with_itself_finds_no_difference(tmp_path):
    """Common random numbers: identical inputs give identical replications, difference 0."""
    sc = resolve_subject("baseline")
    result = compare(sc, resolve_subject("baseline"), short_settings(sc), tmp_path)
    assert not any(d.significant for d in result.diffs)
    assert all(d.diff == 0 for d in result.diffs if d.diff == d.diff)
    back = load_comparison(tmp_path)  # every setting by name, the event log's (off) too
    assert back.settings == result.settings and not back.settings.event_log
    assert (back.a_name, back.b_name) == (result.a_name, result.b_name)
    assert [d.id for d in back.diffs] == [d.id for d in result.diffs]


def test_icpc_within_10_working_days_shows_in_the_comparison(tmp_path):
    """The shipped example: West Midlands against the 10-working-day variant."""
    result = CliRunner().invoke(main, ["compare", "west-midlands-2014",
                                       "west-midlands-2014-icpc-10wd", "-r", "3", "-w", "1",
                                       "--out", str(tmp_path), *SHORT])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "check west-midlands-2014: PASS" in out
    assert "changed deadline icpc_held [WM-2b]" in out
    assert "within: 15 working days → 10 working days" in out
    # the tighter clock is met far less often: a flagged difference (the median ICPC moves
    # only a day or two earlier, too little to show in 3 short replications: booking,
    # invitations and reports' notice fill most of 10 working days)
    assert "icpc_held: share met (A: within 15 working days; B: within 10 working days)" in out
    assert (tmp_path / "comparison.csv").read_text().startswith("id,group,label")
    assert (tmp_path / "a" / "kpis.csv").is_file() and (tmp_path / "b" / "kpis.csv").is_file()


def test_two_authorities_procedures_compare_on_the_same_demand(tmp_path):
    """The shipped example between authorities: the baseline authority's demand and staffing
    run on West Midlands and on Newcastle's standards; both procedures pass their checks and
    the structural diff lists the deadlines only Newcastle sets."""
    result = CliRunner().invoke(main, ["compare", "baseline", "newcastle", "-r", "2", "-w", "1",
                                       "--out", str(tmp_path), *SHORT])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.splitlines()[:2] == ["check baseline: PASS", "check newcastle: PASS"]
    assert "structural diff (baseline -> newcastle):" in out
    assert "added deadline icpc_decisions_24h [NCL-1.2.2, NCL-2.1.6]" in out
    assert "added deadline review_decisions_24h [NCL-1.2.2, NCL-2.1.6]" in out
    assert "added deadline designated_review [NCL-7.1.5]" in out
    assert "removed deadline icpc_booked [WM-2a]" in out
    assert "newcastle vs baseline:" in out
    assert (tmp_path / "comparison.csv").read_text().startswith("id,group,label")
    assert (tmp_path / "a" / "kpis.csv").is_file() and (tmp_path / "b" / "kpis.csv").is_file()


def test_a_change_that_breaks_a_property_is_shown_first(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("procedure: broken\nextends: west-midlands-2014\ntitle: Broken\n"
                      "transitions:\n  end_plan_child_in_need:\n    records: [plan_type]\n")
    result = CliRunner().invoke(main, ["compare", "west-midlands-2014", str(broken), "-r", "1",
                                       "--out", str(tmp_path / "c"), "--horizon-days", "10",
                                       "--warm-up-days", "1", "--no-report", "--no-event-log"])
    lines = result.output.splitlines()
    assert lines[0] == "check broken: FAIL"
    assert any("plan_end_leaves_a_plan_in_place" in line for line in lines[:4])
    assert "counterexample" in result.output


def test_vary_reads_lists_ranges_and_aliases_and_refuses_what_is_not_a_number():
    sc = resolve_subject("baseline")
    assert parse_vary("staffing.social_workers=30..60:10", sc) == Vary(
        "staffing.social_workers.establishment_fte", (30.0, 40.0, 50.0, 60.0))
    assert parse_vary("demand.referrals_per_year=3000,4100", sc).values == (3000.0, 4100.0)
    assert parse_vary("staffing.conference_chairs.count=2..4:1", sc).values == (2, 3, 4)
    with pytest.raises(InputError) as exc:
        parse_vary("staffing.social_workers.establishmant_fte=1,2", sc)
    assert exc.value.problems[0].hint == "staffing.social_workers.establishment_fte"
    with pytest.raises(InputError):
        parse_vary("run.start_date=1,2", sc)
    with pytest.raises(InputError):
        parse_vary("demand.referrals_per_year=10..5:1", sc)


def test_target_names_a_kpi_or_a_deadline():
    ids = kpi_ids(resolve_subject("baseline").procedure)
    assert parse_target("icpc_held>=0.95", ids) == Target(
        "deadline:icpc_held:share_met", ">=", 0.95)
    assert parse_target("capacity:caseload_mean<=18", ids).op == "<="
    assert parse_target("icpc_held>=95%", ids).value == pytest.approx(0.95)
    with pytest.raises(InputError) as exc:
        parse_target("icpc_hold>=0.9", ids)
    assert "icpc_held" in str(exc.value.problems[0].hint)


def _point(value, others, shares):
    kpi = Kpi("k", "deadline", "k", "share", tuple(shares), 0, 0, 0)
    return SweepPoint((("x", value), *others), RunResult(Path("."), (), (kpi,), (), ()))


def test_answer_is_the_smallest_value_whose_confidence_bound_meets_the_target():
    points = [_point(10, (), [0.80, 0.82, 0.81]), _point(20, (), [0.94, 0.97, 0.96]),
              _point(30, (), [0.97, 0.98, 0.975]), _point(40, (), [0.99, 0.99, 0.991])]
    (ans,) = answer(points, [Vary("x", (10, 20, 30, 40))], Target("k", ">=", 0.95), 0.9)
    assert ans == Answer((), 30, ans.bound, True)  # 20's lower bound is below 0.95
    assert ans.bound is not None and ans.bound >= 0.95
    (none,) = answer(points, [Vary("x", (10, 20, 30, 40))], Target("k", ">=", 0.999), 0.9)
    assert none.value is None


def test_sweep_writes_a_tidy_table_and_answers_in_one_sentence(tmp_path):
    sc = resolve_subject("baseline")
    varies = [parse_vary("staffing.social_workers=25,90", sc),
              parse_vary("demand.referrals_per_year=4100,5125", sc)]
    # a few cases always wait to be handed on after a leaver (turnover, CAL-16)
    target = parse_target("capacity:unallocated_queue<=10", kpi_ids(sc.procedure))
    result = sweep(sc, varies, short_settings(sc), tmp_path, target, 0.9)
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("staffing.social_workers.establishment_fte,"
                              "demand.referrals_per_year,replication,")
    assert len(rows) == 1 + 4 * 2
    sentence = result.sentence()
    assert sentence.startswith("Smallest staffing.social_workers.establishment_fte meeting")
    assert "demand.referrals_per_year = 4100: 90" in sentence  # 25 workers cannot keep up
    back = load_sweep(tmp_path)
    assert back.settings == result.settings and back.sentence() == sentence


def test_recorded_settings_are_read_by_name():
    """Settings come back field by field; an older folder's missing ones keep defaults."""
    old = {"kind": "run", "replications": 4, "root_seed": 7, "horizon_days": 365,
           "warm_up_days": 90, "machine": "transitions", "engine_version": "4",
           "scenario_sha256": "s", "procedure_sha256": "p",
           "start_from": {"file": "cases.csv", "sha256": "abc", "format": "cin-flat",
                          "as_of": "2024-03-31"}}
    assert recorded_settings(old) == RunSettings(
        replications=4, seed=7, horizon_days=365, warm_up_days=90, machine="transitions",
        start_from="cases.csv", start_from_sha256="abc", as_of="2024-03-31")
    newer = {**old, "experiment": {"seed": 8, "horizon_days": 100, "warm_up_days": 10,
                                   "machine": "table", "event_log": False}}
    assert recorded_settings(newer) == RunSettings(
        replications=4, seed=8, horizon_days=100, warm_up_days=10, event_log=False,
        start_from="cases.csv", start_from_sha256="abc", as_of="2024-03-31")
    assert recorded_settings({**old, "replications": "4"}) is None
    assert recorded_settings({"kind": "sweep"}) is None


def test_precision_adds_replications_until_the_intervals_are_narrow(tmp_path):
    sc = resolve_subject("baseline")
    loose = run_to_precision(sc, short_settings(sc, 3), tmp_path / "a", precision=0.5)
    assert loose.reached and loose.replications == 3
    tight = run_to_precision(sc, short_settings(sc, 3), tmp_path / "b", precision=1e-6,
                             max_replications=5)
    assert not tight.reached and tight.replications == 5
    assert len(tight.run.records) == 5


def test_dask_local_cluster_gives_the_same_table_as_local_processes(tmp_path):
    sc = resolve_subject("baseline")
    settings = short_settings(sc, 3)
    run_scenario(sc, settings, tmp_path / "local", workers=2)
    run_scenario(sc, settings, tmp_path / "dask", dask="local")
    assert (tmp_path / "local" / "kpis.csv").read_bytes() == \
        (tmp_path / "dask" / "kpis.csv").read_bytes()


def test_a_killed_sweep_resumes_without_redoing_finished_work(tmp_path):
    out = tmp_path / "sweep"
    cmd = [CPSIM, "sweep", "baseline", "--vary", "demand.referrals_per_year=3000,4100,5125",
           "-r", "2", "-w", "1", "--horizon-days", "300", "--warm-up-days", "50",
           "--no-report", "--no-event-log", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 300
    done: list[Path] = []
    while len(done) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        done = list(out.glob("points/*/replications/rep-*.json"))
    assert len(done) >= 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(out.glob("points/*/replications/rep-*.json")))
    assert finished < 6
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert again.returncode == 0, again.stderr
    assert f"reused {finished} stored replications" in again.stdout
    first = (out / "sweep.csv").read_bytes()
    fresh = subprocess.run([*cmd[:-1], str(tmp_path / "fresh")], capture_output=True,
                           cwd=tmp_path, check=False)
    assert fresh.returncode == 0
    assert (tmp_path / "fresh" / "sweep.csv").read_bytes() == first
