"""The event log: one row per transition, streamed to Parquet in batches.

Rows are buffered in columns and written as row groups, so a national run never holds its
whole log in memory. The file is written under a unique temporary name
(``.<name>.<pid>.<random>.partial``, :class:`model.atomic.PendingFile`) and renamed when
complete: a reader never sees half a log, and two writers of one log never collide.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from model.atomic import PendingFile
from model.compiler import Step
from model.errors import InputError, Problem
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

_EPOCH: Final = date(1970, 1, 1)

_NEAR_MIDNIGHT: Final = 1e-6
"""Hours. A time this close to midnight is dated by ``timedelta``, which rounds to the µs."""


class EventLogWriter:
    """An observer that streams every step of one replication to a Parquet file.

    Args:
        path: The final file; data goes to a unique ``.<name>.<pid>.<random>.partial``
            beside it until :meth:`close`.
        replication: The replication number written on every row.
        start: The calendar date of simulation hour 0.
        batch_rows: Rows buffered before a row group is written.
    """

    def __init__(self, path: Path, replication: int, start: date,
                 batch_rows: int = 50_000) -> None:
        """Open the partial file for writing."""
        self.path = path
        self._pending = PendingFile(path, suffix=".partial")
        self.partial = self._pending.path
        self.replication = replication
        self.start = start
        self.batch_rows = batch_rows
        self.rows = 0
        try:
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
                self.partial, SCHEMA, compression="zstd")
        except BaseException:
            self._pending.abort()
            raise
        # one buffer per column but the replication (the same on every row); dates as days
        # since 1970-01-01 (Arrow's date32, far cheaper to convert than dates)
        self._case_ids: list[str] = []
        self._times: list[float] = []
        self._dates: list[int] = []
        self._befores: list[str] = []
        self._triggers: list[str] = []
        self._afters: list[str] = []
        self._rule_lists: list[str] = []
        self._actors: list[str] = []
        self._facts: list[str] = []
        self._epoch_day = (start - _EPOCH).days
        # a run visits a few hundred configurations and rule lists: join each once
        self._configs: dict[Config, str] = {}
        self._rules: dict[tuple[str, ...], str] = {}

    def case_started(self, case_id: str, time: SimHours, config: Config,
                     facts: Mapping[str, object]) -> None:
        """Record the arrival (empty trigger and from-state) with the facts that hold.

        A child known before the run carries ``previous_plans=N`` among its facts.
        """
        self._append(case_id, time, "", "", self._config_text(config), "", "arrival",
                     ",".join(sorted(k if v is True else f"{k}={v}"
                                     for k, v in facts.items() if v)))

    def step(self, step: Step, actor: str) -> None:
        """Record one transition."""
        before = self._config_text(step.before)
        after = self._config_text(step.after)
        rules = self._rules.get(step.rules)
        if rules is None:
            rules = self._rules[step.rules] = " ".join(step.rules)
        self._append(step.case_id, step.time, before, step.trigger, after, rules, actor)

    def _config_text(self, config: Config) -> str:
        """The configuration as the log writes it (``a + b``), joined once per run."""
        text = self._configs.get(config)
        if text is None:
            text = self._configs[config] = " + ".join(config)
        return text

    def case_finished(self, case_id: str, config: Config) -> None:
        """Nothing to record: the last step already shows where the case rests."""

    def _date(self, time: SimHours) -> int:
        """The date of ``start + timedelta(hours=time)``, in days since 1970-01-01."""
        day = time // 24.0
        if _NEAR_MIDNIGHT < time - 24.0 * day < 24.0 - _NEAR_MIDNIGHT:
            return self._epoch_day + int(day)
        return (self.start + timedelta(hours=time) - _EPOCH).days

    def _append(self, case_id: str, time: SimHours, before: str, trigger: str, after: str,
                rules: str, actor: str, facts: str = "") -> None:
        self._case_ids.append(case_id)
        self._times.append(time)
        self._dates.append(self._date(time))
        self._befores.append(before)
        self._triggers.append(trigger)
        self._afters.append(after)
        self._rule_lists.append(rules)
        self._actors.append(actor)
        self._facts.append(facts)
        self.rows += 1
        if len(self._case_ids) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        # in the order of SCHEMA, after the replication
        buffers: tuple[list[Any], ...] = (
            self._case_ids, self._times, self._dates, self._befores, self._triggers,
            self._afters, self._rule_lists, self._actors, self._facts)
        n = len(self._case_ids)
        if self._writer is None or n == 0:
            return
        columns = [arrow_column(SCHEMA.field(0).type, [self.replication] * n)]
        for field, buffer in zip(list(SCHEMA)[1:], buffers, strict=True):
            columns.append(arrow_column(field.type, buffer))
            buffer.clear()
        self._writer.write_table(pa.Table.from_arrays(columns, schema=SCHEMA))

    def close(self) -> None:
        """Write what is buffered, close, and move the file into place (synced).

        On any failure the partial file is dropped and the exception goes on.
        """
        if self._writer is None:
            return
        try:
            self._flush()
            self._writer.close()
            self._writer = None
        except BaseException:
            self.abort()
            raise
        self._pending.commit()

    def abort(self) -> None:
        """Drop the partial file (the replication did not finish).

        Called while another exception is on its way, so closing the writer cannot fail.
        """
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        self._pending.abort()


def arrow_column(kind: pa.DataType, values: Sequence[Any]) -> pa.Array:
    """One column of a batch, built from its buffers.

    ``pa.array`` on Python objects imports pandas on its first call (to ask whether the
    input is a pandas object), about 0.1 s in every process that writes a log; we never use
    pandas, so the columns are assembled from numpy buffers instead. Same arrays, same
    bytes in the file (``tests/test_engine_caches.py``, golden digests).
    """
    n = len(values)
    if kind == pa.string():
        text = "".join(values).encode()
        if len(text) == sum(map(len, values)):  # all ASCII: a character is a byte
            lengths = np.fromiter(map(len, values), np.int64, n)
        else:
            encoded = [value.encode() for value in values]
            text = b"".join(encoded)
            lengths = np.fromiter(map(len, encoded), np.int64, n)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] > np.iinfo(np.int32).max:  # beyond a string column's 32-bit offsets
            raise ValueError(f"an event-log batch holds {offsets[-1]:,} bytes of text")
        return pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(text))
    numbers = np.array(values, np.float64 if kind == pa.float64() else np.int32)
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(numbers)])


def read_events(path: Path, columns: list[str] | None = None,
                filters: list[tuple[str, str, Any]] | None = None) -> pa.Table:
    """Read an event log (optionally some columns, or the rows ``filters`` select).

    Raises:
        InputError: the file is missing, cut short or otherwise damaged (named, with
            what to do about it).
    """
    try:
        return pq.read_table(path, columns=columns, filters=filters)
    except (pa.ArrowException, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError([Problem(
            str(path), None, "", "cannot read this event log: it is cut short or damaged "
            f"({reason}); delete it, and `cpsim run` with the same options redoes that "
            "replication")]
                         ) from None
