"""Clock and working-day arithmetic on the England and Wales bank holiday calendar."""

from __future__ import annotations

import calendar as _cal
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import holidays

from model.types import Duration, DurationUnit, SimHours


@functools.cache
def _bank_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year).keys())


def add_months(d: date, n: int) -> date:
    """The same day ``n`` calendar months later (earlier when negative).

    The day is clipped to the month's last day (31 January + 1 month is 28 or 29 February).
    """
    month = d.month - 1 + n
    year = d.year + month // 12
    month = month % 12 + 1
    day = min(d.day, _cal.monthrange(year, month)[1])
    return date(year, month, day)


@dataclass(frozen=True)
class WorkingCalendar:
    """Clock and working-day arithmetic for one run; time is hours since 00:00 on ``start``."""

    start: date
    day_starts: int = 9
    day_ends: int = 17

    def is_working_day(self, d: date) -> bool:
        """Monday to Friday and not an England and Wales bank holiday."""
        return d.weekday() < 5 and d not in _bank_holidays(d.year)

    def to_datetime(self, t: SimHours) -> datetime:
        """The calendar instant of sim time ``t``."""
        return datetime.combine(self.start, time()) + timedelta(hours=t)

    def to_hours(self, when: datetime | date) -> SimHours:
        """Sim hours of a calendar instant (a date means its midnight)."""
        if not isinstance(when, datetime):
            when = datetime.combine(when, time())
        return (when - datetime.combine(self.start, time())).total_seconds() / 3600.0

    def date_of(self, t: SimHours) -> date:
        """The calendar date sim time ``t`` falls on."""
        return self.to_datetime(t).date()

    def add_working_days(self, d: date, n: int) -> date:
        """The date ``n`` working days after ``d`` (``d`` itself not counted)."""
        current = d
        while n > 0:
            current += timedelta(days=1)
            if self.is_working_day(current):
                n -= 1
        return current

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in ``(a, b]``; negative when ``b`` is before ``a``."""
        if b < a:
            return -self.working_days_between(b, a)
        count = 0
        current = a
        while current < b:
            current += timedelta(days=1)
            if self.is_working_day(current):
                count += 1
        return count

    def _end_of(self, d: date) -> SimHours:
        return self.to_hours(d + timedelta(days=1))

    def due(self, t: SimHours, limit: Duration) -> SimHours:
        """The latest instant allowed when the clock started at ``t``."""
        d = self.date_of(t)
        if limit.unit == "hours":
            return t + limit.value
        if limit.unit == "days":
            return self._end_of(d + timedelta(days=limit.value))
        if limit.unit == "working_days":
            return self._end_of(self.add_working_days(d, limit.value))
        return self._end_of(add_months(d, limit.value))

    def earliest(self, t: SimHours, gap: Duration) -> SimHours:
        """The earliest instant at least ``gap`` after ``t``."""
        if gap.unit == "hours":
            return t + gap.value
        if gap.unit == "days":
            return t + 24.0 * gap.value
        if gap.unit == "working_days":
            target = self.add_working_days(self.date_of(t), gap.value)
            return self.to_hours(target) + self.day_starts
        when = self.to_datetime(t)
        shifted = add_months(when.date(), gap.value)
        return self.to_hours(datetime.combine(shifted, when.time()))

    def elapsed(self, start: SimHours, end: SimHours, unit: DurationUnit) -> float:
        """Time from ``start`` to ``end`` in ``unit`` (months: whole months + days/30.4375)."""
        a, b = self.date_of(start), self.date_of(end)
        if unit == "hours":
            return end - start
        if unit == "days":
            return float((b - a).days)
        if unit == "working_days":
            return float(self.working_days_between(a, b))
        months = (b.year - a.year) * 12 + (b.month - a.month)
        if add_months(a, months) > b:
            months -= 1
        return months + (b - add_months(a, months)).days / 30.4375

    def next_working_time(self, t: SimHours) -> SimHours:
        """``t`` if within working hours on a working day, else the next working start."""
        when = self.to_datetime(t)
        d = when.date()
        hour = when.hour + when.minute / 60 + when.second / 3600
        if self.is_working_day(d) and self.day_starts <= hour < self.day_ends:
            return t
        if self.is_working_day(d) and hour < self.day_starts:
            return self.to_hours(d) + self.day_starts
        return self.to_hours(self.add_working_days(d, 1)) + self.day_starts

    def is_met(self, start: SimHours, end: SimHours, limit: Duration) -> bool:
        """True when ``end`` is no later than ``due(start, limit)``."""
        return end <= self.due(start, limit)


_TEXT = re.compile(r"^\s*(\d+)\s+(working\s+days?|days?|hours?|months?)\s*$", re.IGNORECASE)


def parse_duration_text(text: str) -> Duration:
    """Parse ``3 working days``, ``24 hours``, ``2 days`` or ``6 months``."""
    match = _TEXT.match(text)
    if not match:
        raise ValueError(f"cannot read {text!r} as a duration, e.g. '3 working days'")
    unit_text = " ".join(match.group(2).lower().split()).rstrip("s")
    unit: DurationUnit = {"working day": "working_days", "day": "days", "hour": "hours",
                          "month": "months"}[unit_text]  # type: ignore[assignment]
    return Duration(unit, int(match.group(1)))
