"""Working-day arithmetic on the England and Wales bank holiday calendar."""

from __future__ import annotations

from datetime import date, timedelta

import hypothesis.strategies as st
import pytest
from hypothesis import given

from model.calendar import WorkingCalendar, parse_duration_text
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
