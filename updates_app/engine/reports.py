"""The end of a delivery's path: the client reports that it updated in answer to it.

The agent API's report step calls these; the summary counts a run's
"updated" clients from the stamp they write.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import F

from agents_app.models import Client
from updates_app.models import Delivery, UpdateRun


def delivery_is_for(*, client: Client, delivery_id: int) -> bool:
    """Is ``delivery_id`` one of this client's deliveries? (An agent may only report on its own.)"""
    return Delivery.objects.filter(pk=delivery_id, client=client).exists()


def delivery_mark_updated(*, client: Client, delivery_id: int, at: dt.datetime) -> None:
    """Record the first report of a successful update for this delivery; later reports keep the first stamp."""
    stamped = Delivery.objects.filter(pk=delivery_id, client=client, update_reported_at=None).update(
        update_reported_at=at
    )
    if stamped:
        # A run whose counts are kept already (updates_app/retention.py) counts a late report too.
        # Keeping them locks the run row first, so this either waits and adds, or came before and was counted.
        UpdateRun.objects.filter(counts_kept_at__isnull=False, deliveries__pk=delivery_id).update(
            kept_updated=F("kept_updated") + 1
        )


def delivery_mark_failed(*, client: Client, delivery_id: int, at: dt.datetime, message: str) -> None:
    """Record the first report of a failed update for this delivery (a staged roll-out's evidence)."""
    Delivery.objects.filter(pk=delivery_id, client=client, failure_reported_at=None).update(
        failure_reported_at=at, failure_message=(message or "update failed")[:500]
    )
