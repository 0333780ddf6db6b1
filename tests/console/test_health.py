"""/health/live and /health/ready: what a load balancer polls, without logging in."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.utils import timezone

from console.models import ServiceHeartbeat
from ops import health

pytestmark = pytest.mark.django_db


def beat_and_worker_seen(ago: dt.timedelta = dt.timedelta(seconds=5)) -> None:
    for name in ("worker", "beat"):
        ServiceHeartbeat.objects.update_or_create(name=name, defaults={"seen_at": timezone.now() - ago})


def test_live_answers_without_login(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_ready_when_every_check_passes(client):
    beat_and_worker_seen()
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "migrations", "broker", "worker", "beat", "claims"}
    assert all(check["ok"] for check in body["checks"].values())
    assert response["Cache-Control"] == "no-store"


def test_not_ready_before_the_worker_and_beat_have_been_seen(client):
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not ready"
    assert body["checks"]["worker"] == {"ok": False, "age_seconds": None, "ms": body["checks"]["worker"]["ms"]}
    assert body["checks"]["beat"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_a_stale_worker_heartbeat_makes_it_not_ready(client, settings):
    settings.HEALTH_WORKER_MAX_AGE_SECONDS = 60
    beat_and_worker_seen()
    ServiceHeartbeat.objects.filter(name="worker").update(seen_at=timezone.now() - dt.timedelta(seconds=61))
    body = client.get("/health/ready").json()
    assert body["status"] == "not ready"
    assert body["checks"]["worker"]["ok"] is False and body["checks"]["worker"]["age_seconds"] >= 61
    assert body["checks"]["beat"]["ok"] is True


def test_claims_a_lost_worker_left_are_said_and_make_it_not_ready_when_nothing_takes_them_over(client, settings):
    from agents_app.models import Client as Endpoint
    from agents_app.models import Domain
    from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

    settings.HEALTH_WORKER_MAX_AGE_SECONDS = 60
    beat_and_worker_seen()
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    domain = Domain.objects.create(name="Claims")
    now = timezone.now()
    for n, ran_out in enumerate((10, 10, 70)):
        endpoint = Endpoint.objects.create(domain=domain, hostname=f"pc-{n}", ip_address="127.0.0.1")
        Delivery.objects.create(
            run=run, client=endpoint, status=DeliveryStatus.SENDING, attempts=1, next_attempt_at=now,
            lease_expires_at=now - dt.timedelta(seconds=ran_out),
        )  # fmt: skip
    claims = client.get("/health/ready").json()["checks"]["claims"]
    # Waiting longer than the limit after its lease ran out: nothing takes them over.
    assert (claims["ok"], claims["lease_expired"], claims["limit_seconds"]) == (False, 3, 60)
    assert claims["waited_seconds"] >= 70
    # Taken over by the dispatcher's next round: only the other two wait, not for long.
    Delivery.objects.filter(lease_expires_at__lt=now - dt.timedelta(seconds=60)).update(
        lease_expires_at=now + dt.timedelta(minutes=3)
    )
    response = client.get("/health/ready")
    assert response.status_code == 200
    claims = response.json()["checks"]["claims"]
    assert (claims["ok"], claims["lease_expired"]) == (True, 2) and 10 <= claims["waited_seconds"] < 60


def test_an_unapplied_migration_makes_it_not_ready(client, monkeypatch):
    beat_and_worker_seen()
    monkeypatch.setattr(health, "_migrations_applied", False)
    MigrationRecorder(connection).record_unapplied("console", "0001_initial")
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"]["ok"] is False
    assert response.json()["checks"]["migrations"]["unapplied"] >= 1


def test_a_broker_that_does_not_answer_makes_it_not_ready_and_its_url_stays_secret(client, settings):
    beat_and_worker_seen()
    settings.REDIS_URL = "redis://:hunter2-secret@127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["broker"]["error"] == "ConnectionError"
    text = response.content.decode()
    assert "hunter2" not in text and "redis://" not in text and "127.0.0.1" not in text


def test_health_answers_any_host_and_plain_http_while_pages_redirect(client, settings):
    """Load balancers call a backend by its address over HTTP; the console itself stays strict."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["console.example.com"]
    beat_and_worker_seen()
    assert client.get("/health/ready", HTTP_HOST="127.20.30.40:8000").status_code == 200
    assert client.get("/health/live", HTTP_HOST="127.20.30.40:8000").status_code == 200
    assert client.get("/login/", HTTP_HOST="127.20.30.40:8000").status_code == 400
    redirect = client.get("/login/", HTTP_HOST="console.example.com")
    assert redirect.status_code == 301 and redirect["Location"].startswith("https://console.example.com/")


def test_health_takes_no_post(client):
    assert client.post("/health/ready").status_code == 405


def test_the_body_names_no_secret(client, settings):
    beat_and_worker_seen()
    text = client.get("/health/ready").content.decode()
    for secret in (settings.SECRET_KEY, settings.AGENT_ENROLLMENT_SECRET, settings.DATABASES["default"]["NAME"]):
        assert str(secret) not in text
    assert json.loads(text)["status"] == "ready"


def test_plain_http_agents_are_let_through_only_when_allowed(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/agent/v1/ping").status_code == 301
    settings.SECURE_REDIRECT_EXEMPT = [r"^agent/"]  # what AGENT_PLAIN_HTTP=true sets
    agent_friendly = Client()  # the middleware reads its settings when a handler starts
    assert agent_friendly.get("/agent/v1/ping").status_code == 200
    assert agent_friendly.get("/login/").status_code == 301


def test_a_poll_that_finds_it_not_ready_writes_no_log_line(client, caplog):
    with caplog.at_level(logging.INFO):
        assert client.get("/health/ready").status_code == 503
        assert client.post("/health/ready").status_code == 405
    assert [r for r in caplog.records if r.name == "django.request"] == []
