"""The command line as a user meets it: exit codes, messages, files written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cpsim.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_check_all_shipped_procedures_passes():
    """`cpsim check --all` (the README's demo) passes every shipped procedure; exit 0."""
    result = run("check", "--all")
    assert result.exit_code == 0, result.output
    assert result.output.count(": PASS") >= 6


def test_check_bad_file_lists_every_problem_and_exits_2():
    """A broken procedure file: every problem on stderr with its line, exit 2, no traceback."""
    result = run("check", str(FIXTURES / "bad-procedure.yaml"))
    assert result.exit_code == 2
    err = result.stderr if hasattr(result, "stderr") else result.output
    assert err.count("error: ") == 4
    assert "Traceback" not in result.output
    assert "4 problems found" in err


def test_check_unknown_procedure_suggests_the_closest(tmp_path):
    """A misspelt shipped name gets 'did you mean'."""
    result = run("check", "west-midland-2014")
    assert result.exit_code == 2
    assert "did you mean 'west-midlands-2014'?" in result.output


def test_check_mutated_procedure_exits_1_with_counterexample(tmp_path):
    """A procedure that breaks a declared property exits 1 and prints the run."""
    path = tmp_path / "broken-ladder.yaml"
    path.write_text(
        "procedure: broken-ladder\nextends: walsall-2018-resolution\ntitle: Broken\n"
        "transitions:\n  step_back:\n    source: resolution.stage_3\n"
        "    dest: resolution.stage_2\n    rules: [WAL-esc]\n"
    )
    result = run("check", str(path))
    assert result.exit_code == 1
    assert "FAIL property:resolution_only_goes_up" in result.output
    assert "counterexample" in result.output


def test_diagram_text_formats_print_and_write(tmp_path):
    """Mermaid prints to stdout; DOT is written atomically where asked."""
    result = run("diagram", "west-midlands-2014", "--format", "mermaid")
    assert result.exit_code == 0 and "stateDiagram-v2" in result.output
    out = tmp_path / "wm.dot"
    result = run("diagram", "west-midlands-2014", "--format", "dot", "--out", str(out))
    assert result.exit_code == 0 and out.read_text().startswith("digraph")
    assert not list(tmp_path.glob(".*.tmp"))


def test_diagram_png_of_icpc_stage(tmp_path):
    """`--stage icpc --format png` writes a PNG without any Graphviz binary."""
    out = tmp_path / "icpc.png"
    result = run("diagram", "west-midlands-2014", "--stage", "icpc", "--format", "png",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diagram_unknown_stage_is_an_input_error():
    """An unknown stage is exit 2 with a suggestion."""
    result = run("diagram", "west-midlands-2014", "--stage", "icpcc", "--format", "mermaid")
    assert result.exit_code == 2
    assert "icpc" in result.output


def test_installed_command_runs_as_a_user_would(tmp_path):
    """The installed `cpsim` entry point runs a check in a fresh working directory."""
    exe = shutil.which("cpsim") or str(Path(sys.executable).parent / "cpsim")
    proc = subprocess.run([exe, "check", "wigan-2008-change-meetings"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wigan-2008-change-meetings: PASS" in proc.stdout
    assert not list(tmp_path.iterdir())
