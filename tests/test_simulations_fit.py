"""`cpsim fit`: free parameters fitted to published rows by simulation, with held-out rows."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpsim.cli import main
from model.errors import InputError
from simulations.fit import loss_of, parse_free, select_rows
from simulations.scenario import load_scenario
from simulations.validate import PublishedRow, ValidationRow, read_published

ROOT = Path(__file__).resolve().parents[1]
ENGLAND = ROOT / "data" / "published" / "england.csv"


def test_a_free_parameter_starts_from_the_scenarios_value_inside_its_bounds():
    sc = load_scenario("baseline")
    free = parse_free("staffing.family_unavailable=0:0.4", sc)
    assert (free.low, free.high, free.start) == (0.0, 0.4, 0.12)
    deep = parse_free(
        "behaviour[cp_plan.review_conference.outcome].choose_by_visit[0].continue_plan=0.1:3", sc)
    assert deep.start == pytest.approx(1.75)


@pytest.mark.parametrize(("text", "words"), [
    ("staffing.family_unavailable", "PATH=LOW:HIGH"),
    ("staffing.family_unavailable=0.4:0", "LOW below HIGH"),
    ("staffing.family_unavailabel=0:1", "not a numeric field"),
    ("behaviour.cp_plan.active.chance=0:1", "brackets"),
])
def test_bad_free_parameters_are_named(text, words):
    with pytest.raises(InputError) as err:
        parse_free(text, load_scenario("baseline"))
    assert words in str(err.value)


def test_rows_are_chosen_by_measure_source_or_year():
    rows = read_published(ENGLAND)
    assert len(select_rows(rows, ["CAL-10"])) == 5
    assert [r.year_end.year for r in select_rows(rows, ["second_or_later_plans@2015"])] == [2015]
    assert len(select_rows(rows, ["reviews_in_time"])) == 2
    with pytest.raises(InputError):
        select_rows(rows, ["CAL-99"])


def _row(value, sim, tol, kind="points"):
    p = PublishedRow("plans_ended_3m_to_6m", date(2020, 3, 31), value, "percent", "CAL-10b",
                     "calibration", tol, kind, "", 2)
    return ValidationRow(p, "", sim, math.nan, math.nan, (sim,))


def test_the_loss_is_in_units_of_each_rows_tolerance():
    assert loss_of([_row(11.4, 14.4, 3), _row(10, 4, 2)]) == pytest.approx(1 + 9)
    assert loss_of([_row(100, 110, 5, "percent")]) == pytest.approx(4)
    assert loss_of([_row(11.4, math.nan, 3)]) == math.inf


def test_fit_moves_a_parameter_towards_the_published_row_and_reports_held_out_rows(tmp_path):
    """Rebooking for the family fitted to ICPC timeliness: the fitted loss is no worse than
    the start, the fitted value is inside its bounds, and held-out rows are still shown."""
    out = tmp_path / "fit"
    result = CliRunner().invoke(main, [
        "fit", "baseline", "--against", str(ENGLAND),
        "--free", "staffing.family_unavailable=0:0.5", "--rows", "icpc_within_15_working_days",
        "--max-evaluations", "5", "-r", "1", "-w", "1", "--horizon-days", "400",
        "--warm-up-days", "0", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "fit.json").read_text())
    assert data["loss_after"] <= data["loss_before"]
    assert 0 <= data["values"]["staffing.family_unavailable"] <= 0.5
    assert data["fitted_rows"] == ["icpc_within_15_working_days@2023"]
    assert "after fitting (rows not fitted are held out)" in result.output
    assert "second_or_later_plans" in result.output  # a held-out row, still reported
    assert (Path(data["best_run"]) / "validation.html").is_file()
    assert (out / "fit.csv").read_text().startswith("parameter,low,high,start,fitted,std_error")


def test_fit_refuses_a_bad_row_with_exit_2(tmp_path):
    result = CliRunner().invoke(main, [
        "fit", "baseline", "--against", str(ENGLAND), "--free",
        "staffing.family_unavailable=0:0.5", "--rows", "CAL-99", "--out", str(tmp_path / "f")])
    assert result.exit_code == 2 and "matches no row" in result.output
    assert not (tmp_path / "f").exists()
