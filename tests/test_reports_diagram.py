"""PNG and SVG diagrams drawn with matplotlib: formats, readability (no overlapping text),
atomic writes, every state and move tagged, and a layout that needs no matplotlib."""

from __future__ import annotations

import functools
import io
import itertools
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from model.diagram import build_diagram
from model.errors import InputError
from model.loader import available_procedures, load_procedure
from reports.diagram import (
    Tag,
    draw_diagram,
    read_gid,
    render_diagram,
    start_gid,
    state_gid,
    transition_gid,
)
from reports.layout import best_layout

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


@functools.cache
def whole(name: str) -> Figure:
    """A shipped procedure drawn whole, once for the tests that only look at it."""
    return draw_diagram(load_procedure(name))


@pytest.mark.parametrize("name", available_procedures())
def test_every_shipped_procedure_draws_without_overlap(name):
    """Regions, included sub-machines and internal moves all lay out cleanly."""
    assert overlapping(whole(name)) == []


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


# -- every state and move tagged ----------------------------------------------------------------


def svg_ids(fig: Figure) -> list[str]:
    """The id of every element of the figure written as SVG, in document order."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    return [e.get("id", "") for e in ET.fromstring(buffer.getvalue()).iter() if e.get("id")]


def check_tags(proc, stage: str | None, ids: list[str]) -> None:
    """Every drawn box and move has its parts tagged, once each, naming what it draws."""
    diagram = build_diagram(proc, stage)
    assert len(ids) == len(set(ids)), "an id is used twice"
    tags = [t for t in map(read_gid, ids) if t is not None]
    parts: dict[tuple[str, str, int | None], set[str]] = {}
    for t in tags:
        parts.setdefault((t.kind, t.ref, t.arrow), set()).add(t.part)
    for sid, box in diagram.boxes.items():
        want = {"box", "name"}
        if box.terminal and box.kind == "state":
            want.add("ring")
        assert want <= parts.pop(("state", sid, None)), sid
    for index, arrow in enumerate(diagram.arrows):
        got = parts.pop(("transition", arrow.transition, index))
        if got != {"listed"}:
            want = {"edge", "head", "label", "text"} | ({"rules"} if arrow.rules else set())
            assert got == want, (arrow.transition, got)
    for (kind, ref, index), got in parts.items():  # what is left: copies and start dots
        if kind == "state":
            assert index is not None and diagram.arrows[index].dest == ref
            assert got == {"box", "ring", "name"}
        else:
            assert kind == "start" and ref in diagram.boxes and got == {"dot", "edge", "head"}


@pytest.mark.parametrize("name", available_procedures())
def test_every_state_and_transition_is_tagged_in_the_svg(name):
    """Each state's box and each move's arrow and label carries an id naming it."""
    proc = load_procedure(name)
    ids = svg_ids(whole(name))
    check_tags(proc, None, ids)
    tags = [t for t in map(read_gid, ids) if t is not None]
    assert {t.ref for t in tags if t.kind == "state"} == set(proc.states)
    assert {t.ref for t in tags if t.kind == "transition"} == {t.id for t in proc.transitions}


def test_a_stage_tags_its_boundary_boxes(wm, tmp_path):
    """A stage drawn alone tags the states around it too, in the SVG file written."""
    target = tmp_path / "icpc.svg"
    render_diagram(wm, target, "svg", "icpc")
    root = ET.fromstring(target.read_bytes())
    ids = [e.get("id", "") for e in root.iter() if e.get("id")]
    check_tags(wm, "icpc", ids)
    assert build_diagram(wm, "icpc").boxes["cp_plan"].kind == "boundary"
    assert "state:cp_plan:box" in ids and "state:icpc.session:box" in ids


def test_gids_read_back():
    """Each kind of gid reads back as what it names; matplotlib's own ids read as nothing."""
    assert read_gid(state_gid("icpc.session", "box")) == Tag("state", "icpc.session", "box")
    assert read_gid(state_gid("closed", "ring", 7)) == Tag("state", "closed", "ring", 7)
    assert read_gid(transition_gid("plan_agreed", 3, "head")) == Tag(
        "transition", "plan_agreed", "head", 3)
    assert read_gid(start_gid("referral", "dot")) == Tag("start", "referral", "dot")
    for other in ("patch_3", "text_1", "figure_1", "state:x", "transition:t:edge",
                  "transition:t:x:edge", "start:a:1:dot", ""):
        assert read_gid(other) is None, other


def test_the_same_procedure_gives_the_same_svg(wm, tmp_path):
    """SVG ids are salted with the procedure, so two drawings are byte for byte equal."""
    render_diagram(wm, tmp_path / "a.svg", "svg", "icpc")
    render_diagram(wm, tmp_path / "b.svg", "svg", "icpc")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


# -- the layout alone -----------------------------------------------------------------------------


def test_layout_modules_import_no_matplotlib():
    """Positions, boxes and routes are pure: only the drawing module loads matplotlib."""
    code = ("import sys\n"
            "import reports.layout, reports.level\n"
            "assert not [m for m in sys.modules if m.startswith('matplotlib')]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr


def test_layout_runs_with_any_text_measure(wm):
    """With a crude measure (no fonts), boxes in each level still never overlap."""

    def measure(text: str, size: float, weight: str = "normal") -> tuple[float, float]:
        lines = text.split("\n")
        return 0.6 * size * max(len(line) for line in lines), 1.2 * size * len(lines)

    layout = best_layout(build_diagram(wm), measure)
    assert layout.width > 0 and layout.height > 0
    levels = [*layout.components, *layout.levels.values()]
    for level in levels:
        rects = []
        for node in level.nodes.values():
            if node.kind in ("box", "block", "label"):
                x, y = level.xy(*level.pos(node))
                rects.append((node.key, x - node.w / 2, y - node.h / 2,
                              x + node.w / 2, y + node.h / 2))
        for (ka, ax0, ay0, ax1, ay1), (kb, bx0, by0, bx1, by1) in itertools.combinations(
                rects, 2):
            assert not (ax0 < bx1 - 0.01 and bx0 < ax1 - 0.01
                        and ay0 < by1 - 0.01 and by0 < ay1 - 0.01), (ka, kb)
