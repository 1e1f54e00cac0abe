"""Bounded input (issue 11): hostile or impossible files are refused quickly and clearly.

YAML that would exhaust memory or the stack (alias bombs, deep nesting, huge files), scenario
numbers nobody can mean, errors reported at the wrong key, and real-data dates outside the
working-day calendar: each is refused with a message naming the limit, never a traceback.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_scenario

from cpsim.cli import main
from model.errors import InputError
from model.loader import load_procedure
from model.yamlsrc import load_yaml_text
from simulations.casedata import CIN_COLUMNS, Pseudonymiser
from simulations.conform import conform
from simulations.scenario import load_scenario

# -- YAML ------------------------------------------------------------------------------------
BOMB = """\
procedure: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
"""Billion laughs: 358 bytes that expand to 9**9 strings (more than 8.5 GB before issue 11)."""

SMALL_BOMB = """\
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
"""
"""Only 40 aliases, but they repeat 20,000 strings (more keys and items than any file needs)."""


def _cli_refuses(path: Path, *words: str) -> str:
    """``cpsim check PATH`` exits 2 with every word in its output and no traceback."""
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output
    return result.output


def test_an_alias_bomb_is_refused(tmp_path):
    with pytest.raises(InputError) as exc:
        load_yaml_text(BOMB, "bomb.yaml")
    (problem,) = exc.value.problems
    assert problem.file == "bomb.yaml" and problem.line is not None
    assert "alias" in problem.message
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    _cli_refuses(path, "bomb.yaml:", "alias")


def test_few_aliases_that_repeat_too_much_are_refused():
    """Counting aliases is not enough: what they repeat counts towards the key limit."""
    with pytest.raises(InputError) as exc:
        load_yaml_text(SMALL_BOMB, "small.yaml")
    (problem,) = exc.value.problems
    assert "keys and list items" in problem.message and "aliases" in problem.message


def test_an_alias_inside_the_node_it_names_is_refused(tmp_path):
    with pytest.raises(InputError) as exc:
        load_yaml_text("a: &loop [1, *loop]\n", "loop.yaml")
    (problem,) = exc.value.problems
    assert problem.line == 1 and "inside the node it names" in problem.message
    path = tmp_path / "loop.yaml"
    path.write_text("procedure: &loop [1, *loop]\n")
    _cli_refuses(path, "loop.yaml:1:", "inside the node it names")


def test_too_many_aliases_are_refused():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    with pytest.raises(InputError) as exc:
        load_yaml_text(text, "many.yaml")
    (problem,) = exc.value.problems
    assert problem.line == 2 and "more than 100 aliases" in problem.message


def test_a_few_aliases_still_work():
    """Shipped procedures name a list once and reuse it (newcastle-2010, walsall-2018)."""
    data = load_yaml_text("a: &x [p, q]\nb: *x\nc: {d: *x}\n", "ok.yaml")
    assert data["b"] == ["p", "q"] and data["c"]["d"] == ["p", "q"]
    assert load_procedure("newcastle-2010").id == "newcastle-2010"


def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path):
    text = "procedure: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(InputError) as exc:
        load_yaml_text(text, "deep.yaml")
    (problem,) = exc.value.problems
    assert problem.line == 1 and "levels" in problem.message
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    _cli_refuses(path, "deep.yaml:1:", "levels")


def test_deep_nesting_through_aliases_is_refused():
    lines = ["l0: &l0 [x]"] + [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, 60)]
    with pytest.raises(InputError) as exc:
        load_yaml_text("\n".join(lines) + "\n", "deep.yaml")
    assert "levels" in str(exc.value)


def test_a_file_with_too_many_keys_is_refused(tmp_path):
    text = "".join(f"k{i}: 1\n" for i in range(30_000))
    with pytest.raises(InputError) as exc:
        load_yaml_text(text, "keys.yaml")
    (problem,) = exc.value.problems
    assert "keys and list items" in problem.message and problem.line is not None
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    _cli_refuses(path, "keys.yaml:", "keys and list items")


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path):
    text = "procedure: x\n" + ("# padding\n" * 200_000)
    with pytest.raises(InputError) as exc:
        load_yaml_text(text, "huge.yaml")
    (problem,) = exc.value.problems
    assert "characters" in problem.message and problem.line is None
    path = tmp_path / "huge.yaml"
    path.write_text(text)
    _cli_refuses(path, "huge.yaml:", "characters")
    scenario = tmp_path / "huge-scenario.yaml"
    scenario.write_text("scenario: huge-scenario\n" + ("# padding\n" * 200_000))
    with pytest.raises(InputError, match="characters"):
        load_scenario(scenario)


# -- scenario numbers ------------------------------------------------------------------------
def _problems(path: Path | str, overrides: dict[str, object] | None = None) -> str:
    with pytest.raises(InputError) as exc:
        load_scenario(path, overrides)
    return "\n".join(str(p) for p in exc.value.problems)


def _reported(found: str, *where: str) -> None:
    """Each of ``where`` (``FILE:LINE: FIELD: ...``, or part of one) is among the problems."""
    missing = [w for w in where if w not in found]
    assert not missing, f"not reported: {missing}\nin:\n{found}"


def test_numbers_nobody_can_mean_are_refused_with_the_reason(tmp_path):
    found = _problems(write_scenario(tmp_path, "demand:\n  referrals_per_year: 1e12\n"
                                     "run:\n  replications: 1000000000\n"
                                     "  horizon_days: 100000000\n"))
    _reported(found, "odd.yaml:5: demand.referrals_per_year: at most 10,000,000",
              "odd.yaml:7: run.replications: at most 10,000",
              "odd.yaml:8: run.horizon_days: at most 18,263", "50 years", "England")


@pytest.mark.parametrize("body", [
    "demand:\n  referrals_per_year: .inf\n",
    "demand:\n  referrals_per_year: .nan\n",
    "tasks:\n  statutory_visit: {aim: .nan}\n",
    "staffing:\n  social_workers:\n    turnover: {rate_per_year: .inf, basis: b}\n",
])
def test_infinite_and_nan_numbers_are_refused(tmp_path, body):
    assert "finite number" in _problems(write_scenario(tmp_path, body))


@pytest.mark.parametrize("body,field", [
    ("  referral:\n    choose: {decide_assessment: -1, decide_early_help: 1}\n",
     "behaviour.referral.choose.decide_assessment"),
    ("  referral:\n    choose_if_previous_plan: {decide_assessment: -0.5}\n",
     "behaviour.referral.choose_if_previous_plan.decide_assessment"),
    ("  cp_plan.active:\n    choose_by_visit:\n      - {review_due: 1}\n"
     "      - {review_due: -2}\n",
     "behaviour.cp_plan.active.choose_by_visit.1.review_due"),
    ("  referral:\n    choose: {decide_assessment: {weight: -1}}\n",
     "behaviour.referral.choose.decide_assessment.weight"),
])
def test_a_negative_branch_weight_is_refused_in_either_form(tmp_path, body, field):
    found = _problems(write_scenario(tmp_path, "behaviour:\n" + body))
    line = next(p for p in found.splitlines() if field + ":" in p)
    assert "must not be negative" in line
    assert "valid number" not in found  # only the form written is complained about


def test_command_line_overrides_are_held_to_the_same_bounds():
    found = _problems("baseline", {"demand.referrals_per_year": float("inf"),
                                   "run.replications": 10**9, "run.horizon_days": 10**8})
    assert "command line: demand.referrals_per_year: " in found
    assert "run.replications: at most 10,000" in found
    assert "run.horizon_days: at most 18,263" in found


@pytest.mark.parametrize("args", [
    ["--replications", "1000000000"],
    ["--horizon-days", "100000000"],
    ["--warm-up-days", "100000000"],
])
def test_cli_run_refuses_impossible_run_settings(tmp_path, args):
    result = CliRunner().invoke(main, ["run", "baseline", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "not in the range" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_sweep_refuses_an_impossible_vary_value(tmp_path):
    result = CliRunner().invoke(main, ["sweep", "baseline", "--vary",
                                       "demand.referrals_per_year=1e12", "--replications",
                                       "1", "--horizon-days", "10", "--warm-up-days", "0",
                                       "--no-report", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "at most 10,000,000" in result.output


# -- where errors are reported ---------------------------------------------------------------
def test_a_key_starting_like_a_type_name_is_reported_where_it_is(tmp_path):
    """Keys such as interpreter_needed are not pydantic's union tags ('int', 'str')."""
    found = _problems(write_scenario(
        tmp_path, "demand:\n  facts:\n    interpreter_needed: 1.5\n"
        "staffing:\n  agencies:\n    interpreting_service:\n"
        "      attends: 2\n    stroke_unit: {report_on_time: 3}\n"))
    _reported(found, "odd.yaml:6: demand.facts.interpreter_needed: ",
              "odd.yaml:10: staffing.agencies.interpreting_service.attends: ",
              "odd.yaml:11: staffing.agencies.stroke_unit.report_on_time: ")


def test_union_tags_are_still_left_out_of_the_field(tmp_path):
    found = _problems(write_scenario(tmp_path, "behaviour:\n  icpc.preparation:\n"
                                     "    aim: {deadlines: [icpc_held], at: {triangle: 1}}\n"))
    assert "odd.yaml:6: behaviour.icpc.preparation.aim.at.triangle: unknown key" in found
    assert "DistSpec" not in found and "float" not in found


# -- real-data dates -------------------------------------------------------------------------
def test_real_data_dates_outside_the_calendar_are_rejected_by_row(tmp_path):
    path = tmp_path / "cin.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CIN_COLUMNS)
        for child, day, kind in [("A", "2025-04-01", "referral"),
                                 ("B", "1900-03-01", "referral"),
                                 ("C", "0001-01-01", "referral"),
                                 ("D", "2070-01-01", "referral"),
                                 ("A", "2025-04-02", "assessment_start")]:
            writer.writerow([child, day, kind] + [""] * (len(CIN_COLUMNS) - 3))
    result = conform(path, load_procedure("west-midlands-2014"), Pseudonymiser(b"k"),
                     as_of=date(2080, 1, 1))
    assert result.adds_up() and result.rows_read == 5
    reasons = {r.number: r.reason for r in result.rejected}
    assert set(reasons) == {3, 4, 5}
    assert all("2000-01-01 to 2050-12-31" in why for why in reasons.values())
    assert "1900-03-01" in reasons[3] and "0001-01-01" in reasons[4]
    assert result.conformant_rows == 2 and result.first_day == date(2025, 4, 1)
    cli = CliRunner().invoke(main, ["conform", str(path), "--procedure", "west-midlands-2014",
                                    "--as-of", "2080-01-01", "--out", str(tmp_path / "o")])
    assert cli.exit_code == 0, cli.output
    assert "Traceback" not in cli.output


def test_a_vary_range_of_a_billion_values_is_refused_before_it_is_built():
    from simulations.experiments import parse_vary

    sc = load_scenario("baseline")
    with pytest.raises(InputError) as exc:
        parse_vary("demand.referrals_per_year=1..1000000000:1", sc)
    assert "1,000,000,000 values; at most 1,000" in str(exc.value)
    with pytest.raises(InputError):
        parse_vary("demand.referrals_per_year=" + ",".join(["4000"] * 1001), sc)


def test_max_replications_has_the_same_bound_as_replications(tmp_path):
    result = CliRunner().invoke(main, ["run", "baseline", "--precision", "0.01",
                                       "--max-replications", "100000", "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_worker_killed_from_outside_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    import simulations.runner as runner

    def killed(*args, **kwargs):
        raise runner.WorkerDied("the worker process for replication 0 ended unexpectedly "
                                "(exit code -9)")

    monkeypatch.setattr(runner, "run_scenario", killed)
    result = CliRunner().invoke(main, ["run", "baseline", "-r", "1", "--horizon-days", "30",
                                       "--warm-up-days", "0", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "error: the worker process for replication 0 ended unexpectedly" in result.output
    assert isinstance(result.exception, SystemExit)
