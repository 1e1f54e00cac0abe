"""The stored form of results: the folder marker, experiments and keys, and each replication.

A results folder's ``metadata.json`` carries :data:`RESULTS_MARKER` (the format), its
``kind`` and the ``experiment`` every replication's key is made from
(:func:`recorded_experiment` also reads metadata written before those entries). A
replication file is ``{"key": ..., "record": ...}`` (written by
:func:`simulations.runner.run_replication`); the record is what :meth:`RunRecord.to_json`
writes, the engine having measured the replication into a :class:`RunRecord`. Reading one
checks all three: the file is whole JSON, its key is one of those expected (so it was made
by the same experiment), and the record has the engine's shape (non-negative whole counts,
numeric histograms and series, each histogram holding as many values as it counts).
Anything else is a reason in plain words, never a traceback and never a record used as it is.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RESULTS_MARKER = "cpsim_results"
"""The ``metadata.json`` entry that marks a folder as cpsim's results (its value: the format)."""

RESULTS_FORMAT = 1
"""The results-folder format version written under :data:`RESULTS_MARKER`."""

KIND_NAMES: dict[str, str] = {
    "run": "the results of a run (cpsim run)",
    "compare": "a comparison (cpsim compare)",
    "sweep": "a sweep (cpsim sweep)",
    "fit": "a fit (cpsim fit)",
}
"""What a cpsim folder can hold (its ``kind``), as a user is told of it."""


def key_for(experiment: Mapping[str, Any], replication: int) -> str:
    """Content hash of an experiment and one replication number: the replication's key."""
    text = json.dumps({**experiment, "replication": replication}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def keys_for(experiment: Mapping[str, Any], replication: int) -> set[str]:
    """The keys a replication of a recorded experiment may carry.

    One, or two (with and without an event log) for metadata written before the
    event-log setting was recorded.
    """
    if "event_log" in experiment:
        return {key_for(experiment, replication)}
    return {key_for({**experiment, "event_log": flag}, replication) for flag in (True, False)}


def recorded_experiment(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The experiment a results folder's metadata records, or None if it records none.

    Metadata written before the ``experiment`` entry gives what its other entries hold
    (everything but the event-log setting).
    """
    if metadata.get("kind", "run") != "run":  # a comparison's, sweep's or fit's
        return None
    found = metadata.get("experiment")
    if isinstance(found, dict):
        return dict(found)
    start = metadata.get("start_from")
    try:
        return {
            "scenario": metadata["scenario_sha256"],
            "procedure": metadata["procedure_sha256"],
            "seed": metadata["root_seed"],
            "horizon_days": metadata["horizon_days"],
            "warm_up_days": metadata["warm_up_days"],
            "machine": metadata["machine"],
            "engine": metadata["engine_version"],
            "start_from": start.get("sha256") or None if isinstance(start, dict) else None,
            "as_of": start.get("as_of") if isinstance(start, dict) else None,
        }
    except KeyError:
        return None


EXPERIMENT_LABELS = {
    "name": "scenario",
    "scenario": "scenario content (hash)",
    "procedure": "procedure content (hash)",
    "seed": "seed",
    "horizon_days": "horizon (days)",
    "warm_up_days": "warm-up (days)",
    "machine": "machine",
    "event_log": "event log",
    "engine": "engine version",
    "start_from": "starting caseload (--start-from, hash)",
    "as_of": "snapshot date (--as-of)",
}
"""How each entry of an experiment is named to a user."""


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef"
                                                          for c in value):
        return value[:12] + "..."
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def experiment_differences(found: Mapping[str, Any], expected: Mapping[str, Any],
                           labels: Mapping[str, str] = EXPERIMENT_LABELS,
                           prefix: str = "") -> list[str]:
    """How ``found`` (in a folder) differs from ``expected`` (now), one phrase per entry.

    Only entries both record are compared (an older folder records fewer).

    >>> experiment_differences({"seed": 1, "machine": "table"}, {"seed": 2, "machine": "table"})
    ['seed 1 in the folder, 2 now']
    """
    out = []
    for key, value in expected.items():
        if key in found and found[key] != value:
            out.append(f"{prefix}{labels.get(key, key)} {_shown(found[key])} in the folder, "
                       f"{_shown(value)} now")
    return out


def rep_path(out: Path, replication: int) -> Path:
    """Where a results folder stores one replication's record."""
    return out / "replications" / f"rep-{replication:04d}.json"


def event_log_path(out: Path, replication: int) -> Path:
    """Where a results folder stores one replication's Parquet event log."""
    return out / "events" / f"rep-{replication:04d}.parquet"


Count = Annotated[int, Field(ge=0)]
"""A whole number of things: never negative, never a string or a fraction."""

Amount = Annotated[float, Field(ge=0)]
"""A non-negative number (hours, a limit)."""

Fault = Literal["missing", "damaged", "foreign"]
"""Why a replication cannot be used: no file, a file that is not a valid replication, or
one made by a different experiment."""


class _Strict(BaseModel):
    """Strict types (no "3" for 3, no true for 1); fields added by later engines allowed."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class Summary(_Strict):
    """Count, mean, median, 90th percentile and a fixed-width histogram from 0."""

    n: Count
    mean: float | None
    median: float | None
    p90: float | None
    hist_width: Annotated[float, Field(gt=0)]
    hist: list[Count]

    @model_validator(mode="after")
    def _histogram_holds_n(self) -> Self:
        if sum(self.hist) != self.n:
            raise ValueError(f"the histogram holds {sum(self.hist)} values but n is {self.n}")
        return self


class DeadlineRow(Summary):
    """One deadline's outcomes and the summary of its met and missed clocks."""

    met: Count
    missed: Count
    cancelled: Count
    open_overdue: Count
    open_not_due: Count
    unit: str
    limit: Amount
    kind: Literal["within", "at_least"]


class ReplicationRecord(_Strict):
    """The record of one replication, as :meth:`RunRecord.to_json` writes it."""

    replication: Count
    warm_up_hours: Amount
    horizon_hours: Amount
    deadlines: dict[str, DeadlineRow]
    entries: dict[str, Count]
    triggers: dict[str, Count]
    postponements: dict[str, Count]
    plan_lengths_days: Summary
    repeat_plans: Count
    plans_started: Count
    plans_ended: Count
    sample_days: list[Count]
    series: dict[str, list[float]]
    transient: dict[str, list[float]]
    allocation_waits_days: Summary
    meetings_held: Count
    meeting_capacity: Count
    chair_capacity: Count
    minute_capacity: Count
    cases_created: Count
    cases_finished: Count
    open_by_state: dict[str, Count]
    transitions: Count
    agency_absences: dict[str, Count]
    leavers: Count
    reallocations: Count

    @model_validator(mode="after")
    def _warm_up_within_horizon(self) -> Self:
        if self.warm_up_hours > self.horizon_hours:
            raise ValueError("the warm-up ends after the horizon")
        return self


@dataclass(frozen=True)
class Loaded:
    """A replication file read back: its record, or why it cannot be used."""

    record: dict[str, Any] | None
    fault: Fault | None = None
    reason: str = ""


def record_problem(record: object) -> str | None:
    """Why ``record`` is not a valid replication record (the first few faults), or None.

    >>> record_problem({"replication": -1})
    'replication: must be 0 or more (value: -1); warm_up_hours: missing; ...'
    """
    try:
        ReplicationRecord.model_validate(record)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        shown = [_error_text(e) for e in errors[:3]]
        if len(errors) > 3:
            shown.append("...")
        return "; ".join(shown)
    return None


def _error_text(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "record"
    kind = error["type"]
    if kind == "missing":
        return f"{where}: missing"
    if kind == "greater_than_equal":
        return f"{where}: must be 0 or more (value: {error['input']!r})"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind in ("int_type", "float_type", "int_from_float", "string_type", "dict_type",
                "list_type", "literal_error", "greater_than", "bool_type"):
        return f"{where}: {message[0].lower()}{message[1:]} (value: {error['input']!r})"
    return f"{where}: {message[0].lower()}{message[1:]}"


def read_replication(path: Path, keys: Collection[str], replication: int) -> Loaded:
    """Read one replication file, checking its key, its number and its record's shape.

    Args:
        path: The file (``replications/rep-NNNN.json``).
        keys: The keys a replication of this experiment may carry (one, or two for a
            folder written before the event-log setting was recorded).
        replication: The replication number the file must hold.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Loaded(None, "missing", "missing: the run did not finish this replication")
    except (OSError, UnicodeDecodeError) as exc:
        return Loaded(None, "damaged", f"cannot be read ({exc})")
    try:
        data = json.loads(text)
    except ValueError:
        return Loaded(None, "damaged", "damaged: not complete JSON (cut short or edited)")
    if not isinstance(data, dict) or "key" not in data or "record" not in data:
        return Loaded(None, "damaged", "damaged: not a replication file (it needs a key "
                                       "and a record)")
    if data["key"] not in keys:
        return Loaded(None, "foreign", "made by a different experiment: its key does not "
                                       "match this folder's scenario, seed and settings")
    problem = record_problem(data["record"])
    if problem is not None:
        return Loaded(None, "damaged", f"not a valid replication record: {problem}")
    record: dict[str, Any] = data["record"]
    if record["replication"] != replication:
        return Loaded(None, "foreign", f"holds replication {record['replication']}, "
                                       f"not {replication}")
    return Loaded(record)


# -- what the engine measures in one replication ------------------------------------------
@dataclass
class RunRecord:
    """Raw measurements of one replication (plain data, no live objects).

    ``deadlines`` maps a deadline id to counts (met, missed, cancelled, open_overdue,
    open_not_due) and the elapsed values (in the deadline's own unit) of met and missed
    clocks. ``series`` maps a time-series name to one value per sample day after the
    warm-up. ``transient_days`` and ``transient`` hold a few stocks (``open_cases`` and, when
    the plan state is a top-level stage, ``open_plans``) sampled at the same cadence from the
    start of the run, warm-up included, so that the warm-up can be measured rather than assumed.
    The caseload series are over filled posts only. ``leavers`` and ``reallocations`` count
    social workers leaving and their cases handed on after the warm-up (0 without turnover).
    """

    replication: int
    warm_up_hours: float
    horizon_hours: float
    deadlines: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    postponements: Counter[str] = field(default_factory=Counter)
    plan_lengths_days: list[float] = field(default_factory=list)
    repeat_plans: int = 0
    plans_started: int = 0
    plans_ended: int = 0
    sample_days: list[int] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    transient_days: list[int] = field(default_factory=list)
    transient: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    allocation_waits_hours: list[float] = field(default_factory=list)
    meetings_held: int = 0
    meeting_capacity: int = 0
    chair_capacity: int = 0
    minute_capacity: int = 0
    cases_created: int = 0
    cases_finished: int = 0
    open_by_state: Counter[str] = field(default_factory=Counter)
    transitions: int = 0
    agency_absences: Counter[str] = field(default_factory=Counter)
    leavers: int = 0
    reallocations: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain, JSON-ready data; raw elapsed times become quantiles and a histogram."""
        deadlines = {}
        for did, row in self.deadlines.items():
            out = {k: v for k, v in row.items() if k != "elapsed"}
            values = np.asarray(row["elapsed"], dtype=float)
            out.update(_summary(values, _BIN_WIDTH.get(str(row["unit"]), 1.0)))
            deadlines[did] = out
        plan = _summary(np.asarray(self.plan_lengths_days, dtype=float), 30.0)
        waits = np.asarray(self.allocation_waits_hours, dtype=float) / 24.0
        return {
            "replication": self.replication,
            "warm_up_hours": self.warm_up_hours,
            "horizon_hours": self.horizon_hours,
            "deadlines": deadlines,
            "entries": dict(sorted(self.entries.items())),
            "triggers": dict(sorted(self.triggers.items())),
            "postponements": dict(sorted(self.postponements.items())),
            "plan_lengths_days": plan,
            "repeat_plans": self.repeat_plans,
            "plans_started": self.plans_started,
            "plans_ended": self.plans_ended,
            "sample_days": self.sample_days,
            "series": {k: self.series[k] for k in sorted(self.series)},
            "transient": {"days": self.transient_days,
                          **{k: self.transient[k] for k in sorted(self.transient)}},
            "allocation_waits_days": _summary(waits, 1.0),
            "meetings_held": self.meetings_held,
            "meeting_capacity": self.meeting_capacity,
            "chair_capacity": self.chair_capacity,
            "minute_capacity": self.minute_capacity,
            "cases_created": self.cases_created,
            "cases_finished": self.cases_finished,
            "open_by_state": dict(sorted(self.open_by_state.items())),
            "transitions": self.transitions,
            "agency_absences": dict(sorted(self.agency_absences.items())),
            "leavers": self.leavers,
            "reallocations": self.reallocations,
        }


_BIN_WIDTH = {"hours": 1.0, "days": 1.0, "working_days": 1.0, "months": 0.25}


def _summary(values: np.ndarray[Any, Any], width: float) -> dict[str, Any]:
    """Count, mean, median, 90th percentile and a fixed-width histogram from 0."""
    if values.size == 0:
        return {"n": 0, "mean": None, "median": None, "p90": None,
                "hist_width": width, "hist": []}
    top = max(math.floor(float(values.max()) / width) + 1, 1)
    counts = np.bincount(np.clip(np.floor(values / width), 0, None).astype(int),
                         minlength=top)
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "hist_width": width,
        "hist": [int(c) for c in counts],
    }
