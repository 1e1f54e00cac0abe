"""Read a results folder back: metadata, replication records, KPIs and the scenario.

The one reader of what :mod:`simulations.runner` writes; reports and later commands use it
and never re-run a simulation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import InputError, Problem
from simulations.kpi import Kpi, compute_kpis
from simulations.record import (
    KIND_NAMES,
    event_log_path,
    keys_for,
    read_replication,
    recorded_experiment,
    rep_path,
)
from simulations.scenario import Scenario, load_scenario


@dataclass(frozen=True)
class RunResults:
    """A finished (or partly finished) run, as stored.

    Attributes:
        out: The results folder.
        metadata: Seed, content hashes, versions (``metadata.json``).
        records: Replication records in replication order.
        kpis: KPIs recomputed from the records.
        scenario: The scenario, reloaded from its file (or the copy in ``inputs/``).
        scenario_changed: True when the scenario file no longer matches the stored hash.
    """

    out: Path
    metadata: dict[str, Any]
    records: tuple[dict[str, Any], ...]
    kpis: tuple[Kpi, ...]
    scenario: Scenario
    scenario_changed: bool

    def event_logs(self) -> list[Path]:
        """The Parquet event logs of the replications read, in order (those that exist)."""
        logs = (event_log_path(self.out, r["replication"]) for r in self.records)
        return [path for path in logs if path.is_file()]


def read_metadata(out: Path) -> dict[str, Any]:
    """The ``metadata.json`` of one run's results folder.

    Raises:
        InputError: there is none (or it cannot be read), or the folder holds a
            comparison, sweep or fit rather than one run (naming one of its runs).
    """
    try:
        metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metadata = None
    if not isinstance(metadata, dict):
        raise InputError([Problem(str(out), None, "", "not a results folder (no readable "
                                  "metadata.json); make one with `cpsim run`")])
    kind = metadata.get("kind", "run")
    if kind != "run":
        runs = [p.parent for p in (*sorted(out.glob("*/metadata.json")),
                                   *sorted(out.glob("*/*/metadata.json")))]
        example = f": name one of its runs, e.g. {runs[0]}" if runs else ""
        raise InputError([Problem(str(out), None, "", f"holds {KIND_NAMES.get(kind, kind)}, "
                                  f"not the results of one run{example}")])
    return metadata


def read_results(out: Path) -> RunResults:
    """Read a results folder written by ``cpsim run``: exactly the replications it lists.

    Each of the ``replications`` that ``metadata.json`` lists is read from its file, its
    key checked against the experiment the metadata records and its record against the
    engine's schema (:mod:`simulations.record`). Files of other replications are left
    alone.

    Raises:
        InputError: the folder is not a results folder, or a listed replication is
            missing, damaged or made by a different experiment (each named).
    """
    metadata = read_metadata(out)
    experiment = recorded_experiment(metadata)
    count = metadata.get("replications")
    if experiment is None or isinstance(count, bool) or not isinstance(count, int) \
            or count < 1:
        raise InputError([Problem(str(out / "metadata.json"), None, "", "damaged: it does "
                                  "not record the run's settings and number of "
                                  "replications; run the command that made it again")])
    records = []
    problems = []
    for replication in range(count):
        path = rep_path(out, replication)
        loaded = read_replication(path, keys_for(experiment, replication), replication)
        if loaded.record is None:
            problems.append(Problem(str(path), None, "", f"{loaded.reason}; run the "
                                    "command that made this folder again to compute it "
                                    "(finished replications are reused)"))
        else:
            records.append(loaded.record)
    if problems:
        raise InputError(problems)
    scenario_file = Path(metadata["scenario_file"])
    copy = out / "inputs" / f"{metadata['scenario']}.yaml"
    source = scenario_file if scenario_file.is_file() else copy
    overrides = metadata.get("overrides") or None  # a sweep point's or a procedure's
    scenario = load_scenario(source, overrides)
    changed = scenario.sha256 != metadata["scenario_sha256"]
    if changed and copy.is_file() and source != copy:
        scenario = load_scenario(copy, overrides)
        changed = scenario.sha256 != metadata["scenario_sha256"]
    records.sort(key=lambda r: r["replication"])
    kpis = compute_kpis(records, scenario.procedure)
    return RunResults(out, metadata, tuple(records), tuple(kpis), scenario, changed)
