"""Reliability with real processes: a SIGKILLed worker, an emptied Redis, two workers at once.

These need Redis (the broker shared with worker processes) and PostgreSQL (a
database other processes can open; the SQLite test database is in memory).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from agents_app.models import Client
from updates_app.engine.claim import deliveries_claim
from updates_app.engine.runs import deliveries_create
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.tasks import dispatch_deliveries

from .workers import Worker

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

UNFINISHED = [DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING]


def new_run() -> UpdateRun:
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=run, clients=Client.objects.all())
    return run


def play_beat_until_done(*, timeout: float) -> None:
    """Enqueue the dispatcher every half second until no delivery is unfinished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Delivery.objects.filter(status__in=UNFINISHED).exists():
            return
        dispatch_deliveries.delay()
        time.sleep(0.5)
    left = Counter(Delivery.objects.values_list("status", flat=True))
    raise AssertionError(f"deliveries still unfinished after {timeout} s: {left}")


@pytest.fixture
def workers(tmp_path, private_queue):
    started: list[Worker] = []

    def start(name: str, **env: str) -> Worker:
        worker = Worker(tmp_path, name, queue=private_queue, **env)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_only_the_interrupted_attempts_using_none(
    make_client, workers
):
    # given: slow agents, so a batch of 20 takes about 1.5 s at 4 in flight
    agents = [make_client(delay=0.3).agent for _ in range(30)]
    down = [make_client(down=True) for _ in range(2)]
    small_batches = {"NOTIFY_BATCH_SIZE": "20", "NOTIFY_CONCURRENCY": "4"}
    first = workers("first", **small_batches)
    run = new_run()
    dispatch_deliveries.delay()
    # when: the worker is SIGKILLed while its first batch is half posted
    deadline = time.monotonic() + 15
    while sum(len(a.received) for a in agents) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()
    received_before_kill = sum(len(a.received) for a in agents)
    assert 6 <= received_before_kill < 20
    assert Delivery.objects.filter(status=DeliveryStatus.SENDING).exists()
    # Its own claims get a long lease: on a busy machine a batch may wait in the queue
    # longer than 3 s, and only the killed worker's claims are to run out here.
    workers("second", **small_batches, NOTIFY_LEASE_SECONDS="60")
    play_beat_until_done(timeout=90)
    # then: everything finished, nothing beyond the maximum
    deliveries = {d.client.listener_port: d for d in run.deliveries.select_related("client")}
    assert all(d.attempts <= 5 for d in deliveries.values())
    assert {deliveries[c.listener_port].status for c in down} == {DeliveryStatus.GAVE_UP}
    assert {deliveries[c.listener_port].attempts for c in down} == {5}
    # The batch being posted when the worker died: the first 20 rows claimed.
    killed_batch = set(run.deliveries.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:20])
    repeated = set()
    for agent in agents:
        delivery = deliveries[agent.port]
        # Delivered on the first attempt, however many times the kill made it be sent.
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)
        copies = Counter(agent.message_ids)[f"dlv_{delivery.pk}"]
        assert copies in (1, 2)
        if copies == 2:
            repeated.add(delivery.pk)
    # The killed batch, and only it, was sent again after its lease, as the same attempt.
    sent_again = {d.pk for d in deliveries.values() if d.lost_leases == 1}
    assert sent_again == killed_batch
    assert {d.lost_leases for d in deliveries.values()} == {0, 1}
    # Only attempts cut short by the kill were seen twice.
    assert repeated and repeated <= killed_batch


@pytest.mark.django_db(transaction=True)
def test_emptying_the_broker_while_deliveries_wait_loses_nothing(make_client, workers, private_queue, settings):
    import redis

    agents = [make_client().agent for _ in range(30)]
    settings.NOTIFY_BATCH_SIZE = 10
    settings.NOTIFY_MAX_BATCHES_IN_FLIGHT = 2
    settings.NOTIFY_LEASE_SECONDS = 3
    run = new_run()
    # given: two batches claimed and queued in Redis, ten rows still pending
    assert dispatch_deliveries() == 20
    broker = redis.Redis.from_url(settings.REDIS_URL)
    # The test's own queue, under this test process's key prefix (tests/worker_isolation.py):
    # other test workers and other users share the server, so not FLUSHALL.
    queue_key = f"{settings.REDIS_KEY_PREFIX}{private_queue}"
    assert broker.llen(queue_key) >= 2
    # when: Redis restarts empty (what it held for this test)
    broker.delete(queue_key)
    assert broker.llen(queue_key) == 0
    workers("after-flush", NOTIFY_BATCH_SIZE="10")
    play_beat_until_done(timeout=90)
    # then: every delivery arrived once; the lost batches came back after their lease, as
    # the same first attempt (the broker lost them, not the clients)
    statuses = Counter(run.deliveries.values_list("status", flat=True))
    assert statuses == {DeliveryStatus.DELIVERED: 30}
    assert all(len(agent.received) == 1 for agent in agents)
    assert Counter(run.deliveries.values_list("attempts", "lost_leases")) == {(1, 1): 20, (1, 0): 10}


@pytest.mark.django_db(transaction=True)
def test_two_workers_dispatching_at_once_never_attempt_a_delivery_twice(make_client, workers):
    agents = [make_client().agent for _ in range(200)]
    env = {"NOTIFY_BATCH_SIZE": "10", "NOTIFY_MAX_BATCHES_IN_FLIGHT": "40", "NOTIFY_LEASE_SECONDS": "60"}
    workers("one", **env)
    workers("two", **env)
    run = new_run()
    for _ in range(8):
        dispatch_deliveries.delay()
    play_beat_until_done(timeout=90)
    assert Counter(run.deliveries.values_list("status", "attempts")) == {(DeliveryStatus.DELIVERED, 1): 200}
    assert all(len(agent.received) == 1 for agent in agents)


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_postgresql_skip_each_others_rows(make_client):
    for _ in range(60):
        make_client()
    new_run()
    barrier = threading.Barrier(4)
    claimed: list[list[int]] = []

    def claim_all() -> None:
        mine: list[int] = []
        barrier.wait()
        while (claim := deliveries_claim(limit=5)) is not None:
            mine += claim.delivery_ids
        claimed.append(mine)
        connection.close()

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [pk for mine in claimed for pk in mine]
    assert len(every) == len(set(every)) == 60
    assert sum(1 for mine in claimed if mine) >= 2


def terminate_other_connections() -> int:
    """pg_terminate_backend every other connection to the test database (the worker's); returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_database_connection_is_terminated_mid_batch_records_its_outcomes_once(make_client, workers):
    # given: slow agents (a batch of 20 takes about 1.5 s at 4 in flight) and
    # a lease long enough that only a lost write could bring a batch back
    agents = [make_client(delay=0.3).agent for _ in range(30)]
    down = [make_client(down=True) for _ in range(2)]
    worker = workers("terminated", NOTIFY_BATCH_SIZE="20", NOTIFY_CONCURRENCY="4", NOTIFY_LEASE_SECONDS="8")
    run = new_run()
    dispatch_deliveries.delay()
    # when: the worker's database connection is terminated while it posts its
    # first batch, so the write of that batch's outcomes meets a dead connection
    deadline = time.monotonic() + 15
    while sum(len(a.received) for a in agents) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert terminate_other_connections() >= 1
    assert sum(len(a.received) for a in agents) < 20
    play_beat_until_done(timeout=90)
    # then
    deliveries = {d.client.listener_port: d for d in run.deliveries.select_related("client")}
    healthy = [deliveries[a.port] for a in agents]
    lost = sum(d.status != DeliveryStatus.DELIVERED for d in healthy)
    sixth_attempts = sum(d.attempts > 5 for d in deliveries.values())
    duplicates = sum(len(a.received) - 1 for a in agents)
    print(f"connection terminated mid-batch: lost={lost} sixth_attempts={sixth_attempts} duplicates={duplicates}")
    assert (lost, sixth_attempts, duplicates) == (0, 0, 0)
    assert {d.attempts for d in healthy} == {1}
    assert {(deliveries[c.listener_port].status, deliveries[c.listener_port].attempts) for c in down} == {
        (DeliveryStatus.GAVE_UP, 5)
    }
    # The fault really hit the write, and the retry on a new connection saved it.
    log = worker.log.read_text()
    assert "try 1 of 5" in log and "retrying in 0.5 s on a new connection" in log
