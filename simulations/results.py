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
        """The Parquet event logs, one per replication, in order."""
        return sorted((self.out / "events").glob("rep-*.parquet"))


def read_results(out: Path) -> RunResults:
    """Read a results folder written by ``cpsim run``.

    Raises:
        InputError: the folder is not a results folder, or holds no finished replication.
    """
    meta_path = out / "metadata.json"
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError([Problem(str(out), None, "", "not a results folder (no readable "
                                  "metadata.json); make one with `cpsim run`")]) from None
    records = []
    for path in sorted((out / "replications").glob("rep-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records.append(data["record"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not records:
        raise InputError([Problem(str(out), None, "", "no finished replication in this "
                                  "results folder")])
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
