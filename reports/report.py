"""The self-contained HTML report of a results folder: KPI tables, figures, diagram, inputs.

The report is rebuilt from what a run stored (read with :func:`simulations.results.
read_results`); nothing is simulated again. Every picture is embedded as a base64 data URI
and the styles are inline, so ``report.html`` opens offline with no other file. The page is
rendered by jinja2 with autoescaping on, and no text taken from input files (scenario,
procedure, state names) is ever marked safe. The figures are also written as PNG files to
``figures/``; every file is written atomically (temporary file, then rename), and only after
everything has been drawn, so a failure leaves the previous report untouched.
"""

from __future__ import annotations

import base64
import csv
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import matplotlib

from model.atomic import write_bytes_atomic
from model.spec import Procedure
from reports import figures as fg
from reports.diagram import render_diagram
from reports.templating import environment
from simulations.kpi import Kpi
from simulations.results import RunResults, read_results
from simulations.scenario import Scenario
from simulations.steady import Steadiness, steady_state, trend_words, warm_up_words

GROUPS = (("deadline", "Deadlines"), ("capacity", "Capacity"), ("flow", "Flow"),
          ("plans", "Plans"), ("postponements", "Postponements"),
          ("resolution", "Resolution"))
"""KPI groups in report order, with their headings; unknown groups follow, by name."""


@dataclass(frozen=True)
class ReportFigure:
    """One drawn figure, ready to embed and to write.

    Attributes:
        name: File stem in ``figures/`` and anchor in the page (``compliance``).
        title: Heading shown above the figure.
        caption: What is drawn and how the intervals are computed.
        png: The PNG image.
    """

    name: str
    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:`` URI (base64 text only, safe to autoescape)."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class KpiRow:
    """One KPI formatted for the table (all strings, escaped by the template)."""

    label: str
    mean: str
    ci: str
    exact: str
    unit: str
    rules: str
    replications: int
    headline: bool
    kpi_id: str


@dataclass(frozen=True)
class SteadyRow:
    """One stock's steady-state check formatted for the page (all strings, escaped there).

    Attributes:
        stock: ``open_cases`` or ``open_plans``.
        configured: The scenario's warm-up, in days.
        measured: The MSER-5 warm-up (longest over replications), or why there is none.
        enough: ``yes``, ``no`` or ``cannot tell``.
        warm_up: The warm-ups compared, in a sentence.
        trend: The trend sentence (or why there is none).
        trends: True when the stock still trends over the measured period.
        short: True when the configured warm-up is not shown to be long enough.
    """

    stock: str
    configured: str
    measured: str
    enough: str
    warm_up: str
    trend: str
    trends: bool
    short: bool


def steady_rows(records: Sequence[dict[str, Any]]) -> tuple[list[SteadyRow], list[str]]:
    """The steady-state check of each stock, and the stocks that were not recorded."""
    rows: list[SteadyRow] = []
    missing: list[str] = []
    for stock, check in steady_state(records).items():
        if check is None:
            missing.append(stock)
            continue
        rows.append(_steady_row(check))
    return rows, missing


def _steady_row(check: Steadiness) -> SteadyRow:
    if check.recommended_days is None:
        measured, enough = "– (run too short)", "cannot tell"
    elif not check.settled:
        measured, enough = f"{check.recommended_days:.0f} days (not settled)", "cannot tell"
    else:
        measured = f"{check.recommended_days:.0f} days"
        enough = "yes" if check.long_enough else "no"
    return SteadyRow(check.stock, f"{check.configured_days:.0f} days", measured, enough,
                     warm_up_words(check), trend_words(check),
                     check.trend is not None and check.trend.trends, not check.long_enough)


def draw_figures(results: RunResults, target: float = 0.95) -> tuple[list[ReportFigure], str]:
    """Draw every figure of the report.

    Args:
        results: The stored run.
        target: The compliance target share (0–1) drawn on the first figure.

    Returns:
        The figures in report order, and a note for the figures that were left out
        (empty when none was).
    """
    records = results.records
    procedure = results.scenario.procedure
    reps = len(records)
    intervals = fg.interval_note(reps)
    start = date.fromisoformat(str(results.metadata["start_date"]))
    plan_state = results.scenario.spec.plan_state
    out: list[ReportFigure] = []

    def add(name: str, title: str, caption: str, fig: Any) -> None:
        out.append(ReportFigure(name, title, caption, fg.png_bytes(fig)))

    add("compliance", "Deadlines met against target",
        f"Share of each deadline's clocks met, of those judged after warm-up (met, missed, "
        f"or still open past the due time at the horizon), pooled counts on the right. "
        f"Error bars are the 95% t-interval across {reps} replication(s), clipped to "
        f"0–100% (the pooled exact interval when there is one replication). The dashed "
        f"line is the {target:.0%} target.",
        fg.compliance_figure(results.kpis, procedure, target))
    add("elapsed", "Time taken against each statutory limit",
        "Elapsed time from each deadline's start to its end, for clocks that closed after "
        "warm-up, summed over all replications; one panel per deadline with data. A solid "
        "red line marks the latest allowed time, a dashed one the earliest (for 'at least' "
        "deadlines). For whole-day units (days, working days) each bar is one day, centred "
        "on its value, and the line sits on the edge of the last (or first) allowed day; "
        "for an 'at least N days' minimum counted in hours from the start, the first "
        "allowed day's bar can still hold a few cases that were early by hours. Bins are "
        "merged when a panel would show more than 60 bars, and the few values beyond the "
        "panel's range are counted in its corner.",
        fg.elapsed_figure(records, procedure))
    add("time-series", "Caseload and open cases over time",
        f"Weekly samples after warm-up, on calendar dates from {start.isoformat()}. Lines "
        f"are means across replications; {intervals}.",
        fg.time_series_figure(records, start, plan_state))
    add("flow", "How cases flow through the stages",
        f"Left: cases entering each top-level stage of the main flow per year, in the "
        f"procedure's declared order; {intervals}. Right: moves between stages per year "
        f"(mean over replications), counted from the triggers that make them; a trigger "
        f"shared by moves between different stages is listed under the matrix instead.",
        fg.flow_figure(records, procedure))
    notes = []
    resolution = fg.resolution_figure(records, procedure)
    if resolution is not None:
        add("resolutions", "Resolutions by stage",
            f"Cases entering each state of each parallel region per year (the region's "
            f"initial resting state is left out); {intervals}.", resolution)
    else:
        notes.append(f"Procedure {procedure.id} has no parallel region (no resolution "
                     f"ladder), so there is no resolutions figure.")
    add("postponements", "Postponements by reason",
        f"Postponements per year, by the trigger fired and the reason; {intervals}.",
        fg.postponement_figure(records))
    return out, " ".join(notes)


def procedure_diagram(procedure: Procedure) -> tuple[str | None, str]:
    """The procedure drawn as SVG, as a ``data:`` URI, or None and the reason it failed.

    The SVG is embedded as an image rather than inlined in the page, so no generated
    markup has to be trusted by the template (and scripts in it could never run).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "procedure.svg"
        try:
            # a fixed salt for SVG element ids, or each drawing gets random clip-path ids
            with matplotlib.rc_context({"svg.hashsalt": f"cpsim:{procedure.id}"}):
                render_diagram(procedure, path, "svg", None)
            data = path.read_bytes()
        except Exception as exc:  # the report must not fail because a drawing did
            return None, f"The procedure diagram could not be drawn ({type(exc).__name__}: {exc})."
    return "data:image/svg+xml;base64," + base64.b64encode(data).decode("ascii"), ""


def format_value(value: float | None, unit: str) -> str:
    """A KPI value for a table: shares as percentages, others to a sensible precision.

    >>> format_value(0.9417, "share"), format_value(12.04, "days"), format_value(None, "x")
    ('94.2%', '12.0', '–')
    """
    if value is None or math.isnan(value):
        return "–"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def group_order(groups: Iterable[str]) -> list[tuple[str, str]]:
    """KPI groups in report order with their headings: known groups first, then by name.

    >>> [g for g, _ in group_order(["zeta", "flow"])][-2:]
    ['resolution', 'zeta']
    """
    known = [g for g, _ in GROUPS]
    extra = sorted(set(groups) - set(known))
    headings = dict(GROUPS)
    return [(g, headings.get(g, g.capitalize())) for g in [*known, *extra]]


class Grouped(Protocol):
    """Anything shown in the KPI groups: a KPI, or a difference between two."""

    @property
    def group(self) -> str:
        """The KPI group (``deadline``, ``capacity``, ...)."""
        ...


G = TypeVar("G", bound=Grouped)


def by_group(items: Iterable[G]) -> list[tuple[str, list[G]]]:
    """Items under their group's heading, groups in report order, empty groups left out.

    >>> from types import SimpleNamespace as K
    >>> [(h, len(ks)) for h, ks in by_group([K(group="flow"), K(group="deadline")])]
    [('Deadlines', 1), ('Flow', 1)]
    """
    items = list(items)
    out = []
    for group, heading in group_order(i.group for i in items):
        members = [i for i in items if i.group == group]
        if members:
            out.append((heading, members))
    return out


def mean_with_ci(k: Kpi | None) -> str:
    """A KPI's mean with its 95% interval in brackets (``–`` for no KPI or no mean).

    >>> mean_with_ci(Kpi("x", "flow", "x", "cases", (1.0, 3.0), 2.0, 0.5, 3.5))
    '2.00 (0.50 – 3.50)'
    """
    if k is None or math.isnan(k.mean):
        return "–"
    if math.isnan(k.low) or math.isnan(k.high):
        return format_value(k.mean, k.unit)
    return (f"{format_value(k.mean, k.unit)} ({format_value(k.low, k.unit)} – "
            f"{format_value(k.high, k.unit)})")


def kpi_rows(kpis: Sequence[Kpi], procedure: Procedure) -> list[tuple[str, list[KpiRow]]]:
    """KPIs grouped by :attr:`Kpi.group` (known groups first), formatted for the page."""
    deadlines = {d.id: d for d in procedure.deadlines}

    def row(k: Kpi) -> KpiRow:
        ci = ("–" if math.isnan(k.low) or math.isnan(k.high)
              else f"{format_value(k.low, k.unit)} – {format_value(k.high, k.unit)}")
        exact = ""
        if k.trials is not None:
            exact = (f"{format_value(k.exact_low, k.unit)} – "
                     f"{format_value(k.exact_high, k.unit)} ({k.successes:,}/{k.trials:,})")
        unit = fg.unit_text(k.unit)
        d = deadlines.get(k.id.split(":")[1]) if k.group == "deadline" else None
        if d is not None:
            unit += f"; limit: {fg.limit_words(d)}"
        elif k.limit is not None:
            unit += f"; limit {k.limit:g}"
        return KpiRow(k.label, format_value(k.mean, k.unit), ci, exact, unit,
                      ", ".join(k.rules), len(k.values), k.headline, k.id)

    return [(heading, [row(k) for k in group]) for heading, group in by_group(kpis)]


def flatten(key: str, value: Any) -> list[tuple[str, str]]:
    """Nested mappings and lists as sorted ``(dotted.key, text)`` rows.

    >>> flatten("", {"b": [1, None], "a": {"c": "x"}})
    [('a.c', 'x'), ('b[0]', '1'), ('b[1]', '')]
    """
    if isinstance(value, dict):
        return [row for k in sorted(value)
                for row in flatten(f"{key}.{k}" if key else str(k), value[k])]
    if isinstance(value, list):
        return [row for i, v in enumerate(value) for row in flatten(f"{key}[{i}]", v)]
    return [(key, "" if value is None else str(value))]


@dataclass(frozen=True)
class SpreadRow:
    """One headline KPI across the authorities, formatted for the report.

    Attributes:
        label: The KPI's label.
        national: The national value (all authorities merged).
        values: Minimum, 10th percentile, median, 90th percentile and maximum over the
            authorities' own means.
        lowest: The authority with the lowest value.
        highest: The authority with the highest value.
    """

    label: str
    national: str
    values: tuple[str, ...]
    lowest: str
    highest: str


def spread_rows(out: Path) -> list[SpreadRow]:
    """The spread across authorities stored with a split run (``authorities-spread.csv``).

    Empty when the run was not split into authorities, or the table is missing or damaged
    (the report then leaves the section out rather than fail).
    """
    path = out / "authorities-spread.csv"
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []

    def value(row: dict[str, str], column: str) -> str:
        text = row.get(column) or ""
        try:
            return format_value(float(text), row.get("unit") or "")
        except ValueError:
            return "–"

    return [SpreadRow(row.get("label") or row.get("id") or "", value(row, "national"),
                      tuple(value(row, c) for c in ("min", "p10", "median", "p90", "max")),
                      row.get("lowest") or "", row.get("highest") or "")
            for row in rows]


def scenario_text(scenario: Scenario) -> str | None:
    """The scenario file as written, or None when it cannot be read (the page says so)."""
    try:
        return scenario.path.read_text(encoding="utf-8")
    except OSError:
        return None


def render_report(results: RunResults, figures: Sequence[ReportFigure], figure_note: str,
                  diagram: str | None, diagram_note: str) -> str:
    """The report page as HTML text (autoescaped jinja2 template ``report.html``)."""
    meta = results.metadata
    scenario = results.scenario
    procedure = scenario.procedure
    start = date.fromisoformat(str(meta["start_date"]))
    horizon = int(meta["horizon_days"])
    warm_up = int(meta["warm_up_days"])
    steady = steady_rows(results.records)
    context = {
        "scenario_name": scenario.name,
        "scenario_title": scenario.spec.title,
        "scenario_path": str(scenario.path),
        "scenario_text": scenario_text(scenario),
        "scenario_changed": results.scenario_changed,
        "procedure_id": procedure.id,
        "procedure_title": procedure.title,
        "procedure_description": procedure.description,
        "replications": len(results.records),
        "planned": int(meta.get("replications", len(results.records))),
        "seed": meta.get("root_seed"),
        "machine": meta.get("machine", ""),
        "horizon_days": horizon,
        "warm_up_days": warm_up,
        "start_date": start.isoformat(),
        "measured_from": (start + timedelta(days=warm_up)).isoformat(),
        "measured_to": (start + timedelta(days=horizon)).isoformat(),
        "event_logs": len(results.event_logs()),
        "kpi_groups": kpi_rows(results.kpis, procedure),
        "steady_rows": steady[0],
        "spread_rows": spread_rows(results.out),
        "steady_missing": steady[1],
        "figures": figures,
        "figure_note": figure_note,
        "diagram": diagram,
        "diagram_note": diagram_note,
        "metadata_rows": flatten("", meta),
    }
    return environment().get_template("report.html").render(**context)


def build_report(out: Path, target: float = 0.95) -> Path:
    """Build ``report.html`` and ``figures/*.png`` for the results folder ``out``.

    Args:
        out: A results folder written by ``cpsim run``.
        target: The compliance target share (0–1) drawn on the compliance figure.

    Returns:
        The path of the report.

    Raises:
        InputError: ``out`` is not a results folder or holds no finished replication
            (nothing is written).
    """
    out = Path(out)
    results = read_results(out)
    figures, figure_note = draw_figures(results, target)
    diagram, diagram_note = procedure_diagram(results.scenario.procedure)
    html = render_report(results, figures, figure_note, diagram, diagram_note)
    return write_report(out, figures, html)


def write_report(out: Path, figures: Sequence[ReportFigure], html: str,
                 page: str = "report.html") -> Path:
    """Write ``figures/*.png`` and then the page (``report.html``) into ``out``; its path.

    Each file is written atomically, and only once the caller has drawn and rendered
    everything, so a report that fails leaves the previous one whole (the run, comparison,
    sweep and validation reports all end here).
    """
    for figure in figures:
        write_bytes_atomic(out / "figures" / f"{figure.name}.png", figure.png)
    path = out / page
    write_bytes_atomic(path, html.encode("utf-8"))
    return path
