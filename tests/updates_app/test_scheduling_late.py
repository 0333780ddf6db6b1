"""Late clients: Minute(s)/Hour(s) schedules run on the agents; two missed intervals make a client late."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from agents_app.models import Client, ConnectionStatus
from tests.updates_app.schedule_fleet import make_fleet
from updates_app.late import late_clients
from updates_app.models import AutoUpdateSettings, Frequency

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def schedule(frequency, *, saved_at=NOW - dt.timedelta(days=1), **fields) -> AutoUpdateSettings:
    config = AutoUpdateSettings.load()
    config.frequency = frequency
    for name, value in fields.items():
        setattr(config, name, value)
    with time_machine.travel(saved_at, tick=False):
        config.save()
    return config


def registered_long_ago(clients):
    Client.objects.filter(pk__in=[c.pk for c in clients]).update(registered_at=NOW - dt.timedelta(days=2))


@pytest.mark.django_db
def test_a_client_that_missed_two_intervals_is_late():
    schedule(Frequency.MINUTES, interval_minutes=10)
    on_time, just_in, late, never = make_fleet(4)
    registered_long_ago([on_time, just_in, late, never])
    Client.objects.filter(pk=on_time.pk).update(last_scheduled_update_at=NOW - dt.timedelta(minutes=9))
    Client.objects.filter(pk=just_in.pk).update(last_scheduled_update_at=NOW - dt.timedelta(minutes=20))
    Client.objects.filter(pk=late.pk).update(last_scheduled_update_at=NOW - dt.timedelta(minutes=21))
    assert list(late_clients(now=NOW)) == [never, late]


@pytest.mark.django_db
def test_hour_intervals_count_in_hours():
    schedule(Frequency.HOURS, interval_hours=3)
    ok, late = make_fleet(2)
    registered_long_ago([ok, late])
    Client.objects.filter(pk=ok.pk).update(last_scheduled_update_at=NOW - dt.timedelta(hours=5))
    Client.objects.filter(pk=late.pk).update(last_scheduled_update_at=NOW - dt.timedelta(hours=7))
    assert list(late_clients(now=NOW)) == [late]


@pytest.mark.django_db
def test_clients_without_scheduled_update_or_revoked_or_new_are_not_late():
    schedule(Frequency.MINUTES, interval_minutes=5)
    no_privilege = make_fleet(1, prefix="nopriv", scheduled_update_privilege=False)
    turned_off = make_fleet(1, prefix="off", user_disabled_scheduled_update=True)
    revoked = make_fleet(1, prefix="revoked", revoked_at=NOW - dt.timedelta(days=1))
    registered_long_ago(no_privilege + turned_off + revoked)
    with time_machine.travel(NOW - dt.timedelta(minutes=5), tick=False):
        make_fleet(1, prefix="new")  # registered 5 minutes ago (auto_now_add), never reported yet
    assert not late_clients(now=NOW).exists()
    assert late_clients(now=NOW + dt.timedelta(minutes=6)).get().hostname.startswith("new")


@pytest.mark.django_db
def test_nobody_is_late_under_a_daily_schedule_or_just_after_the_schedule_changed():
    clients = make_fleet(3, status=ConnectionStatus.OFFLINE)
    registered_long_ago(clients)
    schedule(Frequency.DAILY)
    assert not late_clients(now=NOW).exists()
    schedule(Frequency.MINUTES, interval_minutes=10, saved_at=NOW - dt.timedelta(minutes=15))
    assert not late_clients(now=NOW).exists()
    assert late_clients(now=NOW + dt.timedelta(minutes=6)).count() == 3


@pytest.mark.django_db
def test_the_late_clients_page_lists_them(viewer_client, django_assert_max_num_queries):
    schedule(Frequency.MINUTES, interval_minutes=10, saved_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    clients = make_fleet(60, prefix="pc<b>")
    Client.objects.filter(pk__in=[c.pk for c in clients]).update(registered_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    # Two more than before offline clients were shown apart: their list, and the permission lookup for the links.
    with django_assert_max_num_queries(11):
        response = viewer_client.get(reverse("updates:late-clients"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<strong data-late-count>60</strong>" in html and "every 10 minutes" in html
    assert "pc&lt;b&gt;" in html and "pc<b>" not in html
    assert "Page 1 of 2" in html


@pytest.mark.django_db
def test_the_late_clients_page_explains_when_there_are_none(viewer_client):
    schedule(Frequency.DAILY)
    assert "no client can be late" in viewer_client.get(reverse("updates:late-clients")).content.decode()
    schedule(Frequency.MINUTES, interval_minutes=10, saved_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert "No late clients" in viewer_client.get(reverse("updates:late-clients")).content.decode()
