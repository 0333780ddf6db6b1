"""Claiming due deliveries and recording what became of them.

The database is the source of truth. A dispatcher claims due rows in batches:
it marks them "sending", counts the attempt, stamps a claim token and a lease.
A send task posts the batch and records every outcome in bulk, but only for
rows that still carry its token. Rows whose worker died stay "sending" until
their lease expires; then the next claim takes them over and sends the same
attempt again, or gives them up, as the retry rule says (engine/retry.py).
Several dispatchers may run at once: on PostgreSQL the claim skips rows
another transaction has locked (SELECT ... FOR UPDATE SKIP LOCKED); SQLite
serves one machine and claims with a conditional update.
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
from django.db.models import Case, Count, F, Max, Min, Q, Value, When
from django.utils import timezone

from updates_app.engine import retry
from updates_app.models import OPEN_STATUSES, UNFINISHED_STATUSES, Delivery, DeliveryStatus


@dataclass(frozen=True)
class Claim:
    token: str
    delivery_ids: list[int]
    # How many of them are sent again because their worker was lost (same attempt, same webhook-id).
    resent: int = 0


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
    """Give up due rows the retry rule has spent: every attempt used, or their worker lost once too often."""
    now = now or timezone.now()
    return Delivery.objects.filter(_due(now), retry.spent()).update(
        **claim_released(
            status=DeliveryStatus.GAVE_UP,
            last_error=Case(
                When(status=DeliveryStatus.SENDING, then=Value(retry.lost_worker_gave_up())),
                default=F("last_error"),
            ),
        )
    )


def _oldest_due(now: dt.datetime, limit: int) -> list[tuple[int, str]]:
    """(pk, status) of the ``limit`` oldest rows a worker may take, one short ordered index range per status.

    SQLite's claim: it would otherwise walk the whole next_attempt_at index in
    order, through every finished delivery kept for the retention period, to
    avoid a sort; per status, delivery_due_idx (status, next_attempt_at) hands
    each range over in order and only unfinished rows are read.
    """
    ranges = [Delivery.objects.filter(status=status, push=True, next_attempt_at__lte=now) for status in OPEN_STATUSES]
    ranges.append(Delivery.objects.filter(status=DeliveryStatus.SENDING, lease_expires_at__lte=now))
    rows: list[tuple[dt.datetime, int, str]] = []
    for rows_of_status in ranges:
        ordered = rows_of_status.filter(retry.may_be_sent()).order_by("next_attempt_at", "pk")
        rows.extend(ordered.values_list("next_attempt_at", "pk", "status")[:limit])
    return [(pk, status) for _, pk, status in sorted(rows)[:limit]]


@transaction.atomic
def deliveries_claim(*, limit: int, now: dt.datetime | None = None) -> Claim | None:
    """Claim up to ``limit`` due deliveries for one send task; None when nothing is due."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    due = Delivery.objects.filter(_due(now), retry.may_be_sent())
    claim = {
        "status": DeliveryStatus.SENDING,
        # Counted now, before anything is sent (a row taken over from a lost
        # worker is the same attempt again: retry.counted_at_claim).
        **retry.counted_at_claim(),
        "lease_expires_at": now + dt.timedelta(seconds=settings.NOTIFY_LEASE_SECONDS),
        "claim_token": token,
    }
    if connection.features.has_select_for_update_skip_locked:
        # Rows locked by a concurrent claim are skipped, not waited for.
        candidates = due.order_by("next_attempt_at", "pk").values_list("pk", "status")
        rows = list(candidates.select_for_update(skip_locked=True)[:limit])
        if not rows:
            return None
        ids = [pk for pk, _ in rows]
        Delivery.objects.filter(pk__in=ids).update(**claim)
    else:
        rows = _oldest_due(now, limit)
        if not rows:
            return None
        ids = [pk for pk, _ in rows]
        # The condition repeats the due test: a row another process claimed
        # meanwhile is no longer due and is left alone.
        claimed = due.filter(pk__in=ids).update(**claim)
        if claimed != len(ids):
            ids = list(Delivery.objects.filter(claim_token=token).values_list("pk", flat=True))
            if not ids:
                return None
    taken = set(ids)
    resent = sum(1 for pk, status in rows if pk in taken and status == DeliveryStatus.SENDING)
    return Claim(token=token, delivery_ids=ids, resent=resent)


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


@dataclass(frozen=True)
class ClaimsHeld:
    """Rows held by claims: in flight (lease running), and left by a lost worker (lease run out, no outcome)."""

    in_flight: int
    # When the last running lease runs out.
    in_flight_until: dt.datetime | None
    lost: int
    # When the oldest lost lease ran out.
    lost_since: dt.datetime | None
    # Of the lost ones, those the next claim gives up (lost once too often) instead of sending again.
    lost_spent: int

    def resend_by(self, now: dt.datetime) -> dt.datetime | None:
        """When the lost rows (or, should their worker stop answering, the rows in flight) are sent again at the latest.

        The dispatcher's next round after the lease runs out takes them over,
        as long as a worker and beat run.
        """
        interval = dt.timedelta(seconds=settings.NOTIFY_DISPATCH_INTERVAL_SECONDS)
        if self.lost:
            return now + interval
        return self.in_flight_until + interval if self.in_flight_until else None


def claims_held(*, run_id: int | None = None, now: dt.datetime | None = None) -> ClaimsHeld:
    """What claims hold now, in one query (of one run, or of all): for the run page, /metrics and /health/ready."""
    now = now or timezone.now()
    # The status IN term is implied; it lets both databases read the partial index of unfinished rows.
    rows = Delivery.objects.filter(status__in=UNFINISHED_STATUSES).filter(status=DeliveryStatus.SENDING)
    if run_id is not None:
        rows = rows.filter(run_id=run_id)
    running, lost = Q(lease_expires_at__gt=now), Q(lease_expires_at__lte=now)
    held = rows.order_by().aggregate(
        in_flight=Count("pk", filter=running),
        in_flight_until=Max("lease_expires_at", filter=running),
        lost=Count("pk", filter=lost),
        lost_since=Min("lease_expires_at", filter=lost),
        lost_spent=Count("pk", filter=lost & retry.spent()),
    )
    return ClaimsHeld(**held)


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
