"""Atomic file writes: the one way every layer (model, simulations, reports, cli) writes a file.

A file is written under a unique hidden name in the target's own folder
(``.NAME.PID.RANDOM.tmp``), flushed to disk (fsync), renamed over the target, and the
folder is synced (best effort). So a reader sees the old file or the new one, never half
of one; two writers of one target never share a temporary file (each completes, and the
last rename wins whole); and any failure, KeyboardInterrupt included, removes the
temporary file. The process id in the name lets a parent remove what a killed child
process left (:func:`remove_leftovers`).

Three forms: :func:`write_text_atomic` and :func:`write_bytes_atomic` for content in
memory; :func:`open_atomic` for text streamed to a file; and :class:`PendingFile` for a
writer that needs a file name (a figure, a Parquet writer) or stays open for a while.

A failure of the write itself is raised as :class:`WriteFailed`, an :class:`OSError`
naming the target (never the temporary name).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TextIO, cast

_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}
"""fsync errors meaning only that the file system cannot sync (so there is nothing to do)."""

_WRITING = {errno.ENOSPC, errno.EFBIG, errno.EIO} | (
    {errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
"""Errors without a file name that a write to the temporary file raises."""


class WriteFailed(OSError):
    """A file could not be written; ``filename`` is the target, ``strerror`` the reason."""


@functools.cache
def _file_mode() -> int:
    """The mode a newly created file gets (0o666 less the umask), as ``open`` would give."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _prefix(target: Path, pid: int) -> str:
    return f".{target.name}.{pid}."


def _sync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise


def _sync_folder(folder: Path) -> None:
    """Sync a folder's entries (so a rename survives a crash); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class PendingFile:
    """A unique temporary file beside ``target`` that becomes ``target`` on :meth:`commit`.

    Write to :attr:`path` (by name: a figure, a Parquet writer), then :meth:`commit`, or
    :meth:`abort` to drop it. As a context manager it commits on success and aborts on any
    exception (KeyboardInterrupt included). Missing folders are created.

    Args:
        target: The file to write.
        suffix: The temporary name's ending (``.tmp``; ``.partial`` for an event log).

    Raises:
        WriteFailed: the folder cannot be made, or no file can be created in it.
    """

    def __init__(self, target: Path | str, suffix: str = ".tmp") -> None:
        """Create the temporary file (empty) in the target's folder."""
        self.target = Path(target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=_prefix(self.target, os.getpid()),
                                        suffix=suffix, dir=self.target.parent)
        except OSError as exc:
            raise self._failed(exc) from exc
        self.path = Path(name)
        """The temporary file to write to."""
        try:
            os.close(fd)
            with contextlib.suppress(OSError):  # some file systems keep their own modes
                os.chmod(self.path, _file_mode())  # as open() would: mkstemp gives 0o600
        except BaseException:
            self.abort()
            raise

    def _failed(self, exc: OSError) -> OSError:
        """``exc`` as a WriteFailed naming the target (not the temporary file)."""
        if isinstance(exc, WriteFailed):
            return exc
        return WriteFailed(exc.errno, exc.strerror or str(exc), str(self.target))

    def failure(self, exc: BaseException) -> BaseException:
        """What to raise for ``exc`` raised while writing: a WriteFailed when the write failed.

        An OSError about the temporary file, or a full disk, names the target instead; any
        other exception (a reader's, say) goes on as it is.
        """
        if not isinstance(exc, OSError) or isinstance(exc, WriteFailed):
            return exc
        if exc.filename in (str(self.path), self.path) or (
                exc.filename is None and exc.errno in _WRITING):
            return self._failed(exc)
        return exc

    def commit(self, synced: bool = False) -> Path:
        """Sync the file (unless ``synced``), rename it over the target, sync the folder.

        Raises:
            WriteFailed: the file could not be synced or renamed (it is removed).
        """
        try:
            if not synced:
                fd = os.open(self.path, os.O_RDWR)
                try:
                    _sync(fd)
                finally:
                    os.close(fd)
            os.replace(self.path, self.target)
        except OSError as exc:
            self.abort()
            raise self._failed(exc) from exc
        except BaseException:
            self.abort()
            raise
        _sync_folder(self.target.parent)
        return self.target

    def abort(self) -> None:
        """Remove the temporary file (nothing happens to the target)."""
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> PendingFile:
        """Use as ``with PendingFile(target) as pending: write(pending.path)``."""
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Commit, or abort on an exception (re-raised; a write failure as WriteFailed)."""
        if exc is None:
            self.commit()
            return
        self.abort()
        failure = self.failure(exc)
        if failure is not exc:
            raise failure from exc


@contextlib.contextmanager
def _streamed(target: Path | str, mode: str, encoding: str | None = None,
              newline: str | None = None) -> Iterator[IO[Any]]:
    """The file behind :func:`open_atomic` and :func:`write_bytes_atomic`, in ``mode``."""
    pending = PendingFile(target)
    try:
        with open(pending.path, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()
            _sync(fh.fileno())
    except BaseException as exc:
        pending.abort()
        failure = pending.failure(exc)
        if failure is exc:
            raise
        raise failure from exc
    pending.commit(synced=True)


@contextlib.contextmanager
def open_atomic(target: Path | str, *, encoding: str = "utf-8",
                newline: str | None = None) -> Iterator[TextIO]:
    """Stream text to ``target`` atomically (a ``with`` block yields the open file).

    The file appears, synced, only when the block ends without an exception; otherwise
    the target is left as it was and the temporary file is removed.

    Raises:
        WriteFailed: the file could not be created, written or renamed.
    """
    with _streamed(target, "w", encoding, newline) as fh:
        yield cast(TextIO, fh)


def write_text_atomic(target: Path | str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``target`` atomically (missing folders are created).

    Raises:
        WriteFailed: the file could not be written; ``target`` is as it was.
    """
    with open_atomic(target, encoding=encoding) as fh:
        fh.write(text)


def write_bytes_atomic(target: Path | str, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (missing folders are created).

    Raises:
        WriteFailed: the file could not be written; ``target`` is as it was.
    """
    with _streamed(target, "wb") as fh:
        fh.write(data)


def leftovers(target: Path | str, pid: int) -> list[Path]:
    """The temporary files that process ``pid`` has (or left) for ``target``."""
    target = Path(target)
    prefix = _prefix(target, pid)
    try:
        return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []


def remove_leftovers(target: Path | str, pid: int) -> None:
    """Remove what process ``pid`` left of writing ``target`` (it was stopped or killed)."""
    for path in leftovers(target, pid):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


__all__ = ["PendingFile", "WriteFailed", "leftovers", "open_atomic", "remove_leftovers",
           "write_bytes_atomic", "write_text_atomic"]
