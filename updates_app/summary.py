"""Read side of the Update Summary: component standing and run progress, in bulk queries."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from agents_app.models import Client
from updates_app.compliance import Compliance, compliance_counts
from updates_app.models import Delivery, DeliveryStatus, UpdateRun

PROGRESS_FIELDS = ("total", "pending", "delivered", "retrying", "gave_up", "stopped", "updated")


def component_standings() -> Compliance:
    """Per component: the server's version, its date, and the clients up to date, outdated, inconsistent, unknown."""
    return compliance_counts()


def runs_with_progress() -> QuerySet[UpdateRun]:
    """Runs annotated with their deliveries' progress, counted in the same query."""
    open_now = [DeliveryStatus.PENDING, DeliveryStatus.SENDING]
    stopped = [DeliveryStatus.SUPERSEDED, DeliveryStatus.CANCELLED]
    runs = UpdateRun.objects.select_related("created_by", "component_version__component")
    return runs.order_by("-created_at", "-pk").annotate(
        total=Count("deliveries"),
        pending=Count("deliveries", filter=Q(deliveries__status__in=open_now)),
        delivered=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.DELIVERED)),
        retrying=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.RETRYING)),
        gave_up=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.GAVE_UP)),
        stopped=Count("deliveries", filter=Q(deliveries__status__in=stopped)),
        updated=Count("deliveries", filter=Q(deliveries__update_reported_at__isnull=False)),
    )


def progress_of(runs) -> dict[int, dict[str, int]]:
    return {run.pk: {field: getattr(run, field) for field in PROGRESS_FIELDS} for run in runs}


def client_deliveries(client: Client) -> QuerySet[Delivery]:
    return client.deliveries.select_related("run", "run__component_version__component").order_by("-created_at", "-pk")
