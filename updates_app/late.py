"""Late clients: Minute(s)/Hour(s) schedules run on the agents; the server notices who stopped.

Each agent reports its scheduled updates (trigger "schedule"), which sets
Client.last_scheduled_update_at. A client whose scheduled update is on and
whose last one is older than two intervals has missed at least one.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import DateTimeField, F
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents_app.models import Client
from updates_app.models import AutoUpdateSettings, Frequency

MISSED_INTERVALS = 2


def schedule_interval(config: AutoUpdateSettings) -> dt.timedelta | None:
    """The agents' interval, or None when the schedule is Daily/Weekly (the server notifies then)."""
    if config.frequency == Frequency.MINUTES:
        return dt.timedelta(minutes=config.interval_minutes)
    if config.frequency == Frequency.HOURS:
        return dt.timedelta(hours=config.interval_hours)
    return None


def late_clients(*, now: dt.datetime | None = None, config: AutoUpdateSettings | None = None):
    """Clients with scheduled update on (and not revoked) that missed two intervals, longest-silent first.

    A client that never reported counts from its registration, and nobody is
    late until two intervals after the schedule itself was last saved: the
    agents learn a new schedule with their next configuration.
    """
    now = now or timezone.now()
    config = config or AutoUpdateSettings.load()
    interval = schedule_interval(config)
    if interval is None:
        return Client.objects.none()
    threshold = now - MISSED_INTERVALS * interval
    if config.updated_at and config.updated_at > threshold:
        return Client.objects.none()
    return (
        Client.objects.scheduled_update_on()
        .filter(revoked_at__isnull=True)
        .annotate(
            last_seen_schedule=Coalesce(F("last_scheduled_update_at"), F("registered_at"), output_field=DateTimeField())
        )
        .filter(last_seen_schedule__lt=threshold)
        .select_related("domain")
        .order_by("last_seen_schedule", "pk")
    )
