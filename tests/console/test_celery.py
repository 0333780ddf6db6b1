"""Celery wiring: configuration, and a real worker executing tasks through the broker."""

from __future__ import annotations

import pytest
from django.conf import settings

from console.celery import app
from console.models import ServiceHeartbeat
from console.tasks import heartbeat, ping


def test_celery_accepts_json_only_and_limits_task_time():
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.worker_prefetch_multiplier == 1
    assert "console-heartbeat" in app.conf.beat_schedule


def test_broker_follows_redis_url():
    # Without REDIS_URL the embedded filesystem broker needs no server.
    expected = settings.REDIS_URL or "filesystem://localhost/"
    assert settings.CELERY_BROKER_URL == expected


@pytest.mark.django_db(transaction=True)
def test_worker_runs_a_task_through_the_broker(celery_worker):
    # A real round trip: the message goes through the broker to the worker
    # thread, which writes to the database.
    heartbeat.delay()
    for _ in range(100):
        if ServiceHeartbeat.objects.filter(name="worker").exists():
            break
        import time

        time.sleep(0.05)
    assert ServiceHeartbeat.objects.filter(name="worker").exists()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_real_worker_executes_a_task_through_real_redis(celery_worker):
    import redis

    assert app.conf.broker_url.startswith("redis://")
    connection = redis.Redis.from_url(settings.REDIS_URL)
    assert connection.ping()
    heartbeat.delay()
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not ServiceHeartbeat.objects.filter(name="worker").exists():
        time.sleep(0.05)
    assert ServiceHeartbeat.objects.filter(name="worker").exists()


def test_ping_task_body():
    assert ping("x") == "pong:x"
