"""The comparison report, built from real (small) comparison folders made with the Python API."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    EVIL,
    assert_figures_embedded,
    assert_self_contained,
    escaped,
    first_heading,
    with_text,
    write_procedure,
)

from model.check import check_procedure
from model.errors import InputError
from model.loader import load_procedure, resolve_procedure_path
from reports.compare import (
    build_compare_report,
    check_verdicts,
    deadline_of,
    describe_difference,
    draw_compare_figures,
    headline,
    importance,
    render_compare_report,
    signed,
)
from simulations.experiments import compare, resolve_subject
from simulations.results import load_comparison
from simulations.runner import settings_for

A, B = "west-midlands-2014", "west-midlands-2014-icpc-10wd"
BROKEN_PROPERTY = "property:plan_end_leaves_a_plan_in_place"


def _make(a: str, b: str, out: Path, replications: int = 3, horizon: int = 150) -> Path:
    sa, sb = resolve_subject(a), resolve_subject(b)
    compare(sa, sb, settings_for(sa, replications, 11, horizon, 40, "table", False), out,
            workers=1)
    return out


@pytest.fixture(scope="session")
def comparison_dir(tmp_path_factory):
    return _make(A, B, tmp_path_factory.mktemp("compare") / "icpc")


@pytest.fixture(scope="session")
def report(comparison_dir):
    return with_text(build_compare_report(comparison_dir))


@pytest.fixture(scope="session")
def comparison(comparison_dir, report):
    return load_comparison(comparison_dir)


@pytest.fixture(scope="session")
def evil_report(tmp_path_factory):
    """A comparison with a procedure whose title is a script tag."""
    base = tmp_path_factory.mktemp("evil")
    proc = write_procedure(base, "wm-evil", A, f'title: "{EVIL}"\ndescription: "{EVIL} & co"\n')
    out = _make(A, str(proc), base / "cmp", replications=2, horizon=100)
    return build_compare_report(out).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def broken_procedure(tmp_path_factory):
    """West Midlands with a plan that can close without recording a closure decision."""
    base = tmp_path_factory.mktemp("broken")
    path = write_procedure(base, "wm-broken", A,
                           "transitions:\n  end_plan_child_in_need:\n    records: [plan_type]\n")
    return load_procedure(path)


# -- the answer comes first ------------------------------------------------------------------
def test_first_heading_answers_what_the_change_does(report, comparison):
    """The page's first heading is the B-vs-A sentence with the most important differences."""
    _, text = report
    first = first_heading(text)
    assert text.index("<h1") < text.index("<h2")
    assert first == escaped(headline(comparison))
    assert first.startswith(escaped(f"B ({B}) vs A ({A}): "))
    flagged = sorted((d for d in comparison.diffs if d.significant), key=importance)
    assert flagged, "the 10-working-day conference must change something significantly"
    assert "differ significantly" in first
    procedures = (comparison.a.procedure, comparison.b.procedure)
    assert escaped(describe_difference(flagged[0], procedures)) in first
    assert "icpc_held" in first


def test_headline_puts_deadline_shares_first(comparison):
    """Shares met come before other KPIs, by absolute difference."""
    ordered = [d for d in sorted(comparison.diffs, key=importance) if not np.isnan(d.diff)]
    shares = [d for d in ordered if deadline_of(d.id) is not None]
    assert shares and ordered[: len(shares)] == shares
    assert [abs(d.diff) for d in shares] == sorted((abs(d.diff) for d in shares), reverse=True)


def test_headline_when_nothing_differs(comparison):
    """With every interval straddling zero, the sentence says no KPI differs."""
    calm = replace(comparison, diffs=tuple(replace(d, low=-1.0, high=1.0)
                                           for d in comparison.diffs))
    sentence = headline(calm)
    assert sentence.startswith(f"B ({B}) vs A ({A}): no KPI differs significantly")


def test_signed_differences_use_points_and_a_true_minus():
    assert signed(-0.256, "share") == "\N{MINUS SIGN}25.6 points"
    assert signed(0.01, "share") == "+1.0 points"
    assert signed(float("nan"), "share") == "–"


# -- structure and checks --------------------------------------------------------------------
def test_structural_diff_shows_the_conference_deadline(report):
    """The diff table has the icpc_held row: 15 → 10 working days."""
    _, text = report
    table = text[text.index('id="diff-table"'):]
    table = table[:table.index("</table>")]
    row = next(r for r in table.split("<tr>") if "<code>icpc_held</code>" in r)
    assert "changed" in row and "deadline" in row
    assert escaped("within: 15 working days → 10 working days") in row


def test_both_procedures_pass_their_checks(report):
    _, text = report
    assert "Both procedures pass every check." in text
    assert text.count('<span class="pass">PASS</span>') == 2
    assert text.index('id="checks"') < text.index('id="diff"') < text.index('id="kpis"')


def test_a_broken_property_is_shown_first_with_its_counterexample(broken_procedure):
    """B failing a property A passes leads the verdicts, its failure first, with the path."""
    a_report = check_procedure(load_procedure(resolve_procedure_path(A)))
    b_report = check_procedure(broken_procedure)
    assert a_report.ok and not b_report.ok
    summary, verdicts = check_verdicts(A, a_report, "wm-broken", b_report)
    assert [v.side for v in verdicts] == ["B", "A"]
    first = verdicts[0]
    assert first.broken_by_change and not first.ok
    assert first.findings[0].check == BROKEN_PROPERTY
    assert first.findings[0].new and first.findings[0].severity == "error"
    assert first.findings[0].path and "end_plan_child_in_need" in first.findings[0].path[-1]
    assert summary.startswith("The change breaks what A satisfies")
    assert BROKEN_PROPERTY in summary
    assert not verdicts[1].broken_by_change and verdicts[1].findings == ()


def test_the_repair_direction_is_not_called_a_break(broken_procedure):
    """A failing and B passing keeps A first, and says the change repairs it."""
    a_report = check_procedure(broken_procedure)
    b_report = check_procedure(load_procedure(resolve_procedure_path(A)))
    summary, verdicts = check_verdicts("wm-broken", a_report, A, b_report)
    assert [v.side for v in verdicts] == ["A", "B"]
    assert not any(v.broken_by_change for v in verdicts)
    assert summary.startswith("The change repairs A")


def test_broken_verdict_leads_the_page(comparison, broken_procedure):
    """Rendered, the failing B verdict (with every counterexample step) comes before A's."""
    a_report = check_procedure(comparison.a.procedure)
    b_report = check_procedure(broken_procedure)
    checks = check_verdicts(comparison.a_name, a_report, comparison.b_name, b_report)
    text = render_compare_report(comparison, [], checks)
    section = text[text.index('id="checks"'):text.index('id="diff"')]
    assert section.index('id="check-B"') < section.index('id="check-A"')
    assert section.index(BROKEN_PROPERTY) < section.index('id="check-A"')
    assert "broken by the change" in section
    assert 'class="alert" id="check-summary"' in section
    for step in b_report.findings[0].path:
        assert escaped(str(step)) in section


# -- KPIs, figures, settings -----------------------------------------------------------------
def test_every_kpi_is_in_the_table_with_its_difference(report, comparison):
    _, text = report
    for d in comparison.diffs:
        assert f'title="{escaped(d.id)}"' in text, d.id
        assert escaped(d.label) in text
    flagged = [d for d in comparison.diffs if d.significant]
    assert text.count('<tr class="sig"') == len(flagged)
    for heading in ("Deadlines", "Capacity", "Flow", "Plans"):
        assert f"<h3>{heading}</h3>" in text


def test_the_changed_limit_shows_both_labels(report, comparison):
    """The row of icpc_held's share met names A's limit and B's."""
    _, text = report
    d = next(d for d in comparison.diffs if d.id == "deadline:icpc_held:share_met")
    assert "15 working days" in d.a.label and "10 working days" in d.b.label
    row = text[text.index(f'title="{d.id}"'):]
    row = row[:row.index("</tr>")]
    assert "15 working days" in row and "10 working days" in row


def test_settings_say_same_seed(report, comparison):
    _, text = report
    settings = text[text.index('id="settings-table"'):]
    settings = settings[:settings.index("</table>")]
    assert f"{comparison.settings.seed} — the same for A and B: common random numbers" in settings
    assert f"{comparison.settings.horizon_days} days" in settings
    assert f"{comparison.settings.warm_up_days} days" in settings
    assert "3 finished on both sides" in settings


def test_report_is_self_contained_and_atomic(comparison_dir, report):
    path, text = report
    assert path == comparison_dir / "report.html"
    sources = assert_self_contained(text)
    assert len(sources) == 2
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert [p.name for p in comparison_dir.rglob("*.tmp")] == []


def test_figures_are_valid_pngs_embedded_and_not_blank(comparison_dir, report):
    assert_figures_embedded(comparison_dir, report[1], {"compliance", "time-series"})


def test_figures_are_reproducible(comparison):
    """Drawing the same comparison twice gives the same bytes."""
    first = [f.png for f in draw_compare_figures(comparison)]
    second = [f.png for f in draw_compare_figures(comparison)]
    assert first == second


def test_report_shows_the_procedures_as_run(comparison):
    """Each side's procedure is the one that ran (B has the 10-working-day conference)."""
    assert comparison.a.procedure.id == A and comparison.b.procedure.id == B
    icpc = next(d for d in comparison.b.procedure.deadlines if d.id == "icpc_held")
    assert icpc.within is not None and icpc.within.value == 10


# -- escaping and errors ---------------------------------------------------------------------
def test_titles_are_escaped(evil_report):
    """A procedure title holding a script tag is shown as text, never as markup."""
    assert EVIL not in evil_report
    assert "<script" not in evil_report
    assert escaped(EVIL) in evil_report
    assert escaped(f"{EVIL} & co") in evil_report
    assert first_heading(evil_report).startswith(escaped("B (wm-evil) vs A (west-midlands-2014)"))


def test_not_a_comparison_folder(tmp_path):
    with pytest.raises(InputError, match="not a comparison folder"):
        build_compare_report(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_index_that_is_not_a_json_object_is_not_a_comparison_folder(tmp_path):
    """A ``comparison.json`` holding a list is refused like a missing one, not half-read."""
    (tmp_path / "comparison.json").write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match="not a comparison folder"):
        build_compare_report(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["comparison.json"]
