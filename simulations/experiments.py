"""The questions users ask: what a change does, how many staff, how many replications.

``compare`` runs two scenarios with common random numbers; ``sweep`` runs a grid of scenario
values and finds the smallest meeting a target; ``run_to_precision`` adds replications until
the headline intervals are narrow enough. Each experiment is made of ordinary results
folders (one per scenario or grid point), so it is resumable like a single run, runs on
local processes or Dask, and everything it reports can be rebuilt from disk.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from model.atomic import write_text_atomic
from model.errors import InputError, Problem, did_you_mean
from model.loader import BUILTIN_DIR, available_procedures, resolve_procedure_path
from model.yamlsrc import LMap, load_yaml_text
from simulations.folders import run_identity, write_marker
from simulations.kpi import Kpi, compute_kpis
from simulations.runner import (
    Job,
    RunResult,
    RunSettings,
    check_folder,
    execute,
    finish_folder,
    jobs_for,
    prepare_folder,
    run_scenario,
)
from simulations.scenario import (
    SCENARIO_DIR,
    Scenario,
    available_scenarios,
    load_scenario,
    split_path,
)
from simulations.stats import half_width, mean_ci, one_sided_bound

BASE_SCENARIO = "baseline"
"""The scenario a bare procedure is run on (the issue: "a procedure is run on baseline")."""


# -- what to run -----------------------------------------------------------------------------
def resolve_subject(ref: str, base: str = BASE_SCENARIO) -> Scenario:
    """A scenario, or a procedure run on the base scenario's demand and staffing.

    ``ref`` is a shipped scenario or procedure name, or a path to either kind of file (told
    apart by its top-level ``scenario:`` or ``procedure:`` key).

    Raises:
        InputError: ``ref`` is neither, with the closest name.
    """
    path = Path(ref)
    if path.is_file():
        try:
            raw = load_yaml_text(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError):
            raw = None
        if isinstance(raw, LMap) and "scenario" in raw:
            return load_scenario(path)
        if isinstance(raw, LMap) and "procedure" in raw:
            return load_scenario(base, {"procedure": str(path.resolve())})
    elif "/" not in ref:
        if (SCENARIO_DIR / f"{ref}.yaml").is_file():
            return load_scenario(ref)
        if (BUILTIN_DIR / f"{ref}.yaml").is_file():
            return load_scenario(base, {"procedure": str(resolve_procedure_path(ref))})
    names = [*available_scenarios(), *available_procedures()]
    raise InputError([Problem(ref, None, "", "neither a scenario nor a procedure (a shipped "
                              "name or a path to a .yaml file)", ref,
                              did_you_mean(path.stem, names))])


def subject_name(scenario: Scenario) -> str:
    """A short name: the scenario's, or the procedure's when it was run on the base."""
    if "procedure" in scenario.overrides:
        return scenario.procedure.id
    return scenario.name


# -- compare ---------------------------------------------------------------------------------
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


def compare_identity(a: Scenario, b: Scenario, settings: RunSettings) -> dict[str, Any]:
    """The experiment a comparison folder holds: A's and B's (same settings)."""
    return {"a": run_identity(a, settings), "b": run_identity(b, settings)}


def compare(a: Scenario, b: Scenario, settings: RunSettings, out: Path, workers: int = 1,
            dask: str | None = None,
            progress: Callable[[Job, float], None] | None = None,
            on_done: Callable[[Job, bool], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Comparison:
    """Run A and B with the same seed and replications; write both folders and the diff.

    Raises:
        InputError: ``out/a`` or ``out/b`` holds a different experiment (nothing written).
    """
    a_name, b_name = subject_name(a), subject_name(b)
    if a_name == b_name:
        a_name, b_name = f"A:{a_name}", f"B:{b_name}"
    folders = {"a": out / "a", "b": out / "b"}
    scenarios = {"a": a, "b": b}
    for side, sc in scenarios.items():
        check_folder(sc, settings, folders[side])
    write_marker(out, "compare", compare_identity(a, b, settings))
    jobs: dict[Job, Scenario] = {}
    for side, sc in scenarios.items():
        prepare_folder(sc, settings, folders[side])
        for job in jobs_for(sc, settings, folders[side]):
            jobs[job] = sc
    records = execute(list(jobs), jobs, workers, dask, progress, on_done, on_note)
    runs = {}
    for side, sc in scenarios.items():
        mine = [r for j, r in records.items() if Path(j.out) == folders[side]]
        ordered, kpis = finish_folder(sc, mine, folders[side])
        runs[side] = RunResult(folders[side], ordered, tuple(kpis), (), ())
    diffs = kpi_diffs(runs["a"].kpis, runs["b"].kpis)
    comparison = Comparison(a, b, a_name, b_name, runs["a"], runs["b"], tuple(diffs),
                            settings, out)
    write_text_atomic(out / "comparison.csv", comparison_csv(comparison))
    write_text_atomic(out / "comparison.json", json.dumps({
        "a": {"name": a_name, "folder": "a", "scenario": str(a.path),
              "overrides": dict(a.overrides)},
        "b": {"name": b_name, "folder": "b", "scenario": str(b.path),
              "overrides": dict(b.overrides)},
        "seed": settings.seed, "replications": settings.replications,
    }, indent=2, sort_keys=True, default=str))
    return comparison


def _f(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.4f}"


def comparison_csv(c: Comparison) -> str:
    """Every KPI: A, B, the difference and its interval, and whether it excludes zero."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "group", "label", "unit", "a_mean", "b_mean", "diff", "diff_low",
                "diff_high", "significant"])
    for d in c.diffs:
        w.writerow([d.id, d.group, d.label, d.unit, _f(d.a.mean), _f(d.b.mean), _f(d.diff),
                    _f(d.low), _f(d.high), "yes" if d.significant else "no"])
    return buf.getvalue()


def load_comparison(out: Path) -> Comparison:
    """Read a comparison folder back (both results folders and the recorded subjects)."""
    from simulations.results import read_results

    try:
        meta = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError([Problem(str(out), None, "", "not a comparison folder (no "
                                  "comparison.json); make one with `cpsim compare`")]) from None
    runs = {}
    scenarios = {}
    changed = {}
    for side in ("a", "b"):
        res = read_results(out / meta[side]["folder"])
        scenarios[side] = res.scenario
        changed[side] = res.scenario_changed
        runs[side] = RunResult(res.out, res.records, res.kpis, (), ())
    m = runs["a"].records[0]
    settings = RunSettings(meta["replications"], meta["seed"],
                           int(m["horizon_hours"] // 24), int(m["warm_up_hours"] // 24))
    return Comparison(scenarios["a"], scenarios["b"], meta["a"]["name"], meta["b"]["name"],
                      runs["a"], runs["b"], tuple(kpi_diffs(runs["a"].kpis, runs["b"].kpis)),
                      settings, out, changed)


# -- sweep -----------------------------------------------------------------------------------
PATH_ALIASES = {
    "staffing.social_workers": "staffing.social_workers.establishment_fte",
    "staffing.conference_chairs": "staffing.conference_chairs.count",
    "staffing.minute_takers": "staffing.minute_takers.count",
    "demand.referrals": "demand.referrals_per_year",
}
"""Short names for the fields most often varied."""

_RANGE = re.compile(r"^\s*(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)\s*:\s*([\d.]+)\s*$")


@dataclass(frozen=True)
class Vary:
    """One varied scenario field and its values (``PATH=30..60:5`` or ``PATH=1,2,3``)."""

    path: str
    values: tuple[float, ...]

    @property
    def short(self) -> str:
        """The field's last name (for labels and folder names)."""
        return self.path.rsplit(".", 1)[-1]


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


MAX_GRID_VALUES = 1_000
"""The most values one ``--vary`` may take (each is a whole run of the scenario)."""


def parse_vary(text: str, scenario: Scenario) -> Vary:
    """Read ``PATH=VALUES`` and check PATH is a numeric field of the scenario.

    Raises:
        InputError: malformed text, an unknown field, or a field that is not a number.
    """
    if "=" not in text:
        raise InputError([Problem("--vary", None, "", "write PATH=VALUES, e.g. "
                                  "staffing.social_workers=30..60:5", text)])
    path, values_text = (part.strip() for part in text.split("=", 1))
    path = PATH_ALIASES.get(path, path)
    match = _RANGE.match(values_text)
    try:
        if match:
            low, high, step = (_number(g) for g in match.groups())
            if step <= 0 or high < low:
                raise ValueError
            count = math.floor((high - low) / step + 1e-9) + 1
            if count > MAX_GRID_VALUES:
                raise InputError([Problem(
                    "--vary", None, path, f"the range has {count:,} values; at most "
                    f"{MAX_GRID_VALUES:,} are allowed (each value is a whole run of the "
                    "scenario): use a larger step", values_text)])
            values = tuple(_number(repr(low + i * step)) if isinstance(step, int)
                           and isinstance(low, int) else round(low + i * step, 10)
                           for i in range(count))
        else:
            values = tuple(_number(v.strip()) for v in values_text.split(",") if v.strip())
            if len(values) > MAX_GRID_VALUES:
                raise InputError([Problem(
                    "--vary", None, path, f"{len(values):,} values; at most "
                    f"{MAX_GRID_VALUES:,} are allowed (each value is a whole run of the "
                    "scenario)", values_text[:60])])
        if not values:
            raise ValueError
    except ValueError:
        raise InputError([Problem("--vary", None, path, "values must be numbers: a list "
                                  "(3000,4100,5000) or a range (30..60:5)",
                                  values_text)]) from None
    current = _field(scenario.spec, path)
    if current is None or isinstance(current, bool) or not isinstance(current, int | float):
        raise InputError([Problem("--vary", None, path, "not a numeric field of the "
                                  "scenario", path, _closest_field(scenario, path))])
    return Vary(path, tuple(float(v) if isinstance(current, float) else v for v in values))


def _field(obj: Any, path: str) -> Any:
    parts = split_path(path)
    if parts is None:
        return None
    for part in parts:
        if isinstance(part, int):
            obj = obj[part] if isinstance(obj, list) and 0 <= part < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _closest_field(scenario: Scenario, path: str) -> str | None:
    flat: list[str] = []

    def walk(obj: Any, prefix: str) -> None:
        data = obj.model_dump() if hasattr(obj, "model_dump") else obj
        if isinstance(data, dict):
            for k, v in data.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(data, int | float) and not isinstance(data, bool):
            flat.append(prefix)

    walk(scenario.spec, "")
    return did_you_mean(path, flat)


@dataclass(frozen=True)
class Target:
    """A KPI goal: ``deadline:icpc_held:share_met>=0.95``."""

    kpi: str
    op: Literal[">=", "<="]
    value: float

    def __str__(self) -> str:
        """The goal as written."""
        return f"{self.kpi} {self.op} {self.value:g}"


def parse_target(text: str, kpi_ids: Sequence[str]) -> Target:
    """Read ``KPI>=X`` or ``KPI<=X``; a bare deadline id means its share met.

    Raises:
        InputError: malformed, or no such KPI (with the closest id).
    """
    match = re.match(r"^\s*([\w:.\-]+)\s*(>=|<=)\s*([\d.]+%?)\s*$", text)
    if not match:
        raise InputError([Problem("--target", None, "", "write KPI>=X or KPI<=X, e.g. "
                                  "icpc_held>=0.95", text)])
    kpi, op, raw = match.groups()
    value = float(raw.rstrip("%")) / (100.0 if raw.endswith("%") else 1.0)
    if kpi not in kpi_ids and f"deadline:{kpi}:share_met" in kpi_ids:
        kpi = f"deadline:{kpi}:share_met"
    if kpi not in kpi_ids:
        short = [k.split(":")[1] for k in kpi_ids if k.startswith("deadline:")
                 and k.endswith(":share_met")]
        raise InputError([Problem("--target", None, "", "no such KPI", kpi,
                                  did_you_mean(kpi, [*kpi_ids, *short]))])
    return Target(kpi, op, value)  # type: ignore[arg-type]


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


def _slug(values: Sequence[tuple[str, float]]) -> str:
    return ",".join(f"{p.rsplit('.', 1)[-1]}={v:g}" for p, v in values)


def sweep_identity(scenario: Scenario, varies: Sequence[Vary],
                   settings: RunSettings) -> dict[str, Any]:
    """The experiment a sweep folder holds: the base scenario's run and the grid."""
    return {"base": run_identity(scenario, settings),
            "vary": [{"path": v.path, "values": list(v.values)} for v in varies]}


def sweep(scenario: Scenario, varies: Sequence[Vary], settings: RunSettings, out: Path,
          target: Target | None = None, confidence: float = 0.9, workers: int = 1,
          dask: str | None = None,
          progress: Callable[[Job, float], None] | None = None,
          on_done: Callable[[Job, bool], None] | None = None,
          on_note: Callable[[str], None] | None = None) -> Sweep:
    """Run every grid point (the product of the varied values) and answer the target.

    Every point is an ordinary results folder under ``out/points/``; all replications of
    all points run as one pool of jobs, each stored as it finishes.

    Raises:
        InputError: a point's folder holds a different experiment (nothing written).
    """
    grid = list(itertools.product(*[[(v.path, x) for x in v.values] for v in varies]))
    jobs: dict[Job, Scenario] = {}
    point_scenarios = []
    for values in grid:
        overrides = {**scenario.overrides, **dict(values)}
        sc = load_scenario(scenario.path, overrides)
        folder = out / "points" / _slug(values)
        check_folder(sc, settings, folder)
        point_scenarios.append((values, sc, folder))
    write_marker(out, "sweep", sweep_identity(scenario, varies, settings))
    for _values, sc, folder in point_scenarios:
        prepare_folder(sc, settings, folder)
        for job in jobs_for(sc, settings, folder):
            jobs[job] = sc
    records = execute(list(jobs), jobs, workers, dask, progress, on_done, on_note)
    points = []
    for values, sc, folder in point_scenarios:
        mine = [r for j, r in records.items() if Path(j.out) == folder]
        ordered, kpis = finish_folder(sc, mine, folder)
        points.append(SweepPoint(tuple(values), RunResult(folder, ordered, tuple(kpis), (),
                                                          ())))
    answers = answer(points, varies, target, confidence) if target else []
    result = Sweep(scenario, tuple(varies), tuple(points), target, confidence, tuple(answers),
                   settings, out)
    write_text_atomic(out / "sweep.csv", sweep_csv(result))
    write_text_atomic(out / "sweep.json", json.dumps({
        "scenario": str(scenario.path),
        "varies": [{"path": v.path, "values": list(v.values)} for v in varies],
        "target": None if target is None else {"kpi": target.kpi, "op": target.op,
                                               "value": target.value},
        "confidence": confidence, "seed": settings.seed,
        "replications": settings.replications, "answer": result.sentence(),
    }, indent=2, sort_keys=True))
    return result


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


def sweep_csv(s: Sweep) -> str:
    """The tidy table: one row per grid point and replication, one column per KPI."""
    ids = [k.id for k in s.points[0].run.kpis] if s.points else []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*(v.path for v in s.varies), "replication", *ids])
    for p in s.points:
        by_id = {k.id: k for k in p.run.kpis}
        for rep in range(len(p.run.records)):
            row = [f"{v:g}" for _, v in p.values] + [str(rep)]
            for kid in ids:
                values = by_id[kid].values if kid in by_id else ()
                row.append(_f(values[rep]) if rep < len(values) else "")
            w.writerow(row)
    return buf.getvalue()


def load_sweep(out: Path) -> Sweep:
    """Read a sweep folder back from disk (no simulation)."""
    from simulations.results import read_results

    try:
        meta = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError([Problem(str(out), None, "", "not a sweep folder (no sweep.json); "
                                  "make one with `cpsim sweep`")]) from None
    scenario = load_scenario(meta["scenario"])
    varies = tuple(Vary(v["path"], tuple(v["values"])) for v in meta["varies"])
    points = []
    for values in itertools.product(*[[(v.path, x) for x in v.values] for v in varies]):
        res = read_results(out / "points" / _slug(values))
        points.append(SweepPoint(tuple(values), RunResult(res.out, res.records, res.kpis,
                                                          (), ())))
    t = meta["target"]
    target = None if t is None else Target(t["kpi"], t["op"], t["value"])
    answers = answer(points, varies, target, meta["confidence"]) if target else []
    rec = points[0].run.records[0]
    settings = RunSettings(meta["replications"], meta["seed"],
                           int(rec["horizon_hours"] // 24), int(rec["warm_up_hours"] // 24))
    return Sweep(scenario, varies, tuple(points), target, meta["confidence"], tuple(answers),
                 settings, out)


# -- how many replications --------------------------------------------------------------------
@dataclass(frozen=True)
class PrecisionResult:
    """Replications run until every headline KPI's 95% half-width is below the goal."""

    run: RunResult
    replications: int
    reached: bool
    widest: tuple[str, float]
    headline: tuple[str, ...]


def headline_kpis(kpis: Sequence[Kpi]) -> list[Kpi]:
    """The KPIs whose precision decides how many replications are enough.

    The share met of every deadline with a latest time that has data in every replication.
    """
    return [k for k in kpis if k.headline and k.unit == "share" and k.values
            and not any(math.isnan(v) for v in k.values)]


def run_to_precision(scenario: Scenario, settings: RunSettings, out: Path, precision: float,
                     max_replications: int = 50, workers: int = 1, dask: str | None = None,
                     progress: Callable[[int, float], None] | None = None,
                     on_replication: Callable[[int, bool], None] | None = None,
                     on_batch: Callable[[int, str, float], None] | None = None,
                     on_note: Callable[[str], None] | None = None) -> PrecisionResult:
    """Add replications until every headline KPI's 95% interval half-width < ``precision``.

    Starts with ``settings.replications`` (at least 3); after each batch, estimates how many
    are needed from the widest interval (n x (half-width / precision)^2) and runs the extra
    ones, never more than ``max_replications``. Earlier replications are reused. Every
    other setting (a ``--start-from`` snapshot, say) is kept as it is.
    """
    n = max(3, settings.replications)
    while True:
        current = replace(settings, replications=n)
        result = run_scenario(scenario, current, out, workers, progress, on_replication, dask,
                              on_note)
        heads = headline_kpis(result.kpis)
        widths = [(k.id, half_width(k.values)) for k in heads]
        widest = max(widths, key=lambda w: w[1]) if widths else ("", 0.0)
        if on_batch is not None:
            on_batch(n, widest[0], widest[1])
        if widest[1] < precision or n >= max_replications:
            _write_precision(out, n, precision, widest, widest[1] < precision)
            return PrecisionResult(result, n, widest[1] < precision, widest,
                                   tuple(k.id for k in heads))
        needed = math.ceil(n * (widest[1] / precision) ** 2)
        n = min(max_replications, max(n + 2, needed))


def _write_precision(out: Path, n: int, precision: float, widest: tuple[str, float],
                     reached: bool) -> None:
    write_text_atomic(out / "precision.json", json.dumps({
        "precision": precision, "replications": n, "reached": reached,
        "widest_kpi": widest[0], "widest_half_width": widest[1]}, indent=2, sort_keys=True))


def kpis_of(records: Sequence[dict[str, Any]], scenario: Scenario) -> list[Kpi]:
    """KPIs of some records (a convenience for reports)."""
    return compute_kpis(records, scenario.procedure)
