"""Claims, sends and their records; event runs; supersede; cancel."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus
from tests.updates_app.engine import engine_round
from updates_app.components import component_version_announce
from updates_app.engine.claim import deliveries_claim, deliveries_record_outcomes
from updates_app.engine.runs import deliveries_create, run_cancel, run_create_manual
from updates_app.models import (
    AutoUpdateSettings,
    Component,
    ComponentVersion,
    Delivery,
    DeliveryStatus,
    RunTrigger,
    UpdateRun,
)
from updates_app.tasks import send_batch

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def new_version(number: int = 100) -> ComponentVersion:
    component, _ = Component.objects.get_or_create(slug="virus_pattern", defaults={"name": "Virus Pattern"})
    return ComponentVersion.objects.create(component=component, number=number, sha256="0" * 64, released_at=NOW)


def manual_run(clients) -> UpdateRun:
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=run, clients=clients)
    return run


@pytest.mark.django_db
def test_a_2xx_answer_is_delivered_with_a_signed_payload(make_client):
    client = make_client()
    run = manual_run(Client.objects.all())
    assert engine_round() == 1
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 1
    assert delivery.delivered_at is not None
    # The fleet verified the Standard Webhooks signature with the client's key.
    assert client.agent.rejected == 0
    [(message_id, _, payload)] = client.agent.received
    assert message_id == f"dlv_{delivery.pk}"
    assert payload == {"type": "update", "delivery_id": delivery.pk, "run_id": run.pk, "scan_after": False}


@pytest.mark.django_db
def test_a_slow_listener_times_out_and_is_retried(make_client, settings):
    settings.NOTIFY_TIMEOUT_SECONDS = 1
    client = make_client(delay=3)
    run = manual_run(Client.objects.all())
    started = time.monotonic()
    engine_round()
    assert time.monotonic() - started < 2.5
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == DeliveryStatus.RETRYING
    assert delivery.last_error.startswith("timed out")
    assert client.agent.received == []


@pytest.mark.django_db
def test_a_batch_sends_and_records_in_a_constant_number_of_queries(make_client):
    def queries_for(n: int) -> int:
        Delivery.objects.all().delete()
        for i in range(n):
            make_client(failures=1 if i % 3 == 0 else 0, down=i % 5 == 0)
        manual_run(Client.objects.all())
        claim = deliveries_claim(limit=1000)
        with CaptureQueriesContext(connection) as ctx:
            assert send_batch(claim.token) == n
        Client.objects.all().delete()
        return len(ctx.captured_queries)

    assert queries_for(5) == queries_for(40)


@pytest.mark.django_db
def test_the_claim_counts_the_attempt_before_sending(make_client):
    make_client()
    run = manual_run(Client.objects.all())
    claim = deliveries_claim(limit=10)
    delivery = Delivery.objects.get(run=run)
    assert (claim.delivery_ids, claim.resent) == ([delivery.pk], 0)
    assert (delivery.status, delivery.attempts, delivery.claim_token) == (DeliveryStatus.SENDING, 1, claim.token)
    # Claimed rows are not claimed again while the lease runs.
    assert deliveries_claim(limit=10) is None


@pytest.mark.django_db
def test_a_row_whose_worker_died_is_sent_again_after_the_lease_as_the_same_attempt(make_client, settings):
    settings.NOTIFY_LEASE_SECONDS = 60
    client = make_client()
    manual_run(Client.objects.all())
    with time_machine.travel(NOW, tick=False) as clock:
        Delivery.objects.update(next_attempt_at=NOW)
        dead = deliveries_claim(limit=10)  # the worker holding this claim dies
        clock.move_to(NOW + dt.timedelta(seconds=59))
        assert engine_round() == 0
        clock.move_to(NOW + dt.timedelta(seconds=60))
        assert engine_round() == 1
        # The dead worker's late outcome (if it ever came) is ignored.
        deliveries_record_outcomes(token=dead.token, outcomes={dead.delivery_ids[0]: "HTTP 500"})
    delivery = Delivery.objects.get()
    # The first attempt, sent twice: no attempt used up by the lost worker.
    assert (delivery.status, delivery.attempts, delivery.lost_leases) == (DeliveryStatus.DELIVERED, 1, 1)
    assert client.agent.message_ids == [f"dlv_{delivery.pk}"]


@pytest.mark.django_db
def test_a_worker_lost_on_the_last_attempt_sends_that_attempt_again_never_a_sixth(make_client, settings):
    settings.NOTIFY_LEASE_SECONDS = 60
    client = make_client(failures=1)
    manual_run(Client.objects.all())
    Delivery.objects.update(attempts=4)
    with time_machine.travel(NOW, tick=False) as clock:
        Delivery.objects.update(next_attempt_at=NOW)
        deliveries_claim(limit=10)  # the fifth attempt; its worker dies
        clock.move_to(NOW + dt.timedelta(minutes=1))
        assert engine_round() == 1  # the fifth attempt again: it fails (503)
        clock.move_to(NOW + dt.timedelta(hours=2))
        assert engine_round() == 0
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.lost_leases) == (DeliveryStatus.GAVE_UP, 5, 1)
    assert delivery.last_error == "HTTP 503"
    assert client.agent.received == []


@pytest.mark.django_db
def test_a_notification_that_loses_its_worker_every_time_gives_up_after_the_cap(make_client, settings):
    settings.NOTIFY_LEASE_SECONDS = 60
    settings.NOTIFY_MAX_LOST_LEASES = 3
    make_client()
    manual_run(Client.objects.all())
    with time_machine.travel(NOW, tick=False) as clock:
        Delivery.objects.update(next_attempt_at=NOW)
        for minute in range(4):
            clock.move_to(NOW + dt.timedelta(minutes=minute))
            assert deliveries_claim(limit=10) is not None  # claimed, and its worker dies every time
        clock.move_to(NOW + dt.timedelta(minutes=4))
        assert engine_round() == 0
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.lost_leases) == (DeliveryStatus.GAVE_UP, 1, 3)
    assert delivery.last_error == (
        "gave up: the worker sending it stopped answering 4 times without recording an outcome"
    )
    assert (delivery.lease_expires_at, delivery.claim_token) == (None, "")


@pytest.mark.django_db
def test_batches_are_claimed_oldest_first_and_never_overlap(make_client):
    for _ in range(7):
        make_client()
    manual_run(Client.objects.all())
    first = deliveries_claim(limit=3)
    second = deliveries_claim(limit=3)
    third = deliveries_claim(limit=3)
    assert len(first.delivery_ids) == 3 and len(second.delivery_ids) == 3 and len(third.delivery_ids) == 1
    assert not set(first.delivery_ids) & set(second.delivery_ids)
    assert deliveries_claim(limit=3) is None


@pytest.mark.django_db
def test_unreachable_clients_are_never_pushed_to(make_client):
    client = make_client(status=ConnectionStatus.UNREACHABLE)
    run = manual_run(Client.objects.all())
    assert engine_round() == 0
    delivery = Delivery.objects.get(run=run)
    assert (delivery.push, delivery.status) == (False, DeliveryStatus.PENDING)
    assert client.agent.received == []


# --- Event-triggered runs


@pytest.mark.django_db
def test_a_new_version_notifies_online_and_unreachable_clients(make_client, django_capture_on_commit_callbacks):
    online = make_client(status=ConnectionStatus.ONLINE)
    unreachable = make_client(status=ConnectionStatus.UNREACHABLE)
    make_client(status=ConnectionStatus.OFFLINE)
    make_client(status=ConnectionStatus.ROAMING)
    make_client(status=ConnectionStatus.ONLINE, revoked_at=NOW)
    with django_capture_on_commit_callbacks():
        version = new_version()
        component_version_announce(version=version)
    run = UpdateRun.objects.get()
    assert (run.trigger, run.component_version) == (RunTrigger.EVENT, version)
    pushes = dict(run.deliveries.values_list("client_id", "push"))
    assert pushes == {online.pk: True, unreachable.pk: False}


@pytest.mark.django_db
def test_include_roaming_and_offline_adds_them_and_roaming_clients_are_not_asked_to_scan(make_client):
    AutoUpdateSettings.objects.update_or_create(
        pk=1, defaults={"include_roaming_offline": True, "scan_after_update": True}
    )
    online = make_client(status=ConnectionStatus.ONLINE)
    offline = make_client(status=ConnectionStatus.OFFLINE)
    roaming = make_client(status=ConnectionStatus.ROAMING)
    component_version_announce(version=new_version())
    run = UpdateRun.objects.get()
    assert run.scan_after
    no_scan = dict(run.deliveries.values_list("client_id", "no_scan"))
    assert no_scan == {online.pk: False, offline.pk: False, roaming.pk: True}
    engine_round()
    assert online.agent.received[0][2]["scan_after"] is True
    assert roaming.agent.received[0][2]["scan_after"] is False


@pytest.mark.django_db
def test_with_the_option_off_a_new_version_starts_no_run(make_client):
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"notify_on_download": False})
    make_client()
    component_version_announce(version=new_version())
    assert not UpdateRun.objects.exists()


@pytest.mark.django_db
def test_a_newer_run_supersedes_the_older_undelivered_one(make_client):
    waiting = make_client(down=True)
    done = make_client()
    older = manual_run(Client.objects.all())
    engine_round()  # waiting -> retrying, done -> delivered
    newer = manual_run(Client.objects.all())
    statuses = dict(older.deliveries.values_list("client_id", "status"))
    assert statuses == {waiting.pk: DeliveryStatus.SUPERSEDED, done.pk: DeliveryStatus.DELIVERED}
    assert set(newer.deliveries.values_list("status", flat=True)) == {DeliveryStatus.PENDING}


@pytest.mark.django_db
def test_cancelling_a_run_stops_its_pending_deliveries(make_client, staff_user):
    make_client(down=True)
    make_client()
    make_client()
    run = run_create_manual(created_by=staff_user, clients=Client.objects.all())
    first = Delivery.objects.filter(run=run).order_by("pk").first()
    Delivery.objects.filter(pk=first.pk).update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now())
    assert run_cancel(run=run, cancelled_by=staff_user) == 2
    assert run_cancel(run=run, cancelled_by=staff_user) == 0
    assert engine_round() == 0
    assert sorted(run.deliveries.values_list("status", flat=True)) == [
        DeliveryStatus.CANCELLED,
        DeliveryStatus.CANCELLED,
        DeliveryStatus.DELIVERED,
    ]


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_on_a_real_worker_delivers_an_event_run(celery_worker, make_client):
    clients = [make_client() for _ in range(6)]
    down = make_client(down=True)
    component_version_announce(version=new_version())
    # The run kicks the dispatcher on commit; the worker claims and sends.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not Delivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING]).exists():
            break
        time.sleep(0.1)
    statuses = dict(Delivery.objects.values_list("client_id", "status"))
    assert statuses == {c.pk: DeliveryStatus.DELIVERED for c in clients} | {down.pk: DeliveryStatus.RETRYING}
    assert all(len(c.agent.received) == 1 for c in clients)


@pytest.mark.django_db
def test_a_delivery_planned_inside_a_window_is_sent_when_due_and_retried_under_the_same_rule(make_client):
    # How scheduled runs use the engine: rows with spread next_attempt_at.
    client = make_client(failures=1)
    run = UpdateRun.objects.create(trigger=RunTrigger.SCHEDULE)
    with time_machine.travel(NOW, tick=False) as clock:
        deliveries_create(run=run, clients=Client.objects.all(), next_attempt_at=NOW + dt.timedelta(minutes=40))
        assert engine_round() == 0
        clock.move_to(NOW + dt.timedelta(minutes=40))
        assert engine_round() == 1
        clock.move_to(NOW + dt.timedelta(minutes=54))
        assert engine_round() == 0
        clock.move_to(NOW + dt.timedelta(minutes=55))
        assert engine_round() == 1
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert len(client.agent.received) == 1


@pytest.mark.django_db
def test_a_client_the_server_may_not_reach_any_more_is_held_for_check_in(make_client, settings):
    # Its address fell into AGENT_UNREACHABLE_NETWORKS after the run was made.
    client = make_client()
    run = manual_run(Client.objects.all())
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.0.0/8"]
    assert engine_round() == 0
    delivery = Delivery.objects.get(run=run)
    assert (delivery.status, delivery.push, delivery.attempts) == (DeliveryStatus.PENDING, False, 0)
    assert "check-in" in delivery.last_error
    assert client.agent.received == []


@pytest.mark.django_db
def test_a_run_for_nobody_creates_no_rows(make_client):
    make_client()
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    assert deliveries_create(run=run, clients=Client.objects.filter(pk__in=[])) == 0
    assert deliveries_create(run=run, clients=Client.objects.none()) == 0
    assert not run.deliveries.exists()
