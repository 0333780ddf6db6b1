"""Connection status rules and the beat task marking silent clients offline."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from agents_app.connection import clients_mark_offline, push_allowed, status_on_checkin
from agents_app.models import Client, ConnectionStatus, Domain
from agents_app.tasks import mark_silent_clients_offline

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain():
    return Domain.objects.create(name="Sales")


def make(domain, name, *, status=ConnectionStatus.ONLINE, seen_ago=0, ip="127.0.0.1", **extra):
    return Client.objects.create(
        domain=domain,
        hostname=name,
        ip_address=ip,
        status=status,
        last_contact_at=timezone.now() - dt.timedelta(seconds=seen_ago),
        **extra,
    )


def test_silent_clients_are_marked_offline_in_one_query(domain, settings, django_assert_num_queries):
    settings.AGENT_OFFLINE_AFTER_SECONDS = 180
    fresh = make(domain, "fresh", seen_ago=10)
    silent = make(domain, "silent", seen_ago=500)
    roaming = make(domain, "roaming", status=ConnectionStatus.ROAMING, seen_ago=500)
    with django_assert_num_queries(1):
        assert clients_mark_offline() == 2
    statuses = dict(Client.objects.values_list("hostname", "status"))
    assert statuses == {"fresh": "online", "silent": "offline", "roaming": "offline"}
    assert fresh and silent and roaming


def test_the_beat_task_is_scheduled_and_marks_clients(domain, settings):
    assert any(
        entry["task"] == "agents_app.tasks.mark_silent_clients_offline"
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
    )
    make(domain, "silent", seen_ago=10_000)
    assert mark_silent_clients_offline() == 1


def test_status_rules(settings):
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    assert status_on_checkin(ip_address="127.0.0.1", reports_roaming=False, roaming_privilege=False) == "online"
    assert status_on_checkin(ip_address="127.0.0.1", reports_roaming=True, roaming_privilege=False) == "online"
    assert status_on_checkin(ip_address="127.0.0.1", reports_roaming=True, roaming_privilege=True) == "roaming"
    assert status_on_checkin(ip_address="127.0.2.7", reports_roaming=True, roaming_privilege=True) == "unreachable"
    # Outside the allowed networks the server never pushes: unreachable too. (Tests
    # stay on loopback: the allowed networks shrink instead.)
    settings.AGENT_ALLOWED_NETWORKS = ["127.0.0.0/16"]
    assert status_on_checkin(ip_address="127.9.8.8", reports_roaming=False, roaming_privilege=False) == "unreachable"


def test_push_is_allowed_only_to_reachable_registered_addresses(domain, settings):
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    assert push_allowed(make(domain, "a"))
    assert not push_allowed(make(domain, "b", ip="127.0.2.1"))
    settings.AGENT_ALLOWED_NETWORKS = ["127.0.0.0/16"]
    assert not push_allowed(make(domain, "c", ip="127.9.4.4"))
    assert not push_allowed(make(domain, "d", status=ConnectionStatus.UNREACHABLE))
    assert not push_allowed(make(domain, "e", revoked_at=timezone.now()))


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_marks_silent_clients_offline(celery_worker, settings):
    import time

    domain = Domain.objects.create(name="Worker")
    silent = make(domain, "silent", seen_ago=10_000)
    mark_silent_clients_offline.delay()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Client.objects.get(pk=silent.pk).status != ConnectionStatus.OFFLINE:
        time.sleep(0.05)
    assert Client.objects.get(pk=silent.pk).status == ConnectionStatus.OFFLINE
