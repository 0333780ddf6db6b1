from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from console.models import ServiceHeartbeat


@shared_task(name="console.tasks.heartbeat")
def heartbeat() -> str:
    """Sent by beat, run by a worker: proves both are alive (shown in the footer)."""
    ServiceHeartbeat.objects.update_or_create(name="worker", defaults={"seen_at": timezone.now()})
    return "ok"


@shared_task(name="console.tasks.ping")
def ping(value: str) -> str:
    """Echo; lets tests and operators see a round trip through the broker."""
    return f"pong:{value}"
