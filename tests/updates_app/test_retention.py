"""Retention: finished runs keep their counts forever, their per-delivery detail only for a while;
inactive clients leave the tree and come back by registering again."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from agents_app import tree
from agents_app.models import Client
from console.models import AuditEntry
from tests.agents_app.factories import add_clients
from tests.updates_app.test_compliance import reporting_client
from updates_app.compliance import compliance_counts
from updates_app.engine.reports import delivery_mark_updated
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.progress import kept_counts
from updates_app.retention import (
    delivery_details_prune,
    inactive_clients_retire,
    retention_prune,
    revoked_clients_delete,
)
from updates_app.summary import progress_of, runs_with_progress
from updates_app.tasks import prune_retained_data

NOW = timezone.now()
pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(domain):
    return add_clients(domain, 250)


def run_with(clients, *, age_days: float, statuses=(DeliveryStatus.DELIVERED,), updated: int = 0) -> UpdateRun:
    run = UpdateRun.objects.create(trigger=RunTrigger.EVENT)
    UpdateRun.objects.filter(pk=run.pk).update(created_at=NOW - dt.timedelta(days=age_days))
    rows = [
        Delivery(
            run=run,
            client=client,
            status=statuses[n % len(statuses)],
            next_attempt_at=NOW,
            update_reported_at=NOW if n < updated else None,
        )
        for n, client in enumerate(clients)
    ]
    Delivery.objects.bulk_create(rows)
    run.refresh_from_db()
    return run


def progress(run: UpdateRun) -> dict[str, int]:
    return progress_of(runs_with_progress().filter(pk=run.pk))[run.pk]


def test_a_finished_run_past_retention_keeps_its_counts_and_loses_its_detail(fleet, settings, superuser_client):
    settings.DELIVERY_RETENTION_DAYS = 30
    old = run_with(fleet, age_days=31, statuses=(DeliveryStatus.DELIVERED, DeliveryStatus.GAVE_UP), updated=100)
    recent = run_with(fleet, age_days=29)
    before = progress(old)
    assert before == {
        "total": 250,
        "pending": 0,
        "delivered": 125,
        "retrying": 0,
        "gave_up": 125,
        "stopped": 0,
        "updated": 100,
    }

    assert delivery_details_prune(now=NOW) == (2, 1, 250)  # both settled: counts kept; the old one pruned

    assert not Delivery.objects.filter(run=old).exists()
    assert Delivery.objects.filter(run=recent).count() == 250
    old.refresh_from_db()
    assert kept_counts(old) == before and old.details_pruned_at == NOW
    assert progress(old) == before  # the Summary and the live refresh show the kept counts
    page = superuser_client.get(reverse("updates:summary")).content.decode()
    assert f'data-run-id="{old.pk}" data-field="gave_up">125<' in page
    detail = superuser_client.get(reverse("updates:run-detail", args=[old.pk])).content.decode()
    assert 'id="details-pruned"' in detail and f'data-run-id="{old.pk}" data-field="updated">100<' in detail
    # Nothing more to do on the next round.
    assert delivery_details_prune(now=NOW) == (0, 0, 0)


def test_a_settled_run_keeps_its_counts_and_a_late_report_still_adds_to_them(fleet, settings):
    settings.DELIVERY_RETENTION_DAYS = 30
    run = run_with(fleet, age_days=3, updated=10)
    fresh = run_with(fleet, age_days=1)
    assert delivery_details_prune(now=NOW) == (1, 0, 0)  # counts kept; the detail stays for now
    run.refresh_from_db()
    assert run.kept_updated == 10 and Delivery.objects.filter(run=run).count() == 250
    fresh.refresh_from_db()
    assert fresh.counts_kept_at is None  # not settled yet

    late = Delivery.objects.filter(run=run, update_reported_at=None).first()
    delivery_mark_updated(client=late.client, delivery_id=late.pk, at=NOW)
    delivery_mark_updated(client=late.client, delivery_id=late.pk, at=NOW)  # a repeat counts once
    assert progress(run)["updated"] == 11


def test_an_unfinished_run_keeps_its_detail_whatever_its_age(fleet, settings):
    settings.DELIVERY_RETENTION_DAYS = 30
    run = run_with(fleet, age_days=90, statuses=(DeliveryStatus.DELIVERED, DeliveryStatus.RETRYING))
    assert delivery_details_prune(now=NOW) == (0, 0, 0)
    assert Delivery.objects.filter(run=run).count() == 250
    run.refresh_from_db()
    assert run.counts_kept_at is None


def test_detail_goes_in_bounded_batches_over_several_rounds(fleet, settings):
    settings.DELIVERY_RETENTION_DAYS = 30
    settings.RETENTION_BATCH_SIZE = 100
    run = run_with(fleet, age_days=40)
    kept, pruned, removed = delivery_details_prune(now=NOW, budget=2)
    assert (kept, pruned, removed) == (1, 0, 200)  # two statements of 100 rows, then the round ends
    run.refresh_from_db()
    assert run.kept_total == 250 and run.details_pruned_at is None
    assert progress(run)["total"] == 250  # counts stay right while half deleted
    assert delivery_details_prune(now=NOW, budget=2) == (0, 1, 50)
    assert not Delivery.objects.filter(run=run).exists()


def test_inactive_clients_leave_the_tree_with_an_audit_entry(domain, settings, superuser_client):
    settings.INACTIVE_CLIENT_DAYS = 30
    silent = reporting_client(domain, "silent", {"virus_pattern": 1})
    never = reporting_client(domain, "never-seen", {})
    recent = reporting_client(domain, "recent", {"virus_pattern": 1})
    Client.objects.filter(pk=silent.pk).update(last_contact_at=NOW - dt.timedelta(days=31))
    Client.objects.filter(pk=never.pk).update(last_contact_at=None, registered_at=NOW - dt.timedelta(days=40))
    Client.objects.filter(pk=recent.pk).update(last_contact_at=NOW - dt.timedelta(days=29))

    assert inactive_clients_retire(now=NOW) == 2

    assert set(Client.objects.active().values_list("hostname", flat=True)) == {"recent"}
    assert compliance_counts().clients == 1
    entry = AuditEntry.objects.get(action="clients.inactive_removed")
    assert entry.actor is None and entry.changes["count"] == 2
    assert sorted(entry.changes["hostnames"]) == ["never-seen", "silent"]
    # Out of the tree: the domain counts and lists only the client that is left.
    children = superuser_client.get(reverse("agents:domain-children", args=[domain.pk])).content.decode()
    assert "recent" in children and "silent" not in children
    [node] = [d for d in tree.top_level_domains() if d.pk == domain.pk]
    assert node.client_count == 1
    # Their history stays until the retention period has passed.
    assert inactive_clients_retire(now=NOW) == 0


def test_zero_days_turns_the_inactive_sweep_off(domain, settings):
    settings.INACTIVE_CLIENT_DAYS = 0
    client = reporting_client(domain, "silent", {})
    Client.objects.filter(pk=client.pk).update(last_contact_at=NOW - dt.timedelta(days=3650))
    assert inactive_clients_retire(now=NOW) == 0
    assert Client.objects.active().count() == 1


def test_revoked_clients_and_their_history_go_after_the_retention_period(fleet, settings):
    settings.DELIVERY_RETENTION_DAYS = 30
    run = run_with(fleet[:10], age_days=1)
    Client.objects.filter(pk__in=[c.pk for c in fleet[:3]]).update(revoked_at=NOW - dt.timedelta(days=31))
    Client.objects.filter(pk=fleet[3].pk).update(revoked_at=NOW - dt.timedelta(days=5))
    assert revoked_clients_delete(now=NOW) == 3
    assert Client.objects.count() == 247
    assert Delivery.objects.filter(run=run).count() == 7


def test_the_beat_task_runs_one_round_and_is_scheduled(fleet, settings):
    settings.DELIVERY_RETENTION_DAYS = 30
    settings.INACTIVE_CLIENT_DAYS = 0
    run_with(fleet, age_days=45)
    assert "deliveries removed 250" in prune_retained_data()
    assert retention_prune().deliveries_removed == 0
    schedule = django_settings.CELERY_BEAT_SCHEDULE["retention-prune"]
    assert schedule["task"] == "updates_app.tasks.prune_retained_data"


def test_a_retired_client_that_comes_back_registers_again(client, domain, settings):
    from tests.agent_api.conftest import SECRET

    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.INACTIVE_CLIENT_DAYS = 30
    body = {"enrollment_secret": SECRET, "hostname": "laptop", "ip_address": "127.0.0.9", "listener_port": 9}
    data = client.post("/agent/v1/register", body, content_type="application/json").json()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {data['token']}"}
    Client.objects.filter(guid=data["client_id"]).update(last_contact_at=NOW - dt.timedelta(days=60))
    assert inactive_clients_retire(now=NOW) == 1

    answer = client.post("/agent/v1/checkin", {"event": "heartbeat"}, content_type="application/json", **auth)
    assert answer.status_code == 403 and answer.json()["code"] == "register_again"
    again = client.post("/agent/v1/register", body, content_type="application/json")
    assert again.status_code == 201
    assert Client.objects.active().filter(hostname="laptop").count() == 1
    assert compliance_counts().clients == 1
