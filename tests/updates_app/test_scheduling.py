"""Planning Daily/Weekly windows under a controlled clock."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import close_old_connections
from django.test import override_settings

from agents_app.models import Client, ConnectionStatus
from tests.updates_app.schedule_fleet import make_fleet
from updates_app.engine.planner import schedule_eligible_clients, schedule_window_open, schedule_window_plan
from updates_app.engine.spread import per_minute_counts
from updates_app.engine.windows import Window
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, Frequency, RunTrigger, UpdateRun

UTC = dt.UTC
NOON = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday


def configure(**fields) -> AutoUpdateSettings:
    config = AutoUpdateSettings.load()
    values = {"frequency": Frequency.DAILY, "start_time": dt.time(12), "period_hours": 2, "weekday": None, **fields}
    for name, value in values.items():
        setattr(config, name, value)
    config.save()
    return config


def beat_at(moment: dt.datetime, **kwargs) -> UpdateRun | None:
    with time_machine.travel(moment, tick=False):
        return schedule_window_open(**kwargs)


def due_times(run: UpdateRun) -> list[dt.datetime]:
    return list(run.deliveries.values_list("next_attempt_at", flat=True))


@pytest.fixture
def daily_noon(db):
    return configure()


def test_nothing_opens_before_the_start_time(daily_noon):
    make_fleet(5)
    assert beat_at(NOON - dt.timedelta(seconds=1)) is None
    assert not UpdateRun.objects.exists()


def test_at_the_start_time_one_scheduled_run_notifies_every_eligible_client_inside_the_window(daily_noon):
    # given
    clients = make_fleet(50)
    # when
    run = beat_at(NOON)
    # then
    assert run.trigger == RunTrigger.SCHEDULE
    assert run.window_key == "daily:2026-06-01"
    assert (run.window_start, run.window_end) == (NOON, NOON + dt.timedelta(hours=2))
    deliveries = list(run.deliveries.all())
    assert sorted(d.client_id for d in deliveries) == sorted(c.pk for c in clients)
    assert all(d.status == DeliveryStatus.PENDING and d.attempts == 0 for d in deliveries)
    assert all(NOON <= d.next_attempt_at < NOON + dt.timedelta(hours=2) for d in deliveries)
    # Spread over the window, not bunched at its start.
    assert max(due_times(run)) - min(due_times(run)) > dt.timedelta(hours=1, minutes=50)


def test_the_window_opens_once_however_often_the_beat_asks(daily_noon):
    make_fleet(20)
    runs = [beat_at(NOON + dt.timedelta(minutes=m)) for m in range(0, 125)]
    assert len([r for r in runs if r is not None]) == 1
    assert UpdateRun.objects.count() == 1
    assert Delivery.objects.count() == 20


def test_only_eligible_clients_are_notified(daily_noon):
    # given: one client of every kind
    eligible = {
        "online, user may disable": make_fleet(1, prefix="on")[0],
        "online, always runs": make_fleet(1, prefix="always", scheduled_update_setting=False)[0],
        "online, always runs although the user turned it off": make_fleet(
            1, prefix="forced", scheduled_update_setting=False, user_disabled_scheduled_update=True
        )[0],
        "roaming with the privilege": make_fleet(
            1, prefix="roaming", status=ConnectionStatus.ROAMING, roaming_privilege=True
        )[0],
        # Behind NAT and polling: planned like the others, handed over at its first poll after its moment.
        "unreachable": make_fleet(1, prefix="nat", status=ConnectionStatus.UNREACHABLE)[0],
    }
    ineligible = {
        "offline": make_fleet(1, prefix="offline", status=ConnectionStatus.OFFLINE)[0],
        "no privilege": make_fleet(1, prefix="nopriv", scheduled_update_privilege=False)[0],
        "turned off by the user": make_fleet(1, prefix="userOff", user_disabled_scheduled_update=True)[0],
        "roaming status without the privilege": make_fleet(
            1, prefix="stale", status=ConnectionStatus.ROAMING, roaming_privilege=False
        )[0],
        "revoked": make_fleet(1, prefix="revoked", revoked_at=NOON - dt.timedelta(days=1))[0],
    }
    # when
    run = beat_at(NOON)
    # then
    notified = set(run.deliveries.values_list("client_id", flat=True))
    assert notified == {c.pk for c in eligible.values()}
    assert not notified & {c.pk for c in ineligible.values()}
    assert set(schedule_eligible_clients().values_list("pk", flat=True)) == notified
    pushed = dict(run.deliveries.values_list("client_id", "push"))
    assert pushed.pop(eligible["unreachable"].pk) is False
    assert all(pushed.values())


def test_after_beat_was_down_a_window_still_open_is_opened_for_the_remaining_time(daily_noon):
    make_fleet(30)
    late = NOON + dt.timedelta(minutes=90)
    run = beat_at(late)
    assert (run.window_start, run.window_end) == (late, NOON + dt.timedelta(hours=2))
    assert all(late <= due < NOON + dt.timedelta(hours=2) for due in due_times(run))


def test_after_beat_was_down_for_the_whole_window_nothing_opens(daily_noon):
    make_fleet(3)
    assert beat_at(NOON + dt.timedelta(hours=2)) is None
    assert beat_at(NOON + dt.timedelta(hours=5)) is None
    assert not UpdateRun.objects.exists()
    # The next day opens as usual.
    assert beat_at(NOON + dt.timedelta(days=1)).window_key == "daily:2026-06-02"


def test_clients_that_come_online_after_the_window_opened_are_not_added(daily_noon):
    make_fleet(5)
    latecomers = make_fleet(3, prefix="late", status=ConnectionStatus.OFFLINE)
    run = beat_at(NOON)
    Client.objects.filter(pk__in=[c.pk for c in latecomers]).update(status=ConnectionStatus.ONLINE)
    for minutes in (1, 30, 119, 121, 300):
        beat_at(NOON + dt.timedelta(minutes=minutes))
    assert Delivery.objects.count() == 5
    assert not Delivery.objects.filter(client__in=latecomers).exists()
    assert UpdateRun.objects.get() == run
    # They are in the next day's window.
    tomorrow = beat_at(NOON + dt.timedelta(days=1))
    assert tomorrow.deliveries.filter(client__in=latecomers).count() == 3


def test_offline_clients_are_not_notified_and_none_is_scheduled_for_them(daily_noon):
    make_fleet(4, status=ConnectionStatus.OFFLINE)
    run = beat_at(NOON)
    # The run records that the window opened, with nobody to notify.
    assert run.window_key == "daily:2026-06-01"
    assert run.deliveries.count() == 0


def test_a_settings_change_during_a_window_applies_from_the_next_window(daily_noon):
    make_fleet(10)
    run = beat_at(NOON)
    configure(start_time=dt.time(13), period_hours=4)
    # Still 1 June: the day's window has opened; the new start time does not open a second one.
    assert beat_at(NOON + dt.timedelta(hours=1)) is None
    run.refresh_from_db()
    assert run.window_end == NOON + dt.timedelta(hours=2)
    tomorrow = beat_at(NOON + dt.timedelta(days=1, hours=1))
    assert (tomorrow.window_start, tomorrow.window_end) == (
        NOON + dt.timedelta(days=1, hours=1),
        NOON + dt.timedelta(days=1, hours=5),
    )


def test_a_weekly_window_opens_only_on_its_day(db):
    configure(frequency=Frequency.WEEKLY, weekday=3)  # Thursday
    make_fleet(5)
    opened = [beat_at(NOON + dt.timedelta(days=d, minutes=m)) for d in range(14) for m in (0, 60)]
    keys = [run.window_key for run in opened if run]
    # 2026-06-04 and 2026-06-11 are Thursdays.
    assert keys == ["weekly:2026-06-04", "weekly:2026-06-11"]


def test_minute_and_hour_schedules_open_no_window_on_the_server(db):
    make_fleet(5)
    for frequency in (Frequency.MINUTES, Frequency.HOURS):
        configure(frequency=frequency)
        assert beat_at(NOON) is None
    assert not UpdateRun.objects.exists()


@override_settings(TIME_ZONE="Europe/Berlin")
@pytest.mark.parametrize(
    ("start", "day"),
    [
        ("02:30", dt.date(2026, 3, 29)),  # does not exist: clocks jump from 02:00 to 03:00
        ("02:30", dt.date(2026, 10, 25)),  # happens twice: clocks go back from 03:00 to 02:00
        ("02:00", dt.date(2026, 3, 29)),
        ("02:00", dt.date(2026, 10, 25)),
    ],
)
def test_across_a_daylight_saving_change_the_window_opens_exactly_once_a_day(db, start, day):
    configure(start_time=dt.time.fromisoformat(start), period_hours=1)
    make_fleet(3)
    berlin = ZoneInfo("Europe/Berlin")
    moment = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(0), tzinfo=berlin).astimezone(UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(0), tzinfo=berlin).astimezone(UTC)
    while moment < end:
        beat_at(moment)
        moment += dt.timedelta(minutes=5)
    keys = list(UpdateRun.objects.order_by("window_start").values_list("window_key", flat=True))
    assert keys == [f"daily:{day - dt.timedelta(days=1)}", f"daily:{day}", f"daily:{day + dt.timedelta(days=1)}"]
    for run in UpdateRun.objects.all():
        assert run.deliveries.count() == 3
        assert run.window_end - run.window_start == dt.timedelta(hours=1)


def test_the_same_seed_plans_the_same_moments(db):
    make_fleet(200)
    window = Window(key="daily:a", start=NOON, end=NOON + dt.timedelta(hours=2))
    first = schedule_window_plan(window=window, now=NOON, rng=random.Random(9))
    again = schedule_window_plan(
        window=Window(key="daily:b", start=window.start, end=window.end), now=NOON, rng=random.Random(9)
    )
    assert dict(first.deliveries.values_list("client_id", "next_attempt_at")) == dict(
        again.deliveries.values_list("client_id", "next_attempt_at")
    )


def test_a_planned_window_of_ten_thousand_clients_is_flat(db):
    make_fleet(10_000)
    window = Window(key="daily:flat", start=NOON, end=NOON + dt.timedelta(hours=2))
    run = schedule_window_plan(window=window, now=NOON, rng=random.Random(1))
    offsets = [(due - NOON).total_seconds() for due in due_times(run)]
    counts = per_minute_counts(offsets, duration_seconds=7200)
    assert len(offsets) == 10_000
    assert max(counts) / (10_000 / 120) <= 1.05


def test_a_closed_or_already_planned_window_plans_nothing(db):
    make_fleet(2)
    window = Window(key="daily:x", start=NOON, end=NOON + dt.timedelta(hours=1))
    assert schedule_window_plan(window=window, now=NOON + dt.timedelta(hours=1)) is None
    assert schedule_window_plan(window=window, now=NOON) is not None
    assert schedule_window_plan(window=window, now=NOON) is None
    assert Delivery.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_racing_to_open_the_same_window_create_one_run():
    configure()
    make_fleet(2000)
    results: list[UpdateRun | None] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def race():
        try:
            barrier.wait()
            results.append(schedule_window_open(now=NOON + dt.timedelta(seconds=5)))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len([r for r in results if r is not None]) == 1
    assert UpdateRun.objects.count() == 1
    assert Delivery.objects.count() == 2000


def test_the_beat_schedule_runs_the_task_every_minute(settings):
    from console.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["schedule-window"]
    assert entry["schedule"] == 60.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_opens_the_window_that_is_due(celery_worker):
    from updates_app.tasks import open_schedule_window

    configure()  # daily at noon, for two hours
    make_fleet(25)
    # A minute into the window, whatever the time of day; the clock runs on for the worker's sake.
    with time_machine.travel(NOON + dt.timedelta(minutes=1), tick=True):
        open_schedule_window.delay()
        deadline = time.monotonic() + 30
        while not UpdateRun.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        run = UpdateRun.objects.get()
        assert run.window_key == "daily:2026-06-01"
        assert run.deliveries.count() == 25
        # A second beat is a no-op.
        assert open_schedule_window() == "nothing to open"
    assert UpdateRun.objects.count() == 1


def test_planned_rows_are_stored_exactly_as_the_orm_stores_them(db):
    from django.db import connection

    make_fleet(50)
    window = Window(key="daily:raw", start=NOON, end=NOON + dt.timedelta(minutes=10))
    run = schedule_window_plan(window=window, now=NOON, rng=random.Random(4))
    # Database-side filters see every row inside the window (string comparison on SQLite).
    assert run.deliveries.filter(next_attempt_at__gte=NOON, next_attempt_at__lt=window.end).count() == 50
    assert run.deliveries.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=window.end).count() == 50
    if connection.vendor == "sqlite":
        # The stored text is what the ORM itself writes for the value it reads back.
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, next_attempt_at || '' FROM updates_app_delivery WHERE run_id = %s", [run.pk])
            raw = dict(cursor.fetchall())
        for delivery in run.deliveries.all():
            assert raw[delivery.pk] == connection.ops.adapt_datetimefield_value(delivery.next_attempt_at)
    # Other columns got their model defaults.
    assert set(run.deliveries.values_list("last_error", "lease_expires_at", "delivered_at")) == {("", None, None)}


def test_a_planning_that_fails_half_way_leaves_nothing_and_the_next_beat_opens_the_window(daily_noon, monkeypatch):
    from updates_app.engine import planner

    make_fleet(10)

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(planner, "deliveries_insert", broken)
    with pytest.raises(RuntimeError):
        beat_at(NOON)
    assert not UpdateRun.objects.exists()
    monkeypatch.undo()
    run = beat_at(NOON + dt.timedelta(minutes=1))
    assert run.window_key == "daily:2026-06-01"
    assert run.deliveries.count() == 10


def test_a_new_window_replaces_its_clients_older_open_deliveries(db):
    # A 24-hour period: the end of yesterday's window overlaps today's start on a 23-hour day, or is just
    # still retrying; today's run replaces it, so nobody is notified twice.
    make_fleet(5)
    with time_machine.travel(NOON - dt.timedelta(days=1), tick=False):
        yesterday = schedule_window_plan(
            window=Window(key="daily:y", start=NOON - dt.timedelta(days=1), end=NOON + dt.timedelta(hours=1)),
            now=NOON - dt.timedelta(days=1),
        )
    yesterday.deliveries.filter(pk=yesterday.deliveries.first().pk).update(status=DeliveryStatus.DELIVERED)
    with time_machine.travel(NOON, tick=False):
        today = schedule_window_plan(
            window=Window(key="daily:t", start=NOON, end=NOON + dt.timedelta(hours=2)), now=NOON
        )
    assert today.deliveries.filter(status=DeliveryStatus.PENDING).count() == 5
    assert yesterday.deliveries.filter(status=DeliveryStatus.SUPERSEDED).count() == 4
    assert yesterday.deliveries.filter(status=DeliveryStatus.DELIVERED).count() == 1
