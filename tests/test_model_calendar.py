"""Working-day arithmetic on the England and Wales bank holiday calendar."""

from __future__ import annotations

import functools
import math
import pickle
from datetime import date, datetime, time, timedelta

import holidays
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from model.calendar import (
    CALENDAR_FIRST,
    CALENDAR_LAST,
    TABLE_FIRST,
    TABLE_LAST,
    OutsideCalendar,
    WorkingCalendar,
    add_months,
    parse_duration_text,
)
from model.types import Duration

CAL = WorkingCalendar(date(2021, 12, 1))


def test_christmas_2021_substitute_days_are_not_working_days():
    """Christmas and Boxing Day 2021 fell at a weekend; 27 and 28 Dec were the substitutes."""
    assert not CAL.is_working_day(date(2021, 12, 27))
    assert not CAL.is_working_day(date(2021, 12, 28))
    assert CAL.add_working_days(date(2021, 12, 24), 1) == date(2021, 12, 29)


def test_easter_2025_skips_good_friday_and_easter_monday():
    """Thursday 17 April 2025 plus one working day is Tuesday 22 April."""
    assert CAL.add_working_days(date(2025, 4, 17), 1) == date(2025, 4, 22)


def test_one_off_bank_holiday_coronation_2023():
    """The coronation bank holiday (8 May 2023) is not a working day."""
    assert not CAL.is_working_day(date(2023, 5, 8))
    assert CAL.is_working_day(date(2023, 5, 9))


def test_weekends_are_not_working_days():
    """Saturday and Sunday never count."""
    assert not CAL.is_working_day(date(2025, 4, 5))
    assert not CAL.is_working_day(date(2025, 4, 6))
    assert CAL.add_working_days(date(2025, 4, 4), 1) == date(2025, 4, 7)


def test_due_in_each_unit():
    """Deadlines: hours exact, days and working days to the end of the day, months clamped."""
    cal = WorkingCalendar(date(2025, 1, 31))
    assert cal.due(10.0, Duration("hours", 24)) == 34.0
    assert cal.due(10.0, Duration("days", 2)) == 72.0  # end of 2 Feb
    # Fri 31 Jan + 1 working day = Mon 3 Feb: end of that day is 4 days after midnight.
    assert cal.due(10.0, Duration("working_days", 1)) == 96.0
    # 31 Jan + 1 month clamps to 28 Feb 2025: end of that day.
    assert cal.date_of(cal.due(0.0, Duration("months", 1)) - 1) == date(2025, 2, 28)


def test_elapsed_in_each_unit():
    """Elapsed time is measured in the deadline's own unit."""
    cal = WorkingCalendar(date(2025, 4, 14))  # Monday before Easter
    start, end = 10.0, 10.0 + 24 * 8  # Tue 22 April
    assert cal.elapsed(start, end, "hours") == 192.0
    assert cal.elapsed(start, end, "days") == 8.0
    assert cal.elapsed(start, end, "working_days") == 4.0  # Tue, Wed, Thu, then Tue
    assert cal.elapsed(0.0, cal.to_hours(date(2025, 7, 14)), "months") == 3.0


def test_next_working_time():
    """Outside working hours the clock moves to 09:00 on the next working day."""
    cal = WorkingCalendar(date(2025, 4, 4))  # Friday
    saturday = 24.0 + 12
    assert cal.to_datetime(cal.next_working_time(saturday)).isoformat() == "2025-04-07T09:00:00"
    friday_evening = 18.0
    assert cal.to_datetime(cal.next_working_time(friday_evening)).date() == date(2025, 4, 7)
    assert cal.next_working_time(10.0) == 10.0
    early = 7.0
    assert cal.next_working_time(early) == 9.0
    easter_monday = cal.to_hours(date(2025, 4, 21)) + 10
    assert cal.to_datetime(cal.next_working_time(easter_monday)).isoformat() == (
        "2025-04-22T09:00:00")


def test_working_days_between_is_signed():
    """Counting backwards gives a negative number; the same day gives zero."""
    a, b = date(2025, 4, 7), date(2025, 4, 11)
    assert CAL.working_days_between(a, b) == 4
    assert CAL.working_days_between(b, a) == -4
    assert CAL.working_days_between(a, a) == 0


def test_parse_duration_text():
    """Trainers type durations in words."""
    assert parse_duration_text("3 working days") == Duration("working_days", 3)
    assert parse_duration_text("1 working day") == Duration("working_days", 1)
    assert parse_duration_text("24 hours") == Duration("hours", 24)
    assert parse_duration_text("6 months") == Duration("months", 6)
    with pytest.raises(ValueError, match="cannot read"):
        parse_duration_text("soon")


dates = st.dates(min_value=date(2019, 1, 1), max_value=date(2030, 12, 31))


@given(d=dates, n=st.integers(min_value=0, max_value=60))
def test_adding_then_counting_working_days_round_trips(d, n):
    """working_days_between(d, add_working_days(d, n)) == n, and the result is a working day."""
    later = CAL.add_working_days(d, n)
    assert CAL.working_days_between(d, later) == n
    if n > 0:
        assert CAL.is_working_day(later)
        assert later > d


@given(d=dates, n=st.integers(min_value=1, max_value=40),
       unit=st.sampled_from(["hours", "days", "working_days", "months"]))
def test_due_is_monotone_in_the_amount(d, n, unit):
    """A longer limit is never due earlier."""
    cal = WorkingCalendar(d - timedelta(days=3))
    t = cal.to_hours(d) + 11
    assert cal.due(t, Duration(unit, n)) <= cal.due(t, Duration(unit, n + 1))


# -- the one table against day-by-day counting ----------------------------------------------------
@functools.cache
def _holidays_of(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


class NaiveCalendar:
    """The calendar walked day by day, bank holidays asked of ``holidays`` year by year."""

    def __init__(self, start: date) -> None:
        self.start = start

    def is_working_day(self, d: date) -> bool:
        return d.weekday() < 5 and d not in _holidays_of(d.year)

    def add_working_days(self, d: date, n: int) -> date:
        while n > 0:
            d += timedelta(days=1)
            n -= self.is_working_day(d)
        return d

    def working_days_between(self, a: date, b: date) -> int:
        if b < a:
            return -self.working_days_between(b, a)
        return sum(self.is_working_day(a + timedelta(days=k)) for k in range(1, (b - a).days + 1))

    def to_datetime(self, t: float) -> datetime:
        return datetime.combine(self.start, time()) + timedelta(hours=t)

    def to_hours(self, when: datetime) -> float:
        return (when - datetime.combine(self.start, time())).total_seconds() / 3600.0

    def date_of(self, t: float) -> date:
        return self.to_datetime(t).date()

    def end_of(self, d: date) -> float:
        return self.to_hours(datetime.combine(d + timedelta(days=1), time()))

    def due(self, t: float, limit: Duration) -> float:
        d = self.date_of(t)
        if limit.unit == "hours":
            return t + limit.value
        if limit.unit == "days":
            return self.end_of(d + timedelta(days=limit.value))
        if limit.unit == "working_days":
            return self.end_of(self.add_working_days(d, limit.value))
        return self.end_of(add_months(d, limit.value))

    def earliest(self, t: float, gap: Duration) -> float:
        if gap.unit == "hours":
            return t + gap.value
        if gap.unit == "days":
            return t + 24.0 * gap.value
        if gap.unit == "working_days":
            target = self.add_working_days(self.date_of(t), gap.value)
            return self.to_hours(datetime.combine(target, time())) + 9
        when = self.to_datetime(t)
        return self.to_hours(datetime.combine(add_months(when.date(), gap.value), when.time()))

    def elapsed_days(self, start: float, end: float, unit: str) -> float:
        a, b = self.date_of(start), self.date_of(end)
        if unit == "days":
            return float((b - a).days)
        return float(self.working_days_between(a, b))

    def next_working_time(self, t: float) -> float:
        """Hours of day read as ``t - 24 * floor(t / 24)``, as the engine schedules."""
        day = math.floor(t / 24.0)
        d, hour = self.start + timedelta(days=day), t - 24.0 * day
        if self.is_working_day(d) and 9 <= hour < 17:
            return t
        if self.is_working_day(d) and hour < 9:
            return 24.0 * day + 9
        return 24.0 * (self.add_working_days(d, 1) - self.start).days + 9


starts = st.dates(min_value=CALENDAR_FIRST, max_value=CALENDAR_LAST)
durations = st.builds(Duration, st.sampled_from(["hours", "days", "working_days", "months"]),
                      st.integers(min_value=1, max_value=60))
times = st.one_of(
    st.floats(min_value=-24.0 * 400, max_value=24.0 * 3000, allow_nan=False),
    # Around midnight, where datetime arithmetic rounds to the microsecond.
    st.builds(lambda day, offset: 24.0 * day + offset,
              st.integers(min_value=-400, max_value=3000),
              st.sampled_from([0.0, 1e-12, -1e-12, 1e-10, -1e-10, 1e-7, -1e-7, 1e-6, -1e-6,
                               9.0, 17.0])),
)


@given(start=starts, t=times, span=times, limit=durations)
def test_the_table_gives_the_day_by_day_answers(start, t, span, limit):
    """Dates, due and earliest times, elapsed days and working starts equal walking day by day."""
    cal, naive = WorkingCalendar(start), NaiveCalendar(start)
    end = t + span
    assert cal.date_of(t) == naive.date_of(t)
    assert cal.start + timedelta(days=cal.day_of(t)) == naive.date_of(t)
    assert cal.due(t, limit) == naive.due(t, limit)
    assert cal.earliest(t, limit) == naive.earliest(t, limit)
    for unit in ("days", "working_days"):
        assert cal.elapsed(t, end, unit) == naive.elapsed_days(t, end, unit)
    assert cal.next_working_time(t) == naive.next_working_time(t)


@given(start=starts, d=starts, n=st.integers(min_value=0, max_value=300),
       gap=st.integers(min_value=-400, max_value=400))
def test_working_days_equal_counting_them_one_by_one(start, d, n, gap):
    """Each working-day question, on dates and on day numbers, is the naive count's."""
    cal, naive = WorkingCalendar(start), NaiveCalendar(start)
    other = d + timedelta(days=gap)
    assert cal.is_working_day(d) == naive.is_working_day(d)
    assert cal.add_working_days(d, n) == naive.add_working_days(d, n)
    assert cal.working_days_between(d, other) == naive.working_days_between(d, other)
    day = (d - start).days
    assert cal.is_working(day) == naive.is_working_day(d)
    assert cal.add_working(day, n) == (naive.add_working_days(d, n) - start).days
    assert cal.count_working(day, day + gap) == naive.working_days_between(d, other)
    before = cal.start + timedelta(days=cal.working_before(day))
    assert before < d and naive.is_working_day(before)
    assert naive.working_days_between(before, d - timedelta(days=1)) == 0


@given(d=starts, n=st.integers(min_value=1, max_value=500),
       gap=st.integers(min_value=-800, max_value=800))
def test_working_days_equal_numpys_business_days(d, n, gap):
    """numpy's business-day functions over the same bank holidays agree."""
    cal = WorkingCalendar(CALENDAR_FIRST)
    bank = sorted(holidays.country_holidays("GB", subdiv="ENG", years=range(1999, 2053)))
    busdays = np.busdaycalendar(weekmask="1111100", holidays=bank)
    day = np.datetime64(d, "D")
    later = np.busday_offset(day, n, roll="backward", busdaycal=busdays)
    assert cal.add_working_days(d, n) == later.astype(date)
    low, high = sorted((day, day + gap))
    counted = int(np.busday_count(low + 1, high + 1, busdaycal=busdays))  # in (low, high]
    assert cal.working_days_between(d, d + timedelta(days=gap)) == counted * (1 if gap >= 0 else -1)


@pytest.mark.parametrize("holiday", [
    "1999-12-31",  # the millennium
    "2011-04-29",  # a royal wedding
    "2012-06-04", "2012-06-05",  # the spring bank holiday moved, and the Diamond Jubilee
    "2020-05-08",  # VE Day: the early May bank holiday moved from Monday 4 May
    "2022-06-02", "2022-06-03",  # the spring bank holiday moved, and the Platinum Jubilee
    "2022-09-19",  # the state funeral of Queen Elizabeth II
    "2023-05-08",  # the coronation of King Charles III
    "2025-04-18", "2025-04-21", "2025-05-05", "2025-05-26", "2025-08-25", "2025-12-25",
    "2025-12-26",
])
def test_known_bank_holidays_are_not_working_days(holiday):
    assert not CAL.is_working_day(date.fromisoformat(holiday))


def test_moved_bank_holidays_leave_their_usual_days_working():
    """The Mondays the moved holidays left are ordinary working days."""
    for moved_from in ("2012-05-28", "2020-05-04", "2022-05-30"):
        assert CAL.is_working_day(date.fromisoformat(moved_from))


def test_working_days_in_whole_years():
    """2025: 261 weekdays less 8 bank holidays; 2022: 260 less 10 (a jubilee, a funeral and
    two substitute days)."""
    assert CAL.working_days_between(date(2024, 12, 31), date(2025, 12, 31)) == 253
    assert CAL.working_days_between(date(2021, 12, 31), date(2022, 12, 31)) == 250
    assert len(CAL.working_dates(date(2025, 1, 1), date(2025, 12, 31))) == 253
    assert CAL.working_dates(date(2025, 4, 17), date(2025, 4, 22)) == [
        date(2025, 4, 17), date(2025, 4, 22)]


def test_an_ordinary_week_has_no_bank_holidays():
    """Without bank holidays only weekends are skipped (the timescale proofs' ordinary reading)."""
    ordinary = WorkingCalendar(date(2025, 4, 1), bank_holidays=False)
    assert ordinary.is_working_day(date(2025, 4, 18))  # Good Friday
    assert not ordinary.is_working_day(date(2025, 4, 19))
    assert ordinary.add_working_days(date(2025, 4, 17), 1) == date(2025, 4, 18)
    assert ordinary != WorkingCalendar(date(2025, 4, 1))


def test_dates_outside_the_table_are_refused():
    """Past either end of the table the calendar says so rather than guess."""
    with pytest.raises(OutsideCalendar, match="1899-12-31 is outside"):
        CAL.is_working_day(TABLE_FIRST - timedelta(days=1))
    with pytest.raises(OutsideCalendar):
        CAL.add_working_days(TABLE_LAST - timedelta(days=3), 10)
    with pytest.raises(OutsideCalendar):
        CAL.working_before((TABLE_FIRST - CAL.start).days)
    assert CAL.is_working_day(TABLE_LAST) == (TABLE_LAST.weekday() < 5)


def test_a_pickled_calendar_finds_the_same_table():
    """Worker processes get the calendar by pickle; the table is found again, not copied."""
    copy = pickle.loads(pickle.dumps(CAL))
    assert copy == CAL and hash(copy) == hash(CAL)
    assert copy.add_working_days(date(2025, 4, 17), 1) == date(2025, 4, 22)
    assert len(pickle.dumps(CAL)) < 1000
