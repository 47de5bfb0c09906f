"""The working-day calendar (hotline/tickets/workdays.py) against the official 2025 calendar.

Expected dates are worked out by hand from 国务院办公厅关于2025年部分节假日安排的通知 (国办发明电〔2024〕12号):
国庆节、中秋节 10月1日（周三）至8日（周三）放假调休，共8天；9月28日（周日）、10月11日（周六）上班。
And for 2026 (国办发明电〔2025〕7号): 元旦 1月1日（周四）至3日（周六）放假，1月4日（周日）上班.
The day a period starts is never counted (民法典 第二百零一条).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.core.errors import ConfigError, InvalidRequest
from hotline.tickets.workdays import SHANGHAI, WorkCalendar

CAL = WorkCalendar()


def sh(text: str) -> datetime:
    """A Shanghai wall time, '2025-09-30 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def end(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=23, minute=59, second=59, microsecond=999999, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2025-09-26", True),  # Friday
        ("2025-09-27", False),  # Saturday
        ("2025-09-28", True),  # Sunday, 调休 make-up working day
        ("2025-09-29", True),
        ("2025-09-30", True),
        ("2025-10-01", False),  # 国庆节
        ("2025-10-04", False),  # Saturday inside the holiday
        ("2025-10-06", False),  # 中秋节
        ("2025-10-08", False),  # last day off
        ("2025-10-09", True),
        ("2025-10-10", True),
        ("2025-10-11", True),  # Saturday, 调休 make-up working day
        ("2025-10-12", False),  # Sunday
        ("2025-10-13", True),
        ("2026-01-01", False),  # 元旦
        ("2026-01-04", True),  # Sunday, make-up working day
    ],
)
def test_official_working_days(day: str, working: bool) -> None:
    assert CAL.is_working_day(date.fromisoformat(day)) is working


def test_a_moment_is_judged_by_its_shanghai_day() -> None:
    # 2025-09-30 17:00 UTC is 2025-10-01 01:00 in Shanghai: National Day.
    assert CAL.is_working_day(datetime(2025, 9, 30, 17, 0, tzinfo=UTC)) is False
    assert CAL.is_working_day(datetime(2025, 9, 30, 15, 59, tzinfo=UTC)) is True


@pytest.mark.parametrize(
    ("start", "n", "deadline"),
    [
        # received on the last working day before the holiday: counting starts 10-09
        ("2025-09-30 10:00", 1, "2025-10-09"),
        ("2025-09-30 10:00", 2, "2025-10-10"),
        ("2025-09-30 10:00", 3, "2025-10-11"),  # the make-up Saturday counts
        ("2025-09-30 10:00", 5, "2025-10-14"),  # 10-09, 10-10, 10-11, 10-13, 10-14 (Zibo 办理)
        ("2025-09-30 10:00", 7, "2025-10-16"),  # … 10-15, 10-16 (mayor's hotline 办理)
        ("2025-09-30 23:59", 1, "2025-10-09"),  # the hour of the start day does not matter
        ("2025-09-30 00:00", 1, "2025-10-09"),
        # received on a Saturday off: the make-up Sunday is the first working day
        ("2025-09-27 15:00", 1, "2025-09-28"),
        ("2025-09-27 15:00", 5, "2025-10-10"),  # 09-28, 09-29, 09-30, 10-09, 10-10
        # received on the make-up Sunday itself: that day is not counted
        ("2025-09-28 10:00", 1, "2025-09-29"),
        ("2025-09-28 10:00", 5, "2025-10-11"),  # 09-29, 09-30, 10-09, 10-10, 10-11
        ("2025-09-28 10:00", 7, "2025-10-14"),  # … 10-13, 10-14
        # received during the holiday
        ("2025-10-01 09:00", 1, "2025-10-09"),
        ("2025-10-01 09:00", 3, "2025-10-11"),  # emergency result (1–3 working days)
        ("2025-10-08 23:00", 1, "2025-10-09"),
        # before the holiday, the deadline jumps over it
        ("2025-09-24 10:00", 5, "2025-09-30"),  # 09-25, 09-26, 09-28, 09-29, 09-30
        ("2025-09-25 10:00", 5, "2025-10-09"),  # 09-26, 09-28, 09-29, 09-30, 10-09
        ("2025-09-25 10:00", 7, "2025-10-11"),  # … 10-10, 10-11
        ("2025-10-10 10:00", 1, "2025-10-11"),  # Friday -> make-up Saturday
        ("2025-10-11 10:00", 1, "2025-10-13"),  # make-up Saturday -> Monday
        ("2025-10-14 10:00", 5, "2025-10-21"),  # an ordinary week: 10-15 … 10-17, 10-20, 10-21
        # across the year: 2026-01-01..03 off, 2026-01-04 (Sunday) a working day
        ("2025-12-31 10:00", 1, "2026-01-04"),
        ("2025-12-31 10:00", 2, "2026-01-05"),
        # n == 0: the end of the start's own day
        ("2025-10-01 09:00", 0, "2025-10-01"),
    ],
)
def test_add_working_days(start: str, n: int, deadline: str) -> None:
    result = CAL.add_working_days(sh(start), n)
    assert result == end(deadline)
    assert result.tzinfo == SHANGHAI
    assert (result.hour, result.minute, result.second, result.microsecond) == (23, 59, 59, 999999)


def test_a_deadline_from_a_moment_in_another_zone_uses_the_shanghai_day() -> None:
    # 2025-09-27 17:00 UTC is Sunday 2025-09-28 01:00 in Shanghai: the make-up Sunday is the start day.
    assert CAL.add_working_days(datetime(2025, 9, 27, 17, 0, tzinfo=UTC), 1) == end("2025-09-29")
    # 2025-09-27 15:00 UTC is still Saturday 23:00 in Shanghai.
    assert CAL.add_working_days(datetime(2025, 9, 27, 15, 0, tzinfo=UTC), 1) == end("2025-09-28")
    new_york = timezone(timedelta(hours=-4))
    assert CAL.add_working_days(datetime(2025, 9, 30, 12, 0, tzinfo=new_york), 1) == end("2025-10-09")


@pytest.mark.parametrize(
    ("moment", "n", "expected"),
    [
        ("2025-10-14", 1, "2025-10-13"),  # the yellow light of a 10-14 deadline starts 10-14 00:00
        ("2025-10-13", 1, "2025-10-11"),  # Monday: the make-up Saturday before it
        ("2025-10-09", 1, "2025-09-30"),  # the first day after the holiday
        ("2025-09-29", 1, "2025-09-28"),  # Monday: the make-up Sunday before it
        ("2025-10-09", 2, "2025-09-29"),
        ("2025-10-14", 0, "2025-10-14"),
    ],
)
def test_working_days_before(moment: str, n: int, expected: str) -> None:
    assert CAL.working_days_before(end(moment), n) == end(expected)


def test_next_and_previous_working_day() -> None:
    assert CAL.next_working_day(date(2025, 9, 30)) == date(2025, 10, 9)
    assert CAL.next_working_day(date(2025, 9, 26)) == date(2025, 9, 28)
    assert CAL.next_working_day(date(2025, 10, 10)) == date(2025, 10, 11)
    assert CAL.previous_working_day(date(2025, 10, 9)) == date(2025, 9, 30)
    assert CAL.previous_working_day(date(2025, 10, 13)) == date(2025, 10, 11)
    assert CAL.previous_working_day(date(2025, 9, 29)) == date(2025, 9, 28)
    assert CAL.previous_working_day(date(2025, 9, 28)) == date(2025, 9, 26)


def test_working_days_between() -> None:
    assert CAL.working_days_between(sh("2025-09-30 10:00"), end("2025-10-14")) == 5
    assert CAL.working_days_between(sh("2025-09-30 10:00"), sh("2025-10-08 12:00")) == 0  # only days off
    assert CAL.working_days_between(sh("2025-09-30 10:00"), sh("2025-09-30 23:00")) == 0  # the start day
    assert CAL.working_days_between(sh("2025-09-27 10:00"), sh("2025-10-12 10:00")) == 6
    assert CAL.working_days_between(end("2025-10-14"), sh("2025-09-30 10:00")) == -5


def test_hours_are_wall_clock_hours_across_holidays_and_midnight() -> None:
    assert CAL.add_hours(sh("2025-10-01 09:00"), 2) == sh("2025-10-01 11:00")
    assert CAL.add_hours(sh("2025-09-30 23:00"), 2) == sh("2025-10-01 01:00")
    assert CAL.add_hours(datetime(2025, 10, 1, 1, 0, tzinfo=UTC), 2).tzinfo == SHANGHAI


def test_naive_times_are_refused() -> None:
    naive = datetime(2025, 9, 30, 10, 0)
    with pytest.raises(InvalidRequest, match="no time zone"):
        CAL.add_working_days(naive, 1)
    with pytest.raises(InvalidRequest, match="no time zone"):
        CAL.add_hours(naive, 2)
    with pytest.raises(InvalidRequest, match="no time zone"):
        CAL.is_working_day(naive)


def test_negative_periods_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        CAL.add_working_days(sh("2025-09-30 10:00"), -1)
    with pytest.raises(InvalidRequest):
        CAL.working_days_before(sh("2025-09-30 10:00"), -1)
    with pytest.raises(InvalidRequest):
        CAL.add_hours(sh("2025-09-30 10:00"), -1)


@pytest.mark.parametrize("year", [2003, 2100])
def test_a_year_without_calendar_data_is_a_config_error_naming_it(year: int) -> None:
    with pytest.raises(ConfigError, match=f"{year} 年"):
        CAL.is_working_day(date(year, 6, 2))
    with pytest.raises(ConfigError, match=f"{year} 年"):
        CAL.add_working_days(sh(f"{year}-06-02 10:00"), 1)


@given(
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2025, 11, 30), timezones=st.just(SHANGHAI)),
    st.integers(min_value=0, max_value=30),
)
def test_add_working_days_lands_on_the_nth_working_day(start: datetime, n: int) -> None:
    deadline = CAL.add_working_days(start, n)
    assert CAL.working_days_between(start, deadline) == n
    if n > 0:
        assert CAL.is_working_day(deadline)
        assert deadline.date() > start.date()
        # the day before the deadline's day has one working day fewer
        assert CAL.working_days_between(start, deadline - timedelta(days=1)) == n - 1
        # going back n working days from the deadline lands on or before the start day, n - 1 after it
        start_day = CAL.end_of_day(start.date())
        assert CAL.working_days_before(deadline, n) <= start_day < CAL.working_days_before(deadline, n - 1)
