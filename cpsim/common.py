"""What every ``cpsim`` command shares: turning a user's mistake into one line and exit 2.

A command never shows a traceback for bad input: an :class:`model.errors.InputError` is one
line per problem, and a file or folder that cannot be read or written is one line naming it
and why, both exit code 2 (:func:`input_errors`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from model.atomic import WriteFailed
from model.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def os_error_text(exc: OSError) -> str:
    """One plain line for a file system error: the file (or folder) and the reason.

    >>> os_error_text(WriteFailed(13, "Permission denied", "/x/report.html"))
    'cannot write /x/report.html: permission denied'
    >>> os_error_text(NotADirectoryError(20, "Not a directory", "notes.txt/out"))
    'notes.txt/out: not a directory'
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]
    if exc.filename is None:
        return reason
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"cannot write {where}: {reason}" if isinstance(exc, WriteFailed) else (
        f"{where}: {reason}")


def input_errors(func: F) -> F:
    """Turn an InputError into one line per problem on stderr and exit code 2.

    An OSError (a folder that cannot be written, a file that cannot be read) is one line
    naming the file and the reason, also exit code 2.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' if count != 1 else ''} found; nothing was written.",
                       err=True)
            sys.exit(2)
        except BrokenPipeError:  # the reader of our output went away: not the user's mistake
            raise
        except OSError as exc:
            click.echo(f"error: {os_error_text(exc)}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def write_text(path: Path, text: str) -> None:
    """Write ``text`` ending in a newline, atomically (:func:`model.atomic.write_text_atomic`)."""
    from model.atomic import write_text_atomic

    write_text_atomic(path, text if text.endswith("\n") else text + "\n")
