"""Is a run in steady state? The warm-up measured by MSER-5, and a trend test on what is measured.

A scenario's ``run.warm_up_days`` is a guess: results are only steady-state figures if the
stocks the run measures (open cases, open plans) have stopped drifting by the time the
measured period starts, and do not drift during it. The engine records those stocks from
day 0 (the record's ``transient``), and this module judges them in two ways:

- **The warm-up, measured.** :func:`mser5` is the MSER-5 rule (White 1997; Franklin and
  White): average the series in batches of five, and cut off the start where doing so
  makes the remaining batch means most precise. It is run per replication and the longest
  warm-up over the replications is the one to use.
- **Drift over the measured period.** :func:`trend` fits a straight line to batch means of
  the measured period and reports its slope with a 95% interval, and says the series
  *trends* only when the interval excludes zero and the change over the period is large
  enough to matter.

Everything here is a pure function of plain numbers, so reports can use it without the
simulator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BATCH = 5
"""Observations per batch in MSER-5."""

MIN_MSER_BATCHES = 4
"""MSER-5 needs at least this many batches (20 observations) to say anything."""

MIN_TREND_BATCHES = 4
"""The trend test needs at least this many batch means (two degrees of freedom)."""

DAYS_PER_YEAR = 365.25

STOCKS = ("open_cases", "open_plans")
"""The stocks a record's ``transient`` can hold, in report order."""

_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
"""The 97.5% quantile of Student's t with 1 to 30 degrees of freedom."""


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (two-sided 95%).

    Tabulated up to 30 degrees of freedom; beyond, the Cornish-Fisher expansion around the
    normal quantile (within 0.001 there).

    >>> t975(8), round(t975(60), 3)
    (2.306, 2.0)
    """
    if df < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


# -- the warm-up ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WarmUp:
    """Where MSER-5 cuts a series.

    Attributes:
        index: The first observation kept (an index into the original series, a multiple
            of 5).
        day: The day of that observation (days from the start of the run).
        at_boundary: True when the best cut is the last one allowed (half the batches): the
            series was still moving through the first half of the run, so no warm-up within
            the run can be trusted.
    """

    index: int
    day: float
    at_boundary: bool


def _batch_means(values: Sequence[float], size: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Means of consecutive batches of ``size`` from the start; a short last batch is dropped."""
    data = np.asarray(values, dtype=float)
    count = data.size // size
    means: np.ndarray[Any, np.dtype[np.float64]] = data[:count * size].reshape(
        count, size).mean(axis=1)
    return means


def _mser5(values: Sequence[float]) -> tuple[int, bool]:
    """The MSER-5 cut as (batches dropped, whether that is the last cut allowed)."""
    means = _batch_means(values, BATCH)
    k = means.size
    if k < MIN_MSER_BATCHES:
        raise ValueError(f"MSER-5 needs at least {MIN_MSER_BATCHES * BATCH} observations, "
                         f"got {len(values)}")
    last = k // 2
    scores = []
    for d in range(last + 1):
        rest = means[d:]
        scores.append(float(((rest - rest.mean()) ** 2).sum()) / (k - d) ** 2)
    best = int(np.argmin(scores))  # the first of equal minima: the shortest warm-up
    return best, best == last


def mser5(values: Sequence[float]) -> int:
    """The MSER-5 truncation point of a series: how many observations to drop from its start.

    The series is averaged in consecutive batches of five (a short last batch is dropped).
    For each candidate number ``d`` of leading batches to drop, MSER(d) is the sum of squared
    deviations of the remaining batch means from their own mean divided by the square of how
    many remain: the squared standard error of the mean that is left, which grows when
    early, atypical values are kept and also when too much is thrown away. The ``d`` with the
    smallest MSER wins (the smallest ``d`` on a tie). As is standard, ``d`` ranges over the
    first half of the batches only (0 to half the batch count): with more cut off the rule
    favours dropping nearly everything. A minimum on that boundary means the series did not
    settle within the first half of the run (see :func:`warm_up`).

    Args:
        values: Observations at equal spacing, from the start of the run.

    Returns:
        The index in ``values`` of the first observation kept (``5 * d``).

    Raises:
        ValueError: Fewer than 20 observations (four batches).

    >>> mser5([10.0] * 10 + [0.0] * 30)
    10
    """
    d, _ = _mser5(values)
    return d * BATCH


def warm_up(days: Sequence[float], values: Sequence[float]) -> WarmUp:
    """The MSER-5 warm-up of a series sampled on ``days``, as an index, a day and a warning.

    Raises:
        ValueError: ``days`` and ``values`` differ in length, or there are fewer than 20
            observations.
    """
    if len(days) != len(values):
        raise ValueError("days and values differ in length")
    d, boundary = _mser5(values)
    return WarmUp(d * BATCH, float(days[d * BATCH]), boundary)


# -- drift over the measured period ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trend:
    """A straight-line trend over a measured period, with its 95% interval.

    Attributes:
        name: What the series is (used in the sentence).
        slope: Change per year, in the series' unit.
        low, high: The 95% interval of ``slope``.
        mean: The series' mean over the period.
        relative_slope: ``slope / mean``: the share of the mean gained (or lost) a year.
        relative_change: The change over the whole period as a share of the mean
            (``relative_slope`` times the period's length in years).
        years: The length of the period.
        batches: How many batch means the line was fitted to.
        materiality: The smallest relative change over the period that counts as a trend.
        trends: True when the interval excludes 0 and ``|relative_change|`` exceeds
            ``materiality``.
        sentence: One line saying so, in plain words.
    """

    name: str
    slope: float
    low: float
    high: float
    mean: float
    relative_slope: float
    relative_change: float
    years: float
    batches: int
    materiality: float
    trends: bool
    sentence: str


def trend(days: Sequence[float], values: Sequence[float], batches: int = 10,
          materiality: float = 0.05, name: str = "the series") -> Trend:
    """Does a series still rise or fall over the measured period?

    Samples of a stock a week apart are strongly autocorrelated, so an ordinary regression
    on them would report trends that are only slow wandering. Instead the period is cut
    into ``batches`` consecutive, non-overlapping batches whose sizes differ by at most one
    sample (every sample is used); a least-squares line is fitted to the batch means against
    the batches' mean days, and its slope gets a t-interval with ``batches - 2``
    degrees of freedom. When the residuals of that fit are still positively correlated from
    one batch to the next (lag-1 correlation r > 0), the standard error is widened by
    ``sqrt((1 + r) / (1 - r))``, the usual allowance for first-order autocorrelation. This
    is honest only when batches are longer than the stock's memory; for stocks with
    year-long stays, average independent replications first (as :func:`steady_state` does)
    and rely on the materiality threshold as well.

    A statistically clear slope can be immaterial in a long, precise run, so the verdict
    *trends* also needs the change over the period (slope times its length) to exceed
    ``materiality`` times the period's mean. The default, 5%, is a drift that leaves the
    period's first and last weeks about 2.5% either side of the average a KPI reports.

    Args:
        days: Sample days (increasing).
        values: The series, one value per day.
        batches: How many batch means to fit (fewer if there are fewer samples).
        materiality: Smallest relative change over the period that counts as a trend.
        name: What the series is, for the sentence.

    Raises:
        ValueError: ``days`` and ``values`` differ in length, or fewer than four samples.
    """
    if len(days) != len(values):
        raise ValueError("days and values differ in length")
    k = min(batches, len(values))
    if k < MIN_TREND_BATCHES:
        raise ValueError(f"a trend needs at least {MIN_TREND_BATCHES} samples, "
                         f"got {len(values)}")
    x = np.array([b.mean() for b in np.array_split(np.asarray(days, dtype=float), k)])
    x /= DAYS_PER_YEAR
    y = np.array([b.mean() for b in np.array_split(np.asarray(values, dtype=float), k)])
    xc = x - x.mean()
    sxx = float((xc**2).sum())
    slope = float((xc * (y - y.mean())).sum()) / sxx
    resid = y - y.mean() - slope * xc
    df = k - 2
    se = math.sqrt(float((resid**2).sum()) / df / sxx)
    denominator = float((resid**2).sum())
    r1 = float((resid[:-1] * resid[1:]).sum()) / denominator if denominator > 0 else 0.0
    if r1 > 0:
        se *= math.sqrt((1 + min(r1, 0.9)) / (1 - min(r1, 0.9)))
    half = t975(df) * se
    low, high = slope - half, slope + half
    mean = float(np.mean(np.asarray(values, dtype=float)))
    years = (float(days[-1]) - float(days[0])) / DAYS_PER_YEAR
    relative = slope / mean if mean > 0 else math.nan
    change = relative * years
    clear = low > 0 or high < 0
    trends = clear and not math.isnan(change) and abs(change) > materiality
    return Trend(name, slope, low, high, mean, relative, change, years, k, materiality,
                 trends, _sentence(name, slope, low, high, mean, relative, change, years,
                                   materiality, trends))


def _sentence(name: str, slope: float, low: float, high: float, mean: float,
              relative: float, change: float, years: float, materiality: float,
              trends: bool) -> str:
    span = f"{years:.1f} years"
    if math.isnan(relative):
        return (f"{name} is zero over the measured period ({span}), so no trend can be "
                f"judged.")
    interval = f"95% interval {100 * low / mean:+.1f}% to {100 * high / mean:+.1f}% a year"
    if trends:
        way = "rises" if slope > 0 else "falls"
        return (f"{name} still {way} by {100 * abs(relative):.1f}% a year over the measured "
                f"period ({span}, {100 * change:+.1f}% in all; {interval}): the results are "
                f"not steady-state figures.")
    return (f"{name} shows no material trend over the measured period ({span}: "
            f"{100 * relative:+.1f}% a year, {interval}; a trend needs an interval clear of "
            f"zero and a change of more than {100 * materiality:.0f}% over the period).")


# -- a run's replications -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Steadiness:
    """The steady-state check of one stock over a run's replications.

    Attributes:
        stock: ``open_cases`` or ``open_plans``.
        configured_days: The scenario's warm-up (days from the start of the run).
        warm_ups: The MSER-5 warm-up of each replication, in replication order (empty when
            the runs were too short to judge).
        recommended_days: The longest of those warm-ups (None when there are none).
        settled: False when some replication's MSER-5 cut hit the half-way boundary.
        long_enough: True when every replication settled and the configured warm-up is at
            least ``recommended_days``.
        trend: The trend of the replications' mean over the measured period (None when the
            measured period holds fewer than four samples).
    """

    stock: str
    configured_days: float
    warm_ups: tuple[WarmUp, ...]
    recommended_days: float | None
    settled: bool
    long_enough: bool
    trend: Trend | None


def _transient(record: Mapping[str, Any], stock: str) -> tuple[list[float], list[float]] | None:
    data = record.get("transient")
    if not isinstance(data, Mapping):
        return None
    days, values = data.get("days"), data.get(stock)
    if not days or not values or len(days) != len(values):
        return None
    return [float(d) for d in days], [float(v) for v in values]


def steady_state(records: Sequence[Mapping[str, Any]], batches: int = 10,
                 materiality: float = 0.05) -> dict[str, Steadiness | None]:
    """The warm-up and trend checks of each stock over a run's replication records.

    For each stock of :data:`STOCKS`: MSER-5 on each replication's whole series from day 0
    gives that replication's warm-up, and the longest over the replications is the
    recommended one (the usual, cautious choice), compared with the configured warm-up
    (``warm_up_hours``). The trend is tested on the measured period (samples on or after the
    configured warm-up) of the mean of the replications, sample day by sample day, which
    averages out much of each replication's slow wandering while keeping any common drift.

    Args:
        records: Replication records as stored (``RunRecord.to_json``).
        batches: Batch means in the trend test.
        materiality: Smallest relative change over the period that counts as a trend.

    Returns:
        Per stock, its :class:`Steadiness`, or None when some record has no ``transient``
        series for it (records written before it was recorded, or a procedure without the
        plan state as a top-level stage).
    """
    out: dict[str, Steadiness | None] = {}
    for stock in STOCKS:
        series = [_transient(r, stock) for r in records]
        if not records or any(s is None for s in series):
            out[stock] = None
            continue
        pairs = [s for s in series if s is not None]
        start = pairs[0][0][0]
        configured = float(records[0]["warm_up_hours"]) / 24.0 - start
        warm_ups: list[WarmUp] = []
        for days, values in pairs:
            if len(values) >= MIN_MSER_BATCHES * BATCH:
                warm_ups.append(warm_up([d - start for d in days], values))
        recommended = max((w.day for w in warm_ups), default=None)
        settled = all(not w.at_boundary for w in warm_ups)
        long_enough = (len(warm_ups) == len(pairs) and settled and recommended is not None
                       and recommended <= configured)
        common = sorted(set.intersection(*(set(days) for days, _ in pairs)))
        measured = [d for d in common if d - start >= configured]
        found: Trend | None = None
        if len(measured) >= MIN_TREND_BATCHES:
            lookup = [dict(zip(days, values, strict=True)) for days, values in pairs]
            mean = [sum(p[d] for p in lookup) / len(lookup) for d in measured]
            found = trend(measured, mean, batches, materiality, stock)
        out[stock] = Steadiness(stock, configured, tuple(warm_ups), recommended, settled,
                                long_enough, found)
    return out


def steady_lines(checks: Mapping[str, Steadiness | None]) -> list[str]:
    """One plain line per stock: the warm-ups compared, then the trend sentence."""
    lines = []
    for stock, check in checks.items():
        if check is None:
            lines.append(f"{stock}: not recorded from day 0 in every replication, so the "
                         f"warm-up and trend cannot be judged.")
            continue
        lines.append(f"{stock}: {warm_up_words(check)} {trend_words(check)}")
    return lines


def warm_up_words(check: Steadiness) -> str:
    """The configured and measured warm-ups compared, in one sentence."""
    configured = f"configured warm-up {check.configured_days:.0f} days"
    if check.recommended_days is None or len(check.warm_ups) == 0:
        return f"{configured}; the runs are too short for MSER-5 (20 samples needed)."
    measured = (f"MSER-5 warm-up {check.recommended_days:.0f} days (longest of "
                f"{len(check.warm_ups)} replication{'s' if len(check.warm_ups) != 1 else ''})")
    if not check.settled:
        return (f"{configured}; {measured}, but the series did not settle within the first "
                f"half of the run in at least one replication: the configured warm-up "
                f"cannot be confirmed.")
    verdict = "long enough" if check.long_enough else "too short"
    return f"{configured}; {measured}: the configured warm-up is {verdict}."


def trend_words(check: Steadiness) -> str:
    """The trend sentence, or why there is none."""
    if check.trend is None:
        return "The measured period is too short to test for a trend."
    return check.trend.sentence
