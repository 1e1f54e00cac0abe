"""The rule trace of a procedure as one self-contained HTML page (``cpsim trace --format html``).

The page is rendered by jinja2 with autoescaping on; text taken from procedure files (titles,
summaries, reasons, basis notes) is never marked safe.
"""

from __future__ import annotations

from model.rules import SOURCE_TITLES
from model.trace import ENFORCEMENT_KINDS, NO_REASON, TraceMatrix, kind_names, where_text
from reports.templating import environment


def render_trace_html(matrix: TraceMatrix) -> str:
    """The trace matrix as an HTML page (autoescaped jinja2 template ``trace.html``)."""
    return environment().get_template("trace.html").render(
        matrix=matrix,
        source_titles=SOURCE_TITLES,
        enforcement_kinds=ENFORCEMENT_KINDS,
        no_reason=NO_REASON,
        where=where_text,
        kind_names=kind_names,
    )
