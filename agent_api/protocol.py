"""What the agent API does: register, check in, configuration, report.

The views (``agent_api/views.py``, ``agent_api/checkin.py``) validate input
and call these; the functions take plain values and raise ProtocolError for
requests that are well-formed but cannot be honoured (nothing is changed then).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Value
from django.db.models.functions import Upper
from django.utils import timezone

from agent_api.authentication import token_digest, token_generate
from agent_api.checkin_read import CheckinRead, settings_current
from agent_api.errors import InvalidEnrollmentSecret, ProtocolError
from agents_app.connection import listener_address, status_on_checkin
from agents_app.models import Client, Domain
from agents_app.services import client_create, domain_create
from agents_app.signing import client_signing_key, encode_key, signing_key_for
from console.compiled import CompiledQuery
from updates_app.compliance import client_versions_record, known_versions
from updates_app.configuration import client_configuration, configuration_hash, configuration_version
from updates_app.engine.handover import RESTART_EVENT, actions_for_checkin, restart_actions
from updates_app.engine.reports import delivery_is_for, delivery_mark_failed, delivery_mark_updated
from updates_app.version_labels import parse_version_label, version_label

logger = logging.getLogger(__name__)

DEFAULT_DOMAIN = "Workgroup"

# The check-in an agent owes after reporting an update it was notified of
# (within AGENT_POST_UPDATE_CHECKIN_SECONDS): always recorded, with a stamp of
# its own, which is how a staged roll-out tells a live agent from a silent one.
POST_UPDATE_EVENT = "post_update"


# Key of the PostgreSQL advisory lock that serializes creating top-level domains.
_DOMAIN_CREATE_LOCK = 0x5EED_D0_0A


# Every registration looks its domain up by name (any case, the highest level first): compiled once.
# UPPER on both sides, as iexact is on PostgreSQL; iexact on SQLite is a LIKE whose escaping
# of % and _ in the name would change the argument (console/compiled.py refuses that).
_DOMAIN_NAMED = CompiledQuery(
    Domain,
    build=lambda name: (
        Domain.objects.alias(folded=Upper("name")).filter(folded=Upper(Value(name))).order_by("level", "pk")[:1]
    ),
)


def _domain_for_hint(hint: str) -> Domain:
    """The domain named by the agent's hint (any level), else a new top-level one of that name."""
    name = hint.strip() or DEFAULT_DOMAIN
    existing = _DOMAIN_NAMED.first(name=name)
    if existing:
        return existing
    if connection.vendor == "postgresql":
        # Many agents of a new office register at once: without the lock two
        # would create the same domain, or two roots would get one MPTT tree id.
        # (SQLite already runs one writing transaction at a time.)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_DOMAIN_CREATE_LOCK])
        existing = _DOMAIN_NAMED.first(name=name)
        if existing:
            return existing
    if name.casefold() != DEFAULT_DOMAIN.casefold() and _hinted_domains_full():
        # Any enrolled agent may name a domain: without a ceiling one of them
        # could flood the client tree with top-level domains.
        logger.warning(
            "agent domain hint %r not created: the limit of %d top-level domains (AGENT_MAX_HINTED_DOMAINS) "
            "is reached; the agent joins %r",
            name,
            settings.AGENT_MAX_HINTED_DOMAINS,
            DEFAULT_DOMAIN,
        )
        return _domain_for_hint(DEFAULT_DOMAIN)
    try:
        # A new domain starts with the server's defaults for future domains.
        return domain_create(name=name, parent=None)
    except ValidationError as exc:
        raise ProtocolError("invalid_domain", f"Cannot create domain {name!r}: {'; '.join(exc.messages)}") from None


def _hinted_domains_full() -> bool:
    """No more top-level domains may be created by hint (the default domain does not count)."""
    top_level = Domain.objects.filter(parent=None).exclude(name__iexact=DEFAULT_DOMAIN)
    return top_level.count() >= settings.AGENT_MAX_HINTED_DOMAINS


@transaction.atomic
def agent_register(
    *,
    enrollment_secret: str,
    hostname: str,
    source_address: str,
    ip_address: str | None,
    listener_port: int,
    domain: str,
    roaming: bool,
    component_versions: dict[str, str] | None = None,
    scheduled_update_disabled: bool = False,
) -> dict[str, Any]:
    """Register an agent. ``source_address`` is where the request came from; ``ip_address`` what it reported.

    An agent that reports what it holds (``component_versions``) starts with
    this one request: the registration records its versions and counts as its
    restart check-in (the answer carries the actions, as a check-in's would),
    and the answer carries the configuration it must apply. Without them the
    agent checks in and fetches its configuration afterwards, as before.
    """
    if not hmac.compare_digest(enrollment_secret.encode(), settings.AGENT_ENROLLMENT_SECRET.encode()):
        raise InvalidEnrollmentSecret()
    known = _check_versions(component_versions or {})
    ip_address = listener_address(source_address=source_address, reported_address=ip_address)
    if not ip_address:
        raise ProtocolError("invalid", "The server cannot tell this request's source address.")
    if ip_address != source_address:
        logger.info("agent registration: listener address %s as reported (source %s)", ip_address, source_address)
    target = _domain_for_hint(domain)
    token = token_generate()
    defaults = target.settings_dict()
    client = client_create(
        domain=target,
        hostname=hostname,
        ip_address=ip_address,
        listener_port=listener_port,
        reports_roaming=roaming,
        token_hash=token_digest(token),
        status=status_on_checkin(
            ip_address=ip_address, reports_roaming=roaming, roaming_privilege=defaults["roaming_privilege"]
        ),
        last_contact_at=timezone.now(),
        component_versions=component_versions or {},
        user_disabled_scheduled_update=scheduled_update_disabled,
    )
    auto, proxy = settings_current()
    actions = (
        []
        if component_versions is None
        else restart_actions(client, reported_versions=component_versions, auto=auto, known=known)
    )
    document = client_configuration(client, auto, proxy)
    # Counted from the start: "unknown" for every component it does not report. Last: a fleet's
    # registrations all count into the same profile row, locked until the commit.
    client_versions_record(client=client, reported=component_versions or {}, new=True)
    return {
        "client_id": client.guid,
        "token": token,
        "signing_key": encode_key(client_signing_key(str(client.guid))),
        "heartbeat_interval_seconds": settings.AGENT_HEARTBEAT_SECONDS,
        "post_update_checkin_seconds": settings.AGENT_POST_UPDATE_CHECKIN_SECONDS,
        "domain": target.name,
        "status": client.status,
        "actions": actions,
        "config_version": configuration_hash(document),
        "configuration": document,
    }


def _check_versions(versions: dict[str, str]) -> dict[tuple[str, int], bool]:
    """Every reported component and version must exist on the server (one query); what it found.

    The answer is ``compliance.known_versions``' (pair -> withdrawn?), which the restart rule reuses.
    """
    if not versions:
        return {}
    wanted = {(slug, parse_version_label(label)) for slug, label in versions.items()}
    found = known_versions(wanted)
    missing = sorted(wanted - found.keys())
    if missing:
        slug, number = missing[0]
        raise ProtocolError("unknown_version", f"The server has no {slug} version {version_label(number)}.")
    return found


def _quiet_heartbeat(*, client: Client, event: str, fields: dict[str, Any], now: dt.datetime) -> bool:
    """A check-in that needs no write: a heartbeat or poll that reports what is on record.

    Status, roaming, the user's choice, the applied configuration and the
    reported versions all match the stored row, and the last-contact stamp is
    younger than AGENT_CONTACT_REFRESH_SECONDS (a coarse signal: refreshing it
    on every heartbeat would cost an UPDATE and a commit for nothing). A
    restart is never quiet (it may have to be told to update), nor a
    post-update check-in (its stamp is the proof of life a roll-out waits for).
    """
    if event in (RESTART_EVENT, POST_UPDATE_EVENT):
        return False
    if any(getattr(client, name) != value for name, value in fields.items() if name != "last_contact_at"):
        return False
    stamp = client.last_contact_at
    return stamp is not None and dt.timedelta(0) <= now - stamp < dt.timedelta(
        seconds=settings.AGENT_CONTACT_REFRESH_SECONDS
    )


def _record_checkin(client: Client, fields: dict[str, Any]) -> None:
    Client.objects.filter(pk=client.pk).update(**fields)
    for name, value in fields.items():
        setattr(client, name, value)


def agent_checkin(
    *,
    read: CheckinRead,
    event: str,
    component_versions: dict[str, str],
    config_version: str,
    scheduled_update_disabled: bool,
    roaming: bool,
    signing_key_id: str = "",
) -> dict[str, Any]:
    """``read``: the client, the settings and whether work waits, read with the token (``checkin_read``)."""
    client, auto, proxy = read.client, read.auto, read.proxy
    versions_changed = bool(component_versions) and component_versions != client.component_versions
    if versions_changed:
        # What the client already holds on record was checked when it was stored.
        _check_versions(component_versions)
    now = timezone.now()
    status = status_on_checkin(
        ip_address=client.ip_address, reports_roaming=roaming, roaming_privilege=client.roaming_privilege
    )
    fields: dict[str, Any] = {
        "status": status,
        "last_contact_at": now,
        "reports_roaming": roaming,
        "user_disabled_scheduled_update": scheduled_update_disabled,
        "config_version": config_version,
    }
    if component_versions:
        fields["component_versions"] = component_versions
    if event == POST_UPDATE_EVENT:
        fields["post_update_checkin_at"] = now
    if not read.handover_due and _quiet_heartbeat(client=client, event=event, fields=fields, now=now):
        # The fast path of a fleet's heartbeats: no write; one query in all, the read.
        actions: list[dict] = []
    elif not read.handover_due and event != RESTART_EVENT and not versions_changed:
        # Only the record changes (a fleet's steady heartbeat once the stamp has aged): one
        # UPDATE in autocommit, without a transaction's two extra round trips.
        _record_checkin(client, fields)
        actions = []
    else:
        with transaction.atomic():
            _record_checkin(client, fields)
            due = read.handover_due or event == RESTART_EVENT
            actions = (
                actions_for_checkin(client, event=event, reported_versions=component_versions, auto=auto) if due else []
            )
            if versions_changed:
                # The compliance tables follow what the client holds (updates_app/compliance.py);
                # last, so the shared profile rows stay locked only until the commit.
                client_versions_record(client=client, reported=component_versions)
    current = configuration_version(client, auto, proxy)
    return {
        "status": status,
        "actions": actions,
        "config_changed": current != config_version,
        "config_version": current,
        "heartbeat_interval_seconds": settings.AGENT_HEARTBEAT_SECONDS,
        "post_update_checkin_seconds": settings.AGENT_POST_UPDATE_CHECKIN_SECONDS,
        "server_time": now,
        # A rotated signing key: only to an agent that holds another.
        "signing_key": signing_key_for(str(client.guid), held_key_id=signing_key_id),
    }


def agent_configuration(*, client: Client) -> dict[str, Any]:
    document = client_configuration(client)
    return {"config_version": configuration_hash(document), "configuration": document}


@transaction.atomic
def agent_report(
    *,
    client: Client,
    kind: str,
    result: str,
    trigger: str,
    component_versions: dict[str, str],
    delivery_id: int | None,
    message: str,
    download_source: str = "",
    proxy: str = "",
) -> dict[str, Any]:
    _check_versions(component_versions)
    if delivery_id is not None and not delivery_is_for(client=client, delivery_id=delivery_id):
        raise ProtocolError("unknown_delivery", f"Delivery {delivery_id} is not one of this client's.")
    now = timezone.now()
    fields: dict[str, Any] = {"last_contact_at": now}
    if component_versions:
        fields["component_versions"] = component_versions
    success = result == "success"
    if kind == "update" and download_source:
        fields.update(last_update_source=download_source, last_update_proxy=proxy)
    if kind == "update" and success and trigger == "schedule":
        fields["last_scheduled_update_at"] = now
    Client.objects.filter(pk=client.pk).update(**fields)
    if component_versions:
        client_versions_record(client=client, reported=component_versions)
    if kind == "update" and success and delivery_id is not None:
        delivery_mark_updated(client=client, delivery_id=delivery_id, at=now)
    elif kind == "update" and delivery_id is not None:
        delivery_mark_failed(client=client, delivery_id=delivery_id, at=now, message=message)
    # One line per report would be one per agent per update: successes only at debug.
    # %r: the message is the agent's own text; escaped, a newline in it cannot
    # start a log line of its own.
    logger.log(
        logging.INFO if result == "failure" else logging.DEBUG,
        "agent report: client=%s kind=%s result=%s trigger=%s delivery=%s source=%s proxy=%r message=%r",
        client.guid,
        kind,
        result,
        trigger,
        delivery_id,
        download_source or "-",
        proxy,
        message,
    )
    return {"recorded": True}
