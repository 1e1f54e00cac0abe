"""The commands that hold simulations against published tables: ``validate`` and ``fit``.

Both read a published table (:func:`simulations.validate.read_published`) and compute each
published measure from the simulated CIN-flat records; ``fit`` also searches the scenario's
free parameters for the values that match the rows it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cpsim.common import F, input_errors
from cpsim.running import Progress, claim, n_workers, run_options, run_settings, simulation_errors


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


@click.command("validate")
@click.argument("subject")
@_published_options
@run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder to run into (default: out/SCENARIO).")
@input_errors
@simulation_errors
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
        settings = run_settings(sc, replications, seed, horizon_days, warm_up_days, machine,
                             False)
        target = out or Path("out") / sc.name
        claim(target, "run", run_identity(sc, settings), force)
        with Progress(settings.replications, settings.horizon_days, sc.name) as bar:
            run_scenario(sc, settings, target, n_workers(workers), bar.days, bar.done, dask,
                         bar.note)
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


@click.command("fit")
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
@run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for every candidate's run and the fit (default: out/fit-SCENARIO).")
@input_errors
@simulation_errors
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
    settings = run_settings(sc, replications, seed, horizon_days, warm_up_days, machine, False)
    target = out or Path("out") / f"fit-{sc.name}"
    factor = _scale_of(sc, scale)
    claim(target, "fit", fit_identity(sc, free, published, fitted, settings, factor,
                                       year_end, max_evaluations), force)

    def said(evaluation: Any, n: int) -> None:
        values = ", ".join(f"{v:.4f}" for v in evaluation.values)
        click.echo(f"  evaluation {n}: [{values}] loss {evaluation.loss:.3f}", err=True)

    result = fit(sc, free, published, fitted, settings, target, str(table), factor, year_end,
                 n_workers(workers), max_evaluations, said)
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

