"""/metrics: closed to the public, and gauges that say what the database holds."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents_app.models import ConnectionStatus
from tests.agents_app.factories import add_clients, make_domain
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-for-tests"
SECRET = "metrics-enrollment-secret"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def _scrape() -> dict[tuple, float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
        }

    return _scrape


def test_closed_without_the_token_or_an_allowed_address(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_an_allowed_network_opens_it_by_address(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.9.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="127.9.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.8.3.4").status_code == 403
    assert client.get("/metrics").status_code == 403  # the test client's 127.0.0.1 is not listed


def test_gauges_count_deliveries_backlog_attempts_runs_and_clients(scrape):
    clients = add_clients(make_domain("Metrics"), 9)
    add_clients(make_domain("Gone"), 2, status=ConnectionStatus.OFFLINE)
    now = timezone.now()
    live = UpdateRun.objects.create(trigger=RunTrigger.EVENT)
    done = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    rows = [
        # live run: two due for 5 and 60 s, one due later, one retrying (2 failed), one sending (1 failed before)
        Delivery(run=live, client=clients[0], status=DeliveryStatus.PENDING, next_attempt_at=now - dt.timedelta(seconds=5)),
        Delivery(run=live, client=clients[1], status=DeliveryStatus.RETRYING, attempts=2, next_attempt_at=now - dt.timedelta(seconds=60)),
        Delivery(run=live, client=clients[2], status=DeliveryStatus.PENDING, next_attempt_at=now + dt.timedelta(minutes=5)),
        Delivery(run=live, client=clients[3], status=DeliveryStatus.SENDING, attempts=2, next_attempt_at=now,
                 lease_expires_at=now + dt.timedelta(minutes=2)),
        # behind NAT: waits for its check-in, never due for a push
        Delivery(run=live, client=clients[4], status=DeliveryStatus.PENDING, push=False, next_attempt_at=now - dt.timedelta(hours=1)),
        # done run: delivered at the 1st and the 3rd attempt, gave up after 5
        Delivery(run=done, client=clients[5], status=DeliveryStatus.DELIVERED, attempts=1, next_attempt_at=now),
        Delivery(run=done, client=clients[6], status=DeliveryStatus.DELIVERED, attempts=3, next_attempt_at=now),
        Delivery(run=done, client=clients[7], status=DeliveryStatus.GAVE_UP, attempts=5, next_attempt_at=now),
    ]  # fmt: skip
    Delivery.objects.bulk_create(rows)

    m = scrape()

    assert m[("update_console_deliveries", (("status", "pending"),))] == 3
    assert m[("update_console_deliveries", (("status", "retrying"),))] == 1
    assert m[("update_console_deliveries", (("status", "sending"),))] == 1
    assert m[("update_console_deliveries", (("status", "delivered"),))] == 2
    assert m[("update_console_deliveries", (("status", "gave_up"),))] == 1
    assert m[("update_console_deliveries", (("status", "cancelled"),))] == 0
    assert m[("update_console_deliveries_due", ())] == 2
    assert 60 <= m[("update_console_oldest_due_delivery_age_seconds", ())] < 120
    assert m[("update_console_notification_attempts", ())] == 2 + 2 + 1 + 3 + 5
    # failed: 2 (retrying) + 1 (sending, the current one open) + 0 + 2 (delivered at the 3rd) + 5 (gave up)
    assert m[("update_console_notification_failed_attempts", ())] == 10
    assert m[("update_console_notifications_delivered", ())] == 2
    assert m[("update_console_runs_in_progress", (("trigger", "event"),))] == 1
    assert m[("update_console_runs_in_progress", (("trigger", "manual"),))] == 0
    assert m[("update_console_clients", (("status", "online"),))] == 9
    assert m[("update_console_clients", (("status", "offline"),))] == 2


def test_an_expired_lease_is_backlog_said_apart_and_a_cancelled_run_is_not_in_progress(scrape):
    clients = add_clients(make_domain("Leases"), 3)
    now = timezone.now()
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    # A worker that stopped answering: its claim ran out 30 s ago (and one before it was lost once already).
    Delivery.objects.create(
        run=run, client=clients[0], status=DeliveryStatus.SENDING, attempts=1, lost_leases=1, next_attempt_at=now,
        lease_expires_at=now - dt.timedelta(seconds=30),
    )  # fmt: skip
    # A claim still in flight is not waiting on a lost worker.
    Delivery.objects.create(
        run=run, client=clients[2], status=DeliveryStatus.SENDING, attempts=1, next_attempt_at=now,
        lease_expires_at=now + dt.timedelta(seconds=30),
    )  # fmt: skip
    cancelled = UpdateRun.objects.create(trigger=RunTrigger.MANUAL, cancelled_at=now)
    Delivery.objects.create(run=cancelled, client=clients[1], status=DeliveryStatus.PENDING, next_attempt_at=now)

    m = scrape()

    assert m[("update_console_deliveries_due", ())] == 2
    assert m[("update_console_deliveries_lease_expired", ())] == 1
    assert m[("update_console_notification_resends_after_lost_worker", ())] == 1
    assert 30 <= m[("update_console_oldest_due_delivery_age_seconds", ())] < 90
    assert m[("update_console_runs_in_progress", (("trigger", "manual"),))] == 1


def test_an_empty_installation_scrapes_zeros(scrape):
    m = scrape()
    assert m[("update_console_deliveries_due", ())] == 0
    assert m[("update_console_deliveries_lease_expired", ())] == 0
    assert m[("update_console_oldest_due_delivery_age_seconds", ())] == 0
    assert m[("update_console_notification_attempts", ())] == 0


def test_check_ins_and_registrations_are_counted_as_answered(client, scrape, settings):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    before = scrape()

    def count(name, code):
        return scrape().get((name, (("code", code),)), 0) - before.get((name, (("code", code),)), 0)

    body = {"enrollment_secret": SECRET, "hostname": "pc-1", "ip_address": "127.0.0.1", "listener_port": 40001,
            "domain": "Sales", "roaming": False}  # fmt: skip
    token = client.post("/agent/v1/register", body, content_type="application/json").json()["token"]
    client.post("/agent/v1/register", {**body, "enrollment_secret": "wrong"}, content_type="application/json")
    checkin = {"event": "heartbeat", "component_versions": {}, "config_version": "", "scheduled_update_disabled": False}
    for _ in range(3):
        response = client.post(
            "/agent/v1/checkin", checkin, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert response.status_code == 200
    client.post("/agent/v1/checkin", checkin, content_type="application/json", HTTP_AUTHORIZATION="Bearer nope")

    assert count("update_console_agent_registrations_total", "201") == 1
    assert count("update_console_agent_registrations_total", "401") == 1
    assert count("update_console_agent_checkins_total", "200") == 3
    assert count("update_console_agent_checkins_total", "403") == 1
