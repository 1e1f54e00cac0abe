"""The commands that run simulations: ``run``, ``compare`` and ``sweep``.

Each is a thin shell over one public function of :mod:`simulations.runner` or
:mod:`simulations.experiments`, imported inside the command so that the command line
loads no engine until a simulation runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cpsim.common import input_errors
from cpsim.running import Progress, claim, n_workers, run_options, run_settings, simulation_errors
from model.errors import Problem


@click.command()
@click.argument("scenario")
@run_options
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
@input_errors
@simulation_errors
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
    settings = run_settings(sc, replications, seed, horizon_days, warm_up_days, machine,
                         no_event_log)
    if start_from is not None:
        settings = _snapshot_settings(sc, settings, start_from, data_format, as_of,
                                      warm_up_days)
    target = out or Path("out") / sc.name
    claim(target, "run", run_identity(sc, settings), force)
    if start_from is not None:
        _write_snapshot_listing(sc, settings, target)
    reps = max_replications if precision is not None else settings.replications
    with Progress(reps, settings.horizon_days, f"{sc.name}") as bar:
        if precision is None:
            result = run_scenario(sc, settings, target, n_workers(workers), bar.days,
                                  bar.done, dask, bar.note)
            note = ""
        else:
            def batch(n: int, kpi: str, width: float) -> None:
                bar.bar.write(f"{n} replications: widest headline half-width {width:.4f} "
                              f"({kpi})")

            reached = run_to_precision(
                sc, settings, target, precision, max_replications, n_workers(workers), dask,
                bar.days, bar.done, batch, bar.note)
            result = reached.run
            kpi, width = reached.widest
            note = (f"\nprecision {precision:g}: "
                    + (f"reached with {reached.replications} replications"
                       if reached.reached else
                       f"NOT reached at the maximum of {reached.replications} replications")
                    + f" (widest 95% half-width {width:.4f}, {kpi}; "
                    f"{len(reached.headline)} headline KPIs)")
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


@click.command()
@click.argument("a")
@click.argument("b")
@run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Comparison folder (default: out/compare/A-vs-B).")
@input_errors
@simulation_errors
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
    settings = run_settings(sa, replications, seed, horizon_days, warm_up_days, machine,
                         no_event_log)
    name_a, name_b = subject_name(sa), subject_name(sb)
    target = out or Path("out") / "compare" / f"{name_a}-vs-{name_b}"
    claim(target, "compare", compare_identity(sa, sb, settings), force)
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
    with Progress(2 * settings.replications, settings.horizon_days,
                  f"{name_a} vs {name_b}") as bar:
        result = run_compare(sa, sb, settings, target, n_workers(workers), dask, bar.days,
                             bar.done, bar.note)
    bar.say_reused()
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


@click.command()
@click.argument("scenario")
@click.option("--vary", "varies", multiple=True, required=True, metavar="PATH=VALUES",
              help="A numeric scenario field and its values: a list (3000,4100,5000) or a "
                   "range (30..60:5). Repeat for a grid; the first is the one minimised.")
@click.option("--target", default=None, metavar="KPI>=X",
              help="A KPI goal, e.g. icpc_held>=0.95 (a deadline id means its share met).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.9,
              show_default=True, help="Confidence that the target is met.")
@run_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sweep folder (default: out/sweep/SCENARIO).")
@input_errors
@simulation_errors
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
    settings = run_settings(sc, replications, seed, horizon_days, warm_up_days, machine,
                         no_event_log)
    target_dir = out or Path("out") / "sweep" / sc.name
    claim(target_dir, "sweep", sweep_identity(sc, parsed, settings), force)
    points = 1
    for v in parsed:
        points *= len(v.values)
    with Progress(points * settings.replications, settings.horizon_days,
                  f"{sc.name}: {points} points x {settings.replications} replications") as bar:
        result = run_sweep(sc, parsed, settings, target_dir, goal, confidence,
                           n_workers(workers), dask, bar.days, bar.done, bar.note)
    bar.say_reused()
    click.echo("\n" + result.sentence())
    if not no_report:
        from reports.sweep import build_sweep_report

        click.echo(f"\nreport: {build_sweep_report(target_dir)}")
    click.echo(f"results: {target_dir}")

