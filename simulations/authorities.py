"""A scenario split into authorities: each authority's own scenario, and their merged record.

Staff and diaries do not cross an authority's boundary, so a national scenario with an
``authorities:`` block runs each authority as a shard of its own: the scenario with its
referrals and staff scaled by the authority's share (:func:`authority_scenario`), with its
own random streams (:func:`simulations.engine.replication_streams`). A replication's
record is the merge of its authorities' records (:func:`merge_records`), so every KPI is a
national one; :func:`spread_tables` gives the spread across authorities.

Scaling (an assumption, stated in the README): referrals a year (and the history's
closures a year, when given) and the social workers' establishment FTE are multiplied by
the share exactly; every other head count (conference chairs, minute-takers, each
manager level, a fixed number of teams) is the share of the whole rounded to the nearest
whole person, and at least one, so every role the scenario has exists in each authority.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.atomic import PendingFile
from simulations.eventlog import SCHEMA, arrow_column
from simulations.kpi import Kpi, compute_kpis
from simulations.record import event_log_path
from simulations.scenario import Scenario
from simulations.scenario_spec import AuthoritySizesSpec, AuthoritySpec, ScenarioSpec


def authority_list(spec: ScenarioSpec) -> tuple[AuthoritySpec, ...]:
    """The scenario's authorities, each with its share of the whole (none when not split).

    A count ``n`` gives ``n`` authorities named ``a001``... with equal shares; a size
    distribution as many named alike, smallest first; a list's shares are divided by their
    sum, so they add up to exactly 1.
    """
    given = spec.authorities
    if given is None:
        return ()
    if isinstance(given, int):
        width = max(3, len(str(given)))
        return tuple(AuthoritySpec(name=f"a{k + 1:0{width}d}", share=1.0 / given)
                     for k in range(given))
    if isinstance(given, AuthoritySizesSpec):
        width = max(3, len(str(given.count)))
        return tuple(AuthoritySpec(name=f"a{k + 1:0{width}d}", share=share)
                     for k, share in enumerate(given.shares()))
    total = math.fsum(a.share for a in given)
    return tuple(AuthoritySpec(name=a.name, share=a.share / total) for a in given)


def _people(count: int, share: float) -> int:
    """A head count scaled to one authority: the nearest whole person, at least one."""
    return max(1, round(count * share))


def authority_spec(spec: ScenarioSpec, share: float) -> ScenarioSpec:
    """The scenario scaled to one authority with ``share`` of its referrals and staff."""
    demand = spec.demand
    history = demand.history
    if history is not None and history.closures_per_year is not None:
        history = history.model_copy(
            update={"closures_per_year": history.closures_per_year * share})
    demand = demand.model_copy(update={"referrals_per_year": demand.referrals_per_year * share,
                                       "history": history})
    staff = spec.staffing
    sw = staff.social_workers.model_copy(
        update={"establishment_fte": staff.social_workers.establishment_fte * share})
    if sw.teams is not None and sw.teams.count is not None:
        teams = sw.teams.model_copy(update={"count": _people(sw.teams.count, share)})
        sw = sw.model_copy(update={"teams": teams})
        if sw.team_count() > len(sw.heads()):  # every team needs a worker
            sw = sw.model_copy(update={"teams": teams.model_copy(
                update={"count": len(sw.heads())})})
    chairs, minutes = staff.conference_chairs, staff.minute_takers
    staff = staff.model_copy(update={
        "social_workers": sw,
        "conference_chairs": chairs.model_copy(update={"count": _people(chairs.count, share)}),
        "minute_takers": minutes.model_copy(update={"count": _people(minutes.count, share)}),
        "managers": {level: m.model_copy(update={"count": _people(m.count, share)})
                     for level, m in staff.managers.items()},
    })
    return spec.model_copy(update={"demand": demand, "staffing": staff, "authorities": None})


def authority_scenario(scenario: Scenario, authority: int) -> Scenario:
    """Authority number ``authority`` of a split scenario, as a scenario of its own."""
    found = authority_list(scenario.spec)
    return replace(scenario, spec=authority_spec(scenario.spec, found[authority].share))


def shard_record_path(out: Path, replication: int, authority: int) -> Path:
    """Where a results folder keeps one authority's record of one replication."""
    return out / "replications" / "authorities" / f"rep-{replication:04d}-a{authority:04d}.json"


def shard_log_path(out: Path, replication: int, authority: int) -> Path:
    """Where one authority's event log of one replication waits to be merged."""
    return out / "events" / "authorities" / f"rep-{replication:04d}-a{authority:04d}.parquet"


# -- merging records ----------------------------------------------------------------------
_SUMMED = ("repeat_plans", "plans_started", "plans_ended", "meetings_held", "meeting_capacity",
           "chair_capacity", "minute_capacity", "cases_created", "cases_finished",
           "transitions", "leavers", "reallocations")
"""Record fields that are counts: the nation's is the sum of its authorities'."""

_COUNTERS = ("entries", "triggers", "postponements", "open_by_state", "agency_absences")
"""Record fields that count by name: summed name by name."""

_SAME = ("replication", "warm_up_hours", "horizon_hours", "sample_days")
"""Record fields every authority has alike (the run's settings)."""

_WEIGHTED_SERIES = ("caseload_mean", "caseload_median", "caseload_p90")
"""Caseload series: the nation's is the authorities' weighted by their workers in post."""

_DEADLINE_COUNTS = ("met", "missed", "cancelled", "open_overdue", "open_not_due")


def merge_summaries(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary (count, mean, median, p90, histogram) from several of the same width.

    Counts and histograms add up and the mean is the count-weighted mean, exactly; the
    median and 90th percentile are read from the merged histogram (linear within a bin),
    held between the parts' own, so they are within one bin width of the pooled values'.
    """
    width = parts[0]["hist_width"]
    size = max((len(p["hist"]) for p in parts), default=0)
    hist = [sum(p["hist"][i] for p in parts if i < len(p["hist"])) for i in range(size)]
    n = sum(p["n"] for p in parts)
    if n == 0:
        return {"n": 0, "mean": None, "median": None, "p90": None, "hist_width": width,
                "hist": []}
    mean = math.fsum(p["n"] * p["mean"] for p in parts if p["n"]) / n
    return {"n": n, "mean": mean, "median": _quantile(hist, width, 0.5, parts, "median"),
            "p90": _quantile(hist, width, 0.9, parts, "p90"), "hist_width": width,
            "hist": hist}


def _quantile(hist: Sequence[int], width: float, q: float, parts: Sequence[dict[str, Any]],
              name: str) -> float:
    """The ``q`` quantile of a merged histogram from 0, linear within the bin it falls in.

    Held between the parts' own quantiles (``name``), the least and the greatest, since
    the pooled quantile always lies between them: exact when the parts agree (as they do
    for whole-day times, which linear reading within a bin would overstate).
    """
    own = [float(p[name]) for p in parts if p["n"]]
    target = q * sum(hist)
    below = 0
    value = len(hist) * width
    for i, count in enumerate(hist):
        if count and below + count >= target:
            value = (i + (target - below) / count) * width
            break
        below += count
    return min(max(value, min(own)), max(own))


def merge_records(records: Sequence[dict[str, Any]], weights: Sequence[float]
                  ) -> dict[str, Any]:
    """One replication's record from its authorities' records (in authority order).

    Counts add up; summaries merge (:func:`merge_summaries`); time series of stocks add
    up sample by sample, and the caseload mean, median and 90th percentile are the
    authorities' weighted by ``weights`` (each authority's social workers: the median
    and 90th percentile so merged are an approximation, as a caseload's distribution is
    not kept); the maximum caseload is the largest.
    """
    first = records[0]
    out: dict[str, Any] = {}
    for name in _SAME:
        if any(r[name] != first[name] for r in records):
            raise ValueError(f"authorities' records differ in {name}: not one replication")
        out[name] = first[name]
    for name in _SUMMED:
        out[name] = sum(r[name] for r in records)
    for name in _COUNTERS:
        total: Counter[str] = Counter()
        for r in records:
            total.update(r[name])
        out[name] = dict(sorted(total.items()))
    deadlines = {}
    for did, row in first["deadlines"].items():
        rows = [r["deadlines"][did] for r in records]
        merged = {k: v for k, v in row.items() if k not in _DEADLINE_COUNTS}
        merged.update({k: sum(x[k] for x in rows) for k in _DEADLINE_COUNTS})
        merged.update(merge_summaries(rows))
        deadlines[did] = merged
    out["deadlines"] = deadlines
    out["plan_lengths_days"] = merge_summaries([r["plan_lengths_days"] for r in records])
    out["allocation_waits_days"] = merge_summaries(
        [r["allocation_waits_days"] for r in records])
    out["series"] = _merge_series([r["series"] for r in records], weights)
    out["transient"] = {"days": first["transient"]["days"], **{
        name: _added([r["transient"][name] for r in records])
        for name in first["transient"] if name != "days"}}
    return out


def _added(columns: Sequence[Sequence[float]]) -> list[float]:
    return [math.fsum(values) for values in zip(*columns, strict=True)]


def _merge_series(series: Sequence[dict[str, list[float]]], weights: Sequence[float]
                  ) -> dict[str, list[float]]:
    total = math.fsum(weights)
    out: dict[str, list[float]] = {}
    for name in series[0]:
        columns = [s[name] for s in series]
        if name in _WEIGHTED_SERIES:
            out[name] = [math.fsum(w * v for w, v in zip(weights, values, strict=True)) / total
                         for values in zip(*columns, strict=True)]
        elif name == "caseload_max":
            out[name] = [max(values) for values in zip(*columns, strict=True)]
        else:
            out[name] = _added(columns)
    return out


def authority_weights(scenario: Scenario) -> list[float]:
    """Each authority's social workers in post (how its caseload series are weighted)."""
    return [float(len(authority_scenario(scenario, a).spec.staffing.social_workers.heads()))
            for a in range(len(authority_list(scenario.spec)))]


def merge_event_logs(shards: Sequence[Path], names: Sequence[str], target: Path) -> None:
    """Write one replication's event log from its authorities' logs, in authority order.

    Each case id is prefixed with its authority's name (``a001/c42``), since every
    authority numbers its own cases from 1. Read and written a row group at a time.
    """
    merger = LogMerger(shards, names, target)
    try:
        for authority in range(len(shards)):
            merger.ready(authority)
        merger.commit()
    except BaseException:
        merger.abort()
        raise


class LogMerger:
    """One replication's event log, merged from its authorities' logs as they finish.

    The same file as :func:`merge_event_logs` writes, written bit by bit: each authority's
    log is appended as soon as it and every authority before it are finished, so a run on
    worker processes merges while the workers still run (rather than all at the end).

    Args:
        shards: Each authority's event log, in authority order.
        names: Each authority's name (its case ids' prefix).
        target: The replication's event log, written on :meth:`commit`.
    """

    def __init__(self, shards: Sequence[Path], names: Sequence[str], target: Path) -> None:
        """Nothing is written until the first authority's log is ready."""
        if len(shards) != len(names):
            raise ValueError("one name for each authority's event log")
        self.shards = tuple(shards)
        self.names = tuple(names)
        self.target = target
        self._ready = [False] * len(self.shards)
        self._next = 0
        self._pending: PendingFile | None = None
        self._writer: pq.ParquetWriter | None = None

    @property
    def complete(self) -> bool:
        """Whether every authority's log has been appended."""
        return self._next == len(self.shards)

    def ready(self, authority: int) -> None:
        """Authority ``authority``'s log is finished: append it and any waiting behind it."""
        self._ready[authority] = True
        while self._next < len(self.shards) and self._ready[self._next]:
            self._append(self.shards[self._next], self.names[self._next])
            self._next += 1

    def _opened(self) -> pq.ParquetWriter:
        """The merged log's writer, opened (on a temporary file) at first need."""
        if self._writer is None:
            self._pending = PendingFile(self.target, suffix=".partial")
            self._writer = pq.ParquetWriter(self._pending.path, SCHEMA, compression="zstd")
        return self._writer

    def _append(self, path: Path, name: str) -> None:
        writer = self._opened()
        # the prefix and separator as Arrow scalars made from buffers: pa.scalar, or a str
        # handed to pyarrow.compute, imports pandas (0.4 s) to ask if it is a pandas object
        prefix, slash = arrow_column(pa.string(), [name, "/"])
        for batch in pq.ParquetFile(path).iter_batches():
            case = pc.binary_join_element_wise(prefix, batch.column("case_id"), slash)
            columns = [case if field == "case_id" else batch.column(field)
                       for field in SCHEMA.names]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=SCHEMA))

    def commit(self) -> None:
        """Finish the merged log as ``target``.

        Raises:
            ValueError: an authority's log has not been appended yet.
        """
        if not self.complete:
            raise ValueError(f"{self.target}: authority {self._next}'s event log is not ready")
        self._opened().close()  # with no authorities, an empty log
        assert self._pending is not None
        self._writer = None
        self._pending.commit()
        self._pending = None

    def abort(self) -> None:
        """Drop what has been merged so far (a failed or stopped run)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._pending is not None:
            self._pending.abort()
            self._pending = None


class ShardedReplication:
    """One replication split into authorities, taken in as its authorities finish.

    Keeps each finished authority's record, appends its event log to the replication's
    at once (:class:`LogMerger`), and once all are in gives the merged record.

    Args:
        scenario: The split scenario, with the run's settings applied.
        out: The results folder.
        replication: The replication's number.
        event_log: Whether the run writes event logs (to merge).
    """

    def __init__(self, scenario: Scenario, out: Path, replication: int,
                 event_log: bool) -> None:
        """No authority finished yet."""
        found = authority_list(scenario.spec)
        self.scenario = scenario
        self.count = len(found)
        self.records: dict[int, dict[str, Any]] = {}
        self._reached = [0.0] * self.count
        self.log = None if not event_log else LogMerger(
            [shard_log_path(out, replication, a) for a in range(self.count)],
            [a.name for a in found], event_log_path(out, replication))

    def advanced(self, authority: int, days: float) -> float:
        """Authority ``authority`` reached ``days``; the replication's mean over all."""
        self._reached[authority] = days
        return sum(self._reached) / self.count

    def finished(self, authority: int, record: dict[str, Any]) -> bool:
        """Take in a finished authority (stored, with its log); True once all are in."""
        self.records[authority] = record
        if self.log is not None:
            self.log.ready(authority)
        return len(self.records) == self.count

    def merged(self) -> dict[str, Any]:
        """The replication's record, and its event log written (the authorities' removed).

        The authorities' records stay (small; :func:`spread_tables` reads them).
        """
        record = merge_records([self.records[a] for a in range(self.count)],
                               authority_weights(self.scenario))
        if self.log is not None:
            self.log.commit()
            for path in self.log.shards:
                path.unlink(missing_ok=True)
            if self.log.shards:
                with contextlib.suppress(OSError):  # only when no other replication's left
                    self.log.shards[0].parent.rmdir()
        return record

    def abort(self) -> None:
        """Drop the part-merged event log (the run failed or was stopped)."""
        if self.log is not None:
            self.log.abort()


# -- the spread across authorities --------------------------------------------------------
SPREAD_COLUMNS = ("id", "label", "unit", "national", "min", "p10", "median", "p90", "max",
                  "lowest", "highest")
"""Columns of ``authorities-spread.csv``: a headline KPI across the authorities."""


def spread_tables(scenario: Scenario, replications: Sequence[int], out: Path,
                  national: Sequence[Kpi]) -> tuple[str, str] | None:
    """The headline KPIs of each authority, and their spread, as two CSV texts.

    The first has a row per authority (its name, share, and each headline KPI's mean over
    the replications); the second a row per headline KPI: the national value, and the
    authorities' minimum, deciles (10th and 90th percentiles: the best and worst tenth,
    whichever end is better for that KPI), median and maximum, with the authorities at
    either end. None when an authority's record is not stored (nothing to spread).
    """
    found = authority_list(scenario.spec)
    heads = [k for k in national if k.headline]
    means: list[list[float]] = []
    for a in range(len(found)):
        records = []
        for rep in replications:
            path = shard_record_path(out, rep, a)
            try:
                records.append(json.loads(path.read_text(encoding="utf-8"))["record"])
            except (OSError, ValueError, KeyError):
                return None
        own = {k.id: k.mean for k in compute_kpis(records, scenario.procedure)}
        means.append([own.get(k.id, math.nan) for k in heads])
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["authority", "share", *(k.id for k in heads)])
    for spec, values in zip(found, means, strict=True):
        writer.writerow([spec.name, f"{spec.share:.6f}", *(_fmt(v) for v in values)])
    spread = io.StringIO()
    writer = csv.writer(spread, lineterminator="\n")
    writer.writerow(SPREAD_COLUMNS)
    for i, k in enumerate(heads):
        column: list[tuple[float, str]] = [
            (m[i], spec.name) for m, spec in zip(means, found, strict=True)
            if not math.isnan(m[i])]
        found_values = np.array([v for v, _ in column], dtype=float)
        if not found_values.size:
            writer.writerow([k.id, k.label, k.unit, _fmt(k.mean), *[""] * 7])
            continue
        low, high = min(column), max(column)
        writer.writerow([k.id, k.label, k.unit, _fmt(k.mean), _fmt(float(found_values.min())),
                         *(_fmt(float(np.percentile(found_values, q))) for q in (10, 50, 90)),
                         _fmt(float(found_values.max())), low[1], high[1]])
    return rows.getvalue(), spread.getvalue()


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"
