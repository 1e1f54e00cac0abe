"""Read results back: one run's folder, a comparison, a sweep, and the records they hold.

The one reader of what :mod:`simulations.runner` and :mod:`simulations.experiments` write;
reports and later commands use it and never re-run a simulation. It must not import the
engine, the runner or SimPy (directly or through another module), so a report can be
rebuilt on a machine without them; ``tests/test_architecture.py`` checks this in a fresh
interpreter.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

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
from simulations.stats import mean_ci, one_sided_bound

MachineKind = Literal["table", "transitions"]
"""Which machine steps the cases: the compiled table or the ``transitions`` library."""


# -- one run -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSettings:
    """Everything besides the scenario that decides a run's numbers."""

    replications: int
    seed: int
    horizon_days: int
    warm_up_days: int
    machine: MachineKind = "table"
    event_log: bool = True
    start_from: str | None = None
    start_from_sha256: str = ""
    data_format: str = "cin-flat"
    as_of: str | None = None

    def for_scenario(self, scenario: Scenario) -> Scenario:
        """The scenario with this run's horizon, warm-up, replications and seed."""
        run = scenario.spec.run.model_copy(update={
            "horizon_days": self.horizon_days, "warm_up_days": self.warm_up_days,
            "replications": self.replications, "seed": self.seed})
        return replace(scenario, spec=scenario.spec.model_copy(update={"run": run}))


@dataclass(frozen=True)
class RunResult:
    """What a run produced: where, which replications were reused, and the KPIs.

    The runner returns it; comparisons and sweeps hold one per side or grid point (read
    back, with nothing reused or computed). :class:`RunResults` is the fuller form read
    from a folder, with its metadata and scenario.
    """

    out: Path
    records: tuple[dict[str, Any], ...]
    kpis: tuple[Kpi, ...]
    reused: tuple[int, ...]
    computed: tuple[int, ...]


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
        settings: The run settings the metadata records (:func:`recorded_settings`).
    """

    out: Path
    metadata: dict[str, Any]
    records: tuple[dict[str, Any], ...]
    kpis: tuple[Kpi, ...]
    scenario: Scenario
    scenario_changed: bool
    settings: RunSettings

    def event_logs(self) -> list[Path]:
        """The Parquet event logs of the replications read, in order (those that exist)."""
        logs = (event_log_path(self.out, r["replication"]) for r in self.records)
        return [path for path in logs if path.is_file()]

    def as_run(self) -> RunResult:
        """The records and KPIs alone, as a comparison or sweep holds them."""
        return RunResult(self.out, self.records, self.kpis, (), ())


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object stored in ``path``, or None when it is missing, unreadable or not one.

    Every index file of a results folder (``metadata.json``, ``comparison.json``,
    ``sweep.json``) is a JSON object; callers decide whether its absence is an error.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _index_of(out: Path, kind: str, command: str) -> dict[str, Any]:
    """The ``KIND.json`` index of a comparison or sweep folder (else an error naming it)."""
    meta = read_json_object(out / f"{kind}.json")
    if meta is None:
        raise InputError([Problem(str(out), None, "", f"not a {kind} folder (no {kind}.json); "
                                  f"make one with `cpsim {command}`")])
    return meta


def read_metadata(out: Path) -> dict[str, Any]:
    """The ``metadata.json`` of one run's results folder.

    Raises:
        InputError: there is none (or it cannot be read), or the folder holds a
            comparison, sweep or fit rather than one run (naming one of its runs).
    """
    metadata = read_json_object(out / "metadata.json")
    if metadata is None:
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


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def recorded_settings(metadata: Mapping[str, Any]) -> RunSettings | None:
    """The run settings a results folder's metadata records, or None if it lacks them.

    Each setting is taken by its name: the seed, horizon, warm-up, machine and event-log
    setting from the recorded experiment, the number of replications and the starting
    caseload from the metadata. Settings an older folder does not record keep their
    defaults.
    """
    experiment = recorded_experiment(metadata)
    if experiment is None:
        return None
    named: dict[str, Any] = {
        "replications": metadata.get("replications"),
        "seed": experiment.get("seed"),
        "horizon_days": experiment.get("horizon_days"),
        "warm_up_days": experiment.get("warm_up_days"),
    }
    if not all(_whole(v) for v in named.values()) or named["replications"] < 1:
        return None
    if experiment.get("machine") in ("table", "transitions"):
        named["machine"] = experiment["machine"]
    if isinstance(experiment.get("event_log"), bool):
        named["event_log"] = experiment["event_log"]
    start = metadata.get("start_from")
    if isinstance(start, dict):
        named["start_from"] = start.get("file")
        named["start_from_sha256"] = start.get("sha256") or ""
        named["data_format"] = start.get("format") or RunSettings.data_format
        named["as_of"] = start.get("as_of")
    return RunSettings(**named)


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
    settings = recorded_settings(metadata)
    if experiment is None or settings is None:
        raise InputError([Problem(str(out / "metadata.json"), None, "", "damaged: it does "
                                  "not record the run's settings and number of "
                                  "replications; run the command that made it again")])
    records = []
    problems = []
    for replication in range(settings.replications):
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
    return RunResults(out=out, metadata=metadata, records=tuple(records), kpis=tuple(kpis),
                      scenario=scenario, scenario_changed=changed, settings=settings)


# -- a comparison ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KpiDiff:
    """One KPI in A and B and their paired difference (B - A) across replications.

    Both run with the same seed, so replication i of A and of B share random numbers; the
    interval is the t-interval of the per-replication differences.
    """

    id: str
    group: str
    label: str
    unit: str
    a: Kpi
    b: Kpi
    diff: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """True when the 95% interval of the difference excludes zero."""
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Comparison:
    """Two runs with common random numbers and their KPI differences."""

    a: Scenario
    b: Scenario
    a_name: str
    b_name: str
    a_run: RunResult
    b_run: RunResult
    diffs: tuple[KpiDiff, ...]
    settings: RunSettings
    out: Path
    changed: Mapping[str, bool] = field(default_factory=lambda: {"a": False, "b": False})
    """For ``a`` and ``b``: the scenario's inputs changed since the run (read back only)."""


def kpi_diffs(a: Sequence[Kpi], b: Sequence[Kpi]) -> list[KpiDiff]:
    """Paired differences for every KPI the two runs share, in A's order."""
    by_id = {k.id: k for k in b}
    out = []
    for ka in a:
        kb = by_id.get(ka.id)
        if kb is None:
            continue
        pairs = [(x, y) for x, y in zip(ka.values, kb.values, strict=False)
                 if not (math.isnan(x) or math.isnan(y))]
        mean, low, high = mean_ci([y - x for x, y in pairs])
        label = ka.label
        if kb.label != ka.label:  # e.g. a deadline whose limit the change moved
            head, _, tail_a = ka.label.partition(" (")
            tail_b = kb.label.partition(" (")[2]
            label = f"{head} (A: {tail_a.rstrip(')')}; B: {tail_b.rstrip(')')})"
        out.append(KpiDiff(ka.id, ka.group, label, ka.unit, ka, kb, mean, low, high))
    return out


def load_comparison(out: Path) -> Comparison:
    """Read a comparison folder back (both results folders and the recorded subjects).

    The settings are A's, as its metadata records them (B ran with the same).

    Raises:
        InputError: ``out`` is not a comparison folder, or a side's results cannot be read.
    """
    meta = _index_of(out, "comparison", "compare")
    sides = {side: read_results(out / meta[side]["folder"]) for side in ("a", "b")}
    a, b = sides["a"].as_run(), sides["b"].as_run()
    return Comparison(a=sides["a"].scenario, b=sides["b"].scenario,
                      a_name=meta["a"]["name"], b_name=meta["b"]["name"], a_run=a, b_run=b,
                      diffs=tuple(kpi_diffs(a.kpis, b.kpis)), settings=sides["a"].settings,
                      out=out, changed={side: res.scenario_changed
                                        for side, res in sides.items()})


# -- a sweep -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Vary:
    """One varied scenario field and its values (``PATH=30..60:5`` or ``PATH=1,2,3``)."""

    path: str
    values: tuple[float, ...]

    @property
    def short(self) -> str:
        """The field's last name (for labels and folder names)."""
        return self.path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Target:
    """A KPI goal: ``deadline:icpc_held:share_met>=0.95``."""

    kpi: str
    op: Literal[">=", "<="]
    value: float

    def __str__(self) -> str:
        """The goal as written."""
        return f"{self.kpi} {self.op} {self.value:g}"


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: the varied values and the run there."""

    values: tuple[tuple[str, float], ...]
    run: RunResult


@dataclass(frozen=True)
class Answer:
    """The smallest value of the first varied field meeting the target.

    One per setting of the other varied fields; ``value`` is None when no value tried
    meets it, and ``monotone`` is False when a larger value tried did not.
    """

    others: tuple[tuple[str, float], ...]
    value: float | None
    bound: float | None
    monotone: bool


@dataclass(frozen=True)
class Sweep:
    """A grid of runs, its answer to the target question, and where it is stored."""

    scenario: Scenario
    varies: tuple[Vary, ...]
    points: tuple[SweepPoint, ...]
    target: Target | None
    confidence: float
    answers: tuple[Answer, ...]
    settings: RunSettings
    out: Path

    def sentence(self) -> str:
        """The answer in one sentence (or a description of the grid without a target)."""
        if self.target is None:
            return (f"{len(self.points)} grid points of {self.scenario.name} over "
                    + ", ".join(v.path for v in self.varies) + ".")
        first = self.varies[0]
        parts = []
        for ans in self.answers:
            where = ", ".join(f"{p} = {v:g}" for p, v in ans.others)
            prefix = f"at {where}: " if where else ""
            if ans.value is None:
                parts.append(f"{prefix}no value tried meets it")
            else:
                note = "" if ans.monotone else " (a larger value tried did not)"
                parts.append(f"{prefix}{ans.value:g}{note}")
        return (f"Smallest {first.path} meeting {self.target} with "
                f"{self.confidence:.0%} confidence — " + "; ".join(parts) + ".")


def grid(varies: Sequence[Vary]) -> list[tuple[tuple[str, float], ...]]:
    """Every grid point's values: the product of the varied fields' values, in order."""
    return list(itertools.product(*[[(v.path, x) for x in v.values] for v in varies]))


def point_folder(out: Path, values: Sequence[tuple[str, float]]) -> Path:
    """Where a sweep folder stores one grid point's results (``points/FIELD=VALUE,...``)."""
    return out / "points" / ",".join(f"{p.rsplit('.', 1)[-1]}={v:g}" for p, v in values)


def answer(points: Sequence[SweepPoint], varies: Sequence[Vary], target: Target,
           confidence: float) -> list[Answer]:
    """For each setting of the other fields, the smallest first-field value meeting the target.

    A value meets it when the one-sided ``confidence`` bound of the KPI's mean across
    replications is on the right side of the target.
    """
    side = "lower" if target.op == ">=" else "upper"
    groups: dict[tuple[tuple[str, float], ...], list[tuple[float, float]]] = {}
    for p in points:
        first, others = p.values[0], p.values[1:]
        kpi = next((k for k in p.run.kpis if k.id == target.kpi), None)
        bound = math.nan if kpi is None else one_sided_bound(kpi.values, confidence, side)
        groups.setdefault(others, []).append((first[1], bound))
    out = []
    for others, rows in groups.items():
        rows.sort()
        ok = [(x, b) for x, b in rows if not math.isnan(b) and (
            b >= target.value if side == "lower" else b <= target.value)]
        if not ok:
            out.append(Answer(others, None, None, True))
            continue
        x, b = ok[0]
        later = [bb for xx, bb in rows if xx > x]
        monotone = all(not math.isnan(bb) and (bb >= target.value if side == "lower"
                                               else bb <= target.value) for bb in later)
        out.append(Answer(others, x, b, monotone))
    return out


def load_sweep(out: Path) -> Sweep:
    """Read a sweep folder back from disk (no simulation).

    The settings are the first grid point's, as its metadata records them (every point
    ran with the same).

    Raises:
        InputError: ``out`` is not a sweep folder, or a point's results cannot be read.
    """
    meta = _index_of(out, "sweep", "sweep")
    scenario = load_scenario(meta["scenario"])
    varies = tuple(Vary(v["path"], tuple(v["values"])) for v in meta["varies"])
    read = [(values, read_results(point_folder(out, values))) for values in grid(varies)]
    points = tuple(SweepPoint(tuple(values), res.as_run()) for values, res in read)
    t = meta["target"]
    target = None if t is None else Target(t["kpi"], t["op"], t["value"])
    answers = answer(points, varies, target, meta["confidence"]) if target else []
    return Sweep(scenario=scenario, varies=varies, points=points, target=target,
                 confidence=meta["confidence"], answers=tuple(answers),
                 settings=read[0][1].settings, out=out)
