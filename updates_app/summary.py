"""Read side of the Update Summary: component standing and run progress, in bulk queries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Max, Q, QuerySet

from agents_app.models import Client
from updates_app.compliance import is_behind
from updates_app.models import Component, Delivery, DeliveryStatus, UpdateRun
from updates_app.version_labels import reported_number, version_label

PROGRESS_FIELDS = ("total", "pending", "delivered", "retrying", "gave_up", "stopped", "updated")


@dataclass(frozen=True)
class ComponentStanding:
    component: Component
    latest_number: int | None
    last_updated: object
    outdated: int
    clients: int
    # After a rollback: the newest withdrawn version above the current one, and
    # how many clients still hold a withdrawn version (they count as outdated too).
    withdrawn_number: int | None = None
    on_withdrawn: int = 0

    @property
    def latest_label(self) -> str | None:
        return None if self.latest_number is None else version_label(self.latest_number)

    @property
    def rolled_back_from_label(self) -> str | None:
        return None if self.withdrawn_number is None else version_label(self.withdrawn_number)

    @property
    def outdated_rate(self) -> float:
        return self.outdated / self.clients if self.clients else 0.0


def component_standings() -> list[ComponentStanding]:
    """Per component: the server's version, its date, and how many clients are behind."""
    offered = Q(versions__withdrawn_at__isnull=True)
    components = list(
        Component.objects.annotate(
            latest=Max("versions__number", filter=offered),
            last=Max("versions__released_at", filter=offered),
            withdrawn=Max("versions__number", filter=~offered),
        )
    )
    for c in components:
        # Rolled back: withdrawn versions above the current one (a later download clears this).
        c.withdrawn = c.withdrawn if c.withdrawn and (c.latest is None or c.withdrawn > c.latest) else None
    behind = dict.fromkeys((c.slug for c in components), 0)
    ahead = dict.fromkeys((c.slug for c in components), 0)
    total = 0
    for reported in Client.objects.active().values_list("component_versions", flat=True).iterator(chunk_size=2000):
        total += 1
        versions = reported if isinstance(reported, dict) else {}
        for component in components:
            if component.latest is not None and is_behind(versions.get(component.slug), component.latest):
                behind[component.slug] += 1
                have = reported_number(versions.get(component.slug))
                if component.withdrawn and have is not None and have > component.latest:
                    ahead[component.slug] += 1
    return [
        ComponentStanding(
            component=c,
            latest_number=c.latest,
            last_updated=c.last,
            outdated=behind[c.slug],
            clients=total,
            withdrawn_number=c.withdrawn,
            on_withdrawn=ahead[c.slug],
        )
        for c in components
    ]


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
