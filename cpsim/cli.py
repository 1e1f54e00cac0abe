"""The command line: parse arguments, call one public function per subcommand, print, exit.

Exit codes: 0 all good, 1 findings (a check failed), 2 a usage or input error, or a file
or folder that cannot be read or written (one line naming it and why). A user's mistake
never shows a traceback. A simulation stopped by Ctrl-C exits 130, by SIGTERM 143
(128 + the signal, as a shell reports it), once its workers have stopped; every finished
replication is kept. A second Ctrl-C exits at once.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from model.atomic import WriteFailed
from model.errors import InputError, Problem

F = TypeVar("F", bound=Callable[..., Any])


def _os_error_text(exc: OSError) -> str:
    """One plain line for a file system error: the file (or folder) and the reason.

    >>> _os_error_text(WriteFailed(13, "Permission denied", "/x/report.html"))
    'cannot write /x/report.html: permission denied'
    >>> _os_error_text(NotADirectoryError(20, "Not a directory", "notes.txt/out"))
    'notes.txt/out: not a directory'
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]
    if exc.filename is None:
        return reason
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"cannot write {where}: {reason}" if isinstance(exc, WriteFailed) else (
        f"{where}: {reason}")


def _input_errors(func: F) -> F:
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
            click.echo(f"error: {_os_error_text(exc)}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cp-procedure-sim")
def main() -> None:
    """cpsim: formally specified simulator of English child protection procedures."""


@main.command()
@click.argument("procedures", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Check every shipped procedure.")
@click.option("-v", "--verbose", is_flag=True, help="List every check that passed.")
@click.option("--timescales", is_flag=True,
              help="Also print when each stage can first happen if every rule is kept.")
@click.option("--from", "origin", default=None, metavar="EVENT",
              help="Measure --timescales from EVENT (e.g. trigger:strategy_discussion_held) "
                   "instead of the referral; implies --timescales.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document instead of text (keys below).")
@_input_errors
def check(procedures: tuple[str, ...], all_: bool, verbose: bool, timescales: bool,
          origin: str | None, as_json: bool) -> None:
    r"""Prove PROCEDURE sound (a shipped name or a path to a procedure file).

    Exhaustive graph checks (reachability, every state can end, no traps, ladders acyclic,
    decision points cannot strand a case), every declared property, and timescale
    consistency (the deadlines can all be kept, whatever the calendar). A violation prints
    a counterexample run and exits 1.

    With --json the same report is one JSON document (exit codes as for text; `walk
    --replay` reads either form):

    \b
    {"format": "cpsim-check", "version": 1, "ok": true|false,
     "reports": [one per procedure, in the order checked:
       {"procedure", "ok", "passed": [check names], "stats": {name: count},
        "findings": [{"check", "severity": "error"|"warning", "message",
                      "rules": [rule ids],
                      "path": [{"before": [states], "trigger", "transition_id",
                                "after": [states], "rules": [rule ids]}],
                      "stuck_at": [states] or null}],
        "timescales" (with --timescales or --from only): {"origin", "max_starts",
          "complete", "windows": [{"event", "reached", "earliest_hours",
                                   "latest_hours" (null: no upper bound)}]}}]}
    """
    from model.check import check_procedure
    from model.findings import CheckReport, format_report, reports_to_json
    from model.loader import available_procedures, load_procedure
    from model.timescales import event_from_text, format_timescales, timescale_bounds
    from model.trace import check_encoding

    names = list(procedures) + (list(available_procedures()) if all_ else [])
    if not names:
        raise click.UsageError("name a procedure (or use --all)")
    problems: list[Problem] = []
    loaded = []
    for name in names:
        try:
            loaded.append(load_procedure(name))
        except InputError as exc:
            problems.extend(exc.problems)
    origins = []
    for procedure in loaded:
        try:
            origins.append(event_from_text(procedure, origin) if origin else None)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    failed = 0
    reports: list[CheckReport] = []
    extras: list[dict[str, Any]] = []
    for procedure, start in zip(loaded, origins, strict=True):
        report = check_procedure(procedure).with_check("encoding", check_encoding(procedure))
        failed += not report.ok
        reports.append(report)
        extras.append({})
        if not as_json:
            click.echo(format_report(report, verbose=verbose))
        if timescales or origin:
            bounds = timescale_bounds(procedure, start)
            if as_json:
                extras[-1]["timescales"] = _bounds_json(bounds)
            else:
                click.echo(format_timescales(bounds, procedure.initial))
    if as_json:
        document = reports_to_json(reports)
        for item, extra in zip(document["reports"], extras, strict=True):
            item.update(extra)
        click.echo(json.dumps(document, indent=2))
    if failed:
        sys.exit(1)


def _bounds_json(bounds: Any) -> dict[str, Any]:
    """The stage windows of ``check --timescales`` as JSON-ready data (hours after origin)."""
    def hours(value: float | None) -> float | None:
        return None if value is None or math.isinf(value) else value + 0.0  # no -0.0

    return {"origin": str(bounds.origin), "max_starts": bounds.max_starts,
            "complete": bounds.complete,
            "windows": [{"event": str(w.event), "reached": w.earliest is not None,
                         "earliest_hours": hours(w.earliest), "latest_hours": hours(w.latest)}
                        for w in bounds.windows]}


@main.command()
@click.argument("procedure")
@click.option("--stage", default=None, help="Draw one stage (a state id such as icpc).")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "png", "svg"]),
              default="mermaid", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (default: print text formats; out/PROCEDURE.FORMAT for images).")
@_input_errors
def diagram(procedure: str, stage: str | None, fmt: str, out: Path | None) -> None:
    """Draw PROCEDURE (or one --stage) as Mermaid, DOT, PNG or SVG; no Graphviz needed."""
    from model.diagram import to_dot, to_mermaid
    from model.loader import load_procedure

    proc = load_procedure(procedure)
    if fmt in ("mermaid", "dot"):
        text = to_mermaid(proc, stage) if fmt == "mermaid" else to_dot(proc, stage)
        if out is None:
            click.echo(text)
        else:
            _write_text(out, text)
            click.echo(f"wrote {out}")
        return
    from reports.diagram import render_diagram

    target = out or Path("out") / f"{proc.id}{'-' + stage if stage else ''}.{fmt}"
    render_diagram(proc, target, fmt, stage)  # type: ignore[arg-type]
    click.echo(f"wrote {target}")


@main.command("trace")
@click.argument("procedure", required=False)
@click.option("--all", "all_", is_flag=True, help="Every shipped procedure, one file each.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "csv"]), default="md",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of printing (one procedure).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --all: the folder to write PROCEDURE.FORMAT files to "
                   "(default: out/trace).")
@_input_errors
def trace_cmd(procedure: str | None, all_: bool, fmt: str, out: Path | None,
              out_dir: Path | None) -> None:
    """Print PROCEDURE's rule trace: every rule id, where it is encoded and how, or why not.

    One row per rule of the registry: the elements that enforce it (structure, deadline,
    property, record, resource), or `not encoded` with the procedure's reason or "source not
    used by this procedure". Exit 1 when a rule of a source the procedure uses is neither
    encoded nor given a reason (`not_encoded`).
    """
    from model.loader import available_procedures, load_procedure
    from model.trace import TraceMatrix, trace, trace_csv, trace_markdown

    if all_ == (procedure is not None):
        raise click.UsageError("name a procedure, or use --all")
    if all_ and out is not None:
        raise click.UsageError("--all writes one file per procedure: use --out-dir")
    if not all_ and out_dir is not None:
        raise click.UsageError("--out-dir goes with --all; for one procedure use --out")

    def render(matrix: TraceMatrix) -> str:
        if fmt == "md":
            return trace_markdown(matrix)
        if fmt == "csv":
            return trace_csv(matrix)
        from reports.trace import render_trace_html

        return render_trace_html(matrix)

    names = list(available_procedures()) if all_ else [str(procedure)]
    problems: list[Problem] = []
    matrices: list[TraceMatrix] = []
    for name in names:
        try:
            matrices.append(trace(load_procedure(name)))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    if all_:
        folder = out_dir or Path("out") / "trace"
        for matrix in matrices:
            target = folder / f"{matrix.procedure}.{fmt}"
            _write_text(target, render(matrix))
            click.echo(f"wrote {target}")
        if fmt == "md":
            from model.trace import faithfulness_markdown

            target = folder / "README.md"
            _write_text(target, "<!-- Generated by `cpsim trace --all`; do not edit. -->\n"
                        "# How faithful is each procedure\n\n"
                        + faithfulness_markdown(matrices))
            click.echo(f"wrote {target}")
    elif out is not None:
        _write_text(out, render(matrices[0]))
        click.echo(f"wrote {out}")
    else:
        text = render(matrices[0])
        click.echo(text if text.endswith("\n") else text + "\n", nl=False)
    failing = [(m.procedure, r.rule) for m in matrices for r in m.failures]
    if failing:
        for name, rule in failing:
            click.echo(f"not encoded and no reason given: {name}: {rule}", err=True)
        sys.exit(1)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` ending in a newline, atomically (:func:`model.atomic.write_text_atomic`)."""
    from model.atomic import write_text_atomic

    write_text_atomic(path, text if text.endswith("\n") else text + "\n")


class _Progress:
    """A tqdm bar over simulated days of many jobs (replications, grid points), with ETA."""

    def __init__(self, total_days: float, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total_days, unit="sim-day", desc=desc, file=sys.stderr,
                        dynamic_ncols=True)
        self.reached: dict[object, float] = {}
        self.reused = 0

    def days(self, key: object, days: float, horizon: float) -> None:
        """Job ``key`` has simulated ``days`` of ``horizon``."""
        before = self.reached.get(key, 0.0)
        days = min(days, horizon)
        if days > before:
            self.reached[key] = days
            self.bar.update(days - before)

    def done(self, key: object, reused: bool, horizon: float) -> None:
        """Job ``key`` is finished (or was found stored: ``reused``)."""
        self.days(key, horizon, horizon)
        self.reused += reused

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()

    def note(self, text: str) -> None:
        """Say something on stderr above the bar (a stored replication run again, say)."""
        self.bar.write(text, file=sys.stderr)


class _Terminated(KeyboardInterrupt):
    """SIGTERM: stopped like Ctrl-C (finished work kept), but exiting 143 (128 + SIGTERM)."""


class _StopSignals:
    """The first Ctrl-C or SIGTERM stops the command; any later one ends it at once.

    The first raises KeyboardInterrupt (for SIGTERM, :class:`_Terminated`) in the main
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
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

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


def _simulation_errors(func: F) -> F:
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

        stops = _StopSignals()
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
            term = isinstance(exc, _Terminated)
            click.echo(f"\n{'terminated' if term else 'interrupted'}: every finished "
                       "replication is kept on disk; run the same command again to finish "
                       "the rest.", err=True)
            stops.exit(143 if term else 130)
        finally:
            stops.restore()

    return wrapper  # type: ignore[return-value]


def _run_options(func: F) -> F:
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


def _claim(out: Path, kind: str, identity: Any, force: bool) -> None:
    """Claim ``out`` for a command's results before anything is written (exit 2 if not).

    See :func:`simulations.folders.claim_folder`: an empty or missing folder, or one holding
    the same experiment, is used; anything else is refused unless ``force`` moves it aside.
    """
    from simulations.folders import claim_folder

    moved = claim_folder(out, kind, identity, force)  # type: ignore[arg-type]
    if moved is not None:
        click.echo(f"moved the old contents of {out} aside to {moved}", err=True)


def _settings(sc: Any, replications: int | None, seed: int | None, horizon_days: int | None,
              warm_up_days: int | None, machine: str, no_event_log: bool) -> Any:
    from simulations.runner import settings_for

    settings = settings_for(sc, replications, seed, horizon_days, warm_up_days,
                            machine,  # type: ignore[arg-type]
                            event_log=not no_event_log)
    if settings.warm_up_days >= settings.horizon_days:
        raise click.UsageError("--warm-up-days must be shorter than the horizon")
    return settings


def _workers(workers: int | None) -> int:
    import os

    return workers or os.cpu_count() or 1


@main.command()
@click.argument("scenario")
@_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder (default: out/SCENARIO).")
@click.option("--precision", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Add replications until every headline KPI's 95% half-width is below "
                   "this (e.g. 0.02 = 2 percentage points).")
@click.option("--max-replications", type=click.IntRange(min=1, max=10_000), default=50,
              show_default=True,
              help="The most replications --precision may run.")
@click.option("--start-from", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Start from today's caseload: real case data (CIN-flat, "
                                 "CSV or XES); every open case starts where it is, its "
                                 "clocks running.")
@click.option("--data-format", type=click.Choice(["cin-flat", "csv", "xes"]),
              default="cin-flat", show_default=True, help="The format of --start-from.")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The snapshot date of --start-from (default: the day after its last "
                   "event).")
@_input_errors
@_simulation_errors
def run(scenario: str, replications: int | None, seed: int | None, workers: int | None,
        dask: str | None, horizon_days: int | None, warm_up_days: int | None, machine: str,
        no_event_log: bool, no_report: bool, force: bool, out: Path | None,
        precision: float | None, max_replications: int, start_from: Path | None,
        data_format: str, as_of: Any) -> None:
    """Simulate SCENARIO (a shipped name or a path) and write a results folder.

    Shows a progress bar, prints the KPI summary, and writes run metadata, the event log
    (Parquet), KPI tables (CSV, Markdown) and an HTML report. Interrupted runs keep every
    finished replication; the same command picks up where it stopped.
    """
    from simulations.experiments import run_to_precision
    from simulations.folders import run_identity
    from simulations.kpi import headline_summary
    from simulations.runner import run_scenario
    from simulations.scenario import load_scenario

    sc = load_scenario(scenario)
    settings = _settings(sc, replications, seed, horizon_days, warm_up_days, machine,
                         no_event_log)
    if start_from is not None:
        settings = _snapshot_settings(sc, settings, start_from, data_format, as_of,
                                      warm_up_days)
    target = out or Path("out") / sc.name
    _claim(target, "run", run_identity(sc, settings), force)
    if start_from is not None:
        _write_snapshot_listing(sc, settings, target)
    horizon = float(settings.horizon_days)
    reps = max_replications if precision is not None else settings.replications
    bar = _Progress(reps * horizon, f"{sc.name}")
    try:
        if precision is None:
            result = run_scenario(sc, settings, target, _workers(workers),
                                  lambda rep, days: bar.days(rep, days, horizon),
                                  lambda rep, reused: bar.done(rep, reused, horizon), dask,
                                  bar.note)
            note = ""
        else:
            def batch(n: int, kpi: str, width: float) -> None:
                bar.bar.write(f"{n} replications: widest headline half-width {width:.4f} "
                              f"({kpi})")

            reached = run_to_precision(
                sc, settings, target, precision, max_replications, _workers(workers), dask,
                lambda rep, days: bar.days(rep, days, horizon),
                lambda rep, reused: bar.done(rep, reused, horizon), batch, bar.note)
            result = reached.run
            kpi, width = reached.widest
            note = (f"\nprecision {precision:g}: "
                    + (f"reached with {reached.replications} replications"
                       if reached.reached else
                       f"NOT reached at the maximum of {reached.replications} replications")
                    + f" (widest 95% half-width {width:.4f}, {kpi}; "
                    f"{len(reached.headline)} headline KPIs)")
    finally:
        bar.close()
    rows = headline_summary(result.kpis)
    width = max(len(r[0]) for r in rows)
    click.echo(f"\n{sc.name}: {len(result.records)} replications, seed {settings.seed}, "
               f"{settings.horizon_days} days ({settings.warm_up_days} warm-up)"
               + (f"; reused {len(result.reused)} stored" if result.reused else ""))
    for label, mean, ci in rows:
        click.echo(f"  {label:<{width}}  {mean:>10}  [{ci}]")
    if note:
        click.echo(note)
    if not no_report:
        from reports.report import build_report

        click.echo(f"\nreport: {build_report(target)}")
    click.echo(f"results: {target}")


def _snapshot_settings(sc: Any, settings: Any, data: Path, fmt: str, as_of: Any,
                       warm_up_days: int | None) -> Any:
    """Run settings that start from a snapshot (no warm-up unless asked for).

    Raises:
        InputError: the scenario's procedure has no CIN-flat mapping (before anything runs).
    """
    import dataclasses
    import hashlib

    from simulations.casedata import cin_mapping

    cin_mapping(sc.procedure)
    return dataclasses.replace(
        settings, start_from=str(data.resolve()),
        start_from_sha256=hashlib.sha256(data.read_bytes()).hexdigest(), data_format=fmt,
        as_of=as_of.date().isoformat() if as_of else None,
        warm_up_days=warm_up_days or 0)


def _write_snapshot_listing(sc: Any, settings: Any, target: Path) -> None:
    """Say what the snapshot starts, and list (never drop) what it cannot."""
    import csv
    import io
    from collections import Counter

    from model.atomic import write_text_atomic
    from simulations.runner import snapshot_for

    snap = snapshot_for(sc, settings)
    stages = Counter(h.final.split(" + ")[0].split(".")[0] for h in snap.open_cases)
    click.echo(f"snapshot {snap.day.isoformat()}: {len(snap.open_cases)} open cases start "
               f"where they are ({', '.join(f'{k} {v}' for k, v in sorted(stages.items()))}); "
               f"{snap.closed} already closed; {len(snap.unreachable)} not reachable")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["child", "outcome", "state_or_reason"])
    for h in snap.open_cases:
        w.writerow([h.case_id, "started", h.final])
    for child, why in snap.unreachable:
        w.writerow([child, "not reachable", why])
        click.echo(f"  not reachable: {child}: {why}")
    write_text_atomic(target / "start-from.csv", buf.getvalue())


@main.command()
@click.argument("a")
@click.argument("b")
@_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Comparison folder (default: out/compare/A-vs-B).")
@_input_errors
@_simulation_errors
def compare(a: str, b: str, replications: int | None, seed: int | None, workers: int | None,
            dask: str | None, horizon_days: int | None, warm_up_days: int | None,
            machine: str, no_event_log: bool, no_report: bool, force: bool,
            out: Path | None) -> None:
    """What does a change do? Run A and B with the same seed and compare every KPI.

    A and B are scenarios or procedures (a procedure runs on the baseline scenario). Both
    share common random numbers; each KPI is shown for A and B with the difference (B - A)
    and its 95% interval, flagged when the interval excludes zero. The structural diff of
    the two procedures and both `check` verdicts come first.
    """
    from model.check import check_procedure
    from model.diff import diff_procedures, format_diff
    from model.errors import InputError
    from model.findings import format_report
    from model.trace import check_encoding
    from simulations.experiments import compare as run_compare
    from simulations.experiments import compare_identity, resolve_subject, subject_name

    problems: list[Problem] = []
    subjects = []
    for ref in (a, b):
        try:
            subjects.append(resolve_subject(ref))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    sa, sb = subjects
    settings = _settings(sa, replications, seed, horizon_days, warm_up_days, machine,
                         no_event_log)
    name_a, name_b = subject_name(sa), subject_name(sb)
    target = out or Path("out") / "compare" / f"{name_a}-vs-{name_b}"
    _claim(target, "compare", compare_identity(sa, sb, settings), force)
    checks = [(name, check_procedure(s.procedure).with_check("encoding",
                                                             check_encoding(s.procedure)))
              for name, s in ((name_a, sa), (name_b, sb))]
    for name, rep in sorted(checks, key=lambda c: c[1].ok):
        verdict = "PASS" if rep.ok else "FAIL"
        click.echo(f"check {name}: {verdict}")
        if not rep.ok:
            click.echo("\n".join("  " + line for line in format_report(rep).splitlines()[1:]))
    click.echo(f"\nstructural diff ({name_a} -> {name_b}):")
    click.echo("\n".join("  " + line for line in
                          format_diff(diff_procedures(sa.procedure, sb.procedure)).splitlines()))
    horizon = float(settings.horizon_days)
    bar = _Progress(2 * settings.replications * horizon, f"{name_a} vs {name_b}")
    try:
        result = run_compare(sa, sb, settings, target, _workers(workers), dask,
                             lambda job, days: bar.days(job, days, horizon),
                             lambda job, reused: bar.done(job, reused, horizon), bar.note)
    finally:
        bar.close()
    if bar.reused:
        click.echo(f"reused {bar.reused} stored replications")
    flagged = [d for d in result.diffs if d.significant]
    click.echo(f"\n{result.b_name} vs {result.a_name}: {len(flagged)} of {len(result.diffs)} "
               f"KPIs differ (95% interval of B - A excludes 0); same seed "
               f"{settings.seed}, {settings.replications} replications")
    for d in sorted(flagged, key=lambda d: (d.group != "deadline", -abs(d.diff))):
        click.echo(f"  {d.label}: {_value(d.unit, d.a.mean)} -> {_value(d.unit, d.b.mean)}"
                   f"  ({_value(d.unit, d.diff, signed=True)}, 95% CI "
                   f"{_value(d.unit, d.low, signed=True)} to "
                   f"{_value(d.unit, d.high, signed=True)})")
    if not no_report:
        from reports.compare import build_compare_report

        click.echo(f"\nreport: {build_compare_report(target)}")
    click.echo(f"results: {target}")


def _value(unit: str, x: float, signed: bool = False) -> str:
    import math

    if math.isnan(x):
        return "–"
    if unit == "share":
        return f"{100 * x:+.1f} pts" if signed else f"{100 * x:.1f}%"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


@main.command()
@click.argument("scenario")
@click.option("--vary", "varies", multiple=True, required=True, metavar="PATH=VALUES",
              help="A numeric scenario field and its values: a list (3000,4100,5000) or a "
                   "range (30..60:5). Repeat for a grid; the first is the one minimised.")
@click.option("--target", default=None, metavar="KPI>=X",
              help="A KPI goal, e.g. icpc_held>=0.95 (a deadline id means its share met).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.9,
              show_default=True, help="Confidence that the target is met.")
@_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sweep folder (default: out/sweep/SCENARIO).")
@_input_errors
@_simulation_errors
def sweep(scenario: str, varies: tuple[str, ...], target: str | None, confidence: float,
          replications: int | None, seed: int | None, workers: int | None, dask: str | None,
          horizon_days: int | None, warm_up_days: int | None, machine: str,
          no_event_log: bool, no_report: bool, force: bool, out: Path | None) -> None:
    """How many staff? Run SCENARIO over a grid of values and find what meets a target.

    Writes a tidy table (one row per grid point and replication), capacity curves, and with
    --target the smallest value of the first --vary that meets it with the requested
    confidence, stated in one sentence.
    """
    from model.errors import InputError
    from simulations.experiments import parse_target, parse_vary, sweep_identity
    from simulations.experiments import sweep as run_sweep
    from simulations.kpi import kpi_ids
    from simulations.scenario import load_scenario

    sc = load_scenario(scenario)
    problems: list[Problem] = []
    parsed = []
    for text in varies:
        try:
            parsed.append(parse_vary(text, sc))
        except InputError as exc:
            problems.extend(exc.problems)
    goal = None
    if target is not None:
        ids = kpi_ids(sc.procedure)
        try:
            goal = parse_target(target, ids)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    settings = _settings(sc, replications, seed, horizon_days, warm_up_days, machine,
                         no_event_log)
    target_dir = out or Path("out") / "sweep" / sc.name
    _claim(target_dir, "sweep", sweep_identity(sc, parsed, settings), force)
    points = 1
    for v in parsed:
        points *= len(v.values)
    horizon = float(settings.horizon_days)
    bar = _Progress(points * settings.replications * horizon,
                    f"{sc.name}: {points} points x {settings.replications} replications")
    try:
        result = run_sweep(sc, parsed, settings, target_dir, goal, confidence,
                           _workers(workers), dask,
                           lambda job, days: bar.days(job, days, horizon),
                           lambda job, reused: bar.done(job, reused, horizon), bar.note)
    finally:
        bar.close()
    if bar.reused:
        click.echo(f"reused {bar.reused} stored replications")
    click.echo("\n" + result.sentence())
    if not no_report:
        from reports.sweep import build_sweep_report

        click.echo(f"\nreport: {build_sweep_report(target_dir)}")
    click.echo(f"results: {target_dir}")


@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_input_errors
def report(results_dir: Path) -> None:
    """Rebuild the report of RESULTS_DIR from its stored results, without re-running."""
    from reports.report import build_report

    click.echo(f"report: {build_report(results_dir)}")


@main.command("export")
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["xes", "ocel", "csv", "cin-flat"]),
              required=True, help="XES or OCEL 2.0 (process mining), CSV, or CIN-flat.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (default: RESULTS_DIR/export/events.<format>).")
@_input_errors
def export_cmd(results_dir: Path, fmt: str, out: Path | None) -> None:
    """Export the simulated event logs of RESULTS_DIR (XES, OCEL 2.0, CSV or CIN-flat)."""
    from simulations.export import SUFFIX, export_results
    from simulations.results import read_results

    results = read_results(results_dir)
    target = out or results_dir / "export" / f"events{SUFFIX[fmt]}"
    rows = export_results(results, fmt, target)  # type: ignore[arg-type]
    click.echo(f"wrote {rows} events to {target}")


def _month_day(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    """``MM-DD`` as (month, day), a real day of the year."""
    from datetime import date

    try:
        month, day = (int(x) for x in value.split("-"))
        date(2000, month, day)  # a leap year: 02-29 is allowed
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a month and day (MM-DD), e.g. 03-31") from None
    return month, day


def _published_options(func: F) -> F:
    """Options shared by validate and fit: the published table, scale and year end."""
    options = [
        click.option("--against", "table", type=click.Path(dir_okay=False, path_type=Path),
                     required=True,
                     help="A published table (CSV; see data/published/README.md)."),
        click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Multiply simulated counts by this (default: the scenario's "
                          "validation.scale, else 1)."),
        click.option("--year-end", default="03-31", show_default=True, callback=_month_day,
                     help="The day the published year ends (MM-DD)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _scale_of(sc: Any, scale: float | None) -> float:
    """The --scale given, else the scenario's validation.scale, else 1."""
    if scale is not None:
        return scale
    return sc.spec.validation.scale if sc.spec.validation is not None else 1.0


@main.command("validate")
@click.argument("subject")
@_published_options
@_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder to run into (default: out/SCENARIO).")
@_input_errors
@_simulation_errors
def validate_cmd(subject: str, table: Path, scale: float | None, year_end: tuple[int, int],
                 replications: int | None, seed: int | None, workers: int | None,
                 dask: str | None, horizon_days: int | None, warm_up_days: int | None,
                 machine: str, no_event_log: bool, no_report: bool, force: bool,
                 out: Path | None) -> None:
    """Compare SUBJECT (a scenario, or a results folder) with a published table.

    Runs the scenario (reusing finished replications) or reads the results folder,
    computes each published measure from the simulated CIN-flat records as the Department
    for Education does, and prints and writes the side-by-side table with a verdict per
    row (validation.csv, validation.html in the results folder).
    """
    from reports.validate import write_validation
    from simulations.results import read_results
    from simulations.steady import steady_lines, steady_state
    from simulations.validate import format_validation, read_published, validate_results

    published = read_published(table)
    folder = Path(subject)
    if (folder / "metadata.json").is_file():
        target = folder
    else:
        from simulations.folders import run_identity
        from simulations.runner import run_scenario
        from simulations.scenario import load_scenario

        if no_event_log:
            raise click.UsageError("validate measures the event logs: drop --no-event-log")
        sc = load_scenario(subject)
        settings = _settings(sc, replications, seed, horizon_days, warm_up_days, machine,
                             False)
        target = out or Path("out") / sc.name
        _claim(target, "run", run_identity(sc, settings), force)
        horizon = float(settings.horizon_days)
        bar = _Progress(settings.replications * horizon, sc.name)
        try:
            run_scenario(sc, settings, target, _workers(workers),
                         lambda rep, days: bar.days(rep, days, horizon),
                         lambda rep, reused: bar.done(rep, reused, horizon), dask, bar.note)
        finally:
            bar.close()
        if not no_report:
            from reports.report import build_report

            build_report(target)
    results = read_results(target)
    v = validate_results(results, published, str(table), _scale_of(results.scenario, scale),
                         year_end)
    click.echo(format_validation(v))
    steady = steady_lines(steady_state(list(results.records)))
    click.echo("steady state:\n" + "\n".join(f"  {line}" for line in steady))
    page = write_validation(v, target, steady)
    click.echo(f"\nvalidation: {page}\ntable: {target / 'validation.csv'}")


@main.command("fit")
@click.argument("scenario")
@click.option("--free", "frees", multiple=True, required=True, metavar="PATH=LOW:HIGH",
              help="A free parameter and its bounds (repeat). A key with dots goes in "
                   "brackets: behaviour[cp_plan.active].chance=0:1.")
@click.option("--rows", "rows", multiple=True, required=True, metavar="KEY",
              help="Published rows to fit (repeat): a measure, a source id (CAL-10 for all "
                   "its rows) or measure@YEAR. The other rows are held out.")
@_published_options
@click.option("--max-evaluations", type=click.IntRange(min=2), default=40, show_default=True,
              help="The most simulated candidates the optimiser may try.")
@_run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for every candidate's run and the fit (default: out/fit-SCENARIO).")
@_input_errors
@_simulation_errors
def fit_cmd(scenario: str, table: Path, frees: tuple[str, ...], rows: tuple[str, ...],
            scale: float | None, year_end: tuple[int, int], max_evaluations: int,
            replications: int | None, seed: int | None, workers: int | None,
            dask: str | None, horizon_days: int | None, warm_up_days: int | None,
            machine: str, no_event_log: bool, no_report: bool, force: bool,
            out: Path | None) -> None:
    """Fit SCENARIO's free parameters to published rows by simulation.

    Each candidate runs from the same seed (common random numbers); Nelder-Mead minimises
    the squared differences in units of each row's tolerance. Prints the fitted values
    with standard errors and the validation table after fitting (held-out rows marked),
    and writes fit.csv, fit.json, fitted-validation.csv/html and every candidate's run.
    """
    import json

    from model.atomic import write_text_atomic
    from reports.validate import write_validation
    from simulations.fit import fit, fit_csv, fit_identity, format_fit, parse_free, select_rows
    from simulations.scenario import load_scenario
    from simulations.validate import format_validation, read_published

    del dask, no_report
    if no_event_log:
        raise click.UsageError("fit measures the event logs: drop --no-event-log")
    published = read_published(table)
    sc = load_scenario(scenario)
    free = [parse_free(text, sc) for text in frees]
    fitted = select_rows(published, rows)
    settings = _settings(sc, replications, seed, horizon_days, warm_up_days, machine, False)
    target = out or Path("out") / f"fit-{sc.name}"
    factor = _scale_of(sc, scale)
    _claim(target, "fit", fit_identity(sc, free, published, fitted, settings, factor,
                                       year_end, max_evaluations), force)

    def said(evaluation: Any, n: int) -> None:
        values = ", ".join(f"{v:.4f}" for v in evaluation.values)
        click.echo(f"  evaluation {n}: [{values}] loss {evaluation.loss:.3f}", err=True)

    result = fit(sc, free, published, fitted, settings, target, str(table), factor, year_end,
                 _workers(workers), max_evaluations, said)
    click.echo(format_fit(result))
    click.echo("\nafter fitting (rows not fitted are held out):")
    click.echo(format_validation(result.best.validation))
    write_text_atomic(target / "fit.csv", fit_csv(result))
    write_text_atomic(target / "fit.json", json.dumps({
        "scenario": str(sc.path), "seed": settings.seed,
        "replications": settings.replications, "table": str(table),
        "fitted_rows": [f"{p.measure}@{p.year_end.year}" for p in result.fitted],
        "values": result.overrides(),
        "std_errors": dict(zip([f.path for f in free], result.errors, strict=True)),
        "loss_before": result.before.loss, "loss_after": result.best.loss,
        "evaluations": result.evaluations, "converged": result.converged,
        "best_run": str(result.best.folder)}, indent=2, default=str))
    page = write_validation(result.best.validation, result.best.folder)
    click.echo(f"\nfit: {target / 'fit.csv'}\nvalidation after fitting: {page}")


@main.command("conform")
@click.argument("data", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--procedure", "procedure_ref", required=True,
              help="The procedure to hold the data against (a shipped name or a path).")
@click.option("--format", "fmt", type=click.Choice(["cin-flat", "csv", "xes"]),
              default="cin-flat", show_default=True)
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The date the data was extracted (later dates are rejected; default today).")
@click.option("--key-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Secret key for pseudonyms (default: a random key, so "
                                 "pseudonyms differ between runs). Or set CPSIM_PSEUDONYM_KEY.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write findings and KPI tables here (default: out/conform/DATA-STEM).")
@_input_errors
def conform_cmd(data: Path, procedure_ref: str, fmt: str, as_of: Any, key_file: Path | None,
                out: Path | None) -> None:
    """Replay real case records (DATA) through a procedure: what conforms, what does not.

    Reports out-of-order or impossible events with the rule ids they break, every
    deadline met or missed as the simulator's KPI table, and bad rows by row number.
    Children appear only by pseudonym. Exit 1 when any event does not conform.
    """
    import os

    from model.atomic import write_text_atomic
    from model.loader import load_procedure
    from simulations.conform import conform, findings_csv, pseudonymiser_from, summary_lines
    from simulations.kpi import kpis_csv, kpis_markdown

    procedure = load_procedure(procedure_ref)
    key = key_file.read_bytes().strip() if key_file else (
        os.environ.get("CPSIM_PSEUDONYM_KEY", "").encode() or None)
    result = conform(data, procedure, pseudonymiser_from(key), fmt,  # type: ignore[arg-type]
                     as_of.date() if as_of else None)
    target = out or Path("out") / "conform" / data.stem
    write_text_atomic(target / "findings.csv", findings_csv(result))
    write_text_atomic(target / "kpis.csv", kpis_csv(result.kpis))
    write_text_atomic(target / "kpis.md", f"# KPIs from {data.name} (pseudonymised)\n\n"
                      + "\n".join(summary_lines(result)) + "\n\n"
                      + kpis_markdown(result.kpis, ("deadline", "flow", "plans")))
    for line in summary_lines(result):
        click.echo(line)
    for f in result.findings[:20]:
        click.echo(f"  row {f.number}: {f.child} {f.event_type} on {f.day.isoformat()} in "
                   f"{f.state}: {f.message} [{', '.join(f.rules)}]")
    for r in result.rejected[:20]:
        click.echo(f"  row {r.number}: rejected: {r.reason}")
    if len(result.findings) + len(result.rejected) > 40:
        click.echo(f"  ... all of them in {target / 'findings.csv'}")
    click.echo(f"results: {target}")
    if result.findings:
        sys.exit(1)


@main.command("calibrate")
@click.argument("data", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--procedure", "procedure_ref", required=True,
              help="The procedure the data is held against (a shipped name or a path).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The scenario file to write (its name becomes the scenario's name).")
@click.option("--base", default="baseline", show_default=True,
              help="The scenario to extend (staffing and whatever the data cannot show).")
@click.option("--format", "fmt", type=click.Choice(["cin-flat", "csv", "xes"]),
              default="cin-flat", show_default=True)
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The date the data was extracted (default today).")
@_input_errors
def calibrate_cmd(data: Path, procedure_ref: str, out: Path, base: str, fmt: str,
                  as_of: Any) -> None:
    """Estimate a scenario from case data: volume, branching, durations, plan endings.

    Uses the children whose every event conforms to the procedure; writes a scenario that
    extends --base, with the counts and a 95% interval beside every estimate.
    """
    import secrets

    from model.atomic import write_text_atomic
    from model.errors import InputError, Problem
    from model.loader import load_procedure, resolve_procedure_path
    from simulations.calibrate import calibrate, scenario_yaml
    from simulations.casedata import Pseudonymiser
    from simulations.conform import conform
    from simulations.scenario import load_scenario

    base_scenario = load_scenario(base)
    procedure = load_procedure(procedure_ref)
    if procedure.id != base_scenario.procedure.id:
        path = resolve_procedure_path(procedure_ref).resolve()
        base_scenario = load_scenario(base, {"procedure": str(path)})
    if not out.name.endswith(".yaml"):
        raise InputError([Problem("--out", None, "", "the scenario file must end in .yaml",
                                  str(out))])
    result = conform(data, procedure, Pseudonymiser(secrets.token_bytes(32)),
                     fmt, as_of.date() if as_of else None,  # type: ignore[arg-type]
                     keep_steps=True)
    if not result.conformant:
        raise InputError([Problem(str(data), None, "", "no child's events all conform to "
                                  "the procedure: nothing to estimate from")])
    cal = calibrate(result, data, base_scenario)
    write_text_atomic(out, scenario_yaml(cal, base_scenario, out.stem))
    click.echo(f"estimated from {cal.children} conformant children ({result.children} in "
               f"the data), {cal.days} days")
    for note in cal.kept:
        click.echo(f"  kept from {base}: {note}")
    click.echo(f"wrote {out}; run it with: cpsim run {out}")


@main.command()
@click.argument("procedure")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML file to write (default: out/PROCEDURE-explore.html).")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The case's start date, YYYY-MM-DD (default: today); the page holds bank "
                   "holidays for that year and the next three.")
@_input_errors
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


# -- trainers: walk and paths ----------------------------------------------------------------
@main.command()
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
@_input_errors
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


@main.command()
@click.argument("procedure")
@click.option("--cover", type=click.Choice(["states", "transitions", "deadlines", "rules"]),
              required=True, help="What the walkthroughs must cover between them.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the transcripts here (default: out/paths/PROCEDURE-COVER).")
@_input_errors
def paths(procedure: str, cover: str, out: Path | None) -> None:
    """Plan a small set of walkthroughs that together cover every state, transition, ...

    Each walkthrough is written as a transcript that `cpsim walk --replay` runs. The set
    is chosen greedily (not proven minimal). Exit 1 when something cannot be covered.
    """
    from cpsim.walk import paths_command

    sys.exit(paths_command(procedure, cover, out))


@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--case", "case_id", default=None, metavar="ID", help="The case to tell.")
@click.option("--pick", type=click.Choice(["longest", "breached", "escalated"]), default=None,
              help="Or pick one: most steps, most missed deadlines, or highest up a "
                   "resolution ladder.")
@click.option("--replication", type=click.IntRange(min=0), default=None,
              help="Replication (default: the first with an event log).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the Markdown here instead of printing it.")
@_input_errors
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
        _write_text(out, files.markdown)
        click.echo(f"wrote {out}\nstory: {files.html_path}\nstory: {files.md_path}")
