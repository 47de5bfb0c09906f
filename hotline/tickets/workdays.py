"""China's working-day calendar, in Asia/Shanghai: the adapter over chinese-calendar.

Rules of this module (RULES.md "Working days"; 民法典 第二百零一条):
- A working day is an official working day: weekends and public holidays are off, and the
  make-up working days (调休) on weekends are on. The data is chinese-calendar's.
- The day a period starts is not counted: a ticket received at any time of day D, working day or
  not, has its first counted working day on the first working day after D.
- A period of n working days ends at the END of its n-th counted working day, and "the end of a
  day" is its last microsecond, 23:59:59.999999 Asia/Shanghai (people read "23:59"). A deadline
  is met by anything up to and including that instant; the first late instant is 00:00 of the
  next calendar day.
- Hours (the emergency clocks) are wall-clock hours: nights, weekends and holidays count.
- Inputs are aware datetimes in any zone; results are in Asia/Shanghai. A naive datetime raises
  InvalidRequest; a day outside chinese-calendar's data raises ConfigError naming the year.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar  # type: ignore[import-untyped]

from hotline.core.errors import ConfigError, InvalidRequest

SHANGHAI = ZoneInfo("Asia/Shanghai")
END_OF_DAY = time.max  # 23:59:59.999999

# Longest run of days off to step over before giving up (the longest Chinese break is 9 days;
# this bound only stops a corrupted calendar from looping for ever).
_MAX_DAYS_OFF = 40


@functools.lru_cache(maxsize=4096)
def _is_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        raise ConfigError(
            f"工作日历没有 {day.year} 年的数据 (chinese-calendar: {exc}); 请升级 chinese-calendar"
        ) from exc


def _aware(moment: datetime, what: str = "time") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequest(f"{what} {moment.isoformat()} has no time zone (give e.g. +08:00)")
    return moment.astimezone(SHANGHAI)


class WorkCalendar:
    """Official working days of mainland China, with times in Asia/Shanghai.

    Satisfies hotline.tickets.lifecycle.WorkingCalendar (the port the ticket lifecycle uses).
    """

    zone = SHANGHAI

    def local_date(self, moment: datetime) -> date:
        """The Asia/Shanghai calendar day of an aware moment."""
        return _aware(moment).date()

    def is_working_day(self, day: date | datetime) -> bool:
        """Whether the day (or the Shanghai day of an aware moment) is an official working day."""
        if isinstance(day, datetime):
            day = self.local_date(day)
        return _is_workday(day)

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        return self._step(day, +1)

    def previous_working_day(self, day: date) -> date:
        """The last working day strictly before `day`."""
        return self._step(day, -1)

    def end_of_day(self, day: date) -> datetime:
        """The last instant of `day` in Asia/Shanghai (23:59:59.999999)."""
        return datetime.combine(day, END_OF_DAY, tzinfo=SHANGHAI)

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The deadline of a period of n working days that starts at `start`.

        The start's own day is not counted; the result is the end of the n-th working day after
        it. n == 0 gives the end of the start's own day.
        """
        if n < 0:
            raise InvalidRequest(f"a period cannot have a negative number of working days ({n})")
        day = self.local_date(start)
        for _ in range(n):
            day = self.next_working_day(day)
        return self.end_of_day(day)

    def working_days_before(self, moment: datetime, n: int) -> datetime:
        """The end of the n-th working day before the Shanghai day of `moment` (n == 0: its own day).

        For a deadline D, working_days_before(D, 1) is the moment from which only one working day
        is left (the yellow light; the latest provincial extension request).
        """
        if n < 0:
            raise InvalidRequest(f"cannot go back a negative number of working days ({n})")
        day = self.local_date(moment)
        for _ in range(n):
            day = self.previous_working_day(day)
        return self.end_of_day(day)

    def working_days_between(self, start: datetime, end: datetime) -> int:
        """How many working days of a period starting at `start` have begun by `end`.

        Counts the working days d with day(start) < d <= day(end), so that
        working_days_between(s, add_working_days(s, n)) == n. Negative when end is before start.
        """
        first, last = self.local_date(start), self.local_date(end)
        sign = 1
        if last < first:
            first, last, sign = last, first, -1
        count = 0
        day = first + timedelta(days=1)
        while day <= last:
            count += _is_workday(day)
            day += timedelta(days=1)
        return sign * count

    def add_hours(self, start: datetime, hours: float) -> datetime:
        """Wall-clock hours after `start` (emergency clocks: holidays are not skipped)."""
        if hours < 0:
            raise InvalidRequest(f"a period cannot have a negative number of hours ({hours})")
        return (_aware(start).astimezone(UTC) + timedelta(hours=hours)).astimezone(SHANGHAI)

    def _step(self, day: date, direction: int) -> date:
        for _ in range(_MAX_DAYS_OFF):
            day += timedelta(days=direction)
            if _is_workday(day):
                return day
        raise ConfigError(f"工作日历在 {day.isoformat()} 附近连续 {_MAX_DAYS_OFF} 天没有工作日, 数据有误")
