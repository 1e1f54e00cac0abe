"""Clock and working-day arithmetic on the England and Wales bank holiday calendar.

Every working-day question in the project (the model's deadlines, the engine's scheduling,
the timescale proofs and the explorer page) is answered from one table, built once per
process: for each day from :data:`TABLE_FIRST` to :data:`TABLE_LAST`, whether it is a
working day (Monday to Friday and not a bank holiday from the ``holidays`` package), how
many working days come before it, and the list of working days in order. Adding ``n``
working days is then two look-ups and counting them between two dates a subtraction, where
walking day by day would loop once per day. The engine asks per event and the proofs over
fifty years of start dates, so both need that speed.

Days are numbered by the calendar's start date: day ``k`` is ``start + k days``, and sim
time ``t`` (hours since midnight on the start date) falls on day ``t // 24``.
"""

from __future__ import annotations

import calendar as _cal
import functools
import itertools
import math
import re
from array import array
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Final

import holidays

from model.types import Duration, DurationUnit, SimHours

CALENDAR_FIRST: Final = date(2000, 1, 1)
"""The first start date the project accepts (walks, case data, the timescale proofs)."""

CALENDAR_LAST: Final = date(2050, 12, 31)
"""The last start date the project accepts (walks, case data, the timescale proofs)."""

TABLE_FIRST: Final = date(1900, 1, 1)
"""The first day the working-day table holds."""

TABLE_LAST: Final = date(2199, 12, 31)
"""The last day the table holds: past a 50-year run from :data:`CALENDAR_LAST`, with room."""

_NEAR_MIDNIGHT: Final = 1e-6
"""Hours. A time this close to midnight is dated by ``datetime``, which rounds to the µs."""


class OutsideCalendar(ValueError):
    """A date before :data:`TABLE_FIRST` or after :data:`TABLE_LAST` (or a count past them)."""


def _outside(day: date) -> OutsideCalendar:
    return OutsideCalendar(
        f"{day.isoformat()} is outside the working-day calendar "
        f"({TABLE_FIRST.isoformat()} to {TABLE_LAST.isoformat()})")


class WorkingDays:
    """The working days from :data:`TABLE_FIRST` to :data:`TABLE_LAST`, as day numbers.

    A day's number is the days since :data:`TABLE_FIRST`. Built by :func:`working_days`,
    which keeps one table per process for each value of ``bank_holidays``; a pickled
    table is rebuilt (or found) on the other side rather than copied.

    Attributes:
        bank_holidays: False: weekends only (the timescale proofs' "ordinary week").
        flags: 1 for each working day and 0 for any other, by day number.
        before: Working days before each day number; one entry more than days, the last
            being the total.
        days: The day numbers of the working days, in order.
    """

    __slots__ = ("bank_holidays", "before", "days", "flags")

    def __init__(self, bank_holidays: bool) -> None:
        """Mark Monday to Friday, then take out the bank holidays."""
        base = TABLE_FIRST.toordinal()
        size = TABLE_LAST.toordinal() - base + 1
        closed: set[int] = set()
        if bank_holidays:
            years = range(TABLE_FIRST.year, TABLE_LAST.year + 1)
            found = holidays.country_holidays("GB", subdiv="ENG", years=years)
            closed = {d.toordinal() - base for d in found}
        monday_first = bytes((1, 1, 1, 1, 1, 0, 0))
        weekday = TABLE_FIRST.weekday()
        week = monday_first[weekday:] + monday_first[:weekday]  # from day 0's weekday on
        flags = bytearray(week * (size // 7 + 1))[:size]
        for k in closed:
            flags[k] = 0
        self.bank_holidays = bank_holidays
        self.flags = bytes(flags)
        self.before = array("i", itertools.accumulate(self.flags, initial=0))
        self.days = array("i", itertools.compress(range(size), self.flags))

    def __reduce__(self) -> tuple[object, tuple[bool]]:
        """Pickle as the call that builds (or finds) the table."""
        return working_days, (self.bank_holidays,)


@functools.cache
def working_days(bank_holidays: bool = True) -> WorkingDays:
    """The process's working-day table (weekends only when ``bank_holidays`` is False)."""
    return WorkingDays(bank_holidays)


def add_months(d: date, n: int) -> date:
    """The same day ``n`` calendar months later (earlier when negative).

    The day is clipped to the month's last day (31 January + 1 month is 28 or 29 February).
    """
    month = d.month - 1 + n
    year = d.year + month // 12
    month = month % 12 + 1
    day = min(d.day, _cal.monthrange(year, month)[1])
    return date(year, month, day)


@functools.lru_cache(maxsize=1 << 16)
def _months_later(ordinal: int, n: int) -> int:
    """:func:`add_months` on date ordinals, remembered: the engine asks it per clock."""
    return add_months(date.fromordinal(ordinal), n).toordinal()


@dataclass(frozen=True)
class WorkingCalendar:
    """Clock and working-day arithmetic for one run; time is hours since 00:00 on ``start``.

    Methods on dates (``is_working_day``, ``add_working_days``, ``working_days_between``)
    and on day numbers since ``start`` (``is_working``, ``add_working``, ``working_before``,
    ``count_working``, for the engine's hot path) read the same table. Each raises
    :class:`OutsideCalendar` for a date the table does not hold.

    Attributes:
        start: The date of sim hour 0.
        day_starts: The hour working hours start.
        day_ends: The hour working hours end.
        bank_holidays: False: only weekends are not working days (an ordinary week).
    """

    start: date
    day_starts: int = 9
    day_ends: int = 17
    bank_holidays: bool = True
    _table: WorkingDays = field(init=False, repr=False, compare=False)
    _origin: int = field(init=False, repr=False, compare=False)
    """``start``'s ordinal."""
    _shift: int = field(init=False, repr=False, compare=False)
    """``start``'s day number in the table: day ``k`` is the table's day ``k + _shift``."""

    def __post_init__(self) -> None:
        """Find the table and where the start date sits in it."""
        object.__setattr__(self, "_table", working_days(self.bank_holidays))
        object.__setattr__(self, "_origin", self.start.toordinal())
        object.__setattr__(self, "_shift", self._origin - TABLE_FIRST.toordinal())

    # -- days since the start date ---------------------------------------------------------
    def _index(self, day: int) -> int:
        """The table's number of day ``day``; raises when the table does not hold it."""
        i = day + self._shift
        if 0 <= i < len(self._table.flags):
            return i
        raise self._outside(day)

    def _outside(self, day: int) -> OutsideCalendar:
        return _outside(date.fromordinal(max(1, self._origin + day)))

    def day_of(self, t: SimHours) -> int:
        """The day ``t`` falls on: ``(date_of(t) - start).days``.

        Sim time counts hours from midnight on the start date, so this is ``t // 24``;
        within a hair of midnight, where ``date_of`` rounds to the microsecond, the
        ``datetime`` answer is taken.
        """
        day = t // 24.0
        if _NEAR_MIDNIGHT < t - 24.0 * day < 24.0 - _NEAR_MIDNIGHT:
            return int(day)
        return self.to_datetime(t).toordinal() - self._origin

    def is_working(self, day: int) -> bool:
        """True when day ``day`` is a working day."""
        flags = self._table.flags  # the engine asks per event: the look-up is inlined
        i = day + self._shift
        if 0 <= i < len(flags):
            return flags[i] == 1
        raise self._outside(day)

    def add_working(self, day: int, n: int) -> int:
        """The day ``n`` working days after day ``day`` (not itself counted; ``day`` if n <= 0)."""
        if n <= 0:
            return day
        table = self._table
        i = day + self._shift
        if not 0 <= i < len(table.flags):
            raise self._outside(day)
        k = table.before[i + 1] + n - 1  # the n-th working day after it
        if k >= len(table.days):
            raise _outside(TABLE_LAST + timedelta(days=1))
        return table.days[k] - self._shift

    def working_before(self, day: int) -> int:
        """The last working day strictly before day ``day``."""
        table = self._table
        k = table.before[self._index(day)]
        if k == 0:
            raise _outside(TABLE_FIRST - timedelta(days=1))
        return table.days[k - 1] - self._shift

    def count_working(self, a: int, b: int) -> int:
        """Working days in days ``(a, b]``; negative when ``b`` is before ``a``."""
        before = self._table.before
        return before[self._index(b) + 1] - before[self._index(a) + 1]

    # -- dates -----------------------------------------------------------------------------
    def is_working_day(self, d: date) -> bool:
        """Monday to Friday and not an England and Wales bank holiday."""
        return self.is_working(d.toordinal() - self._origin)

    def add_working_days(self, d: date, n: int) -> date:
        """The date ``n`` working days after ``d`` (``d`` itself not counted)."""
        return date.fromordinal(self._origin + self.add_working(d.toordinal() - self._origin, n))

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in ``(a, b]``; negative when ``b`` is before ``a``."""
        return self.count_working(a.toordinal() - self._origin, b.toordinal() - self._origin)

    def working_dates(self, first: date, last: date) -> list[date]:
        """Every working day from ``first`` to ``last``, both included."""
        table = self._table
        low = table.before[self._index(first.toordinal() - self._origin)]
        high = table.before[self._index(last.toordinal() - self._origin) + 1]
        base = TABLE_FIRST.toordinal()
        return [date.fromordinal(base + k) for k in table.days[low:high]]

    # -- the clock -------------------------------------------------------------------------
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
        return date.fromordinal(self._origin + self.day_of(t))

    def due(self, t: SimHours, limit: Duration) -> SimHours:
        """The latest instant allowed when the clock started at ``t``.

        Hours are exact; any other limit is due by the end of its last day.
        """
        unit, value = limit.unit, limit.value  # read once: Duration's fields are Python's
        if unit == "hours":
            return t + value
        day = self.day_of(t)
        if unit == "days":
            last = day + value
        elif unit == "working_days":
            last = self.add_working(day, value)
        else:
            last = _months_later(self._origin + day, value) - self._origin
        return 24.0 * (last + 1)

    def earliest(self, t: SimHours, gap: Duration) -> SimHours:
        """The earliest instant at least ``gap`` after ``t``.

        Working days: the start of working hours on the last of them; months keep the
        time of day.
        """
        if gap.unit == "hours":
            return t + gap.value
        if gap.unit == "days":
            return t + 24.0 * gap.value
        if gap.unit == "working_days":
            return 24.0 * self.add_working(self.day_of(t), gap.value) + self.day_starts
        when = self.to_datetime(t)
        shifted = add_months(when.date(), gap.value)
        return self.to_hours(datetime.combine(shifted, when.time()))

    def elapsed(self, start: SimHours, end: SimHours, unit: DurationUnit) -> float:
        """Time from ``start`` to ``end`` in ``unit`` (months: whole months + days/30.4375)."""
        if unit == "hours":
            return end - start
        if unit == "days":
            return float(self.day_of(end) - self.day_of(start))
        if unit == "working_days":
            return float(self.count_working(self.day_of(start), self.day_of(end)))
        a, b = self.date_of(start), self.date_of(end)
        months = (b.year - a.year) * 12 + (b.month - a.month)
        if add_months(a, months) > b:
            months -= 1
        return months + (b - add_months(a, months)).days / 30.4375

    def next_working_time(self, t: SimHours) -> SimHours:
        """``t`` if within working hours on a working day, else the next working start."""
        day = math.floor(t / 24.0)
        hour = t - 24.0 * day
        if self.is_working(day):
            if self.day_starts <= hour < self.day_ends:
                return t
            if hour < self.day_starts:
                return 24.0 * day + self.day_starts
        return 24.0 * self.add_working(day, 1) + self.day_starts

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
