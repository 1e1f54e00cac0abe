"""Empirical durations as distributions with units, sampled from an injected generator.

A scenario says how long things take in practice (an assessment, a report, a manager's
response); the procedure says how long they may take. Every distribution carries its unit,
and converting a sampled duration into simulation time respects the working-day calendar:
"12 working days" lands in working hours on the 12th working day after the start.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from model.calendar import WorkingCalendar
from model.types import SimHours

DistKind = Literal["fixed", "uniform", "triangular", "lognormal", "exponential", "empirical"]
DIST_KINDS: tuple[DistKind, ...] = (
    "fixed", "uniform", "triangular", "lognormal", "exponential", "empirical",
)
TimeUnit = Literal["hours", "working_hours", "days", "working_days"]
TIME_UNITS: tuple[TimeUnit, ...] = ("hours", "working_hours", "days", "working_days")
HOURS_PER_YEAR = 365.25 * 24.0
"""An average year in simulation hours (rates per year become rates per hour)."""

_Z90 = 1.2815515655446004
"""The standard normal's 90th percentile: a lognormal's p90 is median * exp(1.2816 sigma)."""


@dataclass(frozen=True, slots=True)
class Dist:
    """A non-negative duration distribution in one unit.

    Attributes:
        kind: ``fixed`` (value), ``uniform`` (low, high), ``triangular`` (low, mode, high),
            ``lognormal`` (median, p90), ``exponential`` (mean) or ``empirical`` (bins of
            ``(low, high, share)``; a value is uniform within its bin).
        unit: ``hours``, ``working_hours`` (counted inside working hours on working days),
            ``days`` (calendar) or ``working_days``.
        params: The kind's parameters in the order above.
        bins: For ``empirical``: ``(low, high, share)`` rows; shares are normalised.
    """

    kind: DistKind
    unit: TimeUnit
    params: tuple[float, ...] = ()
    bins: tuple[tuple[float, float, float], ...] = ()
    _sigma: float = field(init=False, repr=False, compare=False, default=0.0)
    _cdf: tuple[float, ...] = field(init=False, repr=False, compare=False, default=())
    _tri: tuple[float, float, float] = field(init=False, repr=False, compare=False,
                                             default=(0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        """Work out once what every draw would otherwise recompute (same arithmetic)."""
        if self.kind == "lognormal" and len(self.params) == 2:
            median, p90 = self.params
            object.__setattr__(self, "_sigma", math.log(p90 / median) / _Z90)
        if self.kind == "empirical" and self.bins:
            shares = np.array([b[2] for b in self.bins], dtype=float)
            # numpy's choice(p=...) draws one double against this very cdf
            cdf = (shares / shares.sum()).cumsum()
            cdf /= cdf[-1]
            object.__setattr__(self, "_cdf", tuple(float(c) for c in cdf))
        if self.kind == "triangular" and len(self.params) == 3 and \
                self.params[0] != self.params[2]:
            left, mode, right = self.params
            base = right - left
            object.__setattr__(self, "_tri", ((mode - left) / base, (mode - left) * base,
                                              (right - mode) * base))

    def sample(self, rng: np.random.Generator) -> float:
        """Draw one duration in this distribution's unit (never negative).

        Uniform, triangular and empirical draws take one double from ``rng`` and apply
        numpy's own formula to it (``Generator.uniform``, ``triangular`` and ``choice``
        with ``p`` do the same in C): the same numbers, without a numpy call's overhead.
        """
        p = self.params
        kind = self.kind
        if kind == "lognormal":
            return float(p[0] * math.exp(self._sigma * rng.standard_normal()))
        if kind == "fixed":
            return p[0]
        if kind == "uniform":
            low = p[0]
            return low + (p[1] - low) * rng.random()
        if kind == "triangular":
            left = p[0]
            right = p[2]
            if left == right:
                return left
            u = rng.random()
            ratio, leftprod, rightprod = self._tri
            if u <= ratio:
                return left + math.sqrt(u * leftprod)
            return right - math.sqrt((1.0 - u) * rightprod)
        if kind == "exponential":
            return float(rng.exponential(p[0]))
        low, high, _ = self.bins[bisect.bisect_right(self._cdf, rng.random())]
        return low + (high - low) * rng.random() if high > low else low

    def mean(self) -> float:
        """The distribution's mean, in its unit (used for documentation and sanity checks)."""
        p = self.params
        if self.kind == "fixed":
            return p[0]
        if self.kind == "uniform":
            return (p[0] + p[1]) / 2
        if self.kind == "triangular":
            return sum(p) / 3
        if self.kind == "lognormal":
            sigma = math.log(p[1] / p[0]) / _Z90
            return p[0] * math.exp(sigma * sigma / 2)
        if self.kind == "exponential":
            return p[0]
        total = sum(b[2] for b in self.bins)
        return sum((b[0] + b[1]) / 2 * b[2] for b in self.bins) / total


def advance(calendar: WorkingCalendar, start: SimHours, amount: float, unit: TimeUnit,
            ) -> SimHours:
    """The simulation time ``amount`` units after ``start`` (``start`` >= 0).

    ``working_days``: the whole part counts working days after the start's date; the
    fraction places the moment inside that day's working hours (never before ``start``).
    ``working_hours``: hours counted only inside working hours on working days.
    """
    if unit == "hours":
        return start + amount
    if unit == "days":
        return start + 24.0 * amount
    span = calendar.day_ends - calendar.day_starts
    if unit == "working_hours":
        t = calendar.next_working_time(start)
        remaining = amount
        while True:
            day = math.floor(t / 24.0)
            close = 24.0 * day + calendar.day_ends
            if t + remaining <= close:
                return t + remaining
            remaining -= close - t
            t = 24.0 * calendar.add_working(day, 1) + calendar.day_starts
    whole = math.floor(amount)
    frac = amount - whole
    day = math.floor(start / 24.0)
    # zero working days from a non-working day means the next working day
    day = calendar.add_working(day, 1 if whole == 0 and not calendar.is_working(day) else whole)
    moment = 24.0 * day + calendar.day_starts + frac * span
    if moment < start:
        return calendar.next_working_time(start)
    return moment
