"""The self-contained HTML report of a comparison folder: what does changing A into B do?

The page opens with the answer in one sentence (how many KPIs differ, and the most important
differences with their paired 95% intervals), then the ``check`` verdicts of both procedures
(a property that B breaks and A keeps comes first, with its counterexample), the structural
diff of the procedures, every KPI for A and B with the difference B - A, figures that put
A and B side by side, and the run settings and metadata of both runs.

Nothing is simulated again: both sides are read from the comparison folder, and the page is
made and written the way :mod:`reports.report` makes a run's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from model.check import check_procedure
from model.diff import diff_procedures, diff_rows
from model.findings import CheckReport, Finding
from model.graph import describe
from model.spec import Procedure
from reports import figures as fg
from reports.report import (
    ReportFigure,
    by_group,
    flatten,
    format_value,
    mean_with_ci,
    scenario_text,
    write_report,
)
from reports.templating import environment
from simulations.kpi import Kpi
from simulations.results import Comparison, KpiDiff, load_comparison, read_json_object
from simulations.scenario import Scenario

MINUS = "\N{MINUS SIGN}"
A_COLOUR = fg.BLUE
B_COLOUR = fg.ORANGE


# -- numbers in words --------------------------------------------------------------------------
def signed(value: float, unit: str) -> str:
    """A difference with its sign (a true minus sign): shares in percentage points.

    >>> signed(-0.2563, "share"), signed(4.0, "working_days"), signed(-1234.5, "per_year")
    ('−25.6 points', '+4.00', '−1,234')
    >>> signed(0.0, "share")
    '0 points'
    """
    if math.isnan(value):
        return "–"
    if value == 0:
        return "0 points" if unit == "share" else "0"
    if unit == "share":
        text = f"{100 * value:+.1f} points"
    elif abs(value) >= 1000:
        text = f"{value:+,.0f}"
    else:
        text = f"{value:+.1f}" if abs(value) >= 10 else f"{value:+.2f}"
    return text.replace("-", MINUS)


def _unit_suffix(unit: str) -> str:
    return "" if unit == "share" else f" {fg.unit_text(unit)}"


def deadline_of(kpi_id: str) -> str | None:
    """The deadline id of a ``deadline:ID:share_met`` KPI, else None.

    >>> deadline_of("deadline:icpc_held:share_met"), deadline_of("capacity:caseload_mean")
    ('icpc_held', None)
    """
    parts = kpi_id.split(":")
    if len(parts) == 3 and parts[0] == "deadline" and parts[2] == "share_met":
        return parts[1]
    return None


def importance(d: KpiDiff) -> tuple[int, float]:
    """Sort key putting the most important difference first.

    Deadline shares met come first, by absolute difference; then the other KPIs, by
    difference relative to A's mean (their units cannot be compared with each other);
    KPIs without a paired difference come last.
    """
    if math.isnan(d.diff):
        return (2, 0.0)  # no paired difference: last
    if deadline_of(d.id) is not None:
        return (0, -abs(d.diff))
    base = abs(d.a.mean)
    return (1, -(abs(d.diff) / base if base > 0 else math.inf))


def _short_label(d: KpiDiff, procedures: Sequence[Procedure]) -> str:
    deadline = deadline_of(d.id)
    if deadline is None:
        return d.label
    for proc in procedures:
        found = next((x for x in proc.deadlines if x.id == deadline), None)
        if found is not None and found.within is None:
            return f"{deadline} no earlier than its minimum"
    return f"{deadline} within its limit"


def format_pair(a: float, b: float, unit: str) -> tuple[str, str]:
    """Two values of one KPI with the same number of decimals (shares as percentages).

    >>> format_pair(12.0, 8.0, "working_days"), format_pair(0.942, 0.889, "share")
    (('12.0', '8.0'), ('94.2%', '88.9%'))
    """
    if unit == "share" or math.isnan(a) or math.isnan(b):
        return format_value(a, unit), format_value(b, unit)
    top = max(abs(a), abs(b))
    if top >= 1000:
        return f"{a:,.0f}", f"{b:,.0f}"
    places = 1 if top >= 10 else 2
    return f"{a:.{places}f}", f"{b:.{places}f}"


def describe_difference(d: KpiDiff, procedures: Sequence[Procedure]) -> str:
    """One KPI's change in words.

    For example ``icpc_held within its limit: 94.2% → 88.9% (−5.3 points, 95% CI −9.4 to
    −1.1 points)``.
    """
    a, b = format_pair(d.a.mean, d.b.mean, d.unit)
    return (f"{_short_label(d, procedures)}: {a} → {b}{_unit_suffix(d.unit)} "
            f"({signed(d.diff, d.unit)}, 95% CI {_bare(signed(d.low, d.unit))} to "
            f"{signed(d.high, d.unit)})")


def _bare(text: str) -> str:
    return text.removesuffix(" points")


def headline(c: Comparison, top: int = 2) -> str:
    """The answer to "what does this change do", in one sentence.

    Counts the KPIs whose paired 95% interval excludes zero and describes the ``top`` most
    important of them (see :func:`importance`).
    """
    who = f"B ({c.b_name}) vs A ({c.a_name})"
    flagged = sorted((d for d in c.diffs if d.significant), key=importance)
    if not flagged:
        return (f"{who}: no KPI differs significantly (the 95% interval of each of the "
                f"{len(c.diffs)} paired differences includes zero).")
    count = (f"{len(flagged)} of {len(c.diffs)} KPI{'s' if len(c.diffs) != 1 else ''} "
             f"differ{'s' if len(flagged) == 1 else ''} significantly")
    procedures = (c.a.procedure, c.b.procedure)
    return (f"{who}: {count}; "
            + "; ".join(describe_difference(d, procedures) for d in flagged[:top]) + ".")


# -- check verdicts --------------------------------------------------------------------------
@dataclass(frozen=True)
class FindingView:
    """One check finding, formatted for the page.

    Attributes:
        check: The check's name (``property:ID`` for a declared property).
        severity: ``error`` or ``warning``.
        message: What is wrong.
        rules: The rule ids concerned, joined.
        path: The counterexample, one step per line (``before --trigger [rules]--> after``).
        stuck_at: Where the case is stuck, when that is the violation (else empty).
        new: True for an error that the other procedure does not have.
    """

    check: str
    severity: str
    message: str
    rules: str
    path: tuple[str, ...]
    stuck_at: str
    new: bool


@dataclass(frozen=True)
class Verdict:
    """One procedure's ``check`` verdict.

    Attributes:
        side: ``A`` or ``B``.
        name: The subject's name in the comparison.
        procedure: The procedure's id.
        ok: True when no finding is an error.
        summary: What was explored (states, transitions, configurations, ...).
        passed: The checks passed.
        findings: Errors new to this side first, then its other errors, then warnings.
        broken_by_change: True for B failing a check that A passes (the change breaks it).
    """

    side: str
    name: str
    procedure: str
    ok: bool
    summary: str
    passed: tuple[str, ...]
    findings: tuple[FindingView, ...]
    broken_by_change: bool

    @property
    def new_errors(self) -> tuple[FindingView, ...]:
        """The errors the other procedure does not have."""
        return tuple(f for f in self.findings if f.new)


def _view(f: Finding, other_errors: set[str]) -> FindingView:
    return FindingView(f.check, f.severity, f.message, ", ".join(f.rules),
                       tuple(str(step) for step in f.path),
                       "" if f.stuck_at is None else describe(f.stuck_at),
                       f.severity == "error" and f.check not in other_errors)


def _verdict(side: str, name: str, report: CheckReport, other: CheckReport) -> Verdict:
    other_errors = {f.check for f in other.findings if f.severity == "error"}
    views = [_view(f, other_errors) for f in report.findings]
    views.sort(key=lambda v: (not v.new, v.severity != "error"))
    s = report.stats
    summary = (f"{s.get('states', 0)} states, {s.get('transitions', 0)} transitions, "
               f"{s.get('deadlines', 0)} deadlines, {s.get('properties', 0)} properties; "
               f"{s.get('configurations', 0)} configurations and {s.get('moves', 0)} moves "
               f"explored")
    broken = side == "B" and other.ok and not report.ok
    return Verdict(side, name, report.procedure, report.ok, summary, report.passed,
                   tuple(views), broken)


def check_verdicts(a_name: str, a: CheckReport, b_name: str, b: CheckReport
                   ) -> tuple[str, list[Verdict]]:
    """Both procedures' verdicts, most alarming first, and a sentence summing them up.

    A procedure that fails while the other passes is listed first (so B breaking a
    property that A keeps leads the section, with its counterexample); otherwise A then B.
    Within a verdict, errors the other procedure does not have come first.

    Args:
        a_name: A's name in the comparison.
        a: ``check_procedure`` of A's procedure.
        b_name: B's name in the comparison.
        b: ``check_procedure`` of B's procedure.

    Returns:
        The summary sentence and the verdicts in display order.
    """
    va, vb = _verdict("A", a_name, a, b), _verdict("B", b_name, b, a)
    verdicts = [vb, va] if (not b.ok and a.ok) else [va, vb]

    def failing(v: Verdict) -> str:
        return ", ".join(f.check for f in v.findings if f.severity == "error")

    if a.ok and b.ok:
        summary = "Both procedures pass every check."
    elif a.ok:
        summary = (f"The change breaks what A satisfies: B ({b_name}) fails "
                   f"{failing(vb)}, which A ({a_name}) passes.")
    elif b.ok:
        summary = (f"The change repairs A: A ({a_name}) fails {failing(va)}; B ({b_name}) "
                   f"passes every check.")
    else:
        new = ", ".join(f.check for f in vb.new_errors)
        summary = (f"Both procedures fail checks: A fails {failing(va)}; B fails "
                   f"{failing(vb)}" + (f" (new in B: {new})" if new else "") + ".")
    return summary, verdicts


# -- the KPI table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DiffRow:
    """One KPI in A and B and the difference, formatted (escaped by the template).

    Attributes:
        kpi_id: The KPI's id.
        label: The difference's label (naming both limits when the change moved one).
        b_label: B's label when it differs and ``label`` does not already say so.
        unit: The unit in words.
        a: A's mean with its 95% interval.
        b: B's mean with its 95% interval.
        diff: The mean paired difference B - A.
        ci: The 95% interval of the difference.
        significant: True when the interval excludes zero.
        direction: ``up`` or ``down`` for a significant difference, else empty.
    """

    kpi_id: str
    label: str
    b_label: str
    unit: str
    a: str
    b: str
    diff: str
    ci: str
    significant: bool
    direction: str


def diff_table(diffs: Sequence[KpiDiff]) -> list[tuple[str, list[DiffRow]]]:
    """Every KPI difference, grouped like the single-run report's KPI tables."""

    def row(d: KpiDiff) -> DiffRow:
        ci = ("–" if math.isnan(d.low) or math.isnan(d.high)
              else f"{_bare(signed(d.low, d.unit))} to {_bare(signed(d.high, d.unit))}")
        direction = ("" if not d.significant else "up" if d.diff > 0 else "down")
        # B's own label, unless the difference's label already names both limits
        b_label = d.b.label if d.label == d.a.label != d.b.label else ""
        return DiffRow(d.id, d.label, b_label, fg.unit_text(d.unit), mean_with_ci(d.a),
                       mean_with_ci(d.b), signed(d.diff, d.unit), ci, d.significant,
                       direction)

    return [(heading, [row(d) for d in group]) for heading, group in by_group(diffs)]


def only_in_one(c: Comparison) -> list[tuple[str, str]]:
    """KPIs only one side has (its procedure declares a deadline the other lacks)."""
    a_ids = {k.id for k in c.a_run.kpis}
    b_ids = {k.id for k in c.b_run.kpis}
    return ([("A", k.label) for k in c.a_run.kpis if k.id not in b_ids]
            + [("B", k.label) for k in c.b_run.kpis if k.id not in a_ids])


# -- figures -----------------------------------------------------------------------------------
def _kpi_interval(k: Kpi) -> tuple[float, float]:
    if not math.isnan(k.low):
        return k.low, k.high
    if k.exact_low is not None and k.exact_high is not None:
        return k.exact_low, k.exact_high
    return math.nan, math.nan


def compliance_compare_figure(c: Comparison, target: float = 0.95) -> Figure:
    """Deadlines met in A and B side by side (left), and the paired difference (right).

    Left: for each deadline (A's declared order, then B's additions) a bar for A and one
    for B with the KPI's 95% interval, and the target as a dashed line. Right: the mean
    paired difference B - A in percentage points with its 95% interval; a difference whose
    interval excludes zero is coloured (green up, red down), the others grey.
    """
    a_kpis = {k.id: k for k in c.a_run.kpis}
    b_kpis = {k.id: k for k in c.b_run.kpis}
    diffs = {d.id: d for d in c.diffs}
    a_dl = {d.id: d for d in c.a.procedure.deadlines}
    b_dl = {d.id: d for d in c.b.procedure.deadlines}
    ids = [*a_dl, *(d for d in b_dl if d not in a_dl)]
    fig = fg.new_figure(12.0, 1.6 + 0.62 * max(len(ids), 1))
    left, right = fig.subplots(1, 2, width_ratios=(1.6, 1.0), sharey=True)
    if not ids:
        fg.show_message(left, "Neither procedure declares a deadline.")
        right.set_visible(False)
        return fig
    ys = np.arange(len(ids))[::-1].astype(float)
    labels = []
    for y, did in zip(ys, ids, strict=True):
        la = fg.limit_words(a_dl[did]) if did in a_dl else "(not in A)"
        lb = fg.limit_words(b_dl[did]) if did in b_dl else "(not in B)"
        labels.append(f"{did}\n{la}" if la == lb else f"{did}\n{la} → {lb}")
        kid = f"deadline:{did}:share_met"
        for k, offset, colour in ((a_kpis.get(kid), 0.19, A_COLOUR),
                                  (b_kpis.get(kid), -0.19, B_COLOUR)):
            if k is None or not k.trials or math.isnan(k.mean):
                left.text(0.01, y + offset, "no clock judged", va="center", fontsize=7,
                          color=fg.MUTED, style="italic")
                continue
            left.barh(y + offset, k.mean, height=0.36, color=colour, alpha=0.85)
            low, high = _kpi_interval(k)
            if not math.isnan(low):
                left.errorbar(k.mean, y + offset,
                              xerr=[[max(0.0, k.mean - low)], [max(0.0, high - k.mean)]],
                              fmt="none", ecolor=fg.INK, elinewidth=1.0, capsize=2.5)
        d = diffs.get(kid)
        if d is None or math.isnan(d.diff):
            right.text(0.5, y, "no paired difference", transform=right.get_yaxis_transform(),
                       ha="center", va="center", fontsize=7.5, color=fg.MUTED, style="italic")
            continue
        colour = (fg.GREY if not d.significant else fg.GREEN if d.diff > 0 else fg.RED)
        pts = 100 * d.diff
        if not math.isnan(d.low):
            right.errorbar(pts, y, xerr=[[pts - 100 * d.low], [100 * d.high - pts]],
                           fmt="o", color=colour, ecolor=colour, elinewidth=1.6, capsize=3,
                           markersize=6)
        else:
            right.plot([pts], [y], "o", color=colour, markersize=6)
        right.annotate(_bare(signed(d.diff, "share")), (pts, y),
                       xytext=(0, 8), textcoords="offset points", ha="center", va="bottom",
                       fontsize=7.5, color=fg.INK if d.significant else fg.MUTED)
    left.set_yticks(ys, labels, fontsize=8)
    left.set_ylim(-0.6, len(ids) - 0.4)
    left.axvline(target, color=fg.RED, linestyle="--", linewidth=1.2)
    left.set_xlim(0, 1.0)
    left.xaxis.set_major_formatter(PercentFormatter(1.0))
    left.set_xlabel("share of judged clocks met", fontsize=9, color=fg.MUTED)
    left.set_title("Deadlines met: A and B", fontsize=10.5, color=fg.INK, loc="left")
    fg.style_axes(left, "x")
    right.axvline(0, color=fg.INK, linewidth=1.0)
    lo, hi = right.get_xlim()
    span = max(abs(lo), abs(hi), 1.0)
    right.set_xlim(-1.1 * span, 1.1 * span)
    right.set_xlabel("B − A (percentage points)", fontsize=9, color=fg.MUTED)
    right.set_title("Difference B − A, paired (same seed)", fontsize=10.5, color=fg.INK,
                    loc="left")
    right.xaxis.set_major_locator(MaxNLocator(nbins=7))
    fg.style_axes(right, "x")
    right.tick_params(axis="y", length=0)
    fig.suptitle(f"Deadlines met: B ({c.b_name}) against A ({c.a_name})", fontsize=12,
                 color=fg.INK, x=0.01, ha="left")
    handles = [Patch(color=A_COLOUR, alpha=0.85, label=f"A: {c.a_name}"),
               Patch(color=B_COLOUR, alpha=0.85, label=f"B: {c.b_name}"),
               Line2D([], [], color=fg.RED, linestyle="--", label=f"target {target:.0%}"),
               Line2D([], [], color=fg.GREEN, marker="o", label="B − A higher (CI excludes 0)"),
               Line2D([], [], color=fg.RED, marker="o", label="B − A lower (CI excludes 0)"),
               Line2D([], [], color=fg.GREY, marker="o", label="no significant difference")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8.5,
               frameon=False)
    return fig


def _start(run_out: Path) -> date:
    meta = read_json_object(run_out / "metadata.json") or {}
    return date.fromisoformat(str(meta["start_date"]))


def time_series_compare_figure(c: Comparison) -> Figure:
    """Caseload, open plans, the allocation queue and open cases over time, A and B overlaid.

    Each line is the mean across replications at each weekly sample after warm-up, the
    band the interval across replications (see :mod:`reports.figures`). A's plans are
    counted in A's ``plan_state`` and B's in B's.
    """
    sides = [(c.a_run.records, _start(c.a_run.out), c.a.spec.plan_state, A_COLOUR,
              f"A: {c.a_name}"),
             (c.b_run.records, _start(c.b_run.out), c.b.spec.plan_state, B_COLOUR,
              f"B: {c.b_name}")]
    panels_a = fg.series_panels(c.a.spec.plan_state)
    panels_b = fg.series_panels(c.b.spec.plan_state)
    fig = fg.new_figure(12.0, 7.2)
    axes = fig.subplots(2, 2, squeeze=False, sharex=True)
    for i, (pa, pb) in enumerate(zip(panels_a, panels_b, strict=True)):
        ax = axes[i // 2][i % 2]
        title = pa[0] if pa[0] == pb[0] else f"{pa[0]} / {pb[0]}"
        ax.set_title(title, fontsize=10, color=fg.INK, loc="left")
        drawn = 0
        peak = 0.0
        for (records, start, _plan, colour, label), panel in zip(sides, (pa, pb),
                                                                  strict=True):
            name = panel[2][0][0]  # the first (main) series of the panel: the mean
            dates, matrix = fg.series_dates(records, name, start)
            if not len(dates):
                continue
            fg.draw_band(ax, dates, matrix, colour, label)
            peak = max(peak, float(np.nanmax(matrix)))
            drawn += 1
        if not drawn:
            fg.show_message(ax, f"no samples of {pa[2][0][0]}")
            continue
        if peak == 0:
            ax.text(0.5, 0.5, "zero throughout, in every replication of A and B",
                    ha="center", va="center", transform=ax.transAxes, color=fg.MUTED,
                    fontsize=9)
        ax.set_ylabel(pa[1], fontsize=9, color=fg.MUTED)
        ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        fg.date_axis(ax)
        fg.style_axes(ax)
    fig.suptitle("Caseload, plans and queues over time: A and B (weekly samples after "
                 "warm-up)", fontsize=12, color=fg.INK, x=0.01, ha="left")
    reps = min(len(c.a_run.records), len(c.b_run.records))
    band = {"t95": f"band: 95% t-interval across {reps} replications",
            "range": "band: range of the 2 replications"}.get(fg.spread([1.0] * reps).kind)
    handles: list[Any] = [Line2D([], [], color=A_COLOUR, linewidth=1.8,
                                 label=f"A: {c.a_name} (mean)"),
                          Line2D([], [], color=B_COLOUR, linewidth=1.8,
                                 label=f"B: {c.b_name} (mean)")]
    if band is not None:
        handles.append(Patch(color=fg.MUTED, alpha=0.25, label=band))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8.5,
               frameon=False)
    return fig


def draw_compare_figures(c: Comparison, target: float = 0.95) -> list[ReportFigure]:
    """Every figure of the comparison report, in page order."""
    reps = min(len(c.a_run.records), len(c.b_run.records))
    return [
        ReportFigure(
            "compliance", "Deadlines met, A and B side by side",
            f"Left: the share of each deadline's clocks met (of those judged after warm-up) "
            f"in A and in B, with the 95% t-interval across replications (the pooled exact "
            f"interval with one replication); the dashed line is the {target:.0%} target. "
            f"Right: the mean paired difference B − A in percentage points with the 95% "
            f"t-interval of the {reps} per-replication differences; replication i of A and "
            f"B share random numbers, so the pairing removes most of the noise the two "
            f"runs have in common.",
            fg.png_bytes(compliance_compare_figure(c, target))),
        ReportFigure(
            "time-series", "Caseload, plans and queues over time",
            f"Weekly samples after warm-up: mean caseload per social worker, cases on a "
            f"child protection plan, cases waiting for a social worker and open cases, A "
            f"and B overlaid; {fg.interval_note(reps)}.",
            fg.png_bytes(time_series_compare_figure(c))),
    ]


# -- the page ----------------------------------------------------------------------------------
def side_by_side(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Two nested mappings flattened into ``(key, A value, B value, differs)`` rows.

    >>> side_by_side({"x": 1, "y": {"z": 2}}, {"x": 1, "y": {"z": 3}})
    [('x', '1', '1', False), ('y.z', '2', '3', True)]
    """
    fa, fb = dict(flatten("", a)), dict(flatten("", b))
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k, "–"), fb.get(k, "–"), fa.get(k) != fb.get(k)) for k in keys]


def _scenario_info(sc: Scenario, name: str, changed: bool) -> dict[str, Any]:
    return {"name": name, "scenario": sc.name, "title": sc.spec.title,
            "path": str(sc.path), "procedure_id": sc.procedure.id,
            "procedure_title": sc.procedure.title,
            "procedure_description": sc.procedure.description,
            "overrides": [(k, str(v)) for k, v in sorted(sc.overrides.items())],
            "text": scenario_text(sc), "changed": changed, "same_as_a": False}


def render_compare_report(c: Comparison, figures: Sequence[ReportFigure],
                          checks: tuple[str, list[Verdict]],
                          changed: dict[str, bool] | None = None) -> str:
    """The comparison page as HTML text (autoescaped jinja2 template ``compare.html``).

    Args:
        c: The comparison (with each side's scenario as run).
        figures: The drawn figures.
        checks: The summary and verdicts from :func:`check_verdicts`.
        changed: For ``a`` and ``b``, whether the inputs changed since the run.
    """
    changed = changed or {"a": False, "b": False}
    a_meta, b_meta = (read_json_object(run.out / "metadata.json") or {}
                      for run in (c.a_run, c.b_run))
    structural = diff_procedures(c.a.procedure, c.b.procedure)
    flagged = sorted((d for d in c.diffs if d.significant), key=importance)
    procedures = (c.a.procedure, c.b.procedure)
    sides = [_scenario_info(c.a, c.a_name, changed["a"]),
             _scenario_info(c.b, c.b_name, changed["b"])]
    sides[1]["same_as_a"] = (sides[1]["path"] == sides[0]["path"]
                             and sides[1]["text"] == sides[0]["text"])
    context = {
        "a_name": c.a_name,
        "b_name": c.b_name,
        "headline": headline(c),
        "highlights": [describe_difference(d, procedures) for d in flagged[:8]],
        "flagged": len(flagged),
        "total": len(c.diffs),
        "check_summary": checks[0],
        "verdicts": checks[1],
        "diff_rows": diff_rows(structural),
        "same_procedure": structural.is_empty,
        "scenario_rows": [row for row in side_by_side(
            c.a.spec.model_dump(mode="json"), c.b.spec.model_dump(mode="json")) if row[3]],
        "kpi_groups": diff_table(c.diffs),
        "only_in_one": only_in_one(c),
        "figures": figures,
        "replications": min(len(c.a_run.records), len(c.b_run.records)),
        "planned": c.settings.replications,
        "seed": c.settings.seed,
        "horizon_days": c.settings.horizon_days,
        "warm_up_days": c.settings.warm_up_days,
        "start_date": str(a_meta.get("start_date", "")),
        "sides": sides,
        "metadata_rows": side_by_side(a_meta, b_meta),
        "out": str(c.out),
    }
    return environment().get_template("compare.html").render(**context)


def build_compare_report(out: Path, target: float = 0.95) -> Path:
    """Build ``report.html`` and ``figures/*.png`` for the comparison folder ``out``.

    Args:
        out: A comparison folder written by ``cpsim compare`` (``a/``, ``b/``,
            ``comparison.json``).
        target: The compliance target share (0–1) drawn on the compliance figure.

    Returns:
        The path of the report.

    Raises:
        InputError: ``out`` is not a comparison folder, or a side holds no finished
            replication (nothing is written).
    """
    out = Path(out)
    comparison = load_comparison(out)
    changed = dict(comparison.changed)
    a_check = check_procedure(comparison.a.procedure)
    b_check = check_procedure(comparison.b.procedure)
    checks = check_verdicts(comparison.a_name, a_check, comparison.b_name, b_check)
    figures = draw_compare_figures(comparison, target)
    html = render_compare_report(comparison, figures, checks, changed)
    return write_report(out, figures, html)
