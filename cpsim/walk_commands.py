"""The command grammar of ``cpsim walk``: what a trainer types, read into session moves.

:func:`parse_command` reads one line (from the prompt or a transcript) into a
:class:`model.session.Move`, or a :class:`HelpRequest`; :func:`run_command` reads a line and
carries it out on a :class:`model.session.WalkSession`, answering a typo with a refusal
rather than an exception. :data:`HELP` lists the commands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Literal

from model.calendar import parse_duration_text
from model.errors import did_you_mean
from model.guards import FACTS
from model.session import DAY_START_HOUR, Move, Verb, WalkSession, past_the_calendar
from model.session_view import Result
from model.timescales import CALENDAR_FIRST, CALENDAR_LAST

_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_AT = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}):(\d{2}))?$")

_CALENDAR_DAYS = (CALENDAR_LAST - CALENDAR_FIRST).days + 1
_LONGEST_ADVANCE = {"hours": 24 * _CALENDAR_DAYS, "days": _CALENDAR_DAYS,
                    "working_days": _CALENDAR_DAYS,
                    "months": 12 * (CALENDAR_LAST.year - CALENDAR_FIRST.year + 1)}
"""No clock move may be longer than the whole calendar (bank holidays 2000 to 2050)."""

HELP = """\
Commands (type one and press Enter):
  N or NAME              take action number N, or the action called NAME
  why NAME | why         why can't I? explain why an action is not allowed now (or all of them)
  advance 3 working days move the clock on (also: '24 hours', '2 days', '1 month';
  +2 days                '+2 days' is short for 'advance 2 days')
  advance to 2025-04-10 [14:00]   move the clock to a date (and time)
  undo                   go back one step (an action, a clock move or a change of facts)
  facts                  show the case facts; 'set interpreter_needed=true' changes one
  history                what has happened so far
  save FILE              save this walk as a transcript (replay it with --replay FILE)
  look                   show the screen again
  help                   this list
  quit                   leave (Ctrl-D also works)"""


class CommandError(ValueError):
    """A typed command that cannot be read (not an illegal move: a typo or a bad value)."""


@dataclass(frozen=True, slots=True)
class HelpRequest:
    """The trainer asked for the list of commands (answered here, not by the session)."""

    text: str
    verb: Literal["help"] = "help"


Command = Move | HelpRequest
"""What one typed line asks for."""

_ALIASES: Mapping[str, Verb | Literal["help"]] = {
    "look": "look", "show": "look", "l": "look", "screen": "look",
    "help": "help", "?": "help", "h": "help",
    "quit": "quit", "exit": "quit", "q": "quit",
    "undo": "undo", "back": "undo", "u": "undo",
    "history": "history",
    "facts": "facts", "fact": "facts",
    "set": "set",
    "why": "why",
    "advance": "advance", "wait": "advance",
    "save": "save",
    "do": "act",
}


def parse_facts(text: str) -> dict[str, bool]:
    """Read ``k=v`` pairs (comma or space separated) naming registered case facts.

    >>> parse_facts("interpreter_needed=true, caf_completed=no")
    {'interpreter_needed': True, 'caf_completed': False}

    Raises:
        ValueError: an unknown fact or a value that is not true/false, with a hint.
    """
    out: dict[str, bool] = {}
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{item!r}: write facts as name=true or name=false")
        if key not in FACTS:
            hint = did_you_mean(key, FACTS)
            raise ValueError(
                f"{key!r} is not a case fact"
                + (f"; did you mean {hint!r}?" if hint else "")
                + f" (facts: {', '.join(FACTS)})"
            )
        lowered = value.strip().lower()
        if lowered in _TRUE:
            out[key] = True
        elif lowered in _FALSE:
            out[key] = False
        else:
            raise ValueError(f"{item!r}: the value must be true or false")
    return out


def _parse_advance(text: str, rest: str) -> Move:
    rest = rest.strip()
    if rest.startswith("+"):
        rest = rest[1:].strip()
    if not rest:
        raise CommandError("advance by how much? e.g. 'advance 3 working days'")
    if rest.lower().startswith("to "):
        target = rest[3:].strip()
        match = _AT.match(target)
        if not match:
            raise CommandError(f"cannot read {target!r} as a date, e.g. 2025-04-10 or "
                               "2025-04-10 14:00")
        try:
            day = date.fromisoformat(match.group(1))
            hour = int(match.group(2) or DAY_START_HOUR)
            minute = int(match.group(3) or 0)
            until = datetime.combine(day, time(hour, minute))
        except ValueError as exc:
            raise CommandError(f"cannot read {target!r} as a date: {exc}") from None
        if day > CALENDAR_LAST:
            raise CommandError(past_the_calendar(f"to {target}"))
        return Move("advance", text, until=until)
    try:
        duration = parse_duration_text(rest)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if duration.value <= 0:
        raise CommandError("advance by a positive amount")
    amount = " ".join(rest.lower().split())
    if duration.value > _LONGEST_ADVANCE[duration.unit]:
        raise CommandError(past_the_calendar(amount))
    return Move("advance", text, duration=amount)


def parse_command(text: str) -> Command:
    """Read one command (see :data:`HELP`); does not check it against any case.

    >>> parse_command("advance 3 working days").duration
    '3 working days'
    >>> parse_command("2").number
    2

    Raises:
        CommandError: when the text is not a command.
    """
    text = text.strip()
    if text.startswith(">"):
        text = text[1:].strip()
    if not text:
        return Move("look", "")
    if text.startswith("+"):
        return _parse_advance(text, text)
    word, _, rest = text.partition(" ")
    verb = _ALIASES.get(word.lower())
    rest = rest.strip()
    if verb is None:
        if word.isdigit() and not rest:
            return Move("pick", text, number=int(word))
        name = text.lower()
        if _NAME.match(name):
            return Move("act", text, name=name)
        raise CommandError(f"{text!r} is not a command or an action name; type 'help'")
    if verb in ("look", "help", "quit", "undo", "history"):
        if rest:
            raise CommandError(f"'{word}' takes nothing after it")
        return HelpRequest(text) if verb == "help" else Move(verb, text)
    if verb in ("facts", "set"):
        if not rest:
            if verb == "set":
                raise CommandError("set what? e.g. 'set interpreter_needed=true'")
            return Move("facts", text)
        try:
            facts = parse_facts(rest)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return Move("set", text, facts=tuple(facts.items()))
    if verb == "why":
        if not rest:
            return Move("why", text)
        if rest.isdigit():
            return Move("why", text, number=int(rest))
        if not _NAME.match(rest.lower()):
            raise CommandError(f"why what? {rest!r} is not an action name")
        return Move("why", text, name=rest.lower())
    if verb == "advance":
        return _parse_advance(text, rest)
    if verb == "save":
        if not rest:
            raise CommandError("save to which file? e.g. 'save my-walk.txt'")
        return Move("save", text, name=rest)
    # "do NAME"
    if not _NAME.match(rest.lower()):
        raise CommandError(f"do what? {rest!r} is not an action name")
    return Move("act", text, name=rest.lower())


def run_command(session: WalkSession, text: str) -> Result:
    """Read one typed line and carry it out on ``session`` (never raises on input).

    >>> from model.loader import load_procedure
    >>> walk = WalkSession(load_procedure("west-midlands-2014"))
    >>> run_command(walk, "advance 2 days").status
    'ok'
    >>> run_command(walk, "advance lots").notes[0].text
    "cannot read 'lots' as a duration..."
    """
    try:
        command = parse_command(text)
    except CommandError as exc:
        return session.refuse(text, str(exc))
    if isinstance(command, HelpRequest):
        return session.answer(command.text, HELP)
    return session.apply(command)
