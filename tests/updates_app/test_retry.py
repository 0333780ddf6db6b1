"""The retry rule (SPEC 3.3) under a controlled clock, against real listeners."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from agents_app.models import Client
from tests.updates_app.engine import engine_round
from updates_app.engine import retry
from updates_app.engine.runs import deliveries_create
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def minutes_since_start(moment: float) -> float:
    return (dt.datetime.fromtimestamp(moment, dt.UTC) - START).total_seconds() / 60


def _run_for(client: Client) -> Delivery:
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=run, clients=Client.objects.filter(pk=client.pk))
    return Delivery.objects.get(run=run)


def test_the_rule_defaults_to_five_attempts_fifteen_minutes_apart(settings):
    assert settings.NOTIFY_MAX_ATTEMPTS == 5
    assert settings.NOTIFY_RETRY_INTERVAL_SECONDS == 900
    assert retry.max_attempts() == 5
    assert retry.retry_interval() == dt.timedelta(minutes=15)


@pytest.mark.django_db
def test_a_failing_listener_is_tried_at_0_15_30_45_60_minutes_and_never_again(make_client):
    # The agent answers 503 forever: every attempt reaches it and fails.
    client = make_client(failures=10_000)
    seen: list[float] = []
    with time_machine.travel(START, tick=False) as clock:
        delivery = _run_for(client)
        # Probe every 5 minutes for two hours; record when an attempt was posted.
        for step in range(0, 121, 5):
            clock.move_to(START + dt.timedelta(minutes=step))
            if engine_round():
                seen.append(step)
            delivery.refresh_from_db()
            # Just before the next due time nothing is sent.
            clock.move_to(START + dt.timedelta(minutes=step + 4, seconds=59))
            assert engine_round() == 0
    assert seen == [0, 15, 30, 45, 60]
    assert delivery.status == DeliveryStatus.GAVE_UP
    assert delivery.attempts == 5
    assert delivery.last_error == "HTTP 503"


@pytest.mark.django_db
def test_a_refused_connection_is_retried_and_recorded(make_client):
    client = make_client(down=True)
    with time_machine.travel(START, tick=False):
        delivery = _run_for(client)
        assert engine_round() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    assert delivery.attempts == 1
    assert delivery.next_attempt_at == START + dt.timedelta(minutes=15)
    assert delivery.last_error.startswith("could not connect")


@pytest.mark.django_db
def test_a_client_that_answers_on_the_third_attempt_gets_no_fourth(make_client):
    client = make_client(failures=2)
    with time_machine.travel(START, tick=False) as clock:
        delivery = _run_for(client)
        for minute in range(0, 121, 15):
            clock.move_to(START + dt.timedelta(minutes=minute))
            engine_round()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 3
    assert delivery.delivered_at == START + dt.timedelta(minutes=30)
    # The agent accepted exactly one notification, at the 30-minute attempt.
    assert [round(minutes_since_start(t)) for _, t, _ in client.agent.received] == [30]
    assert client.agent.message_ids == [f"dlv_{delivery.pk}"]


@pytest.mark.django_db
def test_interval_and_attempts_follow_the_settings(make_client, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 2
    settings.NOTIFY_RETRY_INTERVAL_SECONDS = 60
    client = make_client(down=True)
    with time_machine.travel(START, tick=False) as clock:
        delivery = _run_for(client)
        assert engine_round() == 1
        clock.move_to(START + dt.timedelta(seconds=59))
        assert engine_round() == 0
        clock.move_to(START + dt.timedelta(seconds=60))
        assert engine_round() == 1
        clock.move_to(START + dt.timedelta(hours=5))
        assert engine_round() == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.GAVE_UP, 2)
