"""The commands about a procedure itself: ``check``, ``diagram`` and ``trace``.

Each proves, draws or traces a procedure file; none runs a simulation.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from cpsim.common import input_errors, write_text
from model.errors import InputError, Problem


@click.command()
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
@input_errors
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


@click.command()
@click.argument("procedure")
@click.option("--stage", default=None, help="Draw one stage (a state id such as icpc).")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "png", "svg"]),
              default="mermaid", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (default: print text formats; out/PROCEDURE.FORMAT for images).")
@input_errors
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
            write_text(out, text)
            click.echo(f"wrote {out}")
        return
    from reports.diagram import render_diagram

    target = out or Path("out") / f"{proc.id}{'-' + stage if stage else ''}.{fmt}"
    render_diagram(proc, target, fmt, stage)  # type: ignore[arg-type]
    click.echo(f"wrote {target}")


@click.command("trace")
@click.argument("procedure", required=False)
@click.option("--all", "all_", is_flag=True, help="Every shipped procedure, one file each.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "csv"]), default="md",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of printing (one procedure).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --all: the folder to write PROCEDURE.FORMAT files to "
                   "(default: out/trace).")
@input_errors
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
            write_text(target, render(matrix))
            click.echo(f"wrote {target}")
        if fmt == "md":
            from model.trace import faithfulness_markdown

            target = folder / "README.md"
            write_text(target, "<!-- Generated by `cpsim trace --all`; do not edit. -->\n"
                        "# How faithful is each procedure\n\n"
                        + faithfulness_markdown(matrices))
            click.echo(f"wrote {target}")
    elif out is not None:
        write_text(out, render(matrices[0]))
        click.echo(f"wrote {out}")
    else:
        text = render(matrices[0])
        click.echo(text if text.endswith("\n") else text + "\n", nl=False)
    failing = [(m.procedure, r.rule) for m in matrices for r in m.failures]
    if failing:
        for name, rule in failing:
            click.echo(f"not encoded and no reason given: {name}: {rule}", err=True)
        sys.exit(1)

