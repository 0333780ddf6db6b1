"""Retention: a database that does not grow without bound.

Every download makes one delivery per client: with 100,000 clients and
patterns updated several times a day that is millions of rows a day. So:

- **Runs are kept forever, with their counts.** Once a run is finished (no
  delivery pending, sending or retrying) and settled (two days old: it takes
  no new deliveries), its progress counts are stored on the run
  (``UpdateRun.kept_*``), so the Summary never counts an old run's rows
  again (updates_app/progress.py); a late report still adds to kept_updated.
  When it is older than DELIVERY_RETENTION_DAYS its per-delivery detail is
  removed; the counts stay.
- **Deleting never holds long locks.** Rows go in statements of
  RETENTION_BATCH_SIZE, each its own short transaction, at most
  RETENTION_MAX_BATCHES per beat round; a run half-deleted when the round ends
  (``details_pruned_at`` not set yet) is finished next round.
- **Inactive clients leave the tree** (the original's Administration >
  Inactive Clients): clients silent for longer than INACTIVE_CLIENT_DAYS (0:
  never) are revoked, with one audit entry per sweep, and drop out of the tree,
  the counts and every run. A revoked client that comes back is told to
  register again (``register_again``) and does. Its record and its delivery
  history stay for DELIVERY_RETENTION_DAYS more, then go.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus
from console.audit import audit_record
from console.wording import plural
from updates_app.compliance import client_versions_forget
from updates_app.models import UNFINISHED_STATUSES, Delivery, UpdateRun
from updates_app.progress import kept_fields, progress_counts

RUNS_PER_ROUND = 100
# A run takes no new deliveries after this (a restart run collects a day's, a
# window lasts 24 hours at most): from then on its counts can be kept.
SETTLED_AFTER = dt.timedelta(days=2)
AUDIT_NAMES = 1000  # hostnames listed in one audit entry


@dataclass(frozen=True)
class RetentionResult:
    runs_kept: int  # runs whose counts were stored this round
    runs_pruned: int  # runs whose detail is now fully removed
    deliveries_removed: int
    clients_retired: int  # revoked for inactivity
    clients_removed: int  # revoked clients deleted after the retention period


def _retention_cutoff(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(days=settings.DELIVERY_RETENTION_DAYS)


def runs_due_for_counts(*, now: dt.datetime) -> list[UpdateRun]:
    """Finished, settled runs whose counts are not stored yet (oldest first, a bounded number)."""
    unfinished = Delivery.objects.filter(run=OuterRef("pk"), status__in=UNFINISHED_STATUSES)
    return list(
        UpdateRun.objects.filter(created_at__lt=now - SETTLED_AFTER, counts_kept_at__isnull=True)
        .exclude(Exists(unfinished))
        .order_by("created_at", "pk")[:RUNS_PER_ROUND]
    )


def run_counts_keep(*, run: UpdateRun, now: dt.datetime) -> None:
    """Store the run's counts on it, in one short transaction that holds only the run's row.

    The row is locked first: a report of an update arriving meanwhile either
    was counted here or waits and adds itself to kept_updated (engine/reports.py).
    """
    with transaction.atomic():
        if not UpdateRun.objects.select_for_update().filter(pk=run.pk, counts_kept_at__isnull=True).exists():
            return
        counts = progress_counts([run.pk])[run.pk]
        UpdateRun.objects.filter(pk=run.pk).update(counts_kept_at=now, **kept_fields(counts))


def _delete_batch(queryset, batch_size: int) -> int:
    """Delete up to ``batch_size`` rows of ``queryset`` by primary key, in one statement and transaction."""
    ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
    if ids:
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()
    return len(ids)


def delivery_details_prune(*, now: dt.datetime | None = None, budget: int | None = None) -> tuple[int, int, int]:
    """Keep the counts of settled runs, remove the deliveries of those past retention in batches.

    Returns (runs whose counts were kept, runs fully pruned, deliveries removed).
    """
    now = now or timezone.now()
    batch = settings.RETENTION_BATCH_SIZE
    budget = settings.RETENTION_MAX_BATCHES if budget is None else budget
    due = runs_due_for_counts(now=now)
    for run in due:
        run_counts_keep(run=run, now=now)
    removed = pruned = 0
    expired = UpdateRun.objects.filter(
        counts_kept_at__isnull=False, details_pruned_at__isnull=True, created_at__lt=_retention_cutoff(now)
    )
    for run_id in expired.order_by("created_at", "pk").values_list("pk", flat=True):
        while budget > 0:
            budget -= 1
            n = _delete_batch(Delivery.objects.filter(run_id=run_id), batch)
            removed += n
            if n < batch:
                UpdateRun.objects.filter(pk=run_id).update(details_pruned_at=now)
                pruned += 1
                break
        if budget <= 0:
            break
    return len(due), pruned, removed


def inactive_clients_retire(*, now: dt.datetime | None = None, budget: int | None = None) -> int:
    """Revoke clients silent for longer than INACTIVE_CLIENT_DAYS, with an audit entry; returns how many."""
    days = settings.INACTIVE_CLIENT_DAYS
    if not days:
        return 0
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=days)
    silent = Client.objects.active().filter(
        Q(last_contact_at__lt=cutoff) | Q(last_contact_at__isnull=True, registered_at__lt=cutoff)
    )
    batch = settings.RETENTION_BATCH_SIZE
    budget = settings.RETENTION_MAX_BATCHES if budget is None else budget
    retired: list[str] = []
    count = 0
    while budget > 0:
        budget -= 1
        rows = list(silent.order_by("pk").values_list("pk", "hostname")[:batch])
        if not rows:
            break
        ids = [pk for pk, _ in rows]
        with transaction.atomic():
            # Only rows still silent and active now: a client checking in meanwhile stays.
            Client.objects.filter(pk__in=ids).filter(
                Q(last_contact_at__lt=cutoff) | Q(last_contact_at__isnull=True, registered_at__lt=cutoff),
                revoked_at__isnull=True,
            ).update(revoked_at=now, status=ConnectionStatus.OFFLINE)
            gone = list(Client.objects.filter(pk__in=ids, revoked_at=now).values_list("pk", "hostname"))
            client_versions_forget(client_ids=[pk for pk, _ in gone])
        count += len(gone)
        retired.extend(name for _, name in gone)
    if count:
        audit_record(
            actor=None,
            action="clients.inactive_removed",
            target=plural(count, "inactive client"),
            changes={
                "count": count,
                "silent_for_more_than_days": days,
                "hostnames": retired[:AUDIT_NAMES],
                "hostnames_listed": min(count, AUDIT_NAMES),
            },
        )
    return count


def revoked_clients_delete(*, now: dt.datetime | None = None, budget: int | None = None) -> int:
    """Delete clients revoked longer ago than the retention period, with their history; returns how many."""
    now = now or timezone.now()
    old = Client.objects.filter(revoked_at__lt=_retention_cutoff(now))
    budget = settings.RETENTION_MAX_BATCHES if budget is None else budget
    removed = 0
    # Smaller batches: each client takes its deliveries and version rows along.
    batch = max(1, settings.RETENTION_BATCH_SIZE // 10)
    while budget > 0:
        budget -= 1
        ids = list(old.order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic():
            Delivery.objects.filter(client_id__in=ids).delete()
            Client.objects.filter(pk__in=ids).delete()
        removed += len(ids)
    return removed


def retention_prune(*, now: dt.datetime | None = None) -> RetentionResult:
    """One beat round of retention: inactive clients out, old detail and old revoked clients removed."""
    now = now or timezone.now()
    retired = inactive_clients_retire(now=now)
    kept, pruned, removed = delivery_details_prune(now=now)
    deleted = revoked_clients_delete(now=now)
    return RetentionResult(
        runs_kept=kept,
        runs_pruned=pruned,
        deliveries_removed=removed,
        clients_retired=retired,
        clients_removed=deleted,
    )
