"""Every `cpsim` command the README shows runs, as written, in a fresh working directory.

Simulating commands (`run`, `compare`, `sweep`) get a short horizon and two replications
added (`--horizon-days 90 --warm-up-days 20 -r 2`, and `--max-replications 4` with
`--precision`); `validate` and `fit` on a scenario get one year and one replication (and
`fit` three evaluations), so the suite stays quick; everything else is the README's own text.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cpsim.cli import main

pytestmark = pytest.mark.slow  # runs every README command: `make test-fast` skips it

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """Each `cpsim` line of the README's sh blocks, with its comment (which may say
    "exits N" when the command is meant to exit non-zero)."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        block = re.sub(r"\\\n\s*", " ", block)  # a line continued with a backslash
        for line in block.splitlines():
            if line.strip().startswith("cpsim "):
                commands.append(line.strip())
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
    text, _, comment = command.partition("#")
    expected = int(m.group(1)) if (m := re.search(r"exits (\d)", comment)) else 0
    args = shlex.split(text)[1:]
    args = [str(ROOT / a) if a.startswith(("scenarios/", "data/")) else a for a in args]
    if args[0] in ("run", "compare", "sweep"):
        args += ["--horizon-days", "90", "--warm-up-days", "20", "--workers", "1", "-r", "2"]
    elif args[0] in ("validate", "fit") and not (workdir / args[1]).is_dir():
        # one whole year to 31 March, measured from the start
        args += ["--horizon-days", "400", "--warm-up-days", "0", "--workers", "1", "-r", "1"]
        if args[0] == "fit":
            args += ["--max-evaluations", "3"]
    if "--precision" in args:
        args += ["--max-replications", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == expected, result.output
