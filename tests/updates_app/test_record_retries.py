"""Recording a batch's outcomes survives a lost database connection, a bounded number of times."""

from __future__ import annotations

import pytest
from django.db import OperationalError, transaction

from agents_app.models import Client
from updates_app import tasks
from updates_app.engine import claim as engine_claim
from updates_app.engine.claim import deliveries_claim
from updates_app.engine.runs import deliveries_create
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun


@pytest.fixture
def flaky_record(monkeypatch):
    """Make the first ``failures`` writes of outcomes fail as a terminated connection does; record the waits."""
    state = {"failures": 0, "calls": 0, "waits": []}
    real = engine_claim.deliveries_record_outcomes

    def record(**kwargs):
        state["calls"] += 1
        if state["calls"] <= state["failures"]:
            raise OperationalError("terminating connection due to administrator command")
        return real(**kwargs)

    monkeypatch.setattr(tasks, "deliveries_record_outcomes", record)
    monkeypatch.setattr(tasks.time, "sleep", state["waits"].append)
    return state


def claimed_batch(make_client, n: int = 3) -> str:
    for _ in range(n):
        make_client()
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=run, clients=Client.objects.all())
    return deliveries_claim(limit=100).token


@pytest.mark.django_db(transaction=True)
def test_a_failed_write_is_retried_with_backoff_and_each_agent_is_notified_once(make_client, flaky_record):
    flaky_record["failures"] = 2
    token = claimed_batch(make_client)
    assert tasks.send_batch(token) == 3
    assert flaky_record["calls"] == 3
    assert flaky_record["waits"] == [0.5, 1.0]
    assert set(Delivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.DELIVERED, 1)}


@pytest.mark.django_db(transaction=True)
def test_after_five_failed_tries_the_rows_wait_for_their_lease(make_client, flaky_record):
    flaky_record["failures"] = 100
    token = claimed_batch(make_client)
    with pytest.raises(OperationalError):
        tasks.send_batch(token)
    assert flaky_record["calls"] == tasks.RECORD_TRIES == 5
    assert flaky_record["waits"] == [0.5, 1.0, 2.0, 4.0]
    # Given back by their lease, as before: the next claim after it takes them over.
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENDING}


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_the_write_is_not_retried(make_client, flaky_record):
    flaky_record["failures"] = 1
    token = claimed_batch(make_client)
    with pytest.raises(OperationalError), transaction.atomic():
        tasks.send_batch(token)
    assert flaky_record["calls"] == 1
    assert flaky_record["waits"] == []
