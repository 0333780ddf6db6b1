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
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Exists, Model, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from agents_app.models import Client
from console.compiled import CompiledQuery, RowVersion
from updates_app.compliance import latest_versions_query, update_due_slugs
from updates_app.engine.claim import claim_released
from updates_app.engine.rings import held_back_versions
from updates_app.engine.runs import client_is_roaming, restart_delivery_create
from updates_app.engine.sender import notification_payload
from updates_app.models import (
    AutoUpdateSettings,
    ComponentVersion,
    Delivery,
    DeliveryStatus,
    ProxySettings,
)

RESTART_EVENT = "restart"


def _handover_rows(*, client: Client | int | OuterRef, now: dt.datetime) -> QuerySet[Delivery]:
    """The client's deliveries a check-in at ``now`` takes over: retrying ones, and pending ones that are due."""
    return Delivery.objects.filter(client=client).filter(
        Q(status=DeliveryStatus.RETRYING) | Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    )


def _handover_probe(client: int | OuterRef) -> dict[str, Exists | Subquery]:
    """Annotations that tell whether a check-in has deliveries to take over (``_handover_due`` reads them).

    The same rule as ``_handover_rows``, asked without the time: whether any
    delivery is retrying, and when the earliest pending one is due. Both are
    index-only look-ups in ``delivery_open_client_idx`` (client, status,
    next_attempt_at; open rows only). With the time as a parameter PostgreSQL
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


def _handover_due(annotations: dict[str, Any], now: dt.datetime) -> bool:
    pending_from = annotations["pending_from"]
    return bool(annotations["retrying"]) or (pending_from is not None and pending_from <= now)


def _settings_and_handover_due(*, client_id: int) -> QuerySet[AutoUpdateSettings]:
    return AutoUpdateSettings.objects.filter(pk=1).annotate(**_handover_probe(client_id))


# Run on every check-in: compiled once (console/compiled.py).
_SETTINGS_AND_HANDOVER_DUE = CompiledQuery(AutoUpdateSettings, build=_settings_and_handover_due)


# The singleton settings rows a check-in needs, kept per process and checked against their
# version read along with the client by ``checkin_client``: Automatic Update (the schedule,
# the restart rule) and the proxy settings (the configuration version).
_SETTINGS_MODELS: dict[str, type[AutoUpdateSettings] | type[ProxySettings]] = {
    "settings_version": AutoUpdateSettings,
    "proxy_version": ProxySettings,
}


def _settings_versions_annotations() -> dict[str, Subquery]:
    """Each settings row's version (``_SETTINGS_MODELS``' aliases), as subqueries to annotate."""
    return {
        alias: Subquery(model.objects.filter(pk=1).values(version=RowVersion(model)))
        for alias, model in _SETTINGS_MODELS.items()
    }


def _client_for_checkin(*, digest: str) -> QuerySet[Client]:
    probe = _handover_probe(OuterRef("pk"))
    versions = _settings_versions_annotations()
    return Client.objects.filter(token_hash=digest).annotate(**probe, **versions).order_by("pk")[:1]


_CLIENT_FOR_CHECKIN = CompiledQuery(Client, build=_client_for_checkin)

S = TypeVar("S", AutoUpdateSettings, ProxySettings)

# Per process and database: each settings row as last read, under the version it was read at.
# The rows change when an administrator saves a screen; the fleet's check-ins read them all
# the time, so a check-in reads only their versions (console.compiled.RowVersion) and the
# row itself only when its version is not the one held here.
_settings_held: dict[tuple[str, type[Model]], tuple[str, Model]] = {}


def _settings_row(model: type[S], version: str | None, db: str) -> S | None:
    """The settings row at ``version`` (None: no row yet), from this process's copy when it is current."""
    if version is None:
        return None
    held = _settings_held.get((db, model))
    if held is not None and held[0] == version:
        return cast(S, held[1])
    found = model.objects.using(db).filter(pk=1).annotate(version=RowVersion(model)).first()
    if found is None:  # removed since the check-in's statement
        return None
    # Held under the version read with it, which may be newer than the one asked for.
    _settings_held[(db, model)] = (cast(Any, found).version, found)
    return found


def _settings_at(versions: dict[str, Any], db: str) -> tuple[AutoUpdateSettings, ProxySettings]:
    """Both settings rows at the versions a statement read; a new server creates them on first use
    (until then the defaults apply)."""
    auto = _settings_row(AutoUpdateSettings, versions["settings_version"], db) or AutoUpdateSettings.load()
    proxy = _settings_row(ProxySettings, versions["proxy_version"], db) or ProxySettings(pk=1)
    return auto, proxy


def _settings_versions() -> QuerySet[AutoUpdateSettings]:
    return AutoUpdateSettings.objects.filter(pk=1).only("pk").annotate(**_settings_versions_annotations())


_SETTINGS_VERSIONS = CompiledQuery(AutoUpdateSettings, build=_settings_versions)


def settings_current() -> tuple[AutoUpdateSettings, ProxySettings]:
    """Both settings rows (Automatic Update, proxy), from this process's copies while current: one query."""
    found = _SETTINGS_VERSIONS.first_annotated()
    if found is None:  # a new server: the rows are created on first use
        return AutoUpdateSettings.load(), ProxySettings.load()
    row, versions = found
    return _settings_at(versions, row._state.db or DEFAULT_DB_ALIAS)


@dataclass(frozen=True)
class CheckinRead:
    """What a check-in needs, read in one statement: the client, the settings rows' versions, any work waiting."""

    client: Client
    auto: AutoUpdateSettings
    proxy: ProxySettings
    handover_due: bool


def checkin_client(*, digest: str, now: dt.datetime) -> CheckinRead | None:
    """The client holding this token digest, the settings and whether it has work waiting: one query.

    The agent API authenticates check-ins with this, so a heartbeat that
    changes nothing costs that one statement (see ``checkin_probe``). The
    settings rows come from this process's copies while the versions the
    statement read match them; a row an administrator changed is read again
    (once per process).
    """
    found = _CLIENT_FOR_CHECKIN.first_annotated(digest=digest)
    if found is None:
        return None
    client, annotations = found
    auto, proxy = _settings_at(annotations, client._state.db or DEFAULT_DB_ALIAS)
    return CheckinRead(client=client, auto=auto, proxy=proxy, handover_due=_handover_due(annotations, now))


def checkin_probe(*, client: Client, now: dt.datetime) -> tuple[AutoUpdateSettings, bool]:
    """The Automatic Update settings, and whether a check-in at ``now`` has deliveries to take over: one query.

    The probe reads the partial index ``delivery_open_client_idx`` (open rows
    only, every column it tests), so "nothing pending" is an index-only look-up
    that finds nothing, however many finished deliveries the table holds.
    """
    found = _SETTINGS_AND_HANDOVER_DUE.first_annotated(client_id=client.pk)
    if found is None:  # a new server: the settings row is created on first use
        return AutoUpdateSettings.load(), _handover_rows(client=client, now=now).exists()
    auto, annotations = found
    return auto, _handover_due(annotations, now)


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
