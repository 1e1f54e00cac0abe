"""Fit a scenario's free parameters to a published table by simulation.

The free parameters are scenario fields the user names (those whose basis is an
``assumption``), each within bounds. Each evaluation runs the scenario with the candidate
values from the *same* root seed (common random numbers, so two candidates differ by their
values, not by luck) and measures it as ``cpsim validate`` does. The loss is the sum over the
fitted rows of the squared difference in units of the row's tolerance:

    loss = sum_i ((simulated_i - published_i) / tolerance_i) ** 2

(differences in percentage points for shares, in per cent of the published value for
counts). The optimiser is Nelder-Mead (``scipy.optimize.minimize``) inside the bounds; a
simulated loss is flat between events, so the simplex's derivative-free steps suit it.

Uncertainty: the method-of-simulated-moments sandwich. With ``J`` the change of the fitted
measures per unit of each parameter at the optimum (finite differences, same seed), ``W``
the weights ``1 / tolerance**2`` and ``S`` the covariance of the measures' replication
mean, ``cov = (J'WJ)^-1 J'W S W J (J'WJ)^-1``. It is the spread that the replications'
noise alone leaves in the fitted values (published figures are taken as exact); a
parameter the rows cannot pin down is reported as not identified.

Rows not fitted are held out: the validation table after fitting shows how the model does
on figures it was not fitted to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from model.atomic import write_text_atomic
from model.errors import InputError, Problem
from simulations.folders import run_identity, write_marker
from simulations.results import RunSettings, read_results
from simulations.runner import run_scenario
from simulations.scenario import Scenario, field_value, load_scenario
from simulations.validate import PublishedRow, Validation, ValidationRow, validate_results


@dataclass(frozen=True)
class Free:
    """A free parameter: a numeric scenario field, its bounds and its starting value."""

    path: str
    low: float
    high: float
    start: float


def parse_free(text: str, scenario: Scenario) -> Free:
    """Read ``PATH=LOW:HIGH`` (the start is the scenario's own value, clipped to the bounds).

    Raises:
        InputError: malformed text, bad bounds, or a field that is not a number.
    """
    if "=" not in text or ":" not in text.split("=", 1)[1]:
        raise InputError([Problem("--free", None, "", "write PATH=LOW:HIGH, e.g. "
                                  "staffing.family_unavailable=0:0.4", text)])
    path, bounds = (p.strip() for p in text.split("=", 1))
    try:
        low, high = (float(b) for b in bounds.split(":"))
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError
    except ValueError:
        raise InputError([Problem("--free", None, path, "bounds must be two finite numbers, "
                                  "LOW below HIGH", bounds)]) from None
    current = field_value(scenario.spec, path)
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise InputError([Problem("--free", None, path, "not a numeric field of the scenario "
                                  "(a key with dots goes in brackets: "
                                  "behaviour[cp_plan.active].chance)", path)])
    return Free(path, low, high, min(max(float(current), low), high))


def select_rows(published: Sequence[PublishedRow], keys: Sequence[str]) -> list[PublishedRow]:
    """The rows named by measure, source id or ``measure@YEAR``.

    A source id names one row (``CAL-10a``) or, without its letter, all its rows (``CAL-10``).

    Raises:
        InputError: a key that matches no row.
    """
    chosen: list[PublishedRow] = []
    problems = []
    for key in keys:
        measure, _, year = key.partition("@")
        found = [r for r in published
                 if (r.measure == measure or r.source == measure
                     or r.source.rstrip("abcdefgh") == measure)
                 and (not year or str(r.year_end.year) == year)]
        if not found:
            problems.append(Problem("--rows", None, "", "matches no row of the published "
                                    "table (a measure, a source id, or measure@YEAR)", key))
        chosen += [r for r in found if r not in chosen]
    if problems:
        raise InputError(problems)
    return chosen


def loss_of(rows: Sequence[ValidationRow]) -> float:
    """The sum of squared differences in units of each row's tolerance."""
    total = 0.0
    for r in rows:
        d = r.difference
        if math.isnan(d):
            return math.inf
        total += (d / r.published.tolerance) ** 2 if r.published.tolerance > 0 else d * d
    return total


@dataclass(frozen=True)
class Evaluation:
    """One simulated candidate: the values, the loss and where its results are."""

    values: tuple[float, ...]
    loss: float
    folder: Path
    validation: Validation


@dataclass(frozen=True)
class FitResult:
    """The fitted values with their standard errors, and the validation before and after."""

    frees: tuple[Free, ...]
    values: tuple[float, ...]
    errors: tuple[float, ...]
    fitted: tuple[PublishedRow, ...]
    before: Evaluation
    best: Evaluation
    evaluations: int
    converged: bool

    def overrides(self) -> dict[str, float]:
        """The fitted values as scenario overrides."""
        return {f.path: v for f, v in zip(self.frees, self.values, strict=True)}


class _Evaluator:
    def __init__(self, scenario: Scenario, frees: Sequence[Free],
                 published: Sequence[PublishedRow], fitted: Sequence[PublishedRow],
                 settings: RunSettings, out: Path, table: str, scale: float,
                 year_end: tuple[int, int], workers: int,
                 on_result: Callable[[Evaluation, int], None] | None) -> None:
        self.scenario, self.frees, self.published = scenario, tuple(frees), tuple(published)
        self.fitted = tuple(fitted)
        self.settings, self.out, self.table = settings, out, table
        self.scale, self.year_end, self.workers = scale, year_end, workers
        self.on_result = on_result
        self.seen: dict[tuple[float, ...], Evaluation] = {}

    def __call__(self, values: Sequence[float]) -> Evaluation:
        key = tuple(round(float(v), 6) for v in values)
        if key in self.seen:
            return self.seen[key]
        overrides = {**self.scenario.overrides,
                     **{f.path: v for f, v in zip(self.frees, key, strict=True)}}
        sc = load_scenario(self.scenario.path, overrides)
        folder = self.out / "evaluations" / f"{len(self.seen):03d}"
        run_scenario(sc, self.settings, folder, self.workers)
        v = validate_results(read_results(folder), self.published, self.table, self.scale,
                             self.year_end)
        rows = [r for r in v.rows if r.published in self.fitted]
        evaluation = Evaluation(key, loss_of(rows), folder, v)
        self.seen[key] = evaluation
        write_text_atomic(folder / "candidate.json", json.dumps(
            {"values": dict(zip([f.path for f in self.frees], key, strict=True)),
             "loss": evaluation.loss}, indent=2))
        if self.on_result is not None:
            self.on_result(evaluation, len(self.seen))
        return evaluation


def _measures(v: Validation, rows: Sequence[PublishedRow]
              ) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
    """Replications x fitted rows, in the rows' difference units."""
    out = np.empty((v.replications, len(rows)))
    for j, p in enumerate(rows):
        for i, rep in enumerate(v.per_replication):
            x = rep[p.measure]
            out[i, j] = (100.0 * x / p.value if p.tolerance_kind == "percent" and p.value
                         else x)
    return out


def fit_identity(scenario: Scenario, frees: Sequence[Free],
                 published: Sequence[PublishedRow], fitted: Sequence[PublishedRow],
                 settings: RunSettings, scale: float, year_end: tuple[int, int],
                 max_evaluations: int) -> dict[str, Any]:
    """The experiment a fit folder holds: everything that decides its candidates' runs."""
    rows = json.dumps([dataclasses.asdict(p) for p in published], sort_keys=True, default=str)
    return {"base": run_identity(scenario, settings),
            "replications": settings.replications,
            "free": [[f.path, f.low, f.high] for f in frees],
            "rows": [f"{p.measure}@{p.year_end.year}" for p in fitted],
            "table": hashlib.sha256(rows.encode()).hexdigest(),
            "scale": scale, "year_end": list(year_end), "max_evaluations": max_evaluations}


def fit(scenario: Scenario, frees: Sequence[Free], published: Sequence[PublishedRow],
        fitted: Sequence[PublishedRow], settings: RunSettings, out: Path, table: str,
        scale: float, year_end: tuple[int, int] = (3, 31), workers: int = 1,
        max_evaluations: int = 40,
        on_result: Callable[[Evaluation, int], None] | None = None) -> FitResult:
    """Fit ``frees`` to the ``fitted`` rows; every candidate's run is kept under ``out``.

    ``out`` is marked as a fit folder recording :func:`fit_identity` first.
    """
    write_marker(out, "fit", fit_identity(scenario, frees, published, fitted, settings,
                                          scale, year_end, max_evaluations))
    evaluate = _Evaluator(scenario, frees, published, fitted, settings, out, table, scale,
                          year_end, workers, on_result)
    lows = np.array([f.low for f in frees])
    spans = np.array([f.high - f.low for f in frees])

    def to_values(u: np.ndarray[tuple[int], np.dtype[np.float64]]) -> list[float]:
        return [float(x) for x in lows + np.clip(u, 0.0, 1.0) * spans]

    start = np.array([(f.start - f.low) / (f.high - f.low) for f in frees])
    before = evaluate(to_values(start))
    simplex = [start] + [np.where(np.arange(len(frees)) == k,
                                  np.where(start[k] > 0.5, start[k] - 0.25, start[k] + 0.25),
                                  start) for k in range(len(frees))]
    result = optimize.minimize(
        lambda u: evaluate(to_values(u)).loss, start, method="Nelder-Mead",
        bounds=[(0.0, 1.0)] * len(frees),
        options={"maxfev": max_evaluations, "initial_simplex": np.array(simplex),
                 "xatol": 0.01, "fatol": 0.05})
    best = min(evaluate.seen.values(), key=lambda e: e.loss)
    errors = _sandwich(evaluate, best, frees, fitted)
    return FitResult(tuple(frees), best.values, errors, tuple(fitted), before, best,
                     len(evaluate.seen), bool(result.success))


def _sandwich(evaluate: _Evaluator, best: Evaluation, frees: Sequence[Free],
              fitted: Sequence[PublishedRow]) -> tuple[float, ...]:
    """Standard errors of the fitted values (NaN when the rows do not identify them)."""
    base = _measures(best.validation, fitted)
    mean = base.mean(axis=0)
    n = len(frees)
    jac = np.empty((len(fitted), n))
    for k, f in enumerate(frees):
        h = 0.05 * (f.high - f.low)
        step = h if best.values[k] + h <= f.high else -h
        moved = list(best.values)
        moved[k] = best.values[k] + step
        other = _measures(evaluate(moved).validation, fitted).mean(axis=0)
        jac[:, k] = (other - mean) / step
    tol = np.array([p.tolerance or 1.0 for p in fitted])
    w = np.diag(1.0 / tol ** 2)
    reps = base.shape[0]
    s = np.cov(base, rowvar=False).reshape(len(fitted), len(fitted)) / reps if reps > 1 \
        else np.full((len(fitted), len(fitted)), np.nan)
    bread = jac.T @ w @ jac
    if not np.all(np.isfinite(bread)) or np.linalg.matrix_rank(bread) < n:
        return tuple(math.nan for _ in frees)
    inv = np.linalg.inv(bread)
    cov = inv @ jac.T @ w @ s @ w @ jac @ inv
    return tuple(float(math.sqrt(c)) if c >= 0 else math.nan for c in np.diag(cov))


def format_fit(fit_result: FitResult) -> str:
    """The fitted values, their standard errors, and the loss before and after."""
    lines = [f"fitted {len(fit_result.frees)} parameter(s) to {len(fit_result.fitted)} "
             f"published row(s) in {fit_result.evaluations} simulated evaluations "
             f"({'converged' if fit_result.converged else 'stopped at the evaluation limit'}"
             f"); loss {fit_result.before.loss:.2f} -> {fit_result.best.loss:.2f}"]
    width = max(len(f.path) for f in fit_result.frees)
    lines.append(f"  {'parameter':<{width}}  {'start':>8}  {'fitted':>8}  {'std err':>8}  bounds")
    for f, v, e in zip(fit_result.frees, fit_result.values, fit_result.errors, strict=True):
        err = "not identified" if math.isnan(e) else f"{e:8.4f}"
        lines.append(f"  {f.path:<{width}}  {f.start:8.4f}  {v:8.4f}  {err:>8}  "
                     f"[{f.low:g}, {f.high:g}]")
    lines.append("fitted rows: " + ", ".join(f"{p.measure} ({p.year_end.year})"
                                               for p in fit_result.fitted))
    return "\n".join(lines)


def fit_csv(fit_result: FitResult) -> str:
    """One row per free parameter."""
    lines = ["parameter,low,high,start,fitted,std_error"]
    for f, v, e in zip(fit_result.frees, fit_result.values, fit_result.errors, strict=True):
        lines.append(f"{json.dumps(f.path)},{f.low!r},{f.high!r},{f.start!r},{v!r},{e!r}")
    return "\n".join(lines) + "\n"
