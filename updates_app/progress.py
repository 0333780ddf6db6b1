"""A run's progress: how many of its deliveries are pending, delivered, retrying, given up, stopped, updated.

Counted from the deliveries while they are kept; a run whose detail was
run that is finished and settled carries its counts in ``UpdateRun.kept_*``
(updates_app/retention.py), forever, so old runs cost nothing to show.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from django.db.models import Count, Q

from updates_app.models import Delivery, DeliveryStatus, UpdateRun

PROGRESS_FIELDS = ("total", "pending", "delivered", "retrying", "gave_up", "stopped", "updated")
_OPEN_NOW = [DeliveryStatus.PENDING, DeliveryStatus.SENDING]
_STOPPED = [DeliveryStatus.SUPERSEDED, DeliveryStatus.CANCELLED]


def progress_counts(run_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{run id: counts} from the deliveries of these runs only: one grouped query on the (run, client) index."""
    ids = list(run_ids)
    counts = {pk: dict.fromkeys(PROGRESS_FIELDS, 0) for pk in ids}
    if not ids:
        return counts
    rows = (
        Delivery.objects.filter(run_id__in=ids)
        .order_by()
        .values("run_id")
        .annotate(
            total=Count("pk"),
            pending=Count("pk", filter=Q(status__in=_OPEN_NOW)),
            delivered=Count("pk", filter=Q(status=DeliveryStatus.DELIVERED)),
            retrying=Count("pk", filter=Q(status=DeliveryStatus.RETRYING)),
            gave_up=Count("pk", filter=Q(status=DeliveryStatus.GAVE_UP)),
            stopped=Count("pk", filter=Q(status__in=_STOPPED)),
            updated=Count("pk", filter=Q(update_reported_at__isnull=False)),
        )
    )
    for row in rows:
        values = cast(dict[str, int], row)
        counts[values["run_id"]] = {field: values[field] for field in PROGRESS_FIELDS}
    return counts


def kept_counts(run: UpdateRun) -> dict[str, int] | None:
    """The counts stored on the run, or None while they are counted from its deliveries."""
    if run.counts_kept_at is None:
        return None
    return {field: getattr(run, f"kept_{field}") or 0 for field in PROGRESS_FIELDS}


def kept_fields(counts: dict[str, int]) -> dict[str, int]:
    """The UpdateRun fields that store ``counts``."""
    return {f"kept_{field}": counts[field] for field in PROGRESS_FIELDS}


def progress_attach(runs: Iterable[UpdateRun]) -> list[UpdateRun]:
    """Set ``total``, ``pending``, ... on each run: kept counts where stored, counted ones for the others."""
    runs = list(runs)
    counted = progress_counts(run.pk for run in runs if run.counts_kept_at is None)
    for run in runs:
        values = kept_counts(run) or counted[run.pk]
        for field in PROGRESS_FIELDS:
            setattr(run, field, values[field])
    return runs
