"""Which Daily/Weekly update window is open at a given instant.

The start time is a wall-clock time in the server's time zone
(settings.TIME_ZONE); the time period is a number of real (elapsed) hours.
Every window belongs to one local calendar date and its key names that date,
so the unique UpdateRun.window_key lets a window open at most once.

Daylight-saving changes: the start instant of a date is
``datetime.combine(date, start_time, tzinfo=zone)`` with ``fold=0``
(zoneinfo's default). On a spring-forward day a start time inside the gap
(02:30 in Europe/Berlin) resolves with the offset before the change, i.e. one
hour later in wall-clock terms (03:30); on a fall-back day an ambiguous start
time means its first occurrence. Either way each date has exactly one start
instant, so the window opens once that day, never twice or zero times.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings

from updates_app.models import Frequency

UTC = dt.UTC


@dataclass(frozen=True)
class Window:
    """One Daily/Weekly window: [start, end) in UTC, and its unique key."""

    key: str
    start: dt.datetime
    end: dt.datetime

    @property
    def duration(self) -> dt.timedelta:
        return self.end - self.start


def server_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def window_for_date(
    *, local_date: dt.date, frequency: str, start_time: dt.time, period_hours: int, zone: ZoneInfo | None = None
) -> Window:
    """The window of one local calendar date (whether or not the schedule runs that day)."""
    zone = zone or server_zone()
    # fold=0: the earlier of two ambiguous instants; for a non-existent time the
    # offset before the transition (see the module docstring).
    local_start = dt.datetime.combine(local_date, start_time.replace(tzinfo=None, fold=0), tzinfo=zone)
    start = local_start.astimezone(UTC)
    return Window(
        key=f"{frequency}:{local_date.isoformat()}",
        start=start,
        end=start + dt.timedelta(hours=period_hours),
    )


def runs_on(*, local_date: dt.date, frequency: str, weekday: int | None) -> bool:
    if frequency == Frequency.DAILY:
        return True
    if frequency == Frequency.WEEKLY:
        return weekday is not None and local_date.weekday() == weekday
    # Minute(s)/Hour(s) schedules run on the agents: the server opens no window.
    return False


def window_open_at(
    *,
    now: dt.datetime,
    frequency: str,
    start_time: dt.time,
    period_hours: int,
    weekday: int | None = None,
    zone: ZoneInfo | None = None,
) -> Window | None:
    """The window containing ``now`` (start <= now < end), or None.

    A window that started less than its period ago counts as open, which is
    what lets the beat catch up after it was down: it opens the window late,
    for the time that remains. When two windows overlap (a 24-hour period on a
    23-hour spring-forward day) the later one wins; the earlier one has had
    its chance.
    """
    zone = zone or server_zone()
    today = now.astimezone(zone).date()
    # A start near midnight on a day whose transition is at midnight can land
    # on a neighbouring date, and a 24-hour period reaches into the next day:
    # looking two days back and one ahead covers every case.
    for offset in (1, 0, -1, -2):
        local_date = today + dt.timedelta(days=offset)
        if not runs_on(local_date=local_date, frequency=frequency, weekday=weekday):
            continue
        window = window_for_date(
            local_date=local_date, frequency=frequency, start_time=start_time, period_hours=period_hours, zone=zone
        )
        if window.start <= now < window.end:
            return window
    return None


def next_window_after(
    *,
    now: dt.datetime,
    frequency: str,
    start_time: dt.time,
    period_hours: int,
    weekday: int | None = None,
    zone: ZoneInfo | None = None,
) -> Window | None:
    """The next window starting after ``now`` (for display), or None for Minute(s)/Hour(s)."""
    zone = zone or server_zone()
    today = now.astimezone(zone).date()
    for offset in range(-1, 9):
        local_date = today + dt.timedelta(days=offset)
        if not runs_on(local_date=local_date, frequency=frequency, weekday=weekday):
            continue
        window = window_for_date(
            local_date=local_date, frequency=frequency, start_time=start_time, period_hours=period_hours, zone=zone
        )
        if window.start > now:
            return window
    return None
