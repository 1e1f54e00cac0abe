"""The self-contained HTML report of a sweep folder: how much is enough?

The page opens with the sweep's answer in one sentence (:meth:`Sweep.sentence`: the smallest
value of the first varied field meeting the target with the requested confidence, or the
grid when there is no target). Then capacity curves: the target KPI against the first
varied field, one line per setting of the other varied fields, with 95% intervals across
replications, the target as a horizontal line and the chosen value marked; the key KPIs
(deadlines met, caseload) the same way; the tidy table summarised one row per grid point;
and the settings and metadata.

Every grid point is read back from the sweep folder, not run again; the page is made and
written the way :mod:`reports.report` makes a run's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from reports import figures as fg
from reports.report import (
    ReportFigure,
    flatten,
    format_value,
    mean_with_ci,
    scenario_text,
    write_report,
)
from reports.templating import environment
from simulations.kpi import Kpi
from simulations.results import (
    Answer,
    Sweep,
    SweepPoint,
    Target,
    load_sweep,
    read_json_object,
)
from simulations.stats import one_sided_bound

Setting = tuple[tuple[str, float], ...]
"""Values of the varied fields other than the first (empty for a one-field sweep)."""

CAPACITY_KPIS = ("capacity:caseload_mean", "capacity:unallocated_queue",
                 "capacity:allocation_wait_days")
"""The capacity KPIs shown for every grid point."""

MAX_TICKS = 12
"""The first field's values are all labelled when there are at most this many."""


# -- grouping the grid -------------------------------------------------------------------------
def short(path: str) -> str:
    """A field's last name: ``staffing.social_workers.establishment_fte`` → ``establishment_fte``.

    >>> short("demand.referrals_per_year")
    'referrals_per_year'
    """
    return path.rsplit(".", 1)[-1]


def setting_label(setting: Setting) -> str:
    """The other fields' values in words (``referrals_per_year = 4100``), or ``all points``.

    >>> setting_label((("demand.referrals_per_year", 4100.0),)), setting_label(())
    ('referrals_per_year = 4100', 'all points')
    """
    return ", ".join(f"{short(p)} = {v:g}" for p, v in setting) or "all points"


def curves(points: Sequence[SweepPoint]) -> dict[Setting, list[SweepPoint]]:
    """The grid points by setting of the other fields, each sorted by the first field."""
    out: dict[Setting, list[SweepPoint]] = {}
    for p in points:
        out.setdefault(p.values[1:], []).append(p)
    for rows in out.values():
        rows.sort(key=lambda p: p.values[0][1])
    return out


def kpi_at(point: SweepPoint, kpi_id: str) -> Kpi | None:
    """A grid point's KPI by id (None when its procedure has no such KPI)."""
    return next((k for k in point.run.kpis if k.id == kpi_id), None)


def _side(target: Target) -> str:
    return "lower" if target.op == ">=" else "upper"


def target_bound(point: SweepPoint, target: Target, confidence: float) -> float:
    """The one-sided bound the answer is decided on (NaN without at least 2 values)."""
    k = kpi_at(point, target.kpi)
    return math.nan if k is None else one_sided_bound(k.values, confidence, _side(target))


def meets(bound: float, target: Target) -> bool | None:
    """Whether a bound is on the right side of the target (None when there is no bound).

    >>> t = Target("x", ">=", 0.95)
    >>> meets(0.96, t), meets(0.9, t), meets(float("nan"), t)
    (True, False, None)
    """
    if math.isnan(bound):
        return None
    return bound >= target.value if target.op == ">=" else bound <= target.value


def key_kpis(s: Sweep) -> list[str]:
    """The KPIs drawn for every sweep.

    Each deadline's share met (deadlines with a latest time and data at some grid point),
    then the mean caseload per social worker.
    """
    ids: list[str] = []
    if not s.points:
        return ids
    for k in s.points[0].run.kpis:
        if not (k.group == "deadline" and k.id.endswith(":share_met") and k.headline):
            continue
        if any((kk := kpi_at(p, k.id)) is not None and not math.isnan(kk.mean)
               for p in s.points):
            ids.append(k.id)
    return [*ids, "capacity:caseload_mean"]


# -- figures -----------------------------------------------------------------------------------
def _draw_curves(ax: Axes, s: Sweep, kpi_id: str, *, detail: bool) -> str:
    """Draw one KPI against the first field, a line per setting; return the KPI's unit.

    With ``detail`` and the sweep's target on this KPI, also draw the one-sided bound the
    answer is decided on, the target and the chosen smallest value of each line.
    """
    first = s.varies[0]
    answers: dict[Setting, Answer] = {a.others: a for a in s.answers}
    target = s.target if s.target is not None and s.target.kpi == kpi_id else None
    unit = ""
    for i, (setting, rows) in enumerate(curves(s.points).items()):
        colour = fg.PALETTE[i % len(fg.PALETTE)]
        xs, means, lows, highs, bounds = [], [], [], [], []
        for p in rows:
            k = kpi_at(p, kpi_id)
            if k is None:
                continue
            unit = k.unit
            xs.append(p.values[0][1])
            means.append(k.mean)
            lows.append(k.low)
            highs.append(k.high)
            if target is not None:
                bounds.append(target_bound(p, target, s.confidence))
        if not xs:
            continue
        ax.plot(xs, means, marker="o", markersize=4, linewidth=1.8, color=colour,
                label=setting_label(setting))
        ax.fill_between(xs, lows, highs, color=colour, alpha=0.18, linewidth=0)
        if target is None or not detail:
            continue
        ax.plot(xs, bounds, linestyle=":", linewidth=1.4, color=colour)
        ans = answers.get(setting)
        if ans is not None and ans.value is not None:
            y = means[xs.index(ans.value)] if ans.value in xs else target.value
            ax.plot([ans.value], [y], marker="*", markersize=17, color=colour,
                    markeredgecolor=fg.INK, markeredgewidth=0.8, zorder=5)
            ax.annotate(f"{ans.value:g}", (ans.value, y), xytext=(0, 10),
                        textcoords="offset points", ha="center", va="bottom", fontsize=9,
                        color=fg.INK, fontweight="bold")
    if target is not None:
        ax.axhline(target.value, color=fg.RED, linestyle="--", linewidth=1.3)
    values = list(first.values)
    if len(values) <= MAX_TICKS:
        ax.set_xticks(values, [f"{v:g}" for v in values])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8))
    if unit == "share":
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 1.0 + 0.02 * (high - low)))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    fg.style_axes(ax)
    return unit


def _legend(fig: Figure, s: Sweep, target: bool, detail: bool) -> None:
    settings = list(curves(s.points))
    handles: list[Any] = []
    if len(settings) > 1:
        handles += [Line2D([], [], color=fg.PALETTE[i % len(fg.PALETTE)], marker="o",
                           markersize=4, linewidth=1.8, label=setting_label(st))
                    for i, st in enumerate(settings)]
    else:
        handles.append(Line2D([], [], color=fg.PALETTE[0], marker="o", markersize=4,
                              linewidth=1.8, label="mean across replications"))
    handles.append(Patch(color=fg.MUTED, alpha=0.25, label="95% t-interval across "
                         "replications"))
    if target and s.target is not None:
        handles.append(Line2D([], [], color=fg.RED, linestyle="--",
                              label=f"target: {s.target}"))
    if target and detail:
        handles += [Line2D([], [], color=fg.MUTED, linestyle=":",
                           label=f"one-sided {s.confidence:.0%} bound (decides)"),
                    Line2D([], [], color=fg.MUTED, marker="*", markersize=12, linestyle="",
                           markeredgecolor=fg.INK, label="smallest value meeting the target")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3),
               fontsize=8.5, frameon=False)


def target_figure(s: Sweep) -> Figure:
    """The target KPI against the first varied field: the capacity curve of the question.

    One line per setting of the other fields (the mean across replications, with its 95%
    t-interval as a band), the one-sided bound the answer is decided on (dotted), the
    target (dashed) and the smallest value meeting it on each line (a star).

    Raises:
        ValueError: the sweep has no target.
    """
    if s.target is None:
        raise ValueError("the sweep has no target")
    fig = fg.new_figure(10.0, 5.8)
    ax = fig.add_subplot()
    unit = _draw_curves(ax, s, s.target.kpi, detail=True)
    k = next((k for p in s.points if (k := kpi_at(p, s.target.kpi)) is not None), None)
    label = s.target.kpi if k is None else k.label
    ax.set_xlabel(s.varies[0].path, fontsize=9.5, color=fg.MUTED)
    ax.set_ylabel("share of judged clocks met" if s.target.kpi.endswith(":share_met")
                  else fg.unit_text(unit) or s.target.kpi, fontsize=9, color=fg.MUTED)
    ax.set_title(f"{label} against {short(s.varies[0].path)}", fontsize=12, color=fg.INK,
                 loc="left")
    _legend(fig, s, target=True, detail=True)
    return fig


def key_kpis_figure(s: Sweep) -> Figure:
    """Each deadline's share met and the mean caseload against the first varied field.

    Small multiples, one panel per KPI of :func:`key_kpis`, one line per setting of the
    other fields with its 95% t-interval band; a panel on the target KPI shows the target.
    """
    ids = key_kpis(s)
    cols = min(4, len(ids))
    rows = math.ceil(len(ids) / cols)
    fig = fg.new_figure(3.4 * cols, 2.7 * rows + 1.0)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, kid in enumerate(ids):
        ax = axes[i // cols][i % cols]
        unit = _draw_curves(ax, s, kid, detail=False)
        name = kid.split(":")[1]
        ax.set_title(name if unit == "share" else f"{name} ({fg.unit_text(unit)})",
                     fontsize=9, color=fg.INK, loc="left")
        ax.tick_params(labelsize=7.5)
        if i // cols == rows - 1 or i + cols >= len(ids):
            ax.set_xlabel(short(s.varies[0].path), fontsize=8, color=fg.MUTED)
    for j in range(len(ids), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle(f"Deadlines met and caseload against {short(s.varies[0].path)}",
                 fontsize=12, color=fg.INK, x=0.01, ha="left")
    _legend(fig, s, target=s.target is not None and s.target.kpi in ids, detail=False)
    return fig


def draw_sweep_figures(s: Sweep) -> list[ReportFigure]:
    """Every figure of the sweep report, in page order."""
    reps = min((len(p.run.records) for p in s.points), default=0)
    band = (f"bands are the 95% t-interval of the mean across {reps} replications "
            f"(none with one replication)")
    out = []
    if s.target is not None:
        out.append(ReportFigure(
            "target", f"{s.target.kpi} against {s.varies[0].path}",
            f"The target KPI at each value of {s.varies[0].path} tried, one line per "
            f"setting of the other varied fields; lines are means across replications and "
            f"{band}. The dashed line is the target ({s.target}); a value meets it when the "
            f"one-sided {s.confidence:.0%} confidence bound of the mean (dotted) is on the "
            f"right side of it, and the star marks the smallest value that does.",
            fg.png_bytes(target_figure(s))))
    out.append(ReportFigure(
        "kpis", f"Deadlines met and caseload against {s.varies[0].path}",
        f"Each deadline's share of judged clocks met (deadlines with a latest time and data "
        f"at some grid point) and the mean caseload per social worker, one line per "
        f"setting of the other varied fields; lines are means across replications and "
        f"{band}.",
        fg.png_bytes(key_kpis_figure(s))))
    return out


# -- tables ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointRow:
    """One grid point, formatted for the summary table (all strings but the flags).

    Attributes:
        values: The varied fields' values, in ``--vary`` order.
        folder: The point's results folder, relative to the sweep folder.
        replications: Replications finished at the point.
        target: The target KPI's mean and 95% interval (empty without a target).
        bound: The one-sided bound the answer is decided on.
        meets: ``yes``, ``no`` or ``–`` (no bound).
        chosen: True for the smallest value meeting the target on its line.
        capacity: The :data:`CAPACITY_KPIS`, each mean with its 95% interval.
        deadlines: The deadline shares of :func:`key_kpis`, each with its 95% interval.
    """

    values: tuple[str, ...]
    folder: str
    replications: int
    target: str
    bound: str
    meets: str
    chosen: bool
    capacity: tuple[str, ...]
    deadlines: tuple[str, ...]


def point_rows(s: Sweep) -> list[PointRow]:
    """One row per grid point, in grid order."""
    chosen = {(a.others, a.value) for a in s.answers if a.value is not None}
    deadline_ids = [k for k in key_kpis(s) if k.startswith("deadline:")]
    out = []
    for p in s.points:
        target, bound, ok = "", "", "–"
        if s.target is not None:
            target = mean_with_ci(kpi_at(p, s.target.kpi))
            b = target_bound(p, s.target, s.confidence)
            k = kpi_at(p, s.target.kpi)
            bound = format_value(b, k.unit if k is not None else "")
            verdict = meets(b, s.target)
            ok = "–" if verdict is None else "yes" if verdict else "no"
        folder = p.run.out.relative_to(s.out) if p.run.out.is_relative_to(s.out) else p.run.out
        out.append(PointRow(tuple(f"{v:g}" for _, v in p.values), str(folder),
                            len(p.run.records), target, bound, ok,
                            (p.values[1:], p.values[0][1]) in chosen,
                            tuple(mean_with_ci(kpi_at(p, kid)) for kid in CAPACITY_KPIS),
                            tuple(mean_with_ci(kpi_at(p, kid)) for kid in deadline_ids)))
    return out


def answer_rows(s: Sweep) -> list[tuple[str, str, str, str]]:
    """Each line's answer: ``(setting, smallest value, its bound, note)``."""
    if s.target is None:
        return []
    by_setting = curves(s.points)
    out = []
    for a in s.answers:
        if a.value is None:
            out.append((setting_label(a.others), "none of the values tried", "", ""))
            continue
        point = next((p for p in by_setting.get(a.others, []) if p.values[0][1] == a.value),
                     None)
        k = None if point is None else kpi_at(point, s.target.kpi)
        bound = "" if a.bound is None else format_value(a.bound, k.unit if k else "")
        note = ("" if a.monotone else "a larger value tried did not meet the target: "
                "the curve is not monotone at this precision, so run more replications")
        out.append((setting_label(a.others), f"{a.value:g}", bound, note))
    return out


# -- the page ----------------------------------------------------------------------------------
def render_sweep_report(s: Sweep, figures: Sequence[ReportFigure]) -> str:
    """The sweep page as HTML text (autoescaped jinja2 template ``sweep.html``)."""
    sc = s.scenario
    first_meta = (read_json_object(s.points[0].run.out / "metadata.json") or {}
                  if s.points else {})
    deadline_ids = [k for k in key_kpis(s) if k.startswith("deadline:")]
    labels = {k.id: k.label for k in s.points[0].run.kpis} if s.points else {}
    reps = [len(p.run.records) for p in s.points]
    context = {
        "sentence": s.sentence(),
        "scenario_name": sc.name,
        "scenario_title": sc.spec.title,
        "scenario_path": str(sc.path),
        "scenario_text": scenario_text(sc),
        "procedure_id": sc.procedure.id,
        "procedure_title": sc.procedure.title,
        "varies": [(v.path, ", ".join(f"{x:g}" for x in v.values)) for v in s.varies],
        "first": s.varies[0].path,
        "points": len(s.points),
        "target": None if s.target is None else str(s.target),
        "target_label": "" if s.target is None else labels.get(s.target.kpi, s.target.kpi),
        "confidence": f"{s.confidence:.0%}",
        "answers": answer_rows(s),
        "figures": figures,
        "rows": point_rows(s),
        "capacity_headers": [labels.get(k, k) for k in CAPACITY_KPIS],
        "deadline_headers": [k.split(":")[1] for k in deadline_ids],
        "replications": min(reps, default=0),
        "planned": s.settings.replications,
        "seed": s.settings.seed,
        "horizon_days": s.settings.horizon_days,
        "warm_up_days": s.settings.warm_up_days,
        "start_date": str(first_meta.get("start_date", "")),
        "sweep_rows": flatten("", read_json_object(s.out / "sweep.json") or {}),
        "metadata_rows": flatten("", first_meta),
        "out": str(s.out),
    }
    return environment().get_template("sweep.html").render(**context)


def build_sweep_report(out: Path) -> Path:
    """Build ``report.html`` and ``figures/*.png`` for the sweep folder ``out``.

    Args:
        out: A sweep folder written by ``cpsim sweep`` (``points/``, ``sweep.json``).

    Returns:
        The path of the report.

    Raises:
        InputError: ``out`` is not a sweep folder, or a grid point holds no finished
            replication (nothing is written).
    """
    out = Path(out)
    s = load_sweep(out)
    figures = draw_sweep_figures(s)
    return write_report(out, figures, render_sweep_report(s, figures))
