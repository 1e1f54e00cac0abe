"""PNG and SVG diagrams drawn with matplotlib: formats, readability (no overlapping text),
atomic writes."""

from __future__ import annotations

import itertools
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from model.errors import InputError
from model.loader import available_procedures, load_procedure
from reports.diagram import draw_diagram, render_diagram

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def wm():
    return load_procedure("west-midlands-2014")


def text_boxes(fig: Figure):
    """The rendered extent of every non-empty text artist, in display pixels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    return [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts
            if t.get_visible() and t.get_text().strip()]


def overlapping(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of texts whose rendered boxes overlap (by more than half a pixel)."""
    found = []
    for (ta, a), (tb, b) in itertools.combinations(text_boxes(fig), 2):
        if (a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5
                and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5):
            found.append((ta, tb))
    return found


@pytest.mark.parametrize("direction", ["auto", "LR", "TB"])
def test_icpc_stage_has_no_overlapping_labels(wm, direction):
    """Readable at a glance: no two texts (state names, arrow labels, lists) overlap."""
    fig = draw_diagram(wm, "icpc", direction)
    texts = [t for t, _ in text_boxes(fig)]
    for name in ("inviting", "awaiting_reports", "ready", "session", "outcome", "preparation",
                 "icpc", "referral", "section_47.icpc_booked", "cp_plan", "child_in_need",
                 "family_support"):
        assert name in texts, name
    assert any(t.startswith("icpc_opens\n≤15 working days") for t in texts)
    assert any("WM-8, WM-16, WM-18" in t for t in texts)
    assert any(t.startswith("↻ postpone_icpc") for t in texts)
    assert overlapping(fig) == []


@pytest.mark.parametrize("stage", [None, "cp_plan", "strategy_discussion"])
def test_west_midlands_diagrams_have_no_overlapping_labels(wm, stage):
    """The whole pathway and other stages are just as readable."""
    fig = draw_diagram(wm, stage)
    assert overlapping(fig) == []
    names = {t for t, _ in text_boxes(fig)}
    expected = wm.states if stage is None else [s for s in wm.states if s.startswith(stage)]
    assert {wm.states[s].name for s in expected} <= names


@pytest.mark.parametrize("name", available_procedures())
def test_every_shipped_procedure_draws_without_overlap(name):
    """Regions, included sub-machines and internal moves all lay out cleanly."""
    assert overlapping(draw_diagram(load_procedure(name))) == []


def test_figure_is_sized_from_the_layout(wm):
    """A stage is smaller than the whole procedure; neither is a sliver."""
    whole = draw_diagram(wm).get_size_inches()
    stage = draw_diagram(wm, "section_47").get_size_inches()
    assert stage[0] * stage[1] < whole[0] * whole[1]
    for w, h in (whole, stage):
        assert 0.4 < w / h < 3.0


def test_png_is_written_atomically(wm, tmp_path):
    """A PNG of the ICPC stage, and nothing else left in the folder."""
    target = tmp_path / "sub" / "icpc.png"
    render_diagram(wm, target, "png", "icpc")
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in target.parent.iterdir()] == ["icpc.png"]


def test_svg_is_xml(wm, tmp_path):
    """An SVG file parses as XML with an <svg> root."""
    target = tmp_path / "wm.svg"
    render_diagram(wm, target, "svg", None)
    text = target.read_text(encoding="utf-8")
    assert "<svg" in text
    assert ET.fromstring(text.encode()).tag.endswith("svg")
    assert [p.name for p in tmp_path.iterdir()] == ["wm.svg"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(wm, tmp_path, monkeypatch):
    """If drawing fails half-way the previous file is untouched and no temp file remains."""
    target = tmp_path / "icpc.png"
    target.write_bytes(b"old")

    def broken(self, fname, **kwargs):
        Path(fname).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        render_diagram(wm, target, "png", "icpc")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["icpc.png"]


def test_an_existing_file_is_replaced(wm, tmp_path):
    """Writing over an earlier diagram replaces it whole."""
    target = tmp_path / "d.png"
    target.write_bytes(b"old")
    render_diagram(wm, target, "png", "section_47")
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["d.png"]


def test_unknown_stage_writes_nothing(wm, tmp_path):
    """A bad stage is an input error before any file is created."""
    with pytest.raises(InputError):
        render_diagram(wm, tmp_path / "x.png", "png", "icpcc")
    assert not list(tmp_path.iterdir())


def test_unknown_format_is_refused(wm, tmp_path):
    """Only PNG and SVG are drawn."""
    with pytest.raises(ValueError, match="format"):
        render_diagram(wm, tmp_path / "x.pdf", "pdf", None)  # type: ignore[arg-type]


def test_drawing_never_touches_pyplot(tmp_path):
    """The figure is made with Figure and the Agg canvas only: pyplot is never imported."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from model.loader import load_procedure\n"
        "from reports.diagram import render_diagram\n"
        f"render_diagram(load_procedure('west-midlands-2014'), Path({str(tmp_path)!r}) / 'a.png',"
        " 'png', 'icpc')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "import matplotlib\n"
        "assert matplotlib.get_backend() is not None\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
