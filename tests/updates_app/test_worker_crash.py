"""A lost worker costs the clients nothing, and a batch that kills its worker every time ends.

The live Django server, worker processes (``celery worker``, killed with
SIGKILL) against the test's PostgreSQL and Redis (on a queue of the test's
own), and reference agents (agent_api.simulator) on loopback. The test plays
beat. Short timings for the test only: leases of a few seconds (180 s in
production, README "The delivery engine"), a long retry interval so nothing
else is sent meanwhile.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest
from django.urls import reverse
from django.utils.html import strip_tags
from prometheus_client.parser import text_string_to_metric_families

from agent_api.simulator import AgentSpec, FleetThread
from agents_app.models import Client, ConnectionStatus, Domain
from tests.updates_app.engine import play_beat_until
from updates_app.components import component_download, component_resolve
from updates_app.engine.claim import claims_held
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.tasks import dispatch_deliveries
from updates_app.version_labels import version_label

from .workers import Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

SECRET = "enroll-me-please"
METRICS_TOKEN = "crash-test-scrape-token"
LEASE_SECONDS = 4
WORKER_ENV = {
    "NOTIFY_LEASE_SECONDS": str(LEASE_SECONDS),
    "NOTIFY_RETRY_INTERVAL_SECONDS": "3600",
    "NOTIFY_BATCH_SIZE": "50",
    # Two posts at a time: each silent listener holds one until its timeout.
    "NOTIFY_CONCURRENCY": "2",
    "NOTIFY_TIMEOUT_SECONDS": "60",
}

# The replacement's own claims get a long lease: only the killed worker's are to run out here,
# not one that waits in the queue on a busy machine.
REPLACEMENT_ENV = {**WORKER_ENV, "NOTIFY_TIMEOUT_SECONDS": "5", "NOTIFY_LEASE_SECONDS": "60"}


def silent_listener() -> socket.socket:
    """A loopback port that accepts connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def client_at(domain: Domain, hostname: str, sock: socket.socket) -> Client:
    """An online client whose listener is ``sock``."""
    port = sock.getsockname()[1]
    return Client.objects.create(
        domain=domain, hostname=hostname, ip_address="127.0.0.1", listener_port=port, status=ConnectionStatus.ONLINE
    )


def page_words(viewer_client, url: str) -> str:
    return " ".join(strip_tags(viewer_client.get(url).content.decode()).split())


def gauge(client, name: str) -> float:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    samples = {s.name: s.value for f in text_string_to_metric_families(response.content.decode()) for s in f.samples}
    return samples[name]


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_worker_killed_mid_batch_is_replaced_and_no_client_loses_an_attempt(
    live_server, settings, component_storage, tmp_path, viewer_client, private_queue
):
    """The batch is held open deterministically: two listeners that accept a connection and never answer
    take the send task's two slots, the first at once, the second after four agents were notified, so the
    worker is killed with four agents notified, four not, and nothing recorded."""
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.NOTIFY_LEASE_SECONDS = LEASE_SECONDS
    # The run is made by hand, in a chosen order; the restart rule stays out of the way.
    AutoUpdateSettings.objects.update_or_create(
        pk=1, defaults={"notify_on_download": False, "update_on_restart": False}
    )
    component = component_resolve("virus_pattern")
    old = version_label(component_download(component=component).number)
    specs = [AgentSpec(hostname=f"desk-{i}", holdings={"virus_pattern": old}) for i in range(8)]
    silent = [silent_listener(), silent_listener()]
    workers: list[Worker] = []
    try:
        with FleetThread(
            server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600
        ) as fleet:
            latest = version_label(component_download(component=component).number)
            agents = sorted(fleet.agents, key=lambda a: a.spec.hostname)
            domain = Domain.objects.create(name="Silent")
            hung = [client_at(domain, f"silent-{n}", sock) for n, sock in enumerate(silent)]
            endpoints = {str(c.guid): c for c in Client.objects.exclude(domain=domain)}
            order = [hung[0], *(endpoints[a.client_id] for a in agents[:4])]
            order += [hung[1], *(endpoints[a.client_id] for a in agents[4:])]
            run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
            for client in order:  # delivery ids in this order: the send task posts them in it
                Delivery.objects.create(run=run, client=client, next_attempt_at=run.created_at)
            url = reverse("updates:run-detail", args=[run.pk])

            # given: a worker posting the batch, four agents notified, both slots then held by the silent listeners
            workers.append(Worker(tmp_path, "killed", queue=private_queue, **WORKER_ENV).wait_ready())
            dispatch_deliveries.delay()
            first_four = agents[:4]
            assert wait_until(lambda: all(a.notifications_received == 1 for a in first_four), timeout=30)
            # when: it is SIGKILLed before recording anything
            workers[0].kill()
            assert [a.notifications_received for a in agents] == [1, 1, 1, 1, 0, 0, 0, 0]
            assert set(run.deliveries.values_list("status", "attempts")) == {(DeliveryStatus.SENDING, 1)}

            # then: once its claim runs out, the run page, /metrics and /health/ready say what waits
            assert wait_until(lambda: claims_held(run_id=run.pk).lost == 10, timeout=LEASE_SECONDS + 10)
            page = page_words(viewer_client, url)
            assert "10 notifications wait for a worker that stopped answering" in page
            assert "without using up an attempt" in page
            assert gauge(viewer_client, "update_console_deliveries_lease_expired") == 10
            assert viewer_client.get("/health/ready").json()["checks"]["claims"]["lease_expired"] == 10

            # ... and a new worker takes the batch over (the silent listeners are gone now: refused at once)
            for sock in silent:
                sock.close()
            workers.append(Worker(tmp_path, "replacement", queue=private_queue, **REPLACEMENT_ENV).wait_ready())
            agent_rows = run.deliveries.exclude(client__domain=domain)
            assert play_beat_until(lambda: agent_rows.filter(update_reported_at__isnull=False).count() == 8, 60)
            assert play_beat_until(lambda: not run.deliveries.filter(status=DeliveryStatus.SENDING).exists(), 30)

            # Every agent updated once; the four that had the first copy got the same webhook-id again and ignored it.
            assert [a.counters.updates_ok for a in agents] == [1] * 8
            assert all(a.versions["virus_pattern"] == latest for a in agents)
            assert [a.notifications_received for a in agents] == [2, 2, 2, 2, 1, 1, 1, 1]
            assert [a.counters.notifications_duplicate for a in agents] == [1, 1, 1, 1, 0, 0, 0, 0]
            # No delivery's attempts changed by the crash: each is on its first attempt, sent again once.
            assert set(agent_rows.values_list("status", "attempts", "lost_leases")) == {
                (DeliveryStatus.DELIVERED, 1, 1)
            }
            assert set(
                run.deliveries.filter(client__domain=domain).values_list("status", "attempts", "lost_leases")
            ) == {(DeliveryStatus.RETRYING, 1, 1)}
            # The wait is over, and said to be.
            page = page_words(viewer_client, url)
            assert "stopped answering" not in page
            assert gauge(viewer_client, "update_console_deliveries_lease_expired") == 0
            log = workers[1].log.read_text()
            assert "claimed 10 deliveries again whose worker stopped answering" in log
    finally:
        for worker in workers:
            worker.stop()
        for sock in silent:
            sock.close()


class PoisonListener:
    """A client's listener whose every notification kills the pool process sending it (as a crash would)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.worker: Worker | None = None
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.hits += 1
            for pid in self.worker.pool_processes() if self.worker else []:
                os.kill(pid, signal.SIGKILL)
            connection.close()


def test_a_batch_that_kills_its_worker_every_time_is_given_up_after_the_cap(tmp_path, private_queue):
    poison = PoisonListener()
    client = client_at(Domain.objects.create(name="Poison"), "poison", poison.sock)
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    delivery = Delivery.objects.create(run=run, client=client, next_attempt_at=run.created_at)
    # A prefork worker: the pool process dies with the batch, its parent carries on and starts another.
    env = {"NOTIFY_LEASE_SECONDS": "5", "NOTIFY_MAX_LOST_LEASES": "2", "NOTIFY_RETRY_INTERVAL_SECONDS": "3600"}
    worker = Worker(tmp_path, "poisoned", queue=private_queue, pool="prefork", **env)
    poison.worker = worker
    try:
        worker.wait_ready()
        gave_up = play_beat_until(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.GAVE_UP, 90)
        assert gave_up, f"still {Delivery.objects.get(pk=delivery.pk).status} after {poison.hits} kills"
        # Sent once, then again after each of the two lost leases the cap allows; the third loss gave it up.
        assert poison.hits == 3
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.lost_leases, delivery.claim_token) == (1, 2, "")
        assert (
            delivery.last_error
            == "gave up: the worker sending it stopped answering 3 times without recording an outcome"
        )
        # Nothing loops: more rounds send nothing more, and the worker itself is alive.
        play_beat_until(lambda: False, timeout=3)
        assert poison.hits == 3
        assert worker.process.poll() is None
        assert "WorkerLostError" in worker.log.read_text()
    finally:
        worker.stop()
        poison.sock.close()
