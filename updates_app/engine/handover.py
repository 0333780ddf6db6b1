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

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from agents_app.models import Client
from console.compiled import CompiledQuery
from updates_app.compliance import latest_versions_query, update_due_slugs
from updates_app.engine.claim import claim_released
from updates_app.engine.rings import held_back_versions
from updates_app.engine.runs import client_is_roaming, restart_delivery_create
from updates_app.engine.sender import notification_payload
from updates_app.models import AutoUpdateSettings, ComponentVersion, Delivery, DeliveryStatus

RESTART_EVENT = "restart"


def _handover_rows(*, client: Client | int | OuterRef, now: dt.datetime) -> QuerySet[Delivery]:
    """The client's deliveries a check-in at ``now`` takes over: retrying ones, and pending ones that are due."""
    return Delivery.objects.filter(client=client).filter(
        Q(status=DeliveryStatus.RETRYING) | Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    )


def handover_probe(client: int | OuterRef) -> dict[str, Exists | Subquery]:
    """Annotations that tell whether a check-in has deliveries to take over (``handover_due`` reads them).

    The same rule as ``_handover_rows``, asked without the time, so the agent
    API can read it with the client in one statement
    (``agent_api.checkin_read``): whether any delivery is retrying, and when
    the earliest pending one is due. Both are index-only look-ups in
    ``delivery_open_client_idx`` (client, status, next_attempt_at; open rows
    only), so "nothing pending" finds nothing however many finished
    deliveries the table holds. With the time as a parameter PostgreSQL
    planned the check-in's statement afresh on every execution; without it
    the prepared statement keeps one plan.
    """
    open_rows = Delivery.objects.filter(client=client)
    return {
        "retrying": Exists(open_rows.filter(status=DeliveryStatus.RETRYING)),
        "pending_from": Subquery(
            open_rows.filter(status=DeliveryStatus.PENDING).order_by("next_attempt_at").values("next_attempt_at")[:1]
        ),
    }


def handover_due(annotations: dict[str, Any], now: dt.datetime) -> bool:
    """Whether a check-in at ``now`` takes deliveries over, from the ``handover_probe`` annotations read."""
    pending_from = annotations["pending_from"]
    return bool(annotations["retrying"]) or (pending_from is not None and pending_from <= now)


def deliveries_hand_over(*, client: Client) -> list[Delivery]:
    """Mark the client's open deliveries delivered and return them.

    One UPDATE and one SELECT, no transaction of its own: the UPDATE is atomic,
    and the read-back only sees rows it stamped.

    Retrying deliveries go at once (the client is evidently reachable now);
    pending ones only when due, so a schedule's spread of future sends is kept.
    A row a worker is sending right now is left to the worker.
    """
    now = timezone.now()
    handed = _handover_rows(client=client, now=now).update(
        **claim_released(status=DeliveryStatus.DELIVERED, delivered_at=now, at_checkin=True)
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
def actions_for_checkin(
    client: Client, *, event: str, reported_versions: dict[str, str], auto: AutoUpdateSettings | None = None
) -> list[dict]:
    """Hand over the client's open deliveries; on restart, tell an outdated client to update."""
    deliveries = deliveries_hand_over(client=client)
    if deliveries or event != RESTART_EVENT:
        return [notification_payload(d) for d in deliveries]
    return restart_actions(client, reported_versions=reported_versions, auto=auto)


# The latest version of each component this client is offered (the roll-outs' holds a
# subquery): asked at every restart and every enrolment, compiled once.
_LATEST_OFFERED_TO = CompiledQuery(
    ComponentVersion, build=lambda client_id: latest_versions_query(held_back=held_back_versions(client_id))
)


def latest_offered_to(client_id: int) -> dict[str, int]:
    """``compliance.latest_version_numbers`` for this client: what a staged roll-out holds back excluded."""
    return dict(_LATEST_OFFERED_TO.rows(client_id=client_id))


def restart_actions(
    client: Client,
    *,
    reported_versions: dict[str, str],
    auto: AutoUpdateSettings | None = None,
    known: dict[tuple[str, int], bool] | None = None,
) -> list[dict]:
    """The restart rule alone: an update for a client behind on a component, when the setting asks for it.

    A registration that reports versions asks only this: a client created a
    moment ago has no deliveries to hand over. ``known``: the reported
    versions as ``compliance.known_versions`` answered them (the registration
    checked them already).
    """
    auto = auto or AutoUpdateSettings.load()
    if (
        auto.update_on_restart
        and not client_is_roaming(client)
        and update_due_slugs(reported_versions, latest=latest_offered_to(client.pk), known=known)
    ):
        return [notification_payload(restart_delivery_create(client=client, scan_after=auto.scan_after_update))]
    return []
