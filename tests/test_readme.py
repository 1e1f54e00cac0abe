"""Every `cpsim` command the README shows runs, as written, in a fresh working directory.

Simulating commands (`run`, `compare`, `sweep`) get a short horizon and two replications
added (`--horizon-days 90 --warm-up-days 20 -r 2`, and `--max-replications 4` with
`--precision`) so the suite stays quick; everything else is the README's own text.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpsim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("cpsim "):
                commands.append(line)
    return commands


def test_readme_has_commands_to_try():
    assert any(c.startswith("cpsim run") for c in readme_commands())
    assert any(c.startswith("cpsim report") for c in readme_commands())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    args = shlex.split(command)[1:]
    args = [str(ROOT / a) if a.startswith("scenarios/") else a for a in args]
    if args[0] in ("run", "compare", "sweep"):
        args += ["--horizon-days", "90", "--warm-up-days", "20", "--workers", "1", "-r", "2"]
    if "--precision" in args:
        args += ["--max-replications", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
