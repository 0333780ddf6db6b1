"""Claiming due deliveries and recording what became of them.

The database is the source of truth. A dispatcher claims due rows in batches:
it marks them "sending", counts the attempt, stamps a claim token and a lease.
A send task posts the batch and records every outcome in bulk, but only for
rows that still carry its token. Rows whose worker died stay "sending" until
their lease expires; then the next claim takes them over (and counts a new
attempt), or gives them up if they have no attempt left. Several dispatchers
may run at once: on PostgreSQL the claim skips rows another transaction has
locked (SELECT ... FOR UPDATE SKIP LOCKED); SQLite serves one machine and
claims with a conditional update.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from updates_app.engine import retry
from updates_app.models import UNFINISHED_STATUSES, Delivery, DeliveryStatus

OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
WORKER_LOST = "no outcome recorded: the worker was lost during the attempt"


@dataclass(frozen=True)
class Claim:
    token: str
    delivery_ids: list[int]


class ClaimedDelivery(NamedTuple):
    """A row held under a claim, with what sending it needs (``push_allowed`` reads the client's fields)."""

    pk: int
    run_id: int
    run_scan_after: bool
    no_scan: bool
    client_guid: UUID
    ip_address: str
    listener_port: int
    status: str
    revoked_at: dt.datetime | None


def claim_released(**fields: Any) -> dict[str, Any]:
    """The update that ends a claim: the given fields, and no token or lease any more.

    Every statement that moves a row out of "sending" (or keeps a row from
    being sent) goes through here, so no row is left holding a stale lease.
    """
    return {**fields, "lease_expires_at": None, "claim_token": ""}


def _due(now: dt.datetime) -> Q:
    """Rows a worker may take now: open and due, or sending with an expired lease.

    The leading ``status IN (unfinished)`` term is implied by the rest; it is
    there so that both databases read the partial index of unfinished rows
    (``delivery_unfinished_idx``) instead of every delivery ever made.
    """
    return Q(status__in=UNFINISHED_STATUSES) & (
        Q(status__in=OPEN_STATUSES, push=True, next_attempt_at__lte=now)
        | Q(status=DeliveryStatus.SENDING, lease_expires_at__lte=now)
    )


def deliveries_give_up_exhausted(*, now: dt.datetime | None = None) -> int:
    """Give up due rows that have used every attempt (e.g. a worker died during the last one)."""
    now = now or timezone.now()
    return Delivery.objects.filter(_due(now), attempts__gte=retry.max_attempts()).update(
        **claim_released(
            status=DeliveryStatus.GAVE_UP,
            last_error=Case(
                When(status=DeliveryStatus.SENDING, then=Value(WORKER_LOST)),
                default=F("last_error"),
            ),
        )
    )


def _oldest_due_ids(now: dt.datetime, limit: int) -> list[int]:
    """The ``limit`` oldest due rows, one short ordered index range per status (SQLite's claim).

    SQLite would otherwise walk the whole next_attempt_at index in order,
    through every finished delivery kept for the retention period, to avoid a
    sort; per status, delivery_due_idx (status, next_attempt_at) hands each
    range over in order and only unfinished rows are read.
    """
    left = Q(attempts__lt=retry.max_attempts())
    ranges = [Delivery.objects.filter(status=status, push=True, next_attempt_at__lte=now) for status in OPEN_STATUSES]
    ranges.append(Delivery.objects.filter(status=DeliveryStatus.SENDING, lease_expires_at__lte=now))
    rows: list[tuple[dt.datetime, int]] = []
    for rows_of_status in ranges:
        ordered = rows_of_status.filter(left).order_by("next_attempt_at", "pk")
        rows.extend(ordered.values_list("next_attempt_at", "pk")[:limit])
    return [pk for _, pk in sorted(rows)[:limit]]


@transaction.atomic
def deliveries_claim(*, limit: int, now: dt.datetime | None = None) -> Claim | None:
    """Claim up to ``limit`` due deliveries for one send task; None when nothing is due."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    due = Delivery.objects.filter(_due(now), attempts__lt=retry.max_attempts())
    candidates = due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)
    claim = {
        "status": DeliveryStatus.SENDING,
        # Counted now, before anything is sent: an attempt cut short by a dying
        # worker still counts, exactly once.
        "attempts": F("attempts") + 1,
        "lease_expires_at": now + dt.timedelta(seconds=settings.NOTIFY_LEASE_SECONDS),
        "claim_token": token,
    }
    if connection.features.has_select_for_update_skip_locked:
        # Rows locked by a concurrent claim are skipped, not waited for.
        ids = list(candidates.select_for_update(skip_locked=True)[:limit])
        if not ids:
            return None
        Delivery.objects.filter(pk__in=ids).update(**claim)
        return Claim(token=token, delivery_ids=ids)
    ids = _oldest_due_ids(now, limit)
    if not ids:
        return None
    # The condition repeats the due test: a row another process claimed
    # meanwhile is no longer due and is left alone.
    claimed = due.filter(pk__in=ids).update(**claim)
    if claimed != len(ids):
        ids = list(Delivery.objects.filter(claim_token=token).values_list("pk", flat=True))
    return Claim(token=token, delivery_ids=ids) if ids else None


@transaction.atomic
def deliveries_record_outcomes(*, token: str, outcomes: dict[int, str | None], now: dt.datetime | None = None) -> None:
    """Record a batch's outcomes in two statements: delivered, and failed.

    ``outcomes`` maps a delivery id to None (delivered: a 2xx answer) or to the
    error of a failed attempt. Rows no longer held under ``token`` (re-claimed
    after a lease expired, or handed over at check-in) are left alone.
    """
    now = now or timezone.now()
    held = Delivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING)
    delivered = [pk for pk, error in outcomes.items() if error is None]
    failed_by_error: dict[str, list[int]] = defaultdict(list)
    for pk, error in outcomes.items():
        if error is not None:
            failed_by_error[error[:500]].append(pk)
    if delivered:
        held.filter(pk__in=delivered).update(**claim_released(status=DeliveryStatus.DELIVERED, delivered_at=now))
    if failed_by_error:
        failed = [pk for pks in failed_by_error.values() for pk in pks]
        held.filter(pk__in=failed).update(
            **claim_released(
                status=retry.status_after_failure(),
                next_attempt_at=now + retry.retry_interval(),
                last_error=Case(*[When(pk__in=pks, then=Value(error)) for error, pks in failed_by_error.items()]),
            )
        )


def deliveries_given_up_among(delivery_ids: list[int]) -> int:
    """How many of these deliveries have given up (after their last attempt failed)."""
    return Delivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.GAVE_UP).count()


def deliveries_hold_for_checkin(*, token: str, delivery_ids: list[int], reason: str) -> int:
    """Rows the server may not push to any more: no attempt spent, handed over at check-in."""
    if not delivery_ids:
        return 0
    return Delivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING, pk__in=delivery_ids).update(
        **claim_released(status=DeliveryStatus.PENDING, push=False, attempts=F("attempts") - 1, last_error=reason)
    )


def deliveries_in_flight(*, now: dt.datetime | None = None) -> int:
    """Rows claimed and not yet recorded (their lease still running)."""
    now = now or timezone.now()
    return Delivery.objects.filter(status=DeliveryStatus.SENDING, lease_expires_at__gt=now).count()


def deliveries_claimed(*, token: str) -> list[ClaimedDelivery]:
    """The rows held under ``token``, with what a send needs, in one query."""
    rows = (
        Delivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING)
        # In ClaimedDelivery's field order.
        .values_list(
            "pk",
            "run_id",
            "run__scan_after",
            "no_scan",
            "client__guid",
            "client__ip_address",
            "client__listener_port",
            "client__status",
            "client__revoked_at",
        )
        .order_by("pk")
    )
    return [ClaimedDelivery(*row) for row in rows]
