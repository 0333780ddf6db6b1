"""The pull side: check-in handover and the restart path."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus
from tests.updates_app.engine import engine_round
from updates_app.engine.claim import deliveries_claim
from updates_app.engine.handover import actions_for_checkin
from updates_app.engine.runs import deliveries_create
from updates_app.models import (
    AutoUpdateSettings,
    Component,
    ComponentVersion,
    Delivery,
    DeliveryStatus,
    RunTrigger,
    UpdateRun,
)


@pytest.fixture
def latest_versions(db):
    now = timezone.now()
    virus = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
    engine = Component.objects.create(slug="scan_engine", name="Virus Scan Engine", kind="engine")
    for number in (100, 101):
        ComponentVersion.objects.create(component=virus, number=number, sha256="0" * 64, released_at=now)
    ComponentVersion.objects.create(component=engine, number=7, sha256="1" * 64, released_at=now)
    return {"virus_pattern": 101, "scan_engine": 7}


def run_for(client, *, when=None) -> UpdateRun:
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=run, clients=Client.objects.filter(pk=client.pk), next_attempt_at=when)
    return run


@pytest.mark.django_db
def test_an_unreachable_client_gets_its_delivery_in_the_check_in_answer(make_client):
    client = make_client(status=ConnectionStatus.UNREACHABLE)
    run = run_for(client)
    actions = actions_for_checkin(client, event="poll", reported_versions={})
    delivery = Delivery.objects.get(run=run)
    assert actions == [{"type": "update", "delivery_id": delivery.pk, "run_id": run.pk, "scan_after": False}]
    assert delivery.status == DeliveryStatus.DELIVERED
    # Handed over once only.
    assert actions_for_checkin(client, event="poll", reported_versions={}) == []


@pytest.mark.django_db
def test_a_retrying_delivery_is_handed_over_at_once_and_not_pushed_again(make_client):
    client = make_client(down=True)
    run = run_for(client)
    engine_round()
    assert Delivery.objects.get(run=run).status == DeliveryStatus.RETRYING
    assert [a["run_id"] for a in actions_for_checkin(client, event="heartbeat", reported_versions={})] == [run.pk]
    delivery = Delivery.objects.get(run=run)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)


@pytest.mark.django_db
def test_a_pending_delivery_planned_for_later_stays_planned(make_client):
    client = make_client()
    run_for(client, when=timezone.now() + dt.timedelta(minutes=30))
    assert actions_for_checkin(client, event="heartbeat", reported_versions={}) == []


@pytest.mark.django_db
def test_a_row_being_sent_is_left_to_the_worker(make_client):
    client = make_client()
    run_for(client)
    deliveries_claim(limit=10)
    assert actions_for_checkin(client, event="poll", reported_versions={}) == []
    assert Delivery.objects.get().status == DeliveryStatus.SENDING


@pytest.mark.django_db
def test_an_outdated_client_restarting_is_told_to_update_even_after_its_deliveries_gave_up(
    make_client, latest_versions
):
    client = make_client()
    Delivery.objects.create(
        run=UpdateRun.objects.create(trigger=RunTrigger.EVENT),
        client=client,
        status=DeliveryStatus.GAVE_UP,
        attempts=5,
        next_attempt_at=timezone.now(),
    )
    actions = actions_for_checkin(client, event="restart", reported_versions={"virus_pattern": "100", "scan_engine": 7})
    [action] = actions
    restart = Delivery.objects.get(pk=action["delivery_id"])
    assert restart.run.trigger == RunTrigger.RESTART
    assert restart.status == DeliveryStatus.DELIVERED
    assert action == {"type": "update", "delivery_id": restart.pk, "run_id": restart.run_id, "scan_after": False}
    # A second restart the same day reuses the day's record.
    again = actions_for_checkin(client, event="restart", reported_versions={})
    assert [a["delivery_id"] for a in again] == [restart.pk]
    assert UpdateRun.objects.filter(trigger=RunTrigger.RESTART).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event", "reported", "status", "option"),
    [
        ("restart", {"virus_pattern": 101, "scan_engine": "7"}, ConnectionStatus.ONLINE, True),  # up to date
        ("restart", {"virus_pattern": 102, "scan_engine": 7}, ConnectionStatus.ONLINE, True),  # ahead: inconsistent
        ("heartbeat", {}, ConnectionStatus.ONLINE, True),  # not a restart
        ("restart", {}, ConnectionStatus.ROAMING, True),  # roaming clients are excluded
        ("restart", {}, ConnectionStatus.ONLINE, False),  # option off
    ],
)
def test_the_restart_path_only_applies_when_it_should(make_client, latest_versions, event, reported, status, option):
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": option})
    client = make_client(status=status)
    assert actions_for_checkin(client, event=event, reported_versions=reported) == []
    assert not Delivery.objects.exists()


@pytest.mark.django_db
def test_the_restart_path_asks_for_a_scan_when_that_option_is_on(make_client, latest_versions):
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"scan_after_update": True})
    client = make_client()
    [action] = actions_for_checkin(client, event="restart", reported_versions={"virus_pattern": "100"})
    assert action["scan_after"] is True


@pytest.mark.django_db
def test_a_restart_supersedes_planned_deliveries(make_client, latest_versions):
    client = make_client()
    planned = run_for(client, when=timezone.now() + dt.timedelta(hours=1))
    actions_for_checkin(client, event="restart", reported_versions={})
    assert Delivery.objects.get(run=planned).status == DeliveryStatus.SUPERSEDED


@pytest.mark.django_db
def test_a_row_made_without_the_engine_follows_its_runs_scan_request(make_client):
    # Other parts may create Delivery rows directly: the run's wish applies.
    client = make_client(status=ConnectionStatus.UNREACHABLE)
    run = UpdateRun.objects.create(trigger=RunTrigger.SCHEDULE, scan_after=True)
    delivery = Delivery.objects.create(run=run, client=client, next_attempt_at=timezone.now(), push=False)
    [action] = actions_for_checkin(client, event="poll", reported_versions={})
    assert action == {"type": "update", "delivery_id": delivery.pk, "run_id": run.pk, "scan_after": True}
