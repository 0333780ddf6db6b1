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
import json

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import JSONObject
from django.utils import timezone

from agents_app.models import Client
from console.compiled import CompiledQuery
from updates_app.compliance import update_due_slugs
from updates_app.engine.claim import claim_released
from updates_app.engine.rings import held_back_version_ids
from updates_app.engine.runs import client_is_roaming, restart_delivery_create
from updates_app.engine.sender import notification_payload
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus

RESTART_EVENT = "restart"


def _handover_rows(*, client: Client | int | OuterRef, now: dt.datetime) -> QuerySet[Delivery]:
    """The client's deliveries a check-in at ``now`` takes over: retrying ones, and pending ones that are due."""
    return Delivery.objects.filter(client=client).filter(
        Q(status=DeliveryStatus.RETRYING) | Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    )


def _settings_and_handover_due(*, client_id: int, now: dt.datetime) -> QuerySet[AutoUpdateSettings]:
    due = _handover_rows(client=client_id, now=now)
    return AutoUpdateSettings.objects.filter(pk=1).annotate(handover_due=Exists(due))


def _settings_and_handover_due_params(connection, *, client_id: int, now: dt.datetime) -> list:
    # In the order of the compiled SQL: EXISTS(SELECT 1 ... client, retrying, due by, pending), settings pk.
    due_by = Delivery._meta.get_field("next_attempt_at").get_db_prep_value(now, connection)
    return [1, client_id, DeliveryStatus.RETRYING, due_by, DeliveryStatus.PENDING, 1]


# Run on every check-in: compiled once (console/compiled.py).
_SETTINGS_AND_HANDOVER_DUE = CompiledQuery(
    AutoUpdateSettings, build=_settings_and_handover_due, params=_settings_and_handover_due_params
)


# Every column of the settings row, read along with the client by ``checkin_client``.
_SETTINGS_COLUMNS = [field.attname for field in AutoUpdateSettings._meta.concrete_fields]


def _client_for_checkin(*, digest: str, now: dt.datetime) -> QuerySet[Client]:
    # The settings row as one JSON object: one subquery to plan, not one per column.
    row = JSONObject(**{name: name for name in _SETTINGS_COLUMNS})
    settings_row = Subquery(AutoUpdateSettings.objects.filter(pk=1).values(row=row))
    due = _handover_rows(client=OuterRef("pk"), now=now)
    return (
        Client.objects.filter(token_hash=digest)
        .annotate(handover_due=Exists(due), settings_row=settings_row)
        .order_by("pk")[:1]
    )


def _client_for_checkin_params(connection, *, digest: str, now: dt.datetime) -> list:
    # In the order of the compiled SQL: EXISTS(SELECT 1 ... retrying, due by, pending), the JSON
    # object's keys, the settings pk, the token digest.
    due_by = Delivery._meta.get_field("next_attempt_at").get_db_prep_value(now, connection)
    return [1, DeliveryStatus.RETRYING, due_by, DeliveryStatus.PENDING, *_SETTINGS_COLUMNS, 1, digest]


_CLIENT_FOR_CHECKIN = CompiledQuery(Client, build=_client_for_checkin, params=_client_for_checkin_params)


def checkin_client(*, digest: str, now: dt.datetime) -> tuple[Client, AutoUpdateSettings, bool] | None:
    """The client holding this token digest, the settings and whether it has work waiting: one query.

    The agent API authenticates check-ins with this, so a heartbeat that
    changes nothing costs that one statement (see ``checkin_probe``).
    """
    found = _CLIENT_FOR_CHECKIN.first_annotated(digest=digest, now=now)
    if found is None:
        return None
    client, annotations = found
    row = annotations["settings_row"]
    if row is None:  # a new server: the settings row is created on first use
        return client, AutoUpdateSettings.load(), bool(annotations["handover_due"])
    if isinstance(row, str):
        row = json.loads(row)
    values = [field.to_python(row[field.attname]) for field in AutoUpdateSettings._meta.concrete_fields]
    auto = AutoUpdateSettings.from_db(client._state.db, _SETTINGS_COLUMNS, values)
    return client, auto, bool(annotations["handover_due"])


def checkin_probe(*, client: Client, now: dt.datetime) -> tuple[AutoUpdateSettings, bool]:
    """The Automatic Update settings, and whether a check-in at ``now`` has deliveries to take over: one query.

    The probe reads the partial index ``delivery_open_client_idx`` (open rows
    only, every column it tests), so "nothing pending" is an index-only look-up
    that finds nothing, however many finished deliveries the table holds.
    """
    found = _SETTINGS_AND_HANDOVER_DUE.first_annotated(client_id=client.pk, now=now)
    if found is None:  # a new server: the settings row is created on first use
        return AutoUpdateSettings.load(), _handover_rows(client=client, now=now).exists()
    auto, annotations = found
    return auto, bool(annotations["handover_due"])


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
    if not deliveries and event == RESTART_EVENT:
        auto = auto or AutoUpdateSettings.load()
        if (
            auto.update_on_restart
            and not client_is_roaming(client)
            and update_due_slugs(reported_versions, held_back=held_back_version_ids(client.pk))
        ):
            deliveries = [restart_delivery_create(client=client, scan_after=auto.scan_after_update)]
    return [notification_payload(d) for d in deliveries]
