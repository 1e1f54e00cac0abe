"""The command line: parse arguments, call one public function per subcommand, print, exit.

Exit codes: 0 all good, 1 findings (a check failed), 2 a usage or input error, or a file
or folder that cannot be read or written (one line naming it and why). A user's mistake
never shows a traceback. A simulation stopped by Ctrl-C exits 130, by SIGTERM 143
(128 + the signal, as a shell reports it), once its workers have stopped; every finished
replication is kept. A second Ctrl-C exits at once.

The subcommands live in modules by what they work on: the procedure
(:mod:`cpsim.cmd_model`), simulations (:mod:`cpsim.cmd_simulate`), published tables
(:mod:`cpsim.cmd_validate`), results and case data (:mod:`cpsim.cmd_data`) and trainers
(:mod:`cpsim.cmd_trainer`); what they share is in :mod:`cpsim.common` and
:mod:`cpsim.running`. Each imports what it runs inside the command, so ``cpsim --help``
loads no engine.
"""

from __future__ import annotations

import click

from cpsim import cmd_data, cmd_model, cmd_simulate, cmd_trainer, cmd_validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cp-procedure-sim")
def main() -> None:
    """cpsim: formally specified simulator of English child protection procedures."""


for _command in (
    cmd_model.check, cmd_model.diagram, cmd_model.trace_cmd,
    cmd_simulate.run, cmd_simulate.compare, cmd_simulate.sweep,
    cmd_validate.validate_cmd, cmd_validate.fit_cmd,
    cmd_data.report, cmd_data.export_cmd, cmd_data.conform_cmd, cmd_data.calibrate_cmd,
    cmd_trainer.explore, cmd_trainer.walk, cmd_trainer.paths, cmd_trainer.story,
):
    main.add_command(_command)
