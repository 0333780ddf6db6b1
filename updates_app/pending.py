"""What a client is told when it checks in (the pull side of delivery).

Unreachable clients (behind NAT) never get a push, and any client may check in
while a notification for it is still waiting; either way the check-in answer
carries the actions pending for it, so nothing waits for a push that cannot
arrive. The agent API calls ``actions_for_checkin``; the delivery engine owns
what goes into it.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from agents_app.models import Client
from updates_app.models import Delivery, DeliveryStatus

OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


def notification_payload(delivery: Delivery) -> dict:
    """The body of a notification, pushed or handed over at check-in (one format)."""
    return {
        "type": "update",
        "delivery_id": delivery.pk,
        "run_id": delivery.run_id,
        "scan_after": delivery.run.scan_after,
    }


@transaction.atomic
def actions_for_checkin(client: Client, *, event: str, reported_versions: dict[str, str]) -> list[dict]:
    """Hand over the client's open deliveries and mark them delivered."""
    deliveries = list(
        Delivery.objects.select_related("run")
        .filter(client=client, status__in=OPEN_STATUSES, run__cancelled_at=None)
        .order_by("run__created_at")
    )
    if not deliveries:
        return []
    now = timezone.now()
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries], status__in=OPEN_STATUSES).update(
        status=DeliveryStatus.DELIVERED, delivered_at=now, lease_expires_at=None
    )
    return [notification_payload(d) for d in deliveries]
