"""The HTML report and its figures, built from a real (small) run of the baseline scenario."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import (
    EVIL,
    ROOT,
    assert_figures_embedded,
    assert_self_contained,
    escaped,
    evil_baseline,
    run_into,
    with_text,
    write_scenario,
)

from cpsim.cli import main
from model.errors import InputError
from model.loader import load_procedure
from reports import figures as fg
from reports.report import build_report
from simulations.results import read_results
from simulations.runner import run_scenario, settings_for
from simulations.scenario import load_scenario
from simulations.stats import mean_ci

RUN_ARGS = ["--horizon-days", "120", "--warm-up-days", "30", "-r", "2", "-w", "1",
            "--no-report"]
ALWAYS = ("compliance", "elapsed", "time-series", "flow", "postponements")


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    return run_into(tmp_path_factory.mktemp("report") / "baseline", "baseline", *RUN_ARGS)


@pytest.fixture(scope="session")
def report(results_dir):
    return with_text(build_report(results_dir))


@pytest.fixture(scope="session")
def evil_report(tmp_path_factory):
    """A run of a copy of the baseline scenario whose title is a script tag."""
    base = tmp_path_factory.mktemp("evil")
    out = run_into(base / "results", str(evil_baseline(base)), *RUN_ARGS)
    return build_report(out).read_text(encoding="utf-8")


def test_report_is_written_into_the_results_folder(results_dir, report):
    """build_report returns RESULTS_DIR/report.html and leaves no temporary file behind."""
    path, _ = report
    assert path == results_dir / "report.html"
    assert path.is_file()
    leftovers = [p.name for p in results_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_report_is_self_contained(report):
    """No external fetch of any kind: every image is a data URI, no links, no scripts."""
    assert len(assert_self_contained(report[1])) >= len(ALWAYS) + 1


def test_every_figure_is_written_as_png_embedded_and_not_blank(results_dir, report):
    """Each figure is a PNG in figures/ with visible content, the same bytes in the page."""
    _, text = report
    # baseline has no resolution region
    assert_figures_embedded(results_dir, text, set(ALWAYS), smallest=(200, 400))
    for name in ALWAYS:
        assert f'id="fig-{name}"' in text


def test_report_has_the_kpi_tables_the_seed_and_the_summary(results_dir, report):
    """Every KPI label is in the tables; the summary names scenario, seed and horizon."""
    _, text = report
    results = read_results(results_dir)
    kpis = {k.id: k for k in results.kpis}
    assert escaped(kpis["deadline:icpc_held:share_met"].label) in text
    for k in results.kpis:
        assert escaped(k.label) in text, k.id
    for heading in ("Deadlines", "Capacity", "Flow", "Plans"):
        assert f"<h3>{heading}</h3>" in text
    summary = text[text.index('id="summary"'):text.index("</p>", text.index('id="summary"'))]
    assert str(results.metadata["root_seed"]) in summary
    assert "baseline" in summary and "west-midlands-2014" in summary
    assert "120 days" in summary and "30 days" in summary
    assert "2 replications" in summary


def test_report_has_the_diagram_scenario_and_metadata(results_dir, report):
    """The procedure diagram (an SVG image), the scenario YAML and the metadata table."""
    _, text = report
    results = read_results(results_dir)
    assert "data:image/svg+xml;base64," in text
    scenario_text = results.scenario.path.read_text(encoding="utf-8")
    assert f"<pre>{escaped(scenario_text)}</pre>" in text
    assert results.metadata["scenario_sha256"] in text
    assert results.metadata["procedure_sha256"] in text
    assert results.metadata["versions"]["numpy"] in text


def test_procedure_without_regions_says_there_is_no_resolution_figure(results_dir, report):
    """The baseline procedure has no resolution ladder: no figure, and the report says so."""
    _, text = report
    assert not (results_dir / "figures" / "resolutions.png").exists()
    assert "no parallel region" in text


def test_no_scenario_changed_note_for_an_unchanged_run(report):
    """The scenario-changed warning appears only when the hash no longer matches."""
    _, text = report
    assert 'id="scenario-changed"' not in text


def test_changed_scenario_is_flagged(results_dir, tmp_path):
    """When metadata's scenario hash no longer matches the scenario, the report says so."""
    copy = tmp_path / "copy"
    shutil.copytree(results_dir, copy)
    meta = json.loads((copy / "metadata.json").read_text(encoding="utf-8"))
    meta["scenario_sha256"] = "0" * 64
    (copy / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    assert read_results(copy).scenario_changed
    text = build_report(copy).read_text(encoding="utf-8")
    assert 'id="scenario-changed"' in text


def test_text_from_input_files_is_escaped(evil_report):
    """A scenario title holding a script tag is shown escaped, never as markup."""
    assert EVIL not in evil_report
    assert escaped(EVIL) in evil_report
    assert f"<h1>Simulation report: {escaped(EVIL)}</h1>" in evil_report


def test_rebuilding_gives_the_same_bytes(results_dir, report):
    """Same stored results, same report: nothing depends on the clock."""
    _, text = report
    pngs = {p.name: p.read_bytes() for p in (results_dir / "figures").glob("*.png")}
    again = build_report(results_dir)
    assert again.read_text(encoding="utf-8") == text
    assert {p.name: p.read_bytes() for p in (results_dir / "figures").glob("*.png")} == pngs


def test_cli_report_rebuilds_and_prints_the_path(results_dir, report):
    """`cpsim report DIR` exits 0 and prints where the report is."""
    result = CliRunner().invoke(main, ["report", str(results_dir)])
    assert result.exit_code == 0, result.output
    assert str(results_dir / "report.html") in result.output


def test_cli_report_on_an_empty_folder_exits_2_without_traceback(tmp_path):
    """A folder that is not a results folder: one clear error, exit 2, nothing written."""
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a results folder" in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_build_report_raises_input_error_for_a_non_results_folder(tmp_path):
    """The Python entry point raises InputError (the CLI turns it into exit code 2)."""
    with pytest.raises(InputError):
        build_report(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_reports_never_load_the_engine_or_pyplot():
    """Importing and using the report layer pulls in neither the simulator nor pyplot."""
    code = ("import sys, reports.report, reports.figures; "
            "bad = [m for m in ('simpy', 'simulations.engine', 'simulations.runner', "
            "'matplotlib.pyplot', 'cpsim') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# -- figure functions on their own -----------------------------------------------------------
def _record(entries=None, postponements=None, years=1.0):
    return {"replication": 0, "warm_up_hours": 0.0, "horizon_hours": years * 365.25 * 24,
            "entries": entries or {}, "triggers": {}, "postponements": postponements or {},
            "deadlines": {}, "sample_days": [], "series": {}}


def test_spread_follows_the_stated_interval_rule():
    """Three or more values: the t-interval; two: the range; one: no interval."""
    values = [1.0, 2.0, 4.0]
    s = fg.spread(values)
    assert (s.mean, s.low, s.high, s.kind) == (*mean_ci(values), "t95")
    assert fg.spread([3.0, 1.0]) == fg.Spread(2.0, 1.0, 3.0, "range")
    one = fg.spread([5.0, math.nan])
    assert one.kind == "none" and one.mean == 5.0 and math.isnan(one.low)
    assert fg.spread([0.0, 0.0, 10.0], floor=0.0).low == 0.0


def test_resolution_figure_only_for_procedures_with_regions():
    """Walsall's resolution ladder gets a bar per stage; a procedure without regions none."""
    walsall = load_procedure("walsall-2018-resolution")
    states = fg.resolution_states(walsall)["resolution"]
    assert "resolution.idle" not in states
    assert {"resolution.informal", "resolution.stage_1", "resolution.stage_5"} <= set(states)
    records = [_record({"resolution.informal": 10, "resolution.stage_1": 4}),
               _record({"resolution.informal": 12, "resolution.stage_1": 2})]
    fig = fg.resolution_figure(records, walsall)
    assert fig is not None
    heights = [round(p.get_height(), 6) for p in fig.axes[0].patches]
    assert heights[states.index("resolution.informal")] == 11.0
    assert heights[states.index("resolution.stage_1")] == 3.0
    assert fg.resolution_figure(records, load_procedure("west-midlands-2014")) is None


def test_stage_moves_attribute_only_unambiguous_triggers():
    """A trigger counts as a stage-to-stage move only when all its transitions agree."""
    proc = load_procedure("west-midlands-2014")
    moves, ambiguous = fg.stage_moves(proc)
    stages = fg.main_stages(proc)
    assert stages[0] == proc.initial
    assert moves["decide_assessment"] == ("referral", "assessment")
    assert not set(moves) & set(ambiguous)
    for trigger, (a, b) in moves.items():
        assert a != b and a in stages and b in stages, trigger


def test_compliance_figure_draws_the_given_target(results_dir):
    """The target argument moves the dashed target line."""
    results = read_results(results_dir)
    fig = fg.compliance_figure(results.kpis, results.scenario.procedure, target=0.8)
    xs = {tuple(line.get_xdata()) for line in fig.axes[0].lines}
    assert (0.8, 0.8) in xs


def test_elapsed_figure_has_one_panel_per_deadline_with_data(results_dir):
    """Small multiples: exactly the deadlines whose pooled histogram is not empty."""
    results = read_results(results_dir)
    proc = results.scenario.procedure
    with_data = [d.id for d in proc.deadlines
                 if any(sum(r["deadlines"][d.id]["hist"]) for r in results.records)]
    fig = fg.elapsed_figure(results.records, proc)
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes if ax.get_visible()]
    assert titles == with_data


def test_postponement_figure_without_postponements_says_so():
    """No postponement recorded: the figure is a short message, not an empty chart."""
    fig = fg.postponement_figure([_record(), _record()])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("No postponement" in t for t in texts)


def test_the_report_opens_in_a_browser_with_every_figure_visible(report, browser):
    """Opened offline in headless Chromium: every figure loads and is drawn with a size."""
    path, _html = report
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(Path(path).resolve().as_uri())
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete, e.naturalWidth, e.getBoundingClientRect().width])")
    page.close()
    assert len(images) >= 5
    assert all(done and natural > 0 and shown > 0 for done, natural, shown in images)
    assert all(url.startswith(("file:", "data:")) for url in requests)


def test_every_page_is_rendered_by_one_environment_with_escaping_on():
    """One jinja2 environment serves every page; its autoescape is on for every template."""
    from reports.explore import _environment
    from reports.templating import environment

    env = environment()
    assert env is environment() and _environment() is env
    page = env.from_string('{% extends "base.html" %}{% block title %}{{ t }}{% endblock %}'
                           '{% block body %}<p>{{ t }}</p>{% endblock %}').render(t=EVIL)
    assert EVIL not in page and page.count(escaped(EVIL)) == 2


def test_shared_page_pieces_escape_and_say_when_the_scenario_is_unreadable():
    """The macros the run, compare and sweep pages share: escaped rows, a note for no file."""
    from reports.templating import environment

    page = environment().from_string(
        '{% from "_macros.html" import field_table, scenario_file %}'
        "{{ field_table(rows) }}|{{ scenario_file(none) }}|{{ scenario_file(text) }}"
    ).render(rows=[("k", EVIL)], text=EVIL)
    table, missing, shown = page.split("|")
    assert f"<td><code>k</code></td><td><code>{escaped(EVIL)}</code></td>" in table
    assert missing == '<p class="note">The scenario file could not be read.</p>'
    assert shown == f"<pre>{escaped(EVIL)}</pre>"
    assert EVIL not in page


def test_every_page_extends_the_shared_head():
    """Each page template extends base.html, which alone writes the head they share."""
    from reports.templating import environment

    templates = ROOT / "reports" / "templates"
    pages = [p for p in sorted(templates.glob("*.html"))
             if not p.name.startswith("_") and p.name != "base.html"]
    assert {"report.html", "compare.html", "sweep.html", "explore.html"} <= {p.name
                                                                             for p in pages}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert text.startswith('{% extends "base.html" %}'), page.name
        assert "<!DOCTYPE" not in text and "<head>" not in text and "charset" not in text
    head = environment().get_template("base.html").render()
    assert head.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in head
    assert 'name="viewport"' in head and "<title></title>" in head


def test_a_split_run_reports_its_spread_across_authorities_with_names_escaped(
        tmp_path: Path) -> None:
    block = ("authorities:\n  - {name: north, share: 0.5}\n"
             "  - {name: \"<b>south</b>\", share: 0.5}\n")
    sc = load_scenario(write_scenario(tmp_path, block, "split"))
    out = tmp_path / "out"
    run_scenario(sc, settings_for(sc, replications=1, seed=3, horizon_days=60,
                                  warm_up_days=10), out)
    page = build_report(out).read_text(encoding="utf-8")
    assert 'href="#authorities"' in page and '<table id="spread">' in page
    section = page[page.index('id="authorities"'):page.index('id="steady-state"')]
    assert "&lt;b&gt;south&lt;/b&gt;" in section and "<b>south" not in section
    assert "north" in section
    # damaged table: the report is still built, without the section
    (out / "authorities-spread.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert 'id="authorities"' not in build_report(out).read_text(encoding="utf-8")


def test_an_unsplit_run_has_no_authorities_section(results_dir: Path) -> None:
    page = (build_report(results_dir)).read_text(encoding="utf-8")
    assert 'id="authorities"' not in page


def test_a_run_too_short_for_two_samples_draws_its_figures_without_warnings(
        tmp_path: Path) -> None:
    # one weekly sample after warm-up: matplotlib widened the single date to four years and
    # its date locator warned ("unable to pick an appropriate interval") on every such run
    sc = load_scenario("baseline")
    out = tmp_path / "short"
    run_scenario(sc, settings_for(sc, replications=1, seed=5, horizon_days=12,
                                  warm_up_days=2), out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_report(out)
    assert (out / "figures" / "time-series.png").stat().st_size > 0
