"""Golden outputs: every shipped scenario, run short from a fixed seed, gives the stored results.

For each scenario the stored files are its KPI table (``kpis.csv``, compared byte for byte) and
a SHA-256 digest of its event log (every row, every column, in order). A refactor that changes
no behaviour leaves them alone; one that changes a result shows up here and in the diff.

Regenerate after an intended change with one command, and review the diff:

    make golden

(which runs ``CPSIM_REGEN_GOLDEN=1 pytest tests/test_golden.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from simulations.runner import run_scenario, settings_for
from simulations.scenario import available_scenarios, load_scenario

GOLDEN = Path(__file__).parent / "golden"
SEED = 20261201
REGEN = os.environ.get("CPSIM_REGEN_GOLDEN") == "1"


def _horizon(name: str) -> tuple[int, int]:
    # England is 153 times the baseline's demand: a fortnight keeps it to seconds.
    return (14, 4) if name == "england" else (240, 60)


def event_log_digest(path: Path) -> str:
    """SHA-256 of an event log's rows, as JSON lines in file order (independent of Parquet)."""
    table = pq.read_table(path)
    digest = hashlib.sha256()
    digest.update(json.dumps(table.column_names).encode())
    for row in table.to_pylist():
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("name", available_scenarios())
def test_golden_outputs(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(name)
    horizon, warm_up = _horizon(name)
    settings = settings_for(scenario, replications=1, seed=SEED, horizon_days=horizon,
                            warm_up_days=warm_up)
    out = tmp_path / name
    run_scenario(scenario, settings, out)
    kpis = (out / "kpis.csv").read_text()
    digest = event_log_digest(out / "events" / "rep-0000.parquet") + "\n"
    golden = GOLDEN / name
    if REGEN:
        golden.mkdir(parents=True, exist_ok=True)
        (golden / "kpis.csv").write_text(kpis)
        (golden / "events.sha256").write_text(digest)
        return
    assert golden.is_dir(), f"no golden outputs for {name}: run `make golden` and review them"
    assert kpis == (golden / "kpis.csv").read_text(), (
        f"{name}: the KPI table differs from tests/golden/{name}/kpis.csv")
    assert digest == (golden / "events.sha256").read_text(), (
        f"{name}: the event log differs from its golden digest")
