"""A worker lost before recording its batch's outcomes costs clients nothing (updates_app/engine/retry.py).

The same attempt is sent again after the lease, no attempt is used up, the
re-sends are capped, and the run page, /metrics and /health/ready say what
waits. Frozen clocks here; tests/updates_app/test_worker_crash.py kills a real
worker process.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse
from django.utils.html import strip_tags
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from agents_app.models import Client, Domain
from tests.updates_app.engine import engine_round
from updates_app.engine import retry
from updates_app.engine.claim import deliveries_claim, deliveries_give_up_exhausted, deliveries_record_outcomes
from updates_app.engine.runs import deliveries_create
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=60)


@pytest.fixture
def short_lease(settings):
    settings.NOTIFY_LEASE_SECONDS = int(LEASE.total_seconds())
    settings.NOTIFY_DISPATCH_INTERVAL_SECONDS = 3
    settings.NOTIFY_MAX_ATTEMPTS = 5
    settings.NOTIFY_MAX_LOST_LEASES = 3


def words(response) -> str:
    """The page's text without its tags, whitespace folded, as a reader sees it."""
    return " ".join(strip_tags(response.content.decode()).split())


def manual_run() -> UpdateRun:
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=run, clients=Client.objects.all(), next_attempt_at=NOW)
    return run


@pytest.mark.django_db
def test_the_run_page_says_what_a_claim_holds_and_when_it_is_sent_again(viewer_client, make_client, short_lease):
    clients = [make_client() for _ in range(3)]
    with time_machine.travel(NOW, tick=False) as clock:
        run = manual_run()
        url = reverse("updates:run-detail", args=[run.pk])
        deliveries_claim(limit=10)  # the worker holding this claim is killed before it records anything
        # While the lease runs: being sent, and sent again when the lease runs out should the worker be gone.
        page = words(viewer_client.get(url))
        assert "3 notifications are being sent by a worker" in page
        assert "sent again by 2026-03-02 09:01:03 UTC (when its claim runs out)" in page
        assert "stopped answering" not in page
        # After it: the wait is said, on the page and in the fragment the page refreshes every 3 seconds.
        clock.move_to(NOW + LEASE + dt.timedelta(seconds=20))
        for answer in (viewer_client.get(url), viewer_client.get(url, {"partial": "claims"})):
            text = words(answer)
            assert "3 notifications wait for a worker that stopped answering" in text
            assert "its claim ran out at 2026-03-02 09:01:00 UTC with no outcome recorded" in text
            assert "They are sent again by 2026-03-02 09:01:23 UTC" in text
            assert "without using up an attempt" in text
        # The next round sends them again, and the page has nothing more to say.
        assert engine_round() == 3
        page = words(viewer_client.get(url))
        assert "stopped answering" not in page and "being sent" not in page
    assert {(d.status, d.attempts, d.lost_leases) for d in run.deliveries.all()} == {(DeliveryStatus.DELIVERED, 1, 1)}
    assert all(c.agent.message_ids == [f"dlv_{c.deliveries.get().pk}"] for c in clients)


@pytest.mark.django_db
def test_a_notification_given_up_after_lost_workers_says_why_on_the_page(viewer_client, make_client, short_lease):
    make_client()
    with time_machine.travel(NOW, tick=False) as clock:
        run = manual_run()
        for loss in range(4):
            clock.move_to(NOW + loss * LEASE)
            deliveries_claim(limit=10)
        clock.move_to(NOW + 4 * LEASE)
        page = words(viewer_client.get(reverse("updates:run-detail", args=[run.pk])))
        assert "1 notification waits for a worker that stopped answering" in page
        assert "1 notification lost its worker 4 times and is given up instead" in page
        assert engine_round() == 0
    delivery = run.deliveries.get()
    assert (delivery.status, delivery.attempts, delivery.lost_leases) == (DeliveryStatus.GAVE_UP, 1, 3)


OK, FAIL, LOST = "delivered", "failed", "worker lost"


@pytest.fixture
def lone_client(db):
    return Client.objects.create(domain=Domain.objects.create(name="Lone"), hostname="lone", ip_address="127.0.0.1")


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.sampled_from([OK, FAIL, LOST]), max_size=14))
def test_whatever_befalls_a_notification_it_ends_with_no_sixth_attempt_and_lost_workers_use_none(
    lone_client, short_lease, events
):
    """Any sequence of answers and lost workers, then a worker lost every time: the rule holds at every step."""
    most, cap = retry.max_attempts(), retry.max_lost_leases()
    with transaction.atomic():
        run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
        Delivery.objects.create(run=run, client=lone_client, next_attempt_at=NOW)
        now, attempts, resends, lost_before = NOW, 0, 0, False
        for event in [*events, *[LOST] * (most + cap + 1)]:
            deliveries_give_up_exhausted(now=now)
            claim = deliveries_claim(limit=1, now=now)
            if claim is None:
                break
            # A claim after a lost worker is the same attempt again; any other starts the next attempt.
            if lost_before:
                resends += 1
            else:
                attempts += 1
            row = Delivery.objects.get(run=run)
            assert (row.attempts, row.lost_leases, claim.resent) == (attempts, resends, int(lost_before))
            assert row.attempts <= most and row.lost_leases <= cap
            lost_before = event == LOST
            if event == OK:
                deliveries_record_outcomes(token=claim.token, outcomes={row.pk: None}, now=now)
            elif event == FAIL:
                deliveries_record_outcomes(token=claim.token, outcomes={row.pk: "HTTP 503"}, now=now)
                now += retry.retry_interval()
            else:
                now += LEASE
        else:
            pytest.fail("still sent after a worker was lost every time: a poison notification would loop")
        final = Delivery.objects.get(run=run)
        # Nothing lost, nothing looping: it ended, and within the attempts and re-sends the rule allows.
        assert final.status in (DeliveryStatus.DELIVERED, DeliveryStatus.GAVE_UP)
        assert (final.attempts, final.lost_leases) == (attempts, resends)
        assert attempts <= most and resends <= cap
        if final.status == DeliveryStatus.GAVE_UP:
            assert attempts == most or resends == cap
        transaction.set_rollback(True)
