"""The command line: parse arguments, call one public function per subcommand, print, exit.

Exit codes: 0 all good, 1 findings (a check failed), 2 a usage or input error. A user's
mistake never shows a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from model.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def _input_errors(func: F) -> F:
    """Turn an InputError into one line per problem on stderr and exit code 2."""

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

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cp-procedure-sim")
def main() -> None:
    """cpsim: formally specified simulator of English child protection procedures."""


@main.command()
@click.argument("procedures", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Check every shipped procedure.")
@click.option("-v", "--verbose", is_flag=True, help="List every check that passed.")
@_input_errors
def check(procedures: tuple[str, ...], all_: bool, verbose: bool) -> None:
    """Prove PROCEDURE sound (a shipped name or a path to a procedure file).

    Exhaustive graph checks (reachability, every state can end, no traps, ladders acyclic,
    decision points cannot strand a case) and every declared property. A violation prints
    a counterexample run and exits 1.
    """
    from model.check import check_procedure, format_report
    from model.loader import available_procedures, load_procedure

    names = list(procedures) + (list(available_procedures()) if all_ else [])
    if not names:
        raise click.UsageError("name a procedure (or use --all)")
    problems = []
    loaded = []
    for name in names:
        try:
            loaded.append(load_procedure(name))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    failed = 0
    for procedure in loaded:
        report = check_procedure(procedure)
        click.echo(format_report(report, verbose=verbose))
        failed += not report.ok
    if failed:
        sys.exit(1)


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


def _write_text(path: Path, text: str) -> None:
    """Write atomically: a temporary file beside the target, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    tmp.replace(path)


@main.command()
@click.argument("scenario")
@click.option("--replications", "-r", type=click.IntRange(min=1), default=None,
              help="Replications (default: the scenario's own).")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Root seed (default: the scenario's own).")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder (default: out/SCENARIO).")
@click.option("--horizon-days", type=click.IntRange(min=1), default=None,
              help="Override the simulated horizon (days).")
@click.option("--warm-up-days", type=click.IntRange(min=0), default=None,
              help="Override the warm-up (days).")
@click.option("--machine", type=click.Choice(["table", "transitions"]), default="table",
              show_default=True,
              help="The compiled transition table (fast) or the transitions machine itself.")
@click.option("--no-event-log", is_flag=True, help="Do not write the Parquet event log.")
@click.option("--no-report", is_flag=True, help="Write tables only, not the HTML report.")
@_input_errors
def run(scenario: str, replications: int | None, seed: int | None, workers: int | None,
        out: Path | None, horizon_days: int | None, warm_up_days: int | None, machine: str,
        no_event_log: bool, no_report: bool) -> None:
    """Simulate SCENARIO (a shipped name or a path) and write a results folder.

    Shows a progress bar, prints the KPI summary, and writes run metadata, the event log
    (Parquet), KPI tables (CSV, Markdown) and an HTML report. Interrupted runs keep every
    finished replication; the same command picks up where it stopped.
    """
    import os

    from tqdm import tqdm

    from simulations.kpi import headline_summary
    from simulations.runner import run_scenario, settings_for
    from simulations.scenario import load_scenario

    sc = load_scenario(scenario)
    settings = settings_for(sc, replications, seed, horizon_days, warm_up_days,
                            machine,  # type: ignore[arg-type]
                            event_log=not no_event_log)
    if settings.warm_up_days >= settings.horizon_days:
        raise click.UsageError("--warm-up-days must be shorter than the horizon")
    target = out or Path("out") / sc.name
    n_workers = workers or os.cpu_count() or 1
    reached: dict[int, float] = {}
    bar = tqdm(total=settings.replications * settings.horizon_days, unit="sim-day",
               desc=f"{sc.name} ({settings.replications} replications)", file=sys.stderr,
               dynamic_ncols=True)

    def progress(rep: int, days: float) -> None:
        before = reached.get(rep, 0.0)
        days = min(days, float(settings.horizon_days))
        if days > before:
            reached[rep] = days
            bar.update(days - before)

    def finished(rep: int, was_reused: bool) -> None:
        progress(rep, float(settings.horizon_days))

    from simulations.engine import SimulationStuck
    from simulations.observers import InvariantViolated

    try:
        result = run_scenario(sc, settings, target, n_workers, progress, finished)
    except InvariantViolated as exc:
        bar.close()
        click.echo(f"invariant violated; the run stopped:\n{exc}", err=True)
        sys.exit(1)
    except SimulationStuck as exc:
        bar.close()
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        bar.close()
        kept = len(list((target / "replications").glob("rep-*.json")))
        click.echo(f"interrupted: {kept} finished replication(s) kept in {target}; run the "
                   "same command again to finish the rest.", err=True)
        sys.exit(130)
    bar.close()
    rows = headline_summary(result.kpis)
    width = max(len(r[0]) for r in rows)
    click.echo(f"\n{sc.name}: {settings.replications} replications, seed {settings.seed}, "
               f"{settings.horizon_days} days ({settings.warm_up_days} warm-up)"
               + (f"; reused {len(result.reused)} stored" if result.reused else ""))
    for label, mean, ci in rows:
        click.echo(f"  {label:<{width}}  {mean:>10}  [{ci}]")
    if not no_report:
        from reports.report import build_report

        path = build_report(target)
        click.echo(f"\nreport: {path}")
    click.echo(f"results: {target}")


@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_input_errors
def report(results_dir: Path) -> None:
    """Rebuild the report of RESULTS_DIR from its stored results, without re-running."""
    from reports.report import build_report

    click.echo(f"report: {build_report(results_dir)}")
