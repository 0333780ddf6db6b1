"""The schedule load preview: same eligibility and spread as the planner, shown as an HTML fragment."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from agents_app.models import ConnectionStatus
from tests.updates_app.schedule_fleet import make_fleet
from updates_app.engine.planner import schedule_window_plan
from updates_app.engine.spread import per_minute_counts
from updates_app.engine.windows import Window
from updates_app.models import AutoUpdateSettings, Delivery, Frequency, UpdateRun
from updates_app.preview import schedule_preview

NOON = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
URL = "/updates/automatic/preview/"


def number(html: str, name: str) -> str:
    match = re.search(rf'data-preview="{name}">([^<]+)<', html)
    assert match, f"no {name} in {html}"
    return match.group(1)


def planned_per_minute(run: UpdateRun, *, start: dt.datetime, hours: int) -> list[int]:
    offsets = [(due - start).total_seconds() for due in run.deliveries.values_list("next_attempt_at", flat=True)]
    return per_minute_counts(offsets, duration_seconds=hours * 3600)


def test_the_url_is_named():
    assert reverse("updates:schedule-preview") == URL


@pytest.mark.django_db
def test_the_preview_counts_the_clients_the_planner_would_notify(staff_client):
    # given: 300 eligible clients and some that are not
    make_fleet(300)
    make_fleet(40, prefix="off", status=ConnectionStatus.OFFLINE)
    make_fleet(10, prefix="nopriv", scheduled_update_privilege=False)
    # when
    response = staff_client.get(URL, {"frequency": "daily", "start_time": "12:00", "period_hours": "2"})
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert number(html, "clients") == "300"
    assert number(html, "mean") == "2.5"  # 300 over 120 minutes
    assert int(number(html, "peak")) in (2, 3)
    assert html.count("<rect") == 60  # 120 minutes in bars of 2
    assert "Offline clients are not notified" in html


@pytest.mark.django_db
@pytest.mark.parametrize(("hours", "seed"), [(2, 5), (1, 11), (24, 2)])
def test_the_preview_numbers_are_what_the_plan_does(hours, seed):
    # given
    make_fleet(1500)
    make_fleet(100, prefix="nat", status=ConnectionStatus.UNREACHABLE)
    preview = schedule_preview(
        frequency=Frequency.DAILY, start_time=dt.time(12), period_hours=hours, now=NOON, rng=random.Random(seed)
    )
    # when: the planner opens the same window for the same fleet with the same seed
    window = Window(key="daily:same", start=NOON, end=NOON + dt.timedelta(hours=hours))
    run = schedule_window_plan(window=window, now=NOON, rng=random.Random(seed))
    # then: the very same load, minute by minute
    per_minute = planned_per_minute(run, start=NOON, hours=hours)
    # Clients behind NAT count too: they get their moment and take it at their next poll.
    assert preview.clients == run.deliveries.count() == 1600
    assert preview.per_minute == per_minute
    assert preview.peak_per_minute == max(per_minute)
    assert preview.mean_per_minute == pytest.approx(1600 / (hours * 60))
    # and with the planner's own random draws the peak is off by at most one
    other = schedule_window_plan(window=Window(key="daily:other", start=window.start, end=window.end), now=NOON)
    assert abs(max(planned_per_minute(other, start=NOON, hours=hours)) - preview.peak_per_minute) <= 1


@pytest.mark.django_db
def test_a_weekly_preview_names_its_next_window(staff_client):
    make_fleet(3)
    response = staff_client.get(
        URL, {"frequency": "weekly", "start_time": "09:30", "period_hours": "3", "weekday": "4"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert number(html, "clients") == "3"
    text = re.sub(r"<[^>]+>", "", html)
    assert re.search(r"Friday \d{4}-\d{2}-\d{2} 09:30 UTC to \d{4}-\d{2}-\d{2} 12:30 UTC", text)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "checks"),
    [
        ({"frequency": "minutes", "interval_minutes": "10"}, "12.0"),
        ({"frequency": "hours", "interval_hours": "2"}, "1.0"),
    ],
)
def test_minute_and_hour_schedules_show_the_update_checks_per_minute(staff_client, params, checks):
    make_fleet(110)
    make_fleet(10, prefix="nat", status=ConnectionStatus.UNREACHABLE)  # they run their schedule too
    make_fleet(30, prefix="off", status=ConnectionStatus.OFFLINE)
    response = staff_client.get(URL, params)
    assert response.status_code == 200
    html = response.content.decode()
    assert number(html, "clients") == "120"
    assert number(html, "checks") == checks
    assert "<svg" not in html


@pytest.mark.django_db
def test_only_once_per_day_means_one_configuration_fetch_per_client_and_day(staff_client):
    make_fleet(10)
    once = staff_client.get(URL, {"frequency": "minutes", "interval_minutes": "30", "config_once_per_day": "on"})
    every = staff_client.get(URL, {"frequency": "minutes", "interval_minutes": "30"})
    assert number(once.content.decode(), "config-fetches") == "10"
    assert number(every.content.decode(), "config-fetches") == "480"


@pytest.mark.django_db
def test_without_parameters_the_saved_schedule_is_previewed(staff_client):
    make_fleet(7)
    config = AutoUpdateSettings.load()
    config.frequency, config.period_hours = Frequency.DAILY, 1
    config.save()
    html = staff_client.get(URL).content.decode()
    assert number(html, "clients") == "7"
    assert html.count("<rect") == 60


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"frequency": "daily", "start_time": "12:00", "period_hours": "0"},
            # The same message as the screen's, with the model's range.
            "Time period (hours): Enter a time period of 1 to 24 hours.",
        ),
        (
            {"frequency": "daily", "start_time": "12:00", "period_hours": "25"},
            "Time period (hours): Enter a time period of 1 to 24 hours.",
        ),
        ({"frequency": "daily", "start_time": "25:00", "period_hours": "2"}, "Start time: Enter a valid time"),
        ({"frequency": "daily", "period_hours": "2"}, "Start time: This field is required for this frequency"),
        (
            {"frequency": "weekly", "start_time": "12:00", "period_hours": "2"},
            "Day of the week: This field is required",
        ),
        ({"frequency": "weekly", "start_time": "12:00", "period_hours": "2", "weekday": "7"}, "valid choice"),
        ({"frequency": "minutes", "interval_minutes": "60"}, "Interval (minutes): Enter 1 to 59 minutes."),
        ({"frequency": "hours", "interval_hours": "x"}, "Interval (hours): Enter 1 to 24 hours."),
        ({"frequency": "yearly"}, "Update frequency: Select a valid choice"),
        ({"start_time": "12:00"}, "Update frequency: This field is required"),
    ],
)
def test_invalid_parameters_get_a_clear_message_and_a_400(staff_client, params, message):
    make_fleet(5)
    before = AutoUpdateSettings.load()
    response = staff_client.get(URL, params)
    assert response.status_code == 400
    html = response.content.decode()
    assert "the schedule is not valid yet" in html
    assert message in html
    assert "_minutes" not in html and "_hours" not in html.replace("data-preview", "")  # no identifiers
    assert 'data-preview="clients"' not in html
    # Nothing changed.
    after = AutoUpdateSettings.load()
    assert (after.revision, after.updated_at) == (before.revision, before.updated_at)
    assert not UpdateRun.objects.exists() and not Delivery.objects.exists()


@pytest.mark.django_db
def test_what_the_user_typed_is_escaped(staff_client):
    response = staff_client.get(URL, {"frequency": "<script>alert(1)</script>"})
    assert response.status_code == 400
    assert "<script>alert(1)" not in response.content.decode()


@pytest.mark.django_db
def test_the_preview_is_read_only(staff_client):
    assert staff_client.post(URL, {"frequency": "daily"}).status_code == 405


@pytest.mark.django_db
def test_the_preview_costs_the_same_few_queries_for_any_fleet(staff_client, django_assert_max_num_queries):
    make_fleet(2000)
    with django_assert_max_num_queries(6):
        response = staff_client.get(URL, {"frequency": "daily", "start_time": "12:00", "period_hours": "24"})
    assert number(response.content.decode(), "clients") == "2000"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_automatic_update_screen_shows_the_preview_and_follows_the_schedule(logged_in_page, live_server):
    make_fleet(240)
    make_fleet(60, prefix="off", status=ConnectionStatus.OFFLINE)
    page = logged_in_page
    page.goto(f"{live_server.url}/updates/automatic/")
    box = page.locator("#schedule-preview")
    # On load: the saved schedule (Daily, 12:00, 2 hours) for the 240 eligible clients.
    page.wait_for_selector('#schedule-preview [data-preview="mean"]')
    assert box.locator('[data-preview="clients"]').inner_text() == "240"
    assert box.locator('[data-preview="mean"]').inner_text() == "2.0"
    assert box.locator("svg rect").count() == 60
    # The administrator changes the period: the preview follows before anything is saved.
    page.fill("input[name=period_hours]", "4")
    # Waiting with expect, not wait_for_function: the page's CSP forbids the eval that needs.
    expect(box.locator('[data-preview="mean"]')).to_have_text("1.0")
    # An invalid value shows the reason.
    page.fill("input[name=period_hours]", "30")
    page.wait_for_selector("#schedule-preview [data-preview-status=invalid]")
    assert "Enter a time period of 1 to 24 hours." in box.inner_text()
    # Minute(s): update checks per minute (the saved interval is 30 minutes).
    page.check("input[name=frequency][value=minutes]")
    page.wait_for_selector('#schedule-preview [data-preview="checks"]')
    assert box.locator('[data-preview="checks"]').inner_text() == "8.0"
    # Nothing was saved.
    assert AutoUpdateSettings.load().frequency == Frequency.DAILY


@pytest.mark.django_db
def test_fields_the_frequency_does_not_use_are_not_checked(staff_client):
    make_fleet(6)
    response = staff_client.get(
        URL, {"frequency": "minutes", "interval_minutes": "3", "start_time": "half past", "period_hours": "99"}
    )
    assert response.status_code == 200
    assert number(response.content.decode(), "checks") == "2.0"
