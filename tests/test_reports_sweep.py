"""The sweep report, built from real (small) sweep folders made with the Python API."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers import (
    assert_figures_embedded,
    assert_self_contained,
    escaped,
    first_heading,
    with_text,
)

from model.errors import InputError
from reports.sweep import (
    build_sweep_report,
    curves,
    key_kpis,
    meets,
    point_rows,
    setting_label,
    target_bound,
)
from simulations.experiments import parse_target, parse_vary, resolve_subject, sweep
from simulations.kpi import kpi_ids
from simulations.results import load_sweep
from simulations.runner import settings_for

FTE = "staffing.social_workers.establishment_fte"
REFERRALS = "demand.referrals_per_year"


def _sweep(out: Path, varies: list[str], target: str | None) -> Path:
    sc = resolve_subject("baseline")
    parsed = [parse_vary(v, sc) for v in varies]
    goal = None if target is None else parse_target(target, kpi_ids(sc.procedure))
    sweep(sc, parsed, settings_for(sc, 2, 11, 120, 30, "table", False), out, target=goal,
          confidence=0.9, workers=1)
    return out


@pytest.fixture(scope="session")
def target_dir(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("sweep") / "target",
                  [f"{FTE}=40..100:30", f"{REFERRALS}=4100,5125"], "icpc_held>=0.9")


@pytest.fixture(scope="session")
def target_report(target_dir):
    return with_text(build_sweep_report(target_dir))


@pytest.fixture(scope="session")
def plain_dir(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("sweep") / "plain", [f"{FTE}=40,70"], None)


@pytest.fixture(scope="session")
def plain_report(plain_dir):
    return build_sweep_report(plain_dir).read_text(encoding="utf-8")


def test_first_heading_is_the_answer(target_dir, target_report):
    path, text = target_report
    assert path == target_dir / "report.html"
    s = load_sweep(target_dir)
    assert s.target is not None
    assert text.index("<h1") < text.index("<h2")
    assert first_heading(text) == escaped(s.sentence())
    assert first_heading(text).startswith(escaped(f"Smallest {FTE} meeting "))


def test_without_a_target_the_heading_describes_the_grid(plain_dir, plain_report):
    s = load_sweep(plain_dir)
    assert first_heading(plain_report) == escaped(s.sentence())
    assert s.sentence() == f"2 grid points of baseline over {FTE}."
    assert not (plain_dir / "figures" / "target.png").exists()
    assert (plain_dir / "figures" / "kpis.png").is_file()
    assert 'id="answers"' not in plain_report


def test_one_row_per_grid_point_with_the_chosen_value_marked(target_dir, target_report):
    _, text = target_report
    s = load_sweep(target_dir)
    table = text[text.index('id="points-table"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == 1 + len(s.points) == 1 + 6
    rows = point_rows(s)
    chosen = {(a.others, a.value) for a in s.answers if a.value is not None}
    assert sum(r.chosen for r in rows) == len(chosen)
    assert table.count('class="chosen"') == len(chosen)
    for p, row in zip(s.points, rows, strict=True):
        b = target_bound(p, s.target, s.confidence)
        assert row.meets == {True: "yes", False: "no", None: "–"}[meets(b, s.target)]
        assert f'title="{escaped(row.folder)}"' in table


def test_answers_table_lists_every_setting(target_dir, target_report):
    _, text = target_report
    s = load_sweep(target_dir)
    answers = text[text.index('id="answers"'):]
    answers = answers[:answers.index("</table>")]
    for a in s.answers:
        assert escaped(setting_label(a.others)) in answers
        assert (f"{a.value:g}" if a.value is not None else "none of the values tried") in answers


def test_figures_are_valid_embedded_and_not_blank(target_dir, target_report):
    assert_figures_embedded(target_dir, target_report[1], {"target", "kpis"})


def test_report_is_self_contained(target_report, plain_report):
    for text in (target_report[1], plain_report):
        sources = assert_self_contained(text)
        assert sources
        assert all(src.startswith("data:image/png;base64,") for src in sources)


def test_settings_and_metadata(target_dir, target_report):
    _, text = target_report
    s = load_sweep(target_dir)
    settings = text[text.index('id="settings-table"'):]
    settings = settings[:settings.index("</table>")]
    assert f"{s.settings.seed} — the same at every grid point" in settings
    assert "120 days" in settings and "30 days" in settings
    assert escaped(str(s.target)) in settings and "90%" in settings
    assert escaped(s.scenario.path.read_text(encoding="utf-8")) in text
    assert [p.name for p in target_dir.rglob("*.tmp")] == []


def test_curves_group_by_the_other_fields(target_dir):
    s = load_sweep(target_dir)
    groups = curves(s.points)
    assert list(groups) == [((REFERRALS, 4100),), ((REFERRALS, 5125),)]
    for rows in groups.values():
        assert [p.values[0][1] for p in rows] == [40, 70, 100]
    assert key_kpis(s)[-1] == "capacity:caseload_mean"
    assert "deadline:icpc_held:share_met" in key_kpis(s)


def test_meets_follows_the_operator():
    from simulations.results import Target

    assert meets(0.3, Target("k", "<=", 0.5)) is True
    assert meets(0.7, Target("k", "<=", 0.5)) is False
    assert meets(math.nan, Target("k", ">=", 0.5)) is None


def test_not_a_sweep_folder(tmp_path):
    with pytest.raises(InputError, match="not a sweep folder"):
        build_sweep_report(tmp_path)
    assert list(tmp_path.iterdir()) == []
