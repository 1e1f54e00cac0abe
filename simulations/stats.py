"""Confidence intervals: across replications (Student t) and for pooled shares (exact binomial)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as _stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided ``level`` t-interval of independent replication values.

    Returns ``(mean, low, high)``; with one value the interval is undefined (NaN).

    >>> mean_ci([1.0, 2.0, 3.0])[0]
    2.0
    """
    vals = [v for v in values if not math.isnan(v)]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(vals) / n
    if n < 2:
        return mean, math.nan, math.nan
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    half = float(_stats.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(var / n)
    return mean, mean - half, mean + half


def half_width(values: Sequence[float], level: float = 0.95) -> float:
    """Half the width of the t-interval (NaN with fewer than two values)."""
    mean, low, high = mean_ci(values, level)
    del mean
    return (high - low) / 2


def exact_binomial_ci(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval for a share ``successes / trials``.

    >>> low, high = exact_binomial_ci(0, 10)
    >>> low == 0.0 and 0.30 < high < 0.31
    True
    """
    if trials <= 0:
        return math.nan, math.nan
    alpha = 1.0 - level
    low = 0.0 if successes == 0 else float(
        _stats.beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(
        _stats.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def one_sided_bound(values: Sequence[float], confidence: float, side: str) -> float:
    """One-sided t confidence bound of the mean: ``lower`` or ``upper``.

    With ``confidence`` 0.9 the true mean is at least the lower bound (or at most the upper
    bound) with 90% confidence. NaN with fewer than two values.

    >>> round(one_sided_bound([0.9, 1.0, 1.1], 0.9, "lower"), 3)
    0.891
    """
    vals = [v for v in values if not math.isnan(v)]
    n = len(vals)
    if n < 2:
        return math.nan
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    margin = float(_stats.t.ppf(confidence, n - 1)) * sd / math.sqrt(n)
    return mean - margin if side == "lower" else mean + margin
