"""The event log: one row per transition, streamed to Parquet in batches.

Rows are buffered in columns and written as row groups, so a national run never holds its
whole log in memory. The file is written under a temporary name and renamed when complete:
a reader never sees half a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from model.compiler import Step
from model.graph import Config
from model.types import SimHours

SCHEMA = pa.schema([
    ("replication", pa.int32()),
    ("case_id", pa.string()),
    ("time_hours", pa.float64()),
    ("date", pa.date32()),
    ("from_state", pa.string()),
    ("trigger", pa.string()),
    ("to_state", pa.string()),
    ("rules", pa.string()),
    ("actor", pa.string()),
    ("facts", pa.string()),
])
"""Columns of the event log, in order."""


class EventLogWriter:
    """An observer that streams every step of one replication to a Parquet file.

    Args:
        path: The final file; data goes to ``.<name>.partial`` until :meth:`close`.
        replication: The replication number written on every row.
        start: The calendar date of simulation hour 0.
        batch_rows: Rows buffered before a row group is written.
    """

    def __init__(self, path: Path, replication: int, start: date,
                 batch_rows: int = 50_000) -> None:
        """Open the partial file for writing."""
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.replication = replication
        self.start = start
        self.batch_rows = batch_rows
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            self.partial, SCHEMA, compression="zstd")
        self._cols: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}

    def case_started(self, case_id: str, time: SimHours, config: Config,
                     facts: Mapping[str, object]) -> None:
        """Record the arrival (empty trigger and from-state) with the facts that hold.

        A child known before the run carries ``previous_plans=N`` among its facts.
        """
        self._append(case_id, time, "", "", " + ".join(config), "", "arrival",
                     ",".join(sorted(k if v is True else f"{k}={v}"
                                     for k, v in facts.items() if v)))

    def step(self, step: Step, actor: str) -> None:
        """Record one transition."""
        self._append(step.case_id, step.time, " + ".join(step.before), step.trigger,
                     " + ".join(step.after), " ".join(step.rules), actor)

    def case_finished(self, case_id: str, config: Config) -> None:
        """Nothing to record: the last step already shows where the case rests."""

    def _append(self, case_id: str, time: SimHours, before: str, trigger: str, after: str,
                rules: str, actor: str, facts: str = "") -> None:
        c = self._cols
        c["replication"].append(self.replication)
        c["case_id"].append(case_id)
        c["time_hours"].append(time)
        c["date"].append(self.start + timedelta(hours=time))
        c["from_state"].append(before)
        c["trigger"].append(trigger)
        c["to_state"].append(after)
        c["rules"].append(rules)
        c["actor"].append(actor)
        c["facts"].append(facts)
        self.rows += 1
        if len(c["case_id"]) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None or not self._cols["case_id"]:
            return
        table = pa.table(self._cols, schema=SCHEMA)
        self._writer.write_table(table)
        self._cols = {name: [] for name in SCHEMA.names}

    def close(self) -> None:
        """Write what is buffered, close, and move the file into place."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.partial.replace(self.path)

    def abort(self) -> None:
        """Drop the partial file (the replication did not finish)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.partial.unlink(missing_ok=True)


def read_events(path: Path) -> pa.Table:
    """Read a whole event log (for reports and stories on modest runs)."""
    return pq.read_table(path)
