"""What the commands that run simulations share: options, progress, signals, exit codes.

``run``, ``compare``, ``sweep``, ``validate`` and ``fit`` take the same run options
(:func:`run_options`), show one progress bar over simulated days (:class:`Progress`), claim
their output folder before writing (:func:`claim`) and map how a run ends to an exit code
(:func:`simulation_errors`): an invariant violated 1, a stuck scenario 2, Ctrl-C 130 and
SIGTERM 143 once the workers have stopped, every finished replication kept. The engine is
imported only inside what runs, so importing this module loads no SimPy.
"""

from __future__ import annotations

import sys
import time
from functools import wraps
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import click

from cpsim.common import F


class Progress:
    """A tqdm bar over the simulated days of many jobs (replications, grid points), with ETA.

    Used as a context manager, so the bar is closed however the run ends; its
    :meth:`days`, :meth:`done` and :meth:`note` are the runners' progress callbacks.
    """

    def __init__(self, jobs: int, horizon_days: float, desc: str,
                 stream: TextIO | None = None) -> None:
        """Start a bar for ``jobs`` jobs of ``horizon_days`` simulated days each.

        On a terminal the bar redraws in place. Anywhere else (a pipe, ``| tee log``, a CI
        log) a redrawn bar would write thousands of carriage-return updates, so instead one
        plain line is written per finished job, or per tenth of the jobs when there are
        more than ten; with fewer than ten jobs (one national replication split into 153
        authorities is one job here) also a line per tenth of all the simulated days.
        """
        from tqdm import tqdm

        self.stream = stream if stream is not None else sys.stderr
        self.horizon = float(horizon_days)
        self.jobs = jobs
        self.desc = desc
        self.finished: set[object] = set()
        self.lines_at = _line_marks(jobs)
        self.started = time.monotonic()
        self.bar = tqdm(total=jobs * self.horizon, unit="sim-day", desc=desc,
                        file=self.stream, dynamic_ncols=True,
                        disable=not _is_terminal(self.stream))
        self.reached: dict[object, float] = {}
        self.reused = 0
        self.simulated = 0.0
        self.tenths = 0  # tenths of all the simulated days reported in a plain line

    def __enter__(self) -> Progress:
        """Return the bar itself."""
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close the bar."""
        self.close()

    def days(self, key: object, days: float) -> None:
        """Job ``key`` has simulated ``days`` of the horizon."""
        before = self.reached.get(key, 0.0)
        days = min(days, self.horizon)
        if days > before:
            self.reached[key] = days
            self.bar.update(days - before)
            self.simulated += days - before
            if self.bar.disable and self.jobs < 10:
                tenths = int(10 * self.simulated / max(self.jobs * self.horizon, 1e-9))
                if self.tenths < tenths < 10:
                    self.tenths = tenths
                    print(f"{self.desc}: {10 * tenths}% of the simulated days "
                          f"({time.monotonic() - self.started:.0f} s)",
                          file=self.stream, flush=True)

    def done(self, key: object, reused: bool) -> None:
        """Job ``key`` is finished (or was found stored: ``reused``)."""
        self.days(key, self.horizon)
        self.reused += reused
        if key in self.finished:
            return
        self.finished.add(key)
        if self.bar.disable and len(self.finished) in self.lines_at:
            elapsed = time.monotonic() - self.started
            n = len(self.finished)
            print(f"{self.desc}: {n}/{self.jobs} jobs finished "
                  f"({100 * n // max(self.jobs, 1)}%, {elapsed:.0f} s)",
                  file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()

    def note(self, text: str) -> None:
        """Say something on stderr above the bar (a stored replication run again, say)."""
        self.bar.write(text, file=self.stream)

    def say_reused(self) -> None:
        """Say how many stored replications were reused, if any (after the bar is closed)."""
        if self.reused:
            click.echo(f"reused {self.reused} stored replications")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _line_marks(jobs: int) -> frozenset[int]:
    """After how many finished jobs a plain progress line is written: each, or each tenth.

    >>> sorted(_line_marks(3))
    [1, 2, 3]
    >>> sorted(_line_marks(100))
    [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    >>> sorted(_line_marks(15))
    [2, 3, 5, 6, 8, 9, 11, 12, 14, 15]
    """
    if jobs <= 10:
        return frozenset(range(1, jobs + 1))
    return frozenset(-(-jobs * k // 10) for k in range(1, 11))


class Terminated(KeyboardInterrupt):
    """SIGTERM: stopped like Ctrl-C (finished work kept), but exiting 143 (128 + SIGTERM)."""


class StopSignals:
    """The first Ctrl-C or SIGTERM stops the command; any later one ends it at once.

    The first raises KeyboardInterrupt (for SIGTERM, :class:`Terminated`) in the main
    thread, so the runner stops its workers and keeps every finished replication; the
    command then exits 130 (SIGTERM: 143). A second signal while that happens exits at once
    with the same code. A signal the command was started ignoring stays ignored; outside the
    main thread (no handlers can be set there) nothing changes.
    """

    def __init__(self) -> None:
        """Install the handlers."""
        import signal
        import threading

        self.signalled = 0
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        import contextlib
        import os
        import signal

        if self.signalled:
            with contextlib.suppress(OSError):
                os.write(2, b"\nstopped at once; finished replications are kept\n")
            os._exit(128 + self.signalled)
        self.signalled = signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def exit(self, code: int) -> None:
        """Exit with ``code``; after a signal, at once (workers are stopped, work stored).

        Skipping the interpreter's shutdown means nothing there can hang, and a second
        Ctrl-C cannot arrive once Python has put back the default handlers and kill the
        process by signal instead of exiting 130.
        """
        if self.signalled:
            import contextlib
            import os

            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
        sys.exit(code)

    def restore(self) -> None:
        """Put back the previous handlers (kept after a signal: the process is exiting)."""
        import signal

        if not self.signalled:
            for sig, old in self.previous.items():
                signal.signal(sig, old)


def simulation_errors(func: F) -> F:
    """Map simulation outcomes to exit codes.

    An invariant violation exits 1 with the case's trace; a stuck scenario exits 2; Ctrl-C
    exits 130 and SIGTERM 143 (128 + the signal), saying that finished work is kept, once
    the workers have stopped; a second Ctrl-C exits at once.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from simulations.engine import SimulationStuck
        from simulations.observers import InvariantViolated
        from simulations.runner import WorkerDied

        stops = StopSignals()
        try:
            return func(*args, **kwargs)
        except InvariantViolated as exc:
            click.echo(f"\ninvariant violated; the run stopped:\n{exc}", err=True)
            sys.exit(1)
        except SimulationStuck as exc:
            click.echo(f"\nerror: {exc}", err=True)
            sys.exit(2)
        except WorkerDied as exc:  # killed from outside (out of memory, say): not a bug here
            click.echo(f"\nerror: {exc}; every finished replication is kept on disk, so "
                       "the same command finishes the rest", err=True)
            sys.exit(1)
        except KeyboardInterrupt as exc:
            term = isinstance(exc, Terminated)
            click.echo(f"\n{'terminated' if term else 'interrupted'}: every finished "
                       "replication is kept on disk; run the same command again to finish "
                       "the rest.", err=True)
            stops.exit(143 if term else 130)
        finally:
            stops.restore()

    return wrapper  # type: ignore[return-value]


def run_options(func: F) -> F:
    """Options shared by run, compare and sweep."""
    options = [
        click.option("--replications", "-r", type=click.IntRange(min=1, max=10_000),
                     default=None, help="Replications (default: the scenario's own)."),
        click.option("--seed", type=click.IntRange(min=0), default=None,
                     help="Root seed (default: the scenario's own)."),
        click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
                     help="Worker processes (default: all cores)."),
        click.option("--dask", default=None, metavar="ADDRESS",
                     help="Run on a Dask cluster: a scheduler address, or 'local' to start "
                          "a local cluster (needs the 'dask' extra)."),
        click.option("--horizon-days", type=click.IntRange(min=1, max=18_263), default=None,
                     help="Override the simulated horizon (days)."),
        click.option("--warm-up-days", type=click.IntRange(min=0, max=18_262), default=None,
                     help="Override the warm-up (days)."),
        click.option("--machine", type=click.Choice(["table", "transitions"]),
                     default="table", show_default=True,
                     help="The compiled transition table (fast) or the transitions machine."),
        click.option("--no-event-log", is_flag=True, help="Do not write Parquet event logs."),
        click.option("--no-report", is_flag=True, help="Write tables only, no HTML report."),
        click.option("--force", is_flag=True,
                     help="If --out holds other files, or the results of a different "
                          "experiment, move them aside into a .replaced-DATE folder inside "
                          "it (nothing is deleted) instead of stopping."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def claim(out: Path, kind: str, identity: Any, force: bool) -> None:
    """Claim ``out`` for a command's results before anything is written (exit 2 if not).

    See :func:`simulations.folders.claim_folder`: an empty or missing folder, or one holding
    the same experiment, is used; anything else is refused unless ``force`` moves it aside.
    """
    from simulations.folders import claim_folder

    moved = claim_folder(out, kind, identity, force)  # type: ignore[arg-type]
    if moved is not None:
        click.echo(f"moved the old contents of {out} aside to {moved}", err=True)


def run_settings(sc: Any, replications: int | None, seed: int | None,
                 horizon_days: int | None, warm_up_days: int | None, machine: str,
                 no_event_log: bool) -> Any:
    """The scenario's run settings with the command line's overrides (a usage error if bad)."""
    from simulations.runner import settings_for

    settings = settings_for(sc, replications, seed, horizon_days, warm_up_days,
                            machine,  # type: ignore[arg-type]
                            event_log=not no_event_log)
    if settings.warm_up_days >= settings.horizon_days:
        raise click.UsageError("--warm-up-days must be shorter than the horizon")
    return settings


def n_workers(workers: int | None) -> int:
    """The --workers given, else every core."""
    import os

    return workers or os.cpu_count() or 1
