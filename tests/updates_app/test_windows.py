"""Which Daily/Weekly window is open when, in the server's time zone, across daylight-saving changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from updates_app.engine.windows import next_window_after, window_for_date, window_open_at

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def daily(now, start="12:00", period=2, zone=None, frequency="daily", weekday=None):
    return window_open_at(
        now=now,
        frequency=frequency,
        start_time=dt.time.fromisoformat(start),
        period_hours=period,
        weekday=weekday,
        zone=zone,
    )


def open_spans(*, zone, start, period, first_day, days=3, step_minutes=1, frequency="daily", weekday=None):
    """Walk a clock minute by minute like the beat: {window key: [(first minute open, last minute open)]}."""
    spans: dict[str, list[list[dt.datetime]]] = {}
    now = dt.datetime.combine(first_day, dt.time(0), tzinfo=zone).astimezone(UTC)
    # On to the second local midnight after the last day, so that its window can close inside the walk.
    end = dt.datetime.combine(first_day + dt.timedelta(days=days + 1), dt.time(0), tzinfo=zone).astimezone(UTC)
    previous = None
    while now < end:
        window = daily(now, start=start, period=period, zone=zone, frequency=frequency, weekday=weekday)
        key = window.key if window else None
        if key is not None:
            if key != previous:
                spans.setdefault(key, []).append([now, now])
            spans[key][-1][1] = now
        previous = key
        now += dt.timedelta(minutes=step_minutes)
    return spans


def test_a_daily_window_is_open_from_its_start_time_for_its_period():
    assert daily(utc(2026, 6, 1, 11, 59)) is None
    window = daily(utc(2026, 6, 1, 12, 0))
    assert window.key == "daily:2026-06-01"
    assert (window.start, window.end) == (utc(2026, 6, 1, 12), utc(2026, 6, 1, 14))
    assert daily(utc(2026, 6, 1, 13, 59, 59)) == window
    assert daily(utc(2026, 6, 1, 14, 0)) is None


def test_the_start_time_is_read_in_the_server_time_zone():
    with override_settings(TIME_ZONE="Europe/Berlin"):
        # 12:00 in Berlin in June is 10:00 UTC.
        assert daily(utc(2026, 6, 1, 9, 59)) is None
        window = daily(utc(2026, 6, 1, 10, 0))
    assert window.start == utc(2026, 6, 1, 10)
    assert window.key == "daily:2026-06-01"


def test_the_key_names_the_local_date_not_the_utc_date():
    # 00:30 in Berlin on 2 June is still 1 June in UTC.
    window = daily(utc(2026, 6, 1, 22, 45), start="00:30", period=1, zone=BERLIN)
    assert window.key == "daily:2026-06-02"


def test_a_window_that_started_less_than_its_period_ago_is_still_open_for_the_remaining_time():
    # Beat was down from 11:00 to 13:30: the 12:00-14:00 window is still there to open.
    assert daily(utc(2026, 6, 1, 13, 30)).start == utc(2026, 6, 1, 12)
    # ...but not once its period is over.
    assert daily(utc(2026, 6, 1, 14, 0, 1)) is None


def test_a_24_hour_window_from_yesterday_is_open_until_todays_begins():
    window = daily(utc(2026, 6, 2, 11, 59), period=24)
    assert window.key == "daily:2026-06-01"
    assert daily(utc(2026, 6, 2, 12, 0), period=24).key == "daily:2026-06-02"


def test_a_weekly_window_opens_only_on_its_day():
    spans = open_spans(
        zone=UTC,
        start="09:00",
        period=3,
        first_day=dt.date(2026, 6, 1),
        days=14,
        step_minutes=15,
        frequency="weekly",
        weekday=2,
    )
    # 2026-06-03 and 2026-06-10 are Wednesdays (weekday 2).
    assert list(spans) == ["weekly:2026-06-03", "weekly:2026-06-10"]
    assert spans["weekly:2026-06-03"] == [[utc(2026, 6, 3, 9), utc(2026, 6, 3, 11, 45)]]


def test_weekly_without_a_day_and_agent_side_frequencies_open_no_window():
    assert daily(utc(2026, 6, 3, 9), start="09:00", frequency="weekly", weekday=None) is None
    assert daily(utc(2026, 6, 3, 12), frequency="minutes") is None
    assert daily(utc(2026, 6, 3, 12), frequency="hours") is None


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        (BERLIN, dt.date(2026, 3, 29), dt.date(2026, 10, 25)),
        (NEW_YORK, dt.date(2026, 3, 8), dt.date(2026, 11, 1)),
    ],
)
@pytest.mark.parametrize("start", ["00:00", "01:30", "02:00", "02:30", "03:00", "12:00", "23:30"])
@pytest.mark.parametrize("period", [1, 2, 24])
def test_across_daylight_saving_changes_each_day_opens_exactly_once_for_its_whole_period(
    zone, spring, autumn, start, period
):
    for change_day in (spring, autumn):
        first_day = change_day - dt.timedelta(days=1)
        spans = open_spans(zone=zone, start=start, period=period, first_day=first_day, days=3, step_minutes=5)
        # Days whose window starts inside the walk (the 24-hour window of the day before the walk may poke in).
        expected = [f"daily:{first_day + dt.timedelta(days=n)}" for n in range(3)]
        assert [key for key in spans if key in expected] == expected
        for key in expected:
            assert len(spans[key]) == 1, f"{key} opened {len(spans[key])} times"
            (first, last) = spans[key][0]
            window = window_for_date(
                local_date=dt.date.fromisoformat(key.split(":", 1)[1]),
                frequency="daily",
                start_time=dt.time.fromisoformat(start),
                period_hours=period,
                zone=zone,
            )
            assert first == window.start
            # Open for its whole period in real time (unless a later window took over a 24-hour overlap).
            if period < 24:
                assert last == window.end - dt.timedelta(minutes=5)


def test_a_start_time_that_does_not_exist_on_the_spring_forward_day_opens_one_hour_later_on_the_clock():
    # Berlin, 29 March 2026: clocks jump from 02:00 to 03:00, so 02:30 never happens.
    window = window_for_date(
        local_date=dt.date(2026, 3, 29), frequency="daily", start_time=dt.time(2, 30), period_hours=2, zone=BERLIN
    )
    assert window.start == utc(2026, 3, 29, 1, 30)
    assert window.start.astimezone(BERLIN).time() == dt.time(3, 30)


def test_an_ambiguous_start_time_on_the_fall_back_day_means_its_first_occurrence():
    # Berlin, 25 October 2026: 02:30 happens twice (CEST, then CET); the first is 00:30 UTC.
    window = window_for_date(
        local_date=dt.date(2026, 10, 25), frequency="daily", start_time=dt.time(2, 30), period_hours=1, zone=BERLIN
    )
    assert window.start == utc(2026, 10, 25, 0, 30)
    # At the second 02:30 (01:30 UTC) the window has closed and nothing opens again.
    assert daily(utc(2026, 10, 25, 1, 30), start="02:30", period=1, zone=BERLIN) is None


def test_the_period_is_in_real_hours_across_a_change():
    # 01:00 start, 3 hours, on the spring-forward day in Berlin: ends at 05:00 on the clock, 3 real hours later.
    window = window_for_date(
        local_date=dt.date(2026, 3, 29), frequency="daily", start_time=dt.time(1), period_hours=3, zone=BERLIN
    )
    assert window.end - window.start == dt.timedelta(hours=3)
    assert window.end.astimezone(BERLIN).time() == dt.time(5)


def test_the_next_window_is_found_for_display():
    nxt = next_window_after(
        now=utc(2026, 6, 1, 12, 30), frequency="daily", start_time=dt.time(12), period_hours=2, zone=UTC
    )
    assert nxt.key == "daily:2026-06-02"
    nxt = next_window_after(
        now=utc(2026, 6, 1, 12, 30), frequency="weekly", start_time=dt.time(12), period_hours=2, weekday=0, zone=UTC
    )
    assert nxt.key == "weekly:2026-06-08"
    assert next_window_after(now=utc(2026, 6, 1), frequency="minutes", start_time=dt.time(12), period_hours=2) is None
