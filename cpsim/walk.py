"""The terminal front-ends of ``cpsim walk`` and ``cpsim paths``: read lines, print, write.

Everything a walk does is decided by :class:`model.session.WalkSession`; walkthroughs are
planned by :func:`model.paths.plan_walks`. This module only reads the trainer's lines
(with ``readline`` editing and completion when available), prints what comes back, and
writes transcripts. Output is styled and :func:`click.echo` keeps the colour only on a
terminal (and never when ``NO_COLOR`` is set).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import click

from cpsim.transcript import parse_walk_file, replay_transcript
from cpsim.walk_commands import parse_facts, run_command
from cpsim.walk_render import render_replay, render_result, render_screen
from model.atomic import write_text_atomic
from model.counterexample import replay_counterexample
from model.errors import InputError, Problem
from model.loader import load_procedure
from model.session import DEFAULT_START, WalkSession
from model.spec import Procedure


def _echo(text: str = "") -> None:
    """Print styled text; click drops the styling off a terminal, we drop it for NO_COLOR."""
    click.echo(text, color=False if os.environ.get("NO_COLOR") else None)


def _facts_option(text: str | None) -> dict[str, bool] | None:
    if text is None:
        return None
    try:
        return parse_facts(text)
    except ValueError as exc:
        raise InputError([Problem("--facts", None, "facts", str(exc), text)]) from None


def _setup_readline(procedure: Procedure) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        return
    words = sorted({*procedure.triggers, "advance", "facts", "help", "history", "look",
                    "quit", "save", "set", "undo", "why"})

    def complete(text: str, state: int) -> str | None:
        matches = [w for w in words if w.startswith(text)]
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t=,")
    readline.parse_and_bind("tab: complete")


def _commands(session: WalkSession) -> str:
    n = len(session.commands)
    return f"{n} command{'s' if n != 1 else ''}"


def interactive(session: WalkSession, save_to: Path | None = None,
                read: Callable[[str], str] = input) -> int:
    """Run the prompt loop until ``quit`` or end of input; return the exit code."""
    echo_input = not sys.stdin.isatty()
    _echo(render_screen(session.screen(), colour=True))
    click.echo("Type a number or an action name; 'help' lists every command.")
    code = 0
    while True:
        try:
            line = read("walk> ")
        except EOFError:
            click.echo()
            break
        except KeyboardInterrupt:
            click.echo("\ninterrupted")
            code = 130
            break
        if echo_input:
            click.echo(line)
        result = run_command(session, line)
        text = render_result(result, colour=True)
        if text:
            _echo(text)
        if result.save is not None:
            target, transcript = result.save
            try:
                write_text_atomic(Path(target), transcript)
            except OSError as exc:
                click.echo(f"could not save to {target}: {exc.strerror or exc}")
            else:
                click.echo(f"saved the walk ({_commands(session)}) to {target}; replay it "
                           f"with: cpsim walk {session.procedure.id} --replay {target}")
        if result.status == "quit":
            break
    if save_to is not None:
        write_text_atomic(save_to, session.transcript())
        click.echo(f"saved the walk ({_commands(session)}) to {save_to}")
    return code


def walk_command(procedure_ref: str, start_date: date | None, facts_text: str | None,
                 replay: Path | None, save: Path | None) -> int:
    """``cpsim walk``: an interactive walk, or a replay of a transcript or counterexample.

    Returns:
        0 when every command was legal, 1 when a replay hits an illegal move (or a
        counterexample does not go as printed); input errors raise InputError (exit 2).
    """
    procedure = load_procedure(procedure_ref)
    facts = _facts_option(facts_text)
    if replay is None:
        session = WalkSession(procedure, start_date or DEFAULT_START, facts or {})
        if sys.stdin.isatty():
            _setup_readline(procedure)
        return interactive(session, save)
    try:
        text = replay.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(str(replay), None, "", f"cannot read the file: {exc}")]
                         ) from None
    walk_file = parse_walk_file(text, str(replay))
    if isinstance(walk_file, tuple):
        replays = [replay_counterexample(procedure, cx, start_date, facts)
                   for cx in walk_file]
        if len(replays) > 1:
            click.echo(f"{replay}: {len(replays)} different counterexample runs; each is "
                       "replayed on a new case\n")
    else:
        replays = [replay_transcript(procedure, walk_file, start_date, facts)]
    for i, run in enumerate(replays):
        if i:
            click.echo()
        _echo(render_replay(run, colour=True))
    if save is not None:
        write_text_atomic(save, replays[-1].session.transcript())
        click.echo(f"saved the walk to {save}")
    return 0 if all(r.ok for r in replays) else 1


def paths_command(procedure_ref: str, cover: str, out: Path | None) -> int:
    """``cpsim paths``: plan covering walkthroughs, write their transcripts, print a summary.

    Earlier ``walk-NN.txt`` files and ``index.txt`` in the folder are replaced; nothing
    else there is touched.

    Returns:
        0 when everything is covered, 1 when something cannot be covered.
    """
    from model.paths import COVER_MODES, format_plan, plan_walks

    procedure = load_procedure(procedure_ref)
    mode = next(m for m in COVER_MODES if m == cover)
    plan = plan_walks(procedure, mode)
    target = out or Path("out") / "paths" / f"{procedure.id}-{mode}"
    summary = format_plan(plan)
    target.mkdir(parents=True, exist_ok=True)
    for old in sorted(target.glob("walk-[0-9][0-9].txt")):
        old.unlink()
    for walk in plan.walks:
        write_text_atomic(target / walk.file_name, walk.transcript)
    write_text_atomic(target / "index.txt",
                      summary + "\n\nReplay one with:  cpsim walk "
                      f"{procedure.id} --replay walk-01.txt\n")
    click.echo(summary)
    click.echo(f"wrote {len(plan.walks)} walkthrough transcripts and index.txt to {target}")
    return 1 if plan.uncovered else 0
