"""The questions users ask: what a change does, how many staff, how many replications.

``compare`` runs two scenarios with common random numbers; ``sweep`` runs a grid of scenario
values and finds the smallest meeting a target; ``run_to_precision`` adds replications until
the headline intervals are narrow enough. Each experiment is made of ordinary results
folders (one per scenario or grid point), so it is resumable like a single run, runs on
local processes or Dask, and everything it reports can be rebuilt from disk. The records
a comparison or sweep returns, and their readers, are in :mod:`simulations.results`, which
does not import the engine.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from model.atomic import write_text_atomic
from model.errors import InputError, Problem, did_you_mean
from model.loader import BUILTIN_DIR, available_procedures, resolve_procedure_path
from model.yamlsrc import LMap, load_yaml_text
from simulations.folders import run_identity, write_marker
from simulations.kpi import Kpi, compute_kpis
from simulations.results import (
    Comparison,
    RunResult,
    RunSettings,
    Sweep,
    SweepPoint,
    Target,
    Vary,
    answer,
    grid,
    kpi_diffs,
    point_folder,
)
from simulations.runner import (
    Job,
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
    field_value,
    load_scenario,
)
from simulations.stats import half_width

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


# -- sweep -----------------------------------------------------------------------------------
PATH_ALIASES = {
    "staffing.social_workers": "staffing.social_workers.establishment_fte",
    "staffing.conference_chairs": "staffing.conference_chairs.count",
    "staffing.minute_takers": "staffing.minute_takers.count",
    "demand.referrals": "demand.referrals_per_year",
}
"""Short names for the fields most often varied."""

_RANGE = re.compile(r"^\s*(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)\s*:\s*([\d.]+)\s*$")


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
    current = field_value(scenario.spec, path)
    if current is None or isinstance(current, bool) or not isinstance(current, int | float):
        raise InputError([Problem("--vary", None, path, "not a numeric field of the "
                                  "scenario", path, _closest_field(scenario, path))])
    return Vary(path, tuple(float(v) if isinstance(current, float) else v for v in values))


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
    jobs: dict[Job, Scenario] = {}
    point_scenarios = []
    for values in grid(varies):
        overrides = {**scenario.overrides, **dict(values)}
        sc = load_scenario(scenario.path, overrides)
        folder = point_folder(out, values)
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
