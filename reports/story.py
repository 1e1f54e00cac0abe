"""The story of one simulated case: a dated narrative, written as Markdown and as HTML.

A trainer names a case (or asks for the longest, a breached or an escalated one) and gets its
life told step by step: the weekday and date, what happened in the procedure's own words,
how long it took against any deadline that applied (in the deadline's unit, with its rule
ids), missed deadlines and postponements highlighted, and a small timeline figure.

Nothing is simulated again. The case's rows are read from the run's event log
(``events/rep-NNNN.parquet``) and *replayed* through the compiled procedure machine
(:class:`model.compiler.CompiledProcedure`) on the run's working calendar, so every deadline
clock starts, stops and is judged exactly as it was during the run.

The event log does not hold the case's facts (a parental learning disability, an
interpreter, the coordinator's view of practice...), and some guards and deadlines read them.
They are inferred: the combinations of :data:`model.guards.FACTS` are grouped into classes
that every guard of the procedure treats alike, each class is replayed, and a class is kept
when every logged trigger is allowed and lands in the logged state. Of the classes kept, the
one most common among the scenario's cases (its ``demand.facts`` shares) is told; the story
says when the log could not tell the classes apart, and whether that changes any verdict.

The work is split by what it does: :mod:`reports.story_read` reads the log, infers the
facts and replays; :mod:`reports.story_words` holds the wording; :mod:`reports.story_tell`
chooses the case and builds the :class:`Story`; :mod:`reports.story_render` writes its
Markdown, figure and HTML (``story-<case>.html`` opens offline on its own). This module is
the entry point: :func:`write_story` writes the files, atomically (temporary file, then
rename), and the names the command line and the tests use are importable from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model.atomic import write_bytes_atomic
from reports import figures as fg
from reports.story_read import (
    FactClass,
    LogRow,
    Replay,
    closest_ids,
    fact_classes,
    first_replay,
    read_all_cases,
    read_case,
    replay,
)
from reports.story_render import render_story_html, story_markdown, timeline_figure
from reports.story_tell import (
    PICKS,
    Band,
    Pick,
    Story,
    StoryStep,
    build_story,
    ladder_states,
)
from reports.story_words import ClockLine, amount, humanise, limit_text
from simulations.results import read_results


@dataclass(frozen=True)
class StoryFiles:
    """What :func:`write_story` wrote, and the Markdown text."""

    story: Story
    markdown: str
    html_path: Path
    md_path: Path


def write_story(results_dir: Path, case_id: str | None = None, pick: Pick | None = None,
                replication: int | None = None,
                progress: Callable[[str], None] | None = None) -> StoryFiles:
    """Tell one case of a results folder; write ``stories/story-<case>.html`` and ``.md``.

    Args:
        results_dir: A results folder written by ``cpsim run``.
        case_id: The case to tell, or None with ``pick``.
        pick: ``longest``, ``breached`` or ``escalated``.
        replication: The replication (default: the first with an event log).
        progress: Told what is being done, for slow steps (replaying every case).

    Raises:
        InputError: not a results folder, no event log, a damaged event log, unknown
            case, nothing to pick (nothing is written).
    """
    results = read_results(Path(results_dir))
    if progress is not None and pick == "breached":
        progress("replaying every case of the replication to find the most breached ...")
    story = build_story(results, case_id, pick, replication)
    text = story_markdown(story)
    png = fg.png_bytes(timeline_figure(story))
    html = render_story_html(story, png)
    folder = Path(results_dir) / "stories"
    html_path = folder / f"{story.slug}.html"
    md_path = folder / f"{story.slug}.md"
    write_bytes_atomic(md_path, text.encode("utf-8"))
    write_bytes_atomic(html_path, html.encode("utf-8"))
    return StoryFiles(story, text, html_path, md_path)


__all__ = [
    "PICKS", "Band", "ClockLine", "FactClass", "LogRow", "Pick", "Replay", "Story",
    "StoryFiles", "StoryStep", "amount", "build_story", "closest_ids", "fact_classes",
    "first_replay", "humanise", "ladder_states", "limit_text", "read_all_cases", "read_case",
    "render_story_html", "replay", "story_markdown", "timeline_figure", "write_story",
]
