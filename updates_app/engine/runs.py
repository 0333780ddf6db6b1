"""Creating and cancelling update runs (event, manual, restart, rollback).

A run is one request to a set of clients; it gets one delivery row per client,
created in bulk. Creating deliveries supersedes the same clients' older
undelivered ones: the newest request is the one that counts, and a client is
not notified twice for the same work. Scheduled runs are planned by
``updates_app.engine.planner``, which inserts its rows with spread send times
and applies the same superseding rule (``deliveries_supersede_older``).

Nothing here enqueues a task: the caller asks ``updates_app.tasks.dispatch_soon``
to start sending before the next beat.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from agents_app.models import Client, ClientQuerySet, ConnectionStatus
from console.audit import audit_record
from updates_app.engine.claim import claim_released
from updates_app.models import (
    OPEN_STATUSES,
    AutoUpdateSettings,
    ComponentVersion,
    Delivery,
    DeliveryStatus,
    RunTrigger,
    UpdateRun,
)

logger = logging.getLogger(__name__)


def client_is_roaming(client: Client) -> bool:
    return client.status == ConnectionStatus.ROAMING


def deliveries_create(
    *,
    run: UpdateRun,
    clients: QuerySet[Client],
    next_attempt_at: dt.datetime | None = None,
) -> int:
    """One delivery per client of ``run``, in one INSERT ... SELECT; supersedes their older open deliveries.

    Unreachable clients get ``push=False``: they receive it at check-in.
    Roaming clients get ``no_scan``: never asked to scan. Returns the number created.
    """
    created = _insert_deliveries(run=run, clients=clients, when=next_attempt_at or timezone.now())
    deliveries_supersede_older(run=run)
    return created


def _insert_deliveries(*, run: UpdateRun, clients: QuerySet[Client], when: dt.datetime) -> int:
    """The rows are built by the database from the client query: no row travels through Python.

    Columns this function does not decide get their model default, so a field
    added to Delivery later needs no change here.
    """
    picked = clients.order_by().annotate(dl_client=F("pk"), dl_status=F("status")).values("dl_client", "dl_status")
    try:
        client_sql, client_params = picked.query.sql_with_params()
    except EmptyResultSet:
        # e.g. pk__in=[]: nobody to notify.
        return 0
    qn = connection.ops.quote_name
    decided: dict[str, tuple[str, list[object]]] = {
        "run_id": ("%s", [run.pk]),
        "client_id": ("c.dl_client", []),
        "next_attempt_at": ("%s", [when]),
        "created_at": ("%s", [timezone.now()]),
        "push": ("(c.dl_status <> %s)", [ConnectionStatus.UNREACHABLE]),
        "no_scan": ("(c.dl_status = %s)", [ConnectionStatus.ROAMING]),
    }
    columns: list[str] = []
    values: list[str] = []
    params: list[object] = []
    for field in Delivery._meta.concrete_fields:
        if field.primary_key:
            continue
        assert field.column is not None  # every concrete field has a column
        columns.append(qn(field.column))
        if field.attname in decided:
            sql, field_params = decided[field.attname]
            field_params = [field.get_db_prep_save(p, connection) if sql == "%s" else p for p in field_params]
        else:
            sql, field_params = "%s", [field.get_db_prep_save(field.get_default(), connection)]
        values.append(sql)
        params.extend(field_params)
    # Only quoted names and placeholders are spliced in; every value is a parameter.
    statement = (
        f"INSERT INTO {qn(Delivery._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM ({client_sql}) AS c"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, *client_params])  # type: ignore[list-item]  # prepared values
        return cursor.rowcount


def deliveries_supersede_older(*, run: UpdateRun) -> int:
    """Older open deliveries of this run's clients stop: this run replaces them."""
    return (
        Delivery.objects.filter(
            client_id__in=Delivery.objects.filter(run=run).values("client_id"),
            status__in=OPEN_STATUSES,
            run__created_at__lte=run.created_at,
        )
        .exclude(run=run)
        .update(**claim_released(status=DeliveryStatus.SUPERSEDED))
    )


@transaction.atomic
def run_create_for_event(*, version: ComponentVersion) -> UpdateRun | None:
    """The event-triggered run for a new component version, or None when the option is off."""
    auto = AutoUpdateSettings.load()
    if not auto.notify_on_download:
        return None
    run = UpdateRun.objects.create(
        trigger=RunTrigger.EVENT, scan_after=auto.scan_after_update, component_version=version
    )
    count = deliveries_create(
        run=run, clients=event_eligible_clients(include_roaming_offline=auto.include_roaming_offline)
    )
    _log_new_run(run, count)
    return run


def event_eligible_clients(*, include_roaming_offline: bool) -> ClientQuerySet:
    """The clients an event-triggered update notifies (a staged roll-out splits them into rings)."""
    statuses = [ConnectionStatus.ONLINE, ConnectionStatus.UNREACHABLE]
    if include_roaming_offline:
        statuses += [ConnectionStatus.ROAMING, ConnectionStatus.OFFLINE]
    return Client.objects.active().filter(status__in=statuses)


@transaction.atomic
def run_create_for_rollback(*, version: ComponentVersion, clients: ClientQuerySet, created_by) -> UpdateRun:
    """The run that tells ``clients`` (holding a withdrawn version) to go back to ``version``.

    The same deliveries as any run: pushed and retried under the 15-minute rule,
    handed over at check-in to unreachable clients. Offline clients are not
    pushed either (nothing would answer): their delivery waits, no attempt
    spent, and is handed over when they restart and check in.
    """
    run = UpdateRun.objects.create(
        trigger=RunTrigger.ROLLBACK, scan_after=False, component_version=version, created_by=created_by
    )
    count = deliveries_create(run=run, clients=clients.active())
    _log_new_run(run, count)
    run.deliveries.filter(client__status=ConnectionStatus.OFFLINE).update(
        push=False, last_error="offline: handed over when the client restarts and checks in"
    )
    return run


@transaction.atomic
def run_create_manual(*, created_by, clients: ClientQuerySet) -> UpdateRun:
    """A Manual Update: notify these clients to update now, through the same engine."""
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL, scan_after=False, created_by=created_by)
    count = deliveries_create(run=run, clients=clients.active())
    audit_record(
        actor=created_by, action="manual update", target=str(run), changes={"clients_notified": count, "run": run.pk}
    )
    _log_new_run(run, count)
    return run


def _log_new_run(run: UpdateRun, clients: int) -> None:
    """One line per new run, once it is committed (scheduled runs are logged where their window opens)."""
    what = f" for {run.component_version}" if run.component_version_id else ""
    who = f" by {run.created_by}" if run.created_by_id else ""
    trigger = run.get_trigger_display().lower()
    transaction.on_commit(lambda: logger.info("new %s run #%s%s%s: %d clients", trigger, run.pk, what, who, clients))


@transaction.atomic
def run_cancel(*, run: UpdateRun, cancelled_by) -> int:
    """Stop a run: its pending and retrying deliveries are cancelled. Returns how many."""
    locked = UpdateRun.objects.select_for_update().get(pk=run.pk)
    if locked.cancelled_at:
        return 0
    locked.cancelled_at = timezone.now()
    locked.save(update_fields=["cancelled_at"])
    run.cancelled_at = locked.cancelled_at
    stopped = locked.deliveries.filter(status__in=OPEN_STATUSES).update(
        **claim_released(status=DeliveryStatus.CANCELLED)
    )
    audit_record(
        actor=cancelled_by,
        action="cancel update run",
        target=str(run),
        changes={"deliveries_stopped": stopped, "run": run.pk},
    )
    return stopped


def _restart_run_for(day: dt.date, *, scan_after: bool) -> UpdateRun:
    # One run per day (and per scan option, should it change during the day).
    key = f"restart:{day.isoformat()}:{'scan' if scan_after else 'update'}"
    run = UpdateRun.objects.filter(window_key=key).first()
    if run:
        return run
    try:
        with transaction.atomic():
            return UpdateRun.objects.create(trigger=RunTrigger.RESTART, window_key=key, scan_after=scan_after)
    except IntegrityError:
        # Another check-in created today's run first.
        return UpdateRun.objects.get(window_key=key)


@transaction.atomic
def restart_delivery_create(*, client: Client, scan_after: bool) -> Delivery:
    """Record "update now" for a restarting, outdated client, handed over at once."""
    now = timezone.now()
    run = _restart_run_for(timezone.localdate(now), scan_after=scan_after)
    delivery, created = Delivery.objects.get_or_create(
        run=run,
        client=client,
        defaults={
            "status": DeliveryStatus.DELIVERED,
            "attempts": 1,
            "next_attempt_at": now,
            "delivered_at": now,
            "push": False,
            "at_checkin": True,
        },
    )
    if not created:
        # Restarted again the same day: the same record, handed over again.
        Delivery.objects.filter(pk=delivery.pk).update(
            attempts=F("attempts") + 1, delivered_at=now, status=DeliveryStatus.DELIVERED
        )
        delivery.refresh_from_db()
    # Told to update now: the client's other open deliveries are moot.
    Delivery.objects.filter(client=client, status__in=OPEN_STATUSES).exclude(pk=delivery.pk).update(
        **claim_released(status=DeliveryStatus.SUPERSEDED)
    )
    return delivery
