"""The commands that read results or real case data: report, export, conform, calibrate.

None runs a simulation: they rebuild a report from a results folder, export its event logs,
hold real case records against a procedure, or estimate a scenario from them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cpsim.common import input_errors


@click.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@input_errors
def report(results_dir: Path) -> None:
    """Rebuild the report of RESULTS_DIR from its stored results, without re-running."""
    from reports.report import build_report

    click.echo(f"report: {build_report(results_dir)}")


@click.command("export")
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["xes", "ocel", "csv", "cin-flat"]),
              required=True, help="XES or OCEL 2.0 (process mining), CSV, or CIN-flat.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (default: RESULTS_DIR/export/events.<format>).")
@input_errors
def export_cmd(results_dir: Path, fmt: str, out: Path | None) -> None:
    """Export the simulated event logs of RESULTS_DIR (XES, OCEL 2.0, CSV or CIN-flat)."""
    from simulations.export import SUFFIX, export_results
    from simulations.results import read_results

    results = read_results(results_dir)
    target = out or results_dir / "export" / f"events{SUFFIX[fmt]}"
    rows = export_results(results, fmt, target)  # type: ignore[arg-type]
    click.echo(f"wrote {rows} events to {target}")



@click.command("conform")
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
@input_errors
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


@click.command("calibrate")
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
@input_errors
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

