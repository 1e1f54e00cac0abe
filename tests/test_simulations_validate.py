"""`cpsim validate`: published measures counted as the Department counts them, side by side."""

from __future__ import annotations

import csv
import math
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpsim.cli import main
from model.errors import InputError
from simulations.validate import (
    BANDS,
    ICPC_BINS,
    MEASURES,
    PublishedRow,
    children_from_rows,
    compare,
    measure_year,
    read_published,
    value_of,
    year_ends,
)

ROOT = Path(__file__).resolve().parents[1]
ENGLAND = ROOT / "data" / "published" / "england.csv"
YE = date(2024, 3, 31)


def rows(*events: tuple[str, str, str] | tuple[str, str, str, int]) -> list[list[object]]:
    """CIN-flat rows from (child, date, type[, previous plans])."""
    out: list[list[object]] = []
    for e in events:
        prev = e[3] if len(e) > 3 else 0
        out.append([e[0], e[1], e[2], "", "", "", "", "", "", prev])
    return out


def measured(*events):
    return measure_year(children_from_rows(rows(*events)), YE)


# -- plan length bands: ended plans, calendar months -------------------------------------------
@pytest.mark.parametrize(("start", "end", "band"), [
    ("2023-05-10", "2023-08-10", BANDS[0]),   # exactly 3 months: "3 months or less"
    ("2023-05-10", "2023-08-11", BANDS[1]),   # a day over
    ("2023-05-10", "2023-11-10", BANDS[1]),   # exactly 6 months: "up to 6 months"
    ("2023-05-10", "2023-11-11", BANDS[2]),
    ("2023-03-01", "2024-02-29", BANDS[2]),   # a day under a year
    ("2023-02-28", "2024-02-28", BANDS[3]),   # exactly a year: "1 year to under 2"
    ("2022-02-28", "2024-02-28", BANDS[4]),   # exactly two years
])
def test_a_plan_ended_in_the_year_falls_in_its_dfe_band(start, end, band):
    counts = measured(("a", start, "cp_plan_start"), ("a", end, "cp_plan_end"))
    assert counts["plans_ended"] == (1, 1.0)
    assert [b for b in BANDS if counts[b][0] == 1] == [band]


def test_stock_at_the_year_end_counts_plans_open_on_that_day():
    counts = measured(
        ("a", "2023-01-01", "cp_plan_start"),                       # open: counted
        ("b", "2023-06-01", "cp_plan_start"), ("b", "2024-03-31", "cp_plan_end"),  # ended that day
        ("c", "2023-06-01", "cp_plan_start"), ("c", "2024-04-01", "cp_plan_end"),  # after: counted
        ("d", "2024-04-02", "cp_plan_start"))                       # starts later
    assert counts["plans_at_year_end"] == (2, 1.0)
    assert counts["plans_started"] == (2, 1.0)  # b and c inside 1 April 2023 - 31 March 2024
    assert counts["plans_ended"] == (1, 1.0)


def test_icpc_timeliness_counts_working_days_from_the_strategy_discussion():
    """Easter 2023 (7 and 10 April) and the weekend are not working days."""
    counts = measured(
        ("a", "2023-04-03", "referral"), ("a", "2023-04-03", "strategy_discussion"),
        ("a", "2023-04-04", "s47_start"), ("a", "2023-04-24", "icpc"),   # 13 working days
        ("b", "2023-06-01", "referral"), ("b", "2023-06-01", "strategy_discussion"),
        ("b", "2023-06-01", "s47_start"), ("b", "2023-06-30", "icpc"),   # 21 working days
        ("c", "2023-06-01", "referral"), ("c", "2023-06-10", "icpc"))    # no S47: not timed
    assert counts["icpcs"] == (3, 1.0)
    assert counts[ICPC_BINS[1]] == (1, 2)
    assert counts[ICPC_BINS[3]] == (1, 2)
    assert value_of("icpc_within_15_working_days", counts) == 50.0


def test_second_or_later_plans_use_the_childs_history():
    counts = measured(("a", "2023-06-01", "cp_plan_start", 0),
                      ("b", "2023-06-01", "cp_plan_start", 2),
                      ("c", "2023-07-01", "cp_plan_start", 1))
    assert value_of("second_or_later_plans", counts) == pytest.approx(200 / 3)


def test_reviews_in_time_judges_plans_of_three_months_or_more_at_the_year_end():
    counts = measured(
        # in time: first review within 3 months, next within 6, none overdue on 31 March
        ("a", "2023-06-01", "cp_plan_start"), ("a", "2023-08-30", "review"),
        ("a", "2024-02-20", "review"),
        # first review late
        ("b", "2023-06-01", "cp_plan_start"), ("b", "2023-09-02", "review"),
        ("b", "2024-02-20", "review"),
        # overdue on 31 March: last review more than 6 months before
        ("c", "2023-01-10", "cp_plan_start"), ("c", "2023-04-01", "review"),
        # under 3 months on a plan: not judged
        ("d", "2024-01-15", "cp_plan_start"))
    assert counts["reviews_in_time"] == (1, 3)


def test_re_referrals_within_twelve_months_of_the_previous_referral():
    counts = measured(("a", "2023-01-05", "referral"), ("a", "2023-12-05", "referral"),
                      ("b", "2022-01-05", "referral"), ("b", "2023-06-05", "referral"))
    assert counts["referrals"] == (2, 1.0)
    assert counts["re_referrals_within_12_months"] == (1, 2)


def test_year_ends_inside_the_measured_period():
    assert year_ends(date(2026, 9, 28), date(2028, 3, 30), 3, 31) == []
    assert year_ends(date(2026, 9, 28), date(2028, 3, 31), 3, 31) == [date(2028, 3, 31)]
    assert year_ends(date(2025, 4, 1), date(2027, 3, 31), 3, 31) == [
        date(2026, 3, 31), date(2027, 3, 31)]


def test_a_row_outside_its_tolerance_is_named():
    pub = [PublishedRow("plans_ended_3m_to_6m", YE, 11.4, "percent", "CAL-10b", "validation",
                        3, "points", "", 2),
           PublishedRow("plans_started", YE, 61840, "count", "CAL-7", "calibration", 7,
                        "percent", "", 3)]
    reps = [{m: math.nan for m in MEASURES} | {"plans_ended_3m_to_6m": v, "plans_started": s}
            for v, s in ((1.0, 60000), (1.5, 62000))]
    v = compare(reps, pub, "baseline", "t.csv", 153, [YE])
    assert [r.verdict for r in v.rows] == ["OUTSIDE", "within"]
    assert v.outside[0].difference == pytest.approx(1.25 - 11.4)
    assert v.rows[1].difference == pytest.approx(100 * (61000 - 61840) / 61840)


# -- the published table -----------------------------------------------------------------------
def test_the_shipped_england_table_reads_and_cites_calibration_rows():
    rows_ = read_published(ENGLAND)
    assert {r.source.split("a")[0].rstrip("bcde") for r in rows_} >= {"CAL-10", "CAL-18"}
    text = (ROOT.parent / "shared" / "domain" / "calibration.md")
    if text.is_file():
        cal = text.read_text()
        for r in rows_:
            assert f"| {r.source} |" in cal, r.source
    bands = [r.value for r in rows_ if r.measure in BANDS]
    assert sum(bands) == pytest.approx(100.0)


def test_every_problem_in_a_published_table_is_reported_with_line_and_field(tmp_path):
    path = tmp_path / "mine.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["measure", "year_end", "value", "unit", "source", "role", "tolerance",
                    "tolerance_kind", "note"])
        w.writerow(["plans_endd", "2020-03-31", "5", "percent", "X", "validation", "3",
                    "points", ""])
        w.writerow(["plans_started", "31/03/2020", "-4", "percent", "", "guess", "3", "pts", ""])
    with pytest.raises(InputError) as err:
        read_published(path)
    found = [(p.line, p.field) for p in err.value.problems]
    assert found == [(2, "measure"), (3, "year_end"), (3, "value"), (3, "unit"),
                     (3, "role"), (3, "tolerance_kind"), (3, "source")]
    assert err.value.problems[0].hint == "plans_ended"


def test_cli_rejects_a_bad_table_with_exit_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("measure,value\nreferrals,1\n")
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nowhere"), "--against",
                                       str(bad)])
    assert result.exit_code == 2
    assert "missing column(s)" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "nowhere").exists()


def test_cli_rejects_a_bad_year_end():
    result = CliRunner().invoke(main, ["validate", "baseline", "--against", str(ENGLAND),
                                       "--year-end", "02-30"])
    assert result.exit_code == 2 and "MM-DD" in result.output


# -- a simulated year, end to end ----------------------------------------------------------------
@pytest.fixture(scope="module")
def one_year(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "run"
    result = CliRunner().invoke(main, [
        "validate", "baseline", "--against", str(ENGLAND), "-r", "2", "-w", "1",
        "--horizon-days", "400", "--warm-up-days", "0", "--out", str(out), "--no-report"])
    return out, result


def test_validate_runs_a_scenario_and_writes_the_table_and_page(one_year):
    out, result = one_year
    assert result.exit_code == 0, result.output
    assert "published rows within tolerance" in result.output
    table = list(csv.DictReader((out / "validation.csv").read_text().splitlines()))
    assert len(table) == len(read_published(ENGLAND))
    by = {(r["measure"], r["year_end"]): r for r in table}
    referrals = float(by[("referrals", "2025-03-31")]["simulated"])
    assert 153 * 3000 < referrals < 153 * 5000   # scaled by the scenario's 153
    bands = sum(float(r["simulated"]) for r in table if r["measure"] in BANDS)
    assert bands == pytest.approx(100.0)
    page = (out / "validation.html").read_text()
    assert "Published beside simulated" in page and "data:image/png;base64," in page
    assert (out / "figures" / "validation-plan-length.png").is_file()


def test_validate_reads_a_results_folder_without_rerunning(one_year, tmp_path):
    out, _ = one_year
    before = (out / "validation.csv").read_text()
    result = CliRunner().invoke(main, ["validate", str(out), "--against", str(ENGLAND),
                                       "--scale", "1"])
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader((out / "validation.csv").read_text().splitlines()))
    referrals = next(float(r["simulated"]) for r in table if r["measure"] == "referrals")
    assert 3000 < referrals < 5000
    assert before != (out / "validation.csv").read_text()


def test_validate_says_when_no_whole_year_is_measured(one_year):
    out, _ = one_year
    result = CliRunner().invoke(main, ["validate", str(out), "--against", str(ENGLAND),
                                       "--year-end", "06-30"])
    assert result.exit_code == 2, result.output
    assert "no whole year" in result.output


def test_text_from_the_published_table_is_escaped_in_the_page(one_year, tmp_path):
    out, _ = one_year
    table = tmp_path / "hostile.csv"
    table.write_text(
        "measure,year_end,value,unit,source,role,tolerance,tolerance_kind,note\n"
        'referrals,2025-03-31,4100,count,<b>CAL-1</b>,calibration,5,percent,'
        '"<script>alert(1)</script>"\n')
    result = CliRunner().invoke(main, ["validate", str(out), "--against", str(table)])
    assert result.exit_code == 0, result.output
    page = (out / "validation.html").read_text()
    assert "<script>alert(1)</script>" not in page and "<b>CAL-1</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_scenarios_own_warm_up_is_kept_even_when_over_half_its_horizon():
    """Baseline warms up for 4 of its 6 years; only a horizon shortened on the command line
    caps the scenario's warm-up at half of it."""
    from simulations.runner import settings_for
    from simulations.scenario import load_scenario

    sc = load_scenario("baseline")
    assert settings_for(sc).warm_up_days == sc.spec.run.warm_up_days == 1461
    assert settings_for(sc, horizon_days=400).warm_up_days == 200
    assert settings_for(sc, horizon_days=400, warm_up_days=10).warm_up_days == 10
