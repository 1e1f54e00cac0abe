"""Walk transcripts read back: parsing a transcript or saved check output, and replaying it.

A transcript (format version 1, written by :func:`model.session.format_transcript`) is a
header and one command per line; :func:`parse_walk_file` reads it, checking every line
against the command grammar, and :func:`replay_transcript` runs it on a new session. The
same reader accepts saved ``cpsim check`` output, whose counterexamples
:func:`model.counterexample.replay_counterexample` steps through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from cpsim.walk_commands import CommandError, parse_command, parse_facts, run_command
from model.counterexample import WalkReplay, WalkReplayStep
from model.errors import InputError, Problem, did_you_mean
from model.findings import Counterexample, read_counterexamples
from model.session import DEFAULT_START, TRANSCRIPT_VERSION, WalkSession
from model.session_view import Note
from model.spec import Procedure

_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):\s*(.*?)\s*$")
_VERSION = re.compile(r"^cpsim-walk:\s*(\S*)\s*$")


@dataclass(frozen=True)
class Transcript:
    """A saved walk: where it starts, the case facts, and each command with its line."""

    procedure: str | None
    start_date: date | None
    facts: Mapping[str, bool]
    commands: tuple[tuple[int, str], ...]


WalkFile = Transcript | tuple[Counterexample, ...]
"""A file ``--replay`` reads: a transcript, or the counterexamples in check output."""


def parse_walk_file(text: str, name: str) -> WalkFile:
    """Read a transcript, or the counterexamples in saved ``cpsim check`` output.

    Check output may be the JSON of ``cpsim check --json`` or the printed text (older
    files); :func:`model.findings.read_counterexamples` reads both.

    Raises:
        InputError: every problem, each with the file name and line number (when known).
    """
    lines = text.splitlines()
    for raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if _VERSION.match(stripped):
            return _parse_transcript(lines, name)
        break
    try:
        return read_counterexamples(text, name)
    except InputError as exc:
        # Neither form at all: say what a walk file may be, not only what check output is.
        if not (len(exc.problems) == 1
                and exc.problems[0].message.startswith(_NOT_CHECK_OUTPUT)):
            raise
    first = next((i for i, raw in enumerate(lines, 1)
                  if raw.strip() and not raw.strip().startswith("#")), None)
    raise InputError([Problem(
        name, first, "",
        f"not a walk transcript (its first line should be 'cpsim-walk: {TRANSCRIPT_VERSION}')"
        " nor `cpsim check` output with a counterexample")]) from None


_NOT_CHECK_OUTPUT = "not `cpsim check` output"
"""How :func:`model.findings.read_counterexamples` begins when a file is not check output."""


_HEADER_KEYS = ("procedure", "start-date", "facts")


def _parse_transcript(lines: list[str], name: str) -> Transcript:
    problems: list[Problem] = []
    header: dict[str, str] = {}
    commands: list[tuple[int, str]] = []
    seen_version = False
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        version = _VERSION.match(stripped)
        if version and not seen_version:
            seen_version = True
            if version.group(1) != str(TRANSCRIPT_VERSION):
                problems.append(Problem(
                    name, number, "cpsim-walk",
                    f"transcript format version {version.group(1) or '(none)'} is not one "
                    f"this cpsim reads (it reads version {TRANSCRIPT_VERSION})"))
            continue
        header_match = _HEADER.match(stripped)
        if not commands and not stripped.startswith(">") and header_match:
            key, value = header_match.group(1), header_match.group(2)
            if key not in _HEADER_KEYS:
                problems.append(Problem(name, number, key, "not a transcript header",
                                        hint=did_you_mean(key, _HEADER_KEYS)))
            elif key in header:
                problems.append(Problem(name, number, key, "given twice"))
            else:
                header[key] = value
                if key == "start-date":
                    try:
                        date.fromisoformat(value)
                    except ValueError:
                        problems.append(Problem(name, number, key,
                                                "not a date (write YYYY-MM-DD)", value))
                elif key == "facts" and value.lower() not in ("", "none"):
                    try:
                        parse_facts(value)
                    except ValueError as exc:
                        problems.append(Problem(name, number, key, str(exc)))
            continue
        command = stripped[1:].strip() if stripped.startswith(">") else stripped
        try:
            parse_command(command)
        except CommandError as exc:
            problems.append(Problem(name, number, "command", str(exc), command))
            continue
        commands.append((number, command))
    if problems:
        raise InputError(problems)
    facts_text = header.get("facts", "")
    facts = {} if facts_text.lower() in ("", "none") else parse_facts(facts_text)
    start = header.get("start-date")
    return Transcript(header.get("procedure"), date.fromisoformat(start) if start else None,
                      facts, tuple(commands))


def replay_transcript(procedure: Procedure, transcript: Transcript,
                      start_date: date | None = None,
                      facts: Mapping[str, bool] | None = None) -> WalkReplay:
    """Run a transcript's commands on a new walk; stop at the first illegal one.

    ``start_date`` and ``facts`` (when given) override the transcript's own.
    """
    merged = dict(transcript.facts)
    merged.update(facts or {})
    session = WalkSession(procedure, start_date or transcript.start_date or DEFAULT_START,
                          merged)
    intro: list[Note] = []
    if transcript.procedure and transcript.procedure != procedure.id:
        intro.append(Note(f"note: this transcript was recorded on {transcript.procedure}; "
                          f"replaying it on {procedure.id}"))
    replay = WalkReplay(f"replay of a walk through {procedure.id}", session, session.screen(),
                    tuple(intro))
    for line, command in transcript.commands:
        result = run_command(session, command)
        replay.steps.append(WalkReplayStep(command, line, result))
        if result.status in ("illegal", "invalid"):
            replay.ok = False
            replay.failure = (f"line {line}: {command!r} "
                              + ("is not allowed at this point" if result.status == "illegal"
                                 else "could not be carried out"))
            break
        if result.status == "quit":
            break
    return replay


