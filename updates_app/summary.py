"""Read side of the Update Summary: component standing and run progress, in bulk queries."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from agents_app.models import Client
from updates_app.compliance import Compliance, compliance_counts
from updates_app.models import Delivery, DeliveryStatus, UpdateRun
from updates_app.progress import PROGRESS_FIELDS, progress_attach


def component_standings() -> Compliance:
    """Per component: the server's version, its date, and the clients up to date, outdated, inconsistent, unknown."""
    return compliance_counts()


__all__ = ["PROGRESS_FIELDS", "component_standings", "progress_attach", "progress_of", "runs_with_progress"]


def runs_with_progress() -> QuerySet[UpdateRun]:
    """Runs, newest first; ``progress_of``/``progress_attach`` count the progress of a page of them.

    Counting per page (one grouped query over those runs' deliveries) keeps the
    Summary as fast with millions of old delivery rows as with none: a join of
    every run with every delivery would read them all.
    """
    runs = UpdateRun.objects.select_related("created_by", "component_version__component")
    return runs.order_by("-created_at", "-pk")


def progress_of(runs) -> dict[int, dict[str, int]]:
    return {run.pk: {field: getattr(run, field) for field in PROGRESS_FIELDS} for run in progress_attach(runs)}


def client_deliveries(client: Client) -> QuerySet[Delivery]:
    return client.deliveries.select_related("run", "run__component_version__component").order_by("-created_at", "-pk")


DELIVERY_CSV_HEADER = [
    "Client",
    "IP address",
    "Status",
    "Handed over at check-in",
    "Attempts",
    "Next attempt",
    "Last error",
    "Delivered",
    "Updated (reported)",
]


def delivery_csv_rows(deliveries: QuerySet[Delivery]) -> Iterator[list[object]]:
    """A run's deliveries for its CSV, read in chunks from the database (streamed, never all in memory)."""
    labels = dict(DeliveryStatus.choices)
    open_now = {DeliveryStatus.PENDING, DeliveryStatus.RETRYING}
    rows = deliveries.values_list(
        "client__hostname",
        "client__ip_address",
        "status",
        "at_checkin",
        "push",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
        "update_reported_at",
    )
    for host, ip, status, at_checkin, push, attempts, next_at, error, delivered, updated in rows.iterator(
        chunk_size=2000
    ):
        handed_over = status == DeliveryStatus.DELIVERED and (at_checkin or not push)
        yield [
            host,
            ip,
            labels.get(status, status),
            handed_over,
            attempts,
            next_at if status in open_now else None,
            error,
            delivered,
            updated,
        ]
