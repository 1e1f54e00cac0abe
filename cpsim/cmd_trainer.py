"""The commands for trainers: ``explore``, ``walk``, ``paths`` and ``story``.

The walk's terminal front-end is :mod:`cpsim.walk`; these are its click shells, beside the
browser explorer and the story of one simulated case.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cpsim.common import input_errors, write_text


@click.command()
@click.argument("procedure")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML file to write (default: out/PROCEDURE-explore.html).")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The case's start date, YYYY-MM-DD (default: today); the page holds bank "
                   "holidays for that year and the next three.")
@input_errors
def explore(procedure: str, out: Path | None, start: Any) -> None:
    """Write PROCEDURE as one self-contained page to click a case through in a browser.

    The page shows the state diagram with the case's state highlighted; the moves allowed
    now (guards read the case facts, which can be ticked); the rules, running deadlines
    with due dates, and history; back and reset. It needs no server and works offline.
    """
    from model.loader import load_procedure
    from reports.explore import build_explorer

    proc = load_procedure(procedure)
    target = out or Path("out") / f"{proc.id}-explore.html"
    path = build_explorer(proc, target, start.date() if start is not None else None)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("procedure")
@click.option("--start-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The trainer's clock starts at 09:00 on this date (default: 2025-04-01, "
                   "or the transcript's own).")
@click.option("--facts", default=None, metavar="K=V,...",
              help="Case facts, e.g. interpreter_needed=true,caf_completed=false.")
@click.option("--replay", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Replay a saved transcript, or the counterexamples in saved "
                                 "`cpsim check` output, without asking anything.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the walk as a transcript when it ends.")
@input_errors
def walk(procedure: str, start_date: Any, facts: str | None, replay: Path | None,
         save: Path | None) -> None:
    """Step through PROCEDURE by hand: where the case is, the clock, deadlines, actions.

    Pick actions by number or name, move the clock ('advance 3 working days'), 'undo',
    ask 'why NAME', and 'save FILE'. With --replay, runs a transcript (exit 0 if every
    command was legal, 1 at an illegal move) or walks through a `cpsim check`
    counterexample step by step.
    """
    from cpsim.walk import walk_command

    sys.exit(walk_command(procedure, start_date.date() if start_date else None, facts,
                          replay, save))


@click.command()
@click.argument("procedure")
@click.option("--cover", type=click.Choice(["states", "transitions", "deadlines", "rules"]),
              required=True, help="What the walkthroughs must cover between them.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the transcripts here (default: out/paths/PROCEDURE-COVER).")
@input_errors
def paths(procedure: str, cover: str, out: Path | None) -> None:
    """Plan a small set of walkthroughs that together cover every state, transition, ...

    Each walkthrough is written as a transcript that `cpsim walk --replay` runs. The set
    is chosen greedily (not proven minimal). Exit 1 when something cannot be covered.
    """
    from cpsim.walk import paths_command

    sys.exit(paths_command(procedure, cover, out))


@click.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--case", "case_id", default=None, metavar="ID", help="The case to tell.")
@click.option("--pick", type=click.Choice(["longest", "breached", "escalated"]), default=None,
              help="Or pick one: most steps, most missed deadlines, or highest up a "
                   "resolution ladder.")
@click.option("--replication", type=click.IntRange(min=0), default=None,
              help="Replication (default: the first with an event log).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the Markdown here instead of printing it.")
@input_errors
def story(results_dir: Path, case_id: str | None, pick: str | None, replication: int | None,
          out: Path | None) -> None:
    """Tell the life of one simulated case of RESULTS_DIR as a dated narrative.

    Each step with its weekday and date, what happened, the time against any deadline
    (missed ones and postponements highlighted) and the rule ids. Prints Markdown (or
    writes --out) and writes RESULTS_DIR/stories/story-CASE.html and .md, with a timeline.
    """
    from reports.story import write_story

    if (case_id is None) == (pick is None):
        raise click.UsageError("give either --case ID or --pick longest|breached|escalated")
    files = write_story(results_dir, case_id, pick,  # type: ignore[arg-type]
                        replication, lambda msg: click.echo(msg, err=True))
    if out is None:
        click.echo(files.markdown)
        click.echo(f"story: {files.html_path}\nstory: {files.md_path}", err=True)
    else:
        write_text(out, files.markdown)
        click.echo(f"wrote {out}\nstory: {files.html_path}\nstory: {files.md_path}")
