"""What a client is told when it checks in (the pull side of delivery).

Unreachable clients (behind NAT) never get a push, and any client may check in
while a notification for it is still waiting; either way the check-in answer
carries the actions pending for it, so nothing waits for a push that cannot
arrive. The agent API calls ``actions_for_checkin``; the delivery engine owns
what goes into it, in the same format as a push (``sender.notification_payload``).

Restart path (SPEC 3.3): with "Let clients initiate component update when they
restart..." on, a client that is not roaming and checks in with event
"restart" while behind on any component the server holds, or without one
(``compliance.update_due_slugs``: holding a version withdrawn by a rollback
counts as behind; a version a staged roll-out holds back from the client does
not count), is told to update now, whatever
became of its notifications. The instruction is recorded as a delivery (status
delivered, handed over at once) in that day's "Client restart" run, so the
summary counts it and the agent's report can name its delivery id.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents_app.models import Client
from updates_app.compliance import update_due_slugs
from updates_app.engine.claim import claim_released
from updates_app.engine.rings import held_back_version_ids
from updates_app.engine.runs import client_is_roaming, restart_delivery_create
from updates_app.engine.sender import notification_payload
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus

RESTART_EVENT = "restart"


def deliveries_hand_over(*, client: Client) -> list[Delivery]:
    """Mark the client's open deliveries delivered and return them.

    One UPDATE and one SELECT, no transaction of its own: the UPDATE is atomic,
    and the read-back only sees rows it stamped.

    Retrying deliveries go at once (the client is evidently reachable now);
    pending ones only when due, so a schedule's spread of future sends is kept.
    A row a worker is sending right now is left to the worker.
    """
    now = timezone.now()
    handed = (
        Delivery.objects.filter(client=client)
        .filter(Q(status=DeliveryStatus.RETRYING) | Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now))
        .update(**claim_released(status=DeliveryStatus.DELIVERED, delivered_at=now, at_checkin=True))
    )
    if not handed:
        return []
    # Read back by the stamp just written: only rows this update won, so a
    # row claimed by a worker in between is never handed over twice.
    return list(
        Delivery.objects.select_related("run")
        .filter(client=client, status=DeliveryStatus.DELIVERED, delivered_at=now)
        .order_by("run__created_at", "pk")
    )


@transaction.atomic
def actions_for_checkin(client: Client, *, event: str, reported_versions: dict[str, str]) -> list[dict]:
    """Hand over the client's open deliveries; on restart, tell an outdated client to update."""
    deliveries = deliveries_hand_over(client=client)
    if not deliveries and event == RESTART_EVENT:
        auto = AutoUpdateSettings.load()
        if (
            auto.update_on_restart
            and not client_is_roaming(client)
            and update_due_slugs(reported_versions, held_back=held_back_version_ids(client.pk))
        ):
            deliveries = [restart_delivery_create(client=client, scan_after=auto.scan_after_update)]
    return [notification_payload(d) for d in deliveries]
