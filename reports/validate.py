"""The validation page: each published measure beside the simulated one, and the shapes overlaid.

Built from a :class:`~simulations.validate.Validation` (no simulation). Figures are embedded
as base64 PNG and also written to ``figures/``; the page is rendered with autoescaping and
nothing from an input file is marked safe; every file is written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.atomic import write_bytes_atomic
from reports import figures as fg
from reports.report import ReportFigure, write_report
from reports.templating import environment
from simulations.validate import (
    BANDS,
    ICPC_BINS,
    MEASURES,
    Validation,
    validation_csv,
    validation_table,
)

_SHORT = {
    BANDS[0]: "≤3 months", BANDS[1]: "3-6 months", BANDS[2]: "6-12 months",
    BANDS[3]: "1-2 years", BANDS[4]: "2 years+",
    ICPC_BINS[0]: "0-10", ICPC_BINS[1]: "11-15", ICPC_BINS[2]: "16-20", ICPC_BINS[3]: "21+",
}


def _shape_figure(v: Validation, measures: Sequence[str], title: str, xlabel: str,
                  name: str, caption: str) -> ReportFigure | None:
    published = {m: r for r in v.rows for m in [r.published.measure] if m in measures}
    if not published:
        return None
    fig = fg.new_figure(7.5, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(measures))
    sim = [float(np.nanmean([rep[m] for rep in v.per_replication])) for m in measures]
    spreads = [fg.spread([rep[m] for rep in v.per_replication]) for m in measures]
    ax.bar(x - 0.2, sim, 0.4, color=fg.BLUE, label=f"simulated ({v.replications} reps)",
           yerr=fg.error_lengths(spreads), capsize=3, ecolor=fg.INK)
    pub = [published[m].published.value if m in published else math.nan for m in measures]
    years = sorted({published[m].published.year_end.year for m in published})
    ax.bar(x + 0.2, pub, 0.4, color=fg.ORANGE,
           label="published (" + ", ".join(str(y) for y in years) + ")")
    ax.set_xticks(x, [_SHORT.get(m, m) for m in measures])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("% of the total")
    ax.set_title(title)
    ax.legend(frameon=False)
    fg.style_axes(ax, "y")
    return ReportFigure(name, title, caption, fg.png_bytes(fig))


def validation_figures(v: Validation) -> list[ReportFigure]:
    """The plan-length bands and the ICPC timeliness bins, simulated beside published."""
    out = []
    bands = _shape_figure(
        v, BANDS, "Length of plans ended in the year", "length of the ended plan",
        "validation-plan-length",
        "Share of plans ended in the year by length band (DfE bands of calendar months). "
        "Blue: simulated mean with its 95% interval over replications; orange: published.")
    if bands is not None:
        out.append(bands)
    bins = _shape_figure(
        v, ICPC_BINS, "ICPCs by working days from the section 47 start",
        "working days from the strategy discussion that started the enquiry",
        "validation-icpc-timeliness",
        "Share of initial conferences held in the year by working days from the start of "
        "the section 47 enquiry (England and Wales calendar). Blue: simulated; orange: "
        "published.")
    if bins is not None:
        out.append(bins)
    return out


def render_validation(v: Validation, figures: Sequence[ReportFigure],
                      steady: Sequence[str] = ()) -> str:
    """The validation page as HTML (autoescaped jinja2 template ``validation.html``)."""
    rows = []
    table = validation_table(v)
    for cells, row in zip(table[1:], v.rows, strict=True):
        rows.append({"cells": cells, "within": row.within, "note": row.published.note,
                     "label": MEASURES[row.published.measure].label})
    return environment().get_template("validation.html").render(
        v=v, head=table[0], rows=rows, figures=figures, steady=list(steady),
        years=[f"{d.year - 1}-{d:%y}" for d in v.year_ends],
        judged=sum(1 for r in v.rows if r.within is not None),
        inside=sum(1 for r in v.rows if r.within),
        outside=v.outside)


def write_validation(v: Validation, out: Path, steady: Sequence[str] = ()) -> Path:
    """Write ``validation.csv``, ``validation.html`` and its figures into ``out``."""
    figures = validation_figures(v)
    page = render_validation(v, figures, steady)
    write_bytes_atomic(out / "validation.csv", validation_csv(v).encode("utf-8"))
    return write_report(out, figures, page, "validation.html")
