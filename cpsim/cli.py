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
