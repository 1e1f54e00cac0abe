"""Figures of a finished run, drawn from its stored records with matplotlib's object API.

Every function here takes plain result data (replication records, KPIs, the procedure) and
returns a new ``matplotlib.figure.Figure`` attached to an Agg canvas; nothing touches pyplot
or the global backend, and nothing is simulated. Intervals across replications follow one
rule, stated in every caption: with three or more replications, a 95% Student t-interval;
with two, the range (the t-interval on one degree of freedom is too wide to read); with one,
none. Compliance bars use the KPI's own interval instead (see :func:`compliance_figure`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DayLocator
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from model.spec import Deadline, Procedure
from simulations.kpi import Kpi
from simulations.stats import mean_ci

Record = Mapping[str, Any]
"""One replication's record, as stored by ``cpsim run`` (see ``RunRecord.to_json``)."""

INK = "#1a202c"
MUTED = "#4a5568"
GRID = "#e2e8f0"
BLUE = "#2b6cb0"
LIGHT_BLUE = "#90cdf4"
ORANGE = "#dd6b20"
GREEN = "#2f855a"
RED = "#c53030"
GREY = "#a0aec0"
PALETTE = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#b7791f", "#c53030", "#319795",
           "#d53f8c")

DPI = 110
WHOLE_DAY_UNITS = frozenset({"days", "working_days"})
"""Units whose elapsed values are whole numbers: a histogram bar is centred on its value."""
MAX_BARS = 60
"""Histogram bins are merged until a panel shows at most this many bars."""


# -- shared helpers --------------------------------------------------------------------------
def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (same figure, same bytes: no timestamps are embedded)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def unit_text(unit: str) -> str:
    """A unit name as words: ``working_days`` becomes ``working days``."""
    return unit.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Spread:
    """A mean across replications and the interval drawn around it.

    Attributes:
        mean: Mean of the non-missing values (NaN when there are none).
        low: Lower end of the interval (NaN when there is no interval).
        high: Upper end of the interval (NaN when there is no interval).
        kind: ``t95`` (95% t-interval), ``range`` (min to max) or ``none``.
    """

    mean: float
    low: float
    high: float
    kind: str


def spread(values: Sequence[float], floor: float | None = None) -> Spread:
    """Mean and interval of replication values, by the rule in this module's docstring.

    Args:
        values: One value per replication; NaN values are left out.
        floor: Clip the interval at this value (e.g. 0 for counts), or None.

    >>> spread([1.0, 3.0])
    Spread(mean=2.0, low=1.0, high=3.0, kind='range')
    """
    vals = [float(v) for v in values if not math.isnan(v)]
    if not vals:
        return Spread(math.nan, math.nan, math.nan, "none")
    if len(vals) == 1:
        return Spread(vals[0], math.nan, math.nan, "none")
    if len(vals) == 2:
        return Spread(sum(vals) / 2, min(vals), max(vals), "range")
    mean, low, high = mean_ci(vals)
    if floor is not None:
        low = max(floor, low)
    return Spread(mean, low, high, "t95")


def interval_note(replications: int) -> str:
    """The caption's words for the interval drawn, given the number of replications."""
    if replications >= 3:
        return f"bands and error bars are 95% t-intervals across {replications} replications"
    if replications == 2:
        return ("bands and error bars show the range of the 2 replications (a t-interval on "
                "one degree of freedom would be too wide to read)")
    return "one replication, so no interval is drawn"


def years_measured(rec: Record) -> float:
    """Length of the measured window (after warm-up) in years."""
    return float(rec["horizon_hours"] - rec["warm_up_hours"]) / (24.0 * 365.25)


def style_axes(ax: Axes, grid_axis: Literal["both", "x", "y"] = "both") -> None:
    """The house style: light grid behind the data, no top or right spine, muted ticks."""
    ax.set_axisbelow(True)
    ax.grid(True, axis=grid_axis, color=GRID, linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=8.5)


def error_lengths(values: Sequence[Spread]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Asymmetric error-bar lengths (2 x n); zero where there is no interval."""
    lower = [0.0 if math.isnan(s.low) else max(0.0, s.mean - s.low) for s in values]
    upper = [0.0 if math.isnan(s.high) else max(0.0, s.high - s.mean) for s in values]
    return np.array([lower, upper], dtype=float)


def show_message(ax: Axes, text: str) -> None:
    """Replace an empty panel's axes with a centred note saying why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=MUTED,
            fontsize=10, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def limit_words(d: Deadline) -> str:
    """A deadline's limits in words, e.g. ``at least 28 days, within 42 days``."""
    parts = []
    if d.at_least is not None:
        parts.append(f"at least {d.at_least}")
    if d.within is not None:
        parts.append(f"within {d.within}")
    return ", ".join(parts)


def _fmt_rate(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


# -- 1. compliance ---------------------------------------------------------------------------
def compliance_figure(kpis: Sequence[Kpi], procedure: Procedure,
                      target: float = 0.95) -> Figure:
    """Share of each deadline met, with its 95% interval, against a target share.

    One horizontal bar per deadline of the procedure, in declared order. The error bar is
    the KPI's 95% t-interval across replications (clipped to 0–100%); with one replication
    it is the pooled exact (Clopper-Pearson) interval. Bars at or above ``target`` are green,
    below it orange; deadlines with no judged clock say so.

    Args:
        kpis: The run's KPIs (``deadline:<id>:share_met`` are used).
        procedure: The procedure, for deadline order and limits.
        target: The target share, drawn as a dashed line (0–1).
    """
    by_id = {k.id: k for k in kpis}
    rows = [(d, by_id[f"deadline:{d.id}:share_met"]) for d in procedure.deadlines
            if f"deadline:{d.id}:share_met" in by_id]
    fig = new_figure(10.0, 1.4 + 0.5 * max(len(rows), 1))
    ax = fig.add_subplot()
    if not rows:
        show_message(ax, "This procedure declares no deadlines.")
        return fig
    ys = np.arange(len(rows))[::-1]
    for y, (d, k) in zip(ys, rows, strict=True):
        label = f"{d.id}\n{limit_words(d)}"
        ax.text(-0.01, y, label, transform=ax.get_yaxis_transform(), ha="right", va="center",
                fontsize=8.5, color=INK, linespacing=1.15)
        if not k.trials or math.isnan(k.mean):
            ax.text(0.01, y, "no clock judged after warm-up", va="center", fontsize=8.5,
                    color=MUTED, style="italic")
            continue
        low, high = k.low, k.high
        if math.isnan(low) and k.exact_low is not None:
            low, high = k.exact_low, k.exact_high if k.exact_high is not None else k.mean
        colour = GREEN if k.mean >= target else ORANGE
        ax.barh(y, k.mean, height=0.62, color=colour, alpha=0.85)
        if not math.isnan(low):
            ax.errorbar(k.mean, y, xerr=[[max(0.0, k.mean - low)], [max(0.0, high - k.mean)]],
                        fmt="none", ecolor=INK, elinewidth=1.2, capsize=3)
        ax.text(1.025, y, f"{100 * k.mean:.1f}%  ({k.successes:,}/{k.trials:,})",
                transform=ax.get_yaxis_transform(), va="center", fontsize=8.5, color=INK)
    ax.axvline(target, color=RED, linestyle="--", linewidth=1.3)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of judged clocks met (%; judged = met, missed or open and overdue)",
                  fontsize=9, color=MUTED)
    ax.set_title("Deadlines met against target", fontsize=12, color=INK, loc="left")
    style_axes(ax, "x")
    handles = [Patch(color=GREEN, alpha=0.85, label=f"at or above target ({target:.0%})"),
               Patch(color=ORANGE, alpha=0.85, label="below target"),
               Line2D([], [], color=RED, linestyle="--", label=f"target {target:.0%}"),
               Line2D([], [], color=INK, marker="|", linestyle="-", label="95% interval")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8.5,
               frameon=False)
    return fig


# -- 2. elapsed-time histograms --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Hist:
    deadline: Deadline
    counts: np.ndarray[Any, np.dtype[np.float64]]
    width: float
    unit: str


def _pooled_hist(records: Sequence[Record], d: Deadline) -> _Hist | None:
    rows = [r["deadlines"][d.id] for r in records if d.id in r.get("deadlines", {})]
    hists = [list(row.get("hist") or []) for row in rows]
    size = max((len(h) for h in hists), default=0)
    if size == 0:
        return None
    counts = np.zeros(size, dtype=float)
    for h in hists:
        counts[: len(h)] += np.asarray(h, dtype=float)
    if counts.sum() <= 0:
        return None
    limit = d.within or d.at_least
    assert limit is not None
    width = float(rows[0].get("hist_width") or 1.0)
    return _Hist(d, counts, width, str(rows[0].get("unit", limit.unit)))


def _draw_hist(ax: Axes, h: _Hist) -> None:
    d, counts, w = h.deadline, h.counts, h.width
    limits = [float(x.value) for x in (d.within, d.at_least) if x is not None]
    total = float(counts.sum())
    # keep the bulk of the distribution and room past the limit; count the rest as overflow
    cum = np.cumsum(counts)
    bulk = int(np.searchsorted(cum, 0.995 * total)) + 1
    room = math.ceil(1.25 * max(limits) / w) + 1
    keep = min(len(counts), max(bulk, room))
    overflow = float(counts[keep:].sum())
    shown = counts[:keep]
    merge = max(1, math.ceil(keep / MAX_BARS))
    if merge > 1:
        pad = (-len(shown)) % merge
        shown = np.concatenate([shown, np.zeros(pad)]).reshape(-1, merge).sum(axis=1)
    step = merge * w
    offset = -w / 2 if h.unit in WHOLE_DAY_UNITS else 0.0
    lefts = offset + np.arange(len(shown)) * step
    centres = lefts + step / 2  # for whole days: the middle value of the merged days
    inside = np.ones(len(shown), dtype=bool)
    if d.within is not None:
        inside &= centres <= d.within.value
    if d.at_least is not None:
        inside &= centres >= d.at_least.value
    colours = [BLUE if ok else ORANGE for ok in inside]
    ax.bar(lefts, shown, width=step, align="edge", color=colours, edgecolor="white",
           linewidth=0.3)
    # whole days: the line sits on the edge of the last (first) allowed day's bar
    edge = w / 2 if h.unit in WHOLE_DAY_UNITS else 0.0
    if d.within is not None:
        ax.axvline(d.within.value + edge, color=RED, linewidth=1.4)
    if d.at_least is not None:
        ax.axvline(d.at_least.value - edge, color=RED, linewidth=1.4, linestyle="--")
    if overflow:
        ax.text(0.98, 0.95, f"+{overflow:,.0f} beyond", transform=ax.transAxes, ha="right",
                va="top", fontsize=7.5, color=MUTED)
    ax.set_xlim(lefts[0], lefts[-1] + step)
    ax.set_title(f"{d.id}\n{limit_words(d)} · n = {total:,.0f}", fontsize=8.5, color=INK)
    ax.set_xlabel(f"elapsed ({unit_text(h.unit)})", fontsize=8, color=MUTED)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    style_axes(ax, "y")
    ax.tick_params(labelsize=7.5)


def elapsed_figure(records: Sequence[Record], procedure: Procedure) -> Figure:
    """Elapsed-time histograms, one small panel per deadline with data, limit marked.

    Histograms are summed across replications (clocks that closed after warm-up, met or
    missed). A solid red line is the latest allowed time (``within``), a dashed one the
    earliest (``at_least``). For whole-day units each bar is centred on its day and the
    line sits on the edge of the last (or first) allowed day.
    """
    hists = [h for d in procedure.deadlines if (h := _pooled_hist(records, d)) is not None]
    if not hists:
        fig = new_figure(8.0, 2.5)
        show_message(fig.add_subplot(), "No deadline clock closed after warm-up.")
        return fig
    cols = min(4, len(hists))
    rows = math.ceil(len(hists) / cols)
    fig = new_figure(3.3 * cols, 2.55 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, h in enumerate(hists):
        ax = axes[i // cols][i % cols]
        _draw_hist(ax, h)
        if i % cols == 0:
            ax.set_ylabel("clocks (all replications)", fontsize=8, color=MUTED)
    for j in range(len(hists), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle("Time taken against each statutory limit", fontsize=12, color=INK,
                 x=0.01, ha="left")
    handles = [Patch(color=BLUE, label="within the limit"),
               Patch(color=ORANGE, label="outside the limit"),
               Line2D([], [], color=RED, label="limit (latest allowed)"),
               Line2D([], [], color=RED, linestyle="--", label="minimum (earliest allowed)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8.5,
               frameon=False)
    return fig


# -- 3. time series --------------------------------------------------------------------------
def aligned_series(records: Sequence[Record], name: str
                   ) -> tuple[list[int], np.ndarray[Any, np.dtype[np.float64]]]:
    """Sample days present in every replication, and a replications x days matrix."""
    per = [dict(zip(r.get("sample_days", []), r.get("series", {}).get(name, []), strict=False))
           for r in records]
    if not per or not all(per):
        return [], np.zeros((0, 0))
    days = sorted(set.intersection(*(set(p) for p in per)))
    return days, np.array([[p[day] for day in days] for p in per], dtype=float)


def draw_band(ax: Axes, dates: np.ndarray[Any, np.dtype[np.datetime64]],
              matrix: np.ndarray[Any, np.dtype[np.float64]], colour: str, label: str) -> None:
    """The mean of each column as a line, with the interval across replications as a band."""
    spreads = [spread(list(matrix[:, j]), floor=0.0) for j in range(matrix.shape[1])]
    mean = [s.mean for s in spreads]
    # a single sample (a very short run) is a point, which a line alone would not show
    ax.plot(dates, mean, color=colour, linewidth=1.6, label=label,
            marker="o" if len(dates) == 1 else None)
    if spreads and spreads[0].kind != "none":
        ax.fill_between(dates, [s.low for s in spreads], [s.high for s in spreads],
                        color=colour, alpha=0.2, linewidth=0)


def series_dates(records: Sequence[Record], name: str, start: date
                 ) -> tuple[np.ndarray[Any, np.dtype[np.datetime64]],
                            np.ndarray[Any, np.dtype[np.float64]]]:
    """A series' sample dates (calendar days from ``start``) and its replications x days matrix.

    Both are empty when some replication has no samples of ``name``.
    """
    days, matrix = aligned_series(records, name)
    dates = np.array([start + timedelta(days=day) for day in days], dtype="datetime64[D]")
    return dates, matrix


def date_axis(ax: Axes) -> None:
    """Calendar dates on the x axis, with few, concise tick labels.

    Call after plotting. A span of under a fortnight (a very short run, or a single sample)
    gets whole-day ticks, widened to three days around a single date: matplotlib's
    automatic locator finds no interval it likes there and warns.
    """
    low, high = (float(x) for x in ax.dataLim.intervalx)  # days (matplotlib date numbers)
    locator: AutoDateLocator | DayLocator
    if math.isfinite(low) and math.isfinite(high) and high - low < 14:
        if high - low < 2:  # matplotlib would widen a single date to four years
            low, high = (low + high) / 2 - 1.5, (low + high) / 2 + 1.5
        ax.set_xlim(low, high)
        locator = DayLocator(interval=max(1, math.ceil((high - low) / 7)))  # type: ignore[no-untyped-call]
    else:
        locator = AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def series_panels(plan_state: str) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """The time-series panels: ``(title, y label, [(series, line label, colour), ...])``.

    Args:
        plan_state: The state whose stays count as plans (the scenario's ``plan_state``).
    """
    return [
        ("Caseload per social worker", "cases per worker",
         [("caseload_mean", "mean", BLUE), ("caseload_p90", "90th percentile", ORANGE)]),
        (f"Cases on a plan ({plan_state})", "cases", [(f"stage:{plan_state}", "open", BLUE)]),
        ("Cases waiting for a social worker", "cases", [("unallocated_queue", "waiting",
                                                         BLUE)]),
        ("Open cases (not resting closed)", "cases", [("open_cases", "open", BLUE)]),
    ]


def time_series_figure(records: Sequence[Record], start: date, plan_state: str) -> Figure:
    """Caseload, open plans, the allocation queue and open cases over the measured window.

    Each line is the mean across replications at each weekly sample; the shaded band is the
    interval across replications (see the module docstring). Dates are calendar dates from
    the run's start date.

    Args:
        records: The replication records.
        start: The calendar date of simulation day 0 (metadata ``start_date``).
        plan_state: The state whose stays count as plans (the scenario's ``plan_state``).
    """
    panels = series_panels(plan_state)
    fig = new_figure(12.0, 7.0)
    axes = fig.subplots(2, 2, squeeze=False, sharex=True)
    for i, (title, ylabel, lines) in enumerate(panels):
        ax = axes[i // 2][i % 2]
        drawn = 0
        peak = 0.0
        for name, label, colour in lines:
            days, matrix = aligned_series(records, name)
            if not days:
                continue
            peak = max(peak, float(np.nanmax(matrix)) if matrix.size else 0.0)
            dates = np.array([start + timedelta(days=day) for day in days],
                             dtype="datetime64[D]")
            draw_band(ax, dates, matrix, colour, label)
            drawn += 1
        if not drawn:
            show_message(ax, f"no samples of {lines[0][0]}")
            ax.set_title(title, fontsize=10, color=INK, loc="left")
            continue
        ax.set_title(title, fontsize=10, color=INK, loc="left")
        ax.set_ylabel(ylabel, fontsize=9, color=MUTED)
        ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        if peak == 0:
            ax.text(0.5, 0.5, "zero throughout, in every replication", ha="center",
                    va="center", transform=ax.transAxes, color=MUTED, fontsize=9)
        date_axis(ax)
        style_axes(ax)
        if len(lines) > 1:
            ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle("Caseload and open cases over time (weekly samples after warm-up)",
                 fontsize=12, color=INK, x=0.01, ha="left")
    kinds = {spread([1.0] * len(records)).kind}
    band = {"t95": f"95% t-interval across {len(records)} replications",
            "range": "range of the 2 replications"}.get(kinds.pop())
    handles: list[Any] = [Line2D([], [], color=MUTED, linewidth=1.6,
                                 label="mean across replications")]
    if band is not None:
        handles.append(Patch(color=MUTED, alpha=0.25, label=band))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8.5,
               frameon=False)
    return fig


# -- 4. flow through the stages --------------------------------------------------------------
def main_stages(procedure: Procedure) -> list[str]:
    """Top-level states of the main flow, in the procedure's declared order."""
    return [sid for sid, st in procedure.states.items()
            if st.parent is None and st.region is None]


def _top(procedure: Procedure, state: str) -> str:
    return procedure.ancestors(state)[-1]


def stage_moves(procedure: Procedure) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Triggers that move a case from one main-flow stage to another.

    A trigger is counted as a move from stage A to stage B only when every transition that
    uses it goes from A to B; triggers shared by moves between different stages cannot be
    split by their counts alone and are returned separately.

    Returns:
        ``{trigger: (from_stage, to_stage)}`` and the sorted ambiguous triggers.
    """
    pairs: dict[str, set[tuple[str, str]]] = {}
    for t in procedure.transitions:
        states = (*t.sources, t.dest)
        if any(procedure.states[s].region is not None for s in states):
            continue
        dest = _top(procedure, t.dest)
        for s in t.sources:
            pairs.setdefault(t.trigger, set()).add((_top(procedure, s), dest))
    moves: dict[str, tuple[str, str]] = {}
    ambiguous: list[str] = []
    for trigger, found in sorted(pairs.items()):
        crossing = {p for p in found if p[0] != p[1]}
        if not crossing:
            continue
        if len(found) == 1:
            moves[trigger] = next(iter(found))
        else:
            ambiguous.append(trigger)
    return moves, ambiguous


def flow_figure(records: Sequence[Record], procedure: Procedure) -> Figure:
    """Cases entering each stage per year (a funnel) and the moves between stages.

    Left: entries per year into every top-level stage of the main flow, in declared order,
    with the interval across replications. Right: a from/to matrix of moves per year
    between stages, counted from the triggers that make them (see :func:`stage_moves`).
    """
    stages = main_stages(procedure)
    moves, ambiguous = stage_moves(procedure)
    fig = new_figure(14.0, 1.6 + 0.55 * max(len(stages), 4))
    left, right = fig.subplots(1, 2, width_ratios=(1.0, 1.25))
    rates = [spread([r.get("entries", {}).get(s, 0) / years_measured(r) for r in records],
                    floor=0.0) for s in stages]
    ys = np.arange(len(stages))[::-1]
    left.barh(ys, [s.mean for s in rates], xerr=error_lengths(rates), color=BLUE, alpha=0.85,
              height=0.65, error_kw={"ecolor": INK, "elinewidth": 1.0, "capsize": 2.5})
    left.set_yticks(ys, stages, fontsize=8.5)
    top = max((s.high if not math.isnan(s.high) else s.mean) for s in rates) if rates else 1.0
    for y, s in zip(ys, rates, strict=True):
        edge = s.high if not math.isnan(s.high) else s.mean
        left.text(edge + 0.01 * top, y, _fmt_rate(s.mean), va="center", fontsize=8,
                  color=INK)
    left.set_xlim(0, 1.15 * top if top > 0 else 1.0)
    left.set_xlabel("cases entering per year (mean)", fontsize=9, color=MUTED)
    left.set_title("Entries into each stage", fontsize=10, color=INK, loc="left")
    style_axes(left, "x")
    index = {s: i for i, s in enumerate(stages)}
    matrix = np.zeros((len(stages), len(stages)))
    for trigger, (a, b) in moves.items():
        if a in index and b in index:
            matrix[index[a], index[b]] += float(np.mean(
                [r.get("triggers", {}).get(trigger, 0) / years_measured(r) for r in records]))
    shown = np.where(matrix > 0, matrix, np.nan)
    peak = float(np.nanmax(shown)) if np.any(matrix > 0) else 1.0
    right.imshow(shown, cmap="Blues", vmin=0, vmax=peak * 1.15, aspect="auto")
    for i in range(len(stages)):
        for j in range(len(stages)):
            if matrix[i, j] > 0:
                right.text(j, i, _fmt_rate(matrix[i, j]), ha="center", va="center",
                           fontsize=7.5, color="white" if matrix[i, j] > 0.6 * peak else INK)
    right.set_xticks(range(len(stages)), stages, rotation=40, ha="right", fontsize=8)
    right.set_yticks(range(len(stages)), stages, fontsize=8)
    right.set_xlabel("to stage", fontsize=9, color=MUTED)
    right.set_ylabel("from stage", fontsize=9, color=MUTED)
    right.set_xticks(np.arange(len(stages) + 1) - 0.5, minor=True)
    right.set_yticks(np.arange(len(stages) + 1) - 0.5, minor=True)
    right.grid(which="minor", color=GRID, linewidth=0.8)
    right.tick_params(which="minor", length=0)
    right.tick_params(colors=MUTED)
    right.set_title("Moves between stages per year (mean)", fontsize=10, color=INK, loc="left")
    if ambiguous:
        right.text(0.0, -0.02, "not split by stage (shared triggers): " + ", ".join(ambiguous),
                   transform=fig.transFigure, fontsize=7.5, color=MUTED, va="bottom")
    fig.suptitle("How cases flow through the stages", fontsize=12, color=INK, x=0.01,
                 ha="left")
    return fig


# -- 5. resolutions by stage -----------------------------------------------------------------
def resolution_states(procedure: Procedure) -> dict[str, list[str]]:
    """For each region, its states a case can reach (every child but the region's initial)."""
    out: dict[str, list[str]] = {}
    for region in procedure.regions:
        st = procedure.states.get(region)
        if st is None:
            continue
        out[region] = [c for c in st.children if c != st.initial]
    return out


def resolution_figure(records: Sequence[Record], procedure: Procedure) -> Figure | None:
    """Entries per year into each state of each region (e.g. a resolution ladder).

    Returns:
        The figure, or None when the procedure has no regions.
    """
    regions = {r: s for r, s in resolution_states(procedure).items() if s}
    if not regions:
        return None
    fig = new_figure(max(6.0, 1.0 + 0.85 * max(len(s) for s in regions.values())),
                     3.8 * len(regions))
    axes = fig.subplots(len(regions), 1, squeeze=False)
    for ax, (region, states) in zip(axes[:, 0], regions.items(), strict=True):
        rates = [spread([r.get("entries", {}).get(s, 0) / years_measured(r) for r in records],
                        floor=0.0) for s in states]
        xs = np.arange(len(states))
        colours = [PALETTE[6] if procedure.states[s].terminal else PALETTE[3] for s in states]
        ax.bar(xs, [s.mean for s in rates], yerr=error_lengths(rates), color=colours, alpha=0.85,
               error_kw={"ecolor": INK, "elinewidth": 1.0, "capsize": 3})
        names = [procedure.states[s].name.replace("_", " ") for s in states]
        ax.set_xticks(xs, names, rotation=30 if len(states) > 6 else 0,
                      ha="right" if len(states) > 6 else "center", fontsize=8.5)
        for x, s in zip(xs, rates, strict=True):
            edge = s.high if not math.isnan(s.high) else s.mean
            ax.text(x, edge, _fmt_rate(s.mean), ha="center", va="bottom", fontsize=8,
                    color=INK)
        ax.set_ylabel("cases entering per year", fontsize=9, color=MUTED)
        ax.set_title(f"Region {region}: cases reaching each stage", fontsize=10, color=INK,
                     loc="left")
        ax.margins(y=0.15)
        style_axes(ax, "y")
    fig.legend(handles=[Patch(color=PALETTE[3], alpha=0.85, label="open stage"),
                        Patch(color=PALETTE[6], alpha=0.85, label="outcome (a resting state)")],
               loc="outside lower center", ncols=2, fontsize=8.5, frameon=False)
    return fig


# -- 6. postponements ------------------------------------------------------------------------
def postponement_figure(records: Sequence[Record]) -> Figure:
    """Postponements per year by trigger and reason (``trigger:reason`` keys)."""
    keys = sorted({k for r in records for k in r.get("postponements", {})})
    fig = new_figure(10.0, 1.6 + 0.5 * max(len(keys), 2))
    ax = fig.add_subplot()
    ax.set_title("Postponements by reason", fontsize=12, color=INK, loc="left")
    if not keys:
        show_message(ax, "No postponement was recorded after warm-up.")
        return fig
    rates = [spread([r.get("postponements", {}).get(k, 0) / years_measured(r)
                     for r in records], floor=0.0) for k in keys]
    reasons = sorted({k.partition(":")[2] for k in keys})
    colour = {reason: PALETTE[i % len(PALETTE)] for i, reason in enumerate(reasons)}
    ys = np.arange(len(keys))[::-1]
    ax.barh(ys, [s.mean for s in rates], xerr=error_lengths(rates), height=0.6,
            color=[colour[k.partition(":")[2]] for k in keys], alpha=0.85,
            error_kw={"ecolor": INK, "elinewidth": 1.0, "capsize": 3})
    labels = [f"{k.partition(':')[0].replace('_', ' ')}\n"
              f"{k.partition(':')[2].replace('_', ' ') or 'no reason given'}" for k in keys]
    ax.set_yticks(ys, labels, fontsize=8.5)
    top = max((s.high if not math.isnan(s.high) else s.mean) for s in rates)
    for y, s in zip(ys, rates, strict=True):
        edge = s.high if not math.isnan(s.high) else s.mean
        ax.text(edge + 0.01 * max(top, 1e-9), y, _fmt_rate(s.mean), va="center", fontsize=8,
                color=INK)
    ax.set_xlim(0, 1.12 * top if top > 0 else 1.0)
    ax.set_xlabel("postponements per year (mean)", fontsize=9, color=MUTED)
    style_axes(ax, "x")
    fig.legend(handles=[Patch(color=colour[r], alpha=0.85,
                              label=r.replace("_", " ") or "no reason given")
                        for r in reasons],
               title="reason", title_fontsize=8.5, loc="outside right upper", fontsize=8.5,
               frameon=False)
    return fig
