"""Problems found in user input, reported together, each naming file, line, field and value."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in an input file.

    Attributes:
        file: The file the mistake is in (as the user named it, or the shipped file's path).
        line: The 1-based line of the offending key or item, when known.
        field: The dotted path of the field, e.g. ``transitions.decide_nfa.dest``.
        message: What is wrong, in plain words.
        value: The offending value, when there is one.
        hint: The closest valid name, offered as "did you mean".
    """

    file: str
    line: int | None
    field: str
    message: str
    value: object = None
    hint: str | None = None

    def __str__(self) -> str:
        """Return ``file:line: field: message (value ...); did you mean ...?``."""
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{where}: {self.field}: " if self.field else f"{where}: "
        text += self.message
        if self.value is not None:
            text += f" (value: {self.value!r})"
        if self.hint is not None:
            text += f"; did you mean {self.hint!r}?"
        return text


class InputError(Exception):
    """Raised when user input has one or more problems; carries all of them at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        """Keep the problems in the order they were found (file order)."""
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(name: object, choices: Sequence[str] | Iterable[str]) -> str | None:
    """Return the closest valid name to ``name``, or None when nothing is close.

    >>> did_you_mean("clsoed", ["closed", "referral"])
    'closed'
    """
    if not isinstance(name, str):
        return None
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None
