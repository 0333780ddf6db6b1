"""Rollback (Updates > Rollback): take a component back to one of its kept earlier versions.

The administrator picks a component and one of the earlier versions whose
full file the server still keeps (the last 7, updates_app.components). The
server then, in one transaction:

- withdraws every version newer than the chosen one: a withdrawn version is
  never offered again, in a manifest, a download, a restart update or a
  schedule (they all read the current version, the newest not withdrawn);
- so the chosen version becomes current;
- creates a run (trigger "rollback") for every client holding a withdrawn
  version, delivered by the same engine as every other run: pushed and retried
  under the 15-minute rule, handed over at check-in to unreachable clients and
  at restart to offline ones. The agent reads the manifest, sees a current
  version older than its own, downloads that version's full file, checks its
  SHA-256 and reports;
- writes one audit entry.

A later download is numbered after the withdrawn versions and becomes current:
that clears the rolled-back state (the withdrawn versions stay withdrawn).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from agents_app.models import Client, ClientQuerySet
from console.audit import audit_record
from updates_app.components import FULL_VERSIONS_KEPT, kept_full_file
from updates_app.engine.runs import run_create_for_rollback
from updates_app.models import (
    HOLDING_STATES,
    ClientComponent,
    Component,
    ComponentVersion,
    Rollout,
    RolloutState,
    UpdateRun,
)
from updates_app.version_labels import VersionLabelError, parse_version_label, version_label


class RollbackError(ValueError):
    """A rollback that cannot be done; the message says why, for the administrator."""


@dataclass(frozen=True)
class RollbackChoice:
    """A component on the Rollback screen: its current version and the versions it can go back to."""

    component: Component
    current: ComponentVersion | None
    earlier: list[ComponentVersion]
    withdrawn: list[ComponentVersion]


def rollback_choices() -> list[RollbackChoice]:
    """Every component with its current version, its kept earlier versions and its withdrawn ones (two queries)."""
    by_component: dict[int, list[ComponentVersion]] = {}
    for version in ComponentVersion.objects.order_by("component_id", "-number"):
        by_component.setdefault(version.component_id, []).append(version)
    choices = []
    for component in Component.objects.order_by("name"):
        versions = by_component.get(component.pk, [])
        offered = [v for v in versions if v.withdrawn_at is None]
        current = offered[0] if offered else None
        earlier = [v for v in offered[1:] if v.file_path]
        withdrawn = [v for v in versions if v.withdrawn_at is not None]
        choices.append(RollbackChoice(component=component, current=current, earlier=earlier, withdrawn=withdrawn))
    return choices


def clients_holding(*, component: Component, numbers: list[int]) -> ClientQuerySet:
    """Active clients that report one of these versions of the component.

    Read from ``ClientComponent`` (updates_app.compliance keeps it in step with
    what agents report, labels and numbers alike), indexed by (component,
    number): one query whatever the fleet's size.
    """
    rows = ClientComponent.objects.filter(client=OuterRef("pk"), component=component.slug, number__in=numbers)
    return Client.objects.active().filter(Exists(rows))


@transaction.atomic
def component_rollback(*, component: Component, version_label_text: str, actor) -> UpdateRun:
    """Roll ``component`` back to the version labelled ``version_label_text``; returns the rollback run.

    RollbackError (and nothing changed) when the version does not exist, is
    not older than the current one, is withdrawn, or its full file is no
    longer kept.
    """
    # The component row lock orders this against downloads and other rollbacks.
    component = Component.objects.select_for_update().get(pk=component.pk)
    try:
        number = parse_version_label(version_label_text.strip())
    except VersionLabelError as exc:
        raise RollbackError(str(exc)) from None
    label = version_label(number)
    target = ComponentVersion.objects.filter(component=component, number=number).first()
    if target is None:
        raise RollbackError(f"The server has no {component.name} version {label}.")
    current = ComponentVersion.objects.offered().filter(component=component).order_by("-number").first()
    if current is None:
        raise RollbackError(f"{component.name} has no current version to roll back from.")
    if target.withdrawn_at is not None:
        raise RollbackError(f"{component.name} {label} was itself withdrawn by a rollback; choose an older version.")
    if number >= current.number:
        raise RollbackError(
            f"{component.name} {label} is not older than the current version {current.label}; "
            "choose an earlier version."
        )
    if not kept_full_file(target):
        raise RollbackError(
            f"The full file of {component.name} {label} is no longer kept (the server keeps the last "
            f"{FULL_VERSIONS_KEPT} versions); choose a more recent one."
        )
    now = timezone.now()
    newer = ComponentVersion.objects.offered().filter(component=component, number__gt=number)
    withdrawn_numbers = sorted(newer.values_list("number", flat=True))
    newer_ids = list(newer.values_list("pk", flat=True))
    newer.update(withdrawn_at=now)
    # Staged roll-outs of the withdrawn versions end here: no further ring.
    Rollout.objects.filter(version__in=newer_ids, state__in=HOLDING_STATES).update(
        state=RolloutState.ROLLED_BACK, resolved_at=now, resolved_by=actor if actor and actor.pk else None
    )
    # Clients on any withdrawn version of the component go back (compliance counts them outdated),
    # also those still on one an earlier rollback withdrew.
    all_withdrawn = list(
        ComponentVersion.objects.filter(component=component, withdrawn_at__isnull=False).values_list(
            "number", flat=True
        )
    )
    run = run_create_for_rollback(
        version=target, clients=clients_holding(component=component, numbers=all_withdrawn), created_by=actor
    )
    audit_record(
        actor=actor,
        action="rollback",
        target=f"{component.name}",
        changes={
            "current_version": {"label": "Current version", "old": current.label, "new": label},
            "withdrawn": ", ".join(version_label(n) for n in withdrawn_numbers),
            "run": str(run),
            "clients to roll back": run.deliveries.count(),
        },
    )
    return run


def rollout_roll_back(*, rollout: Rollout, actor) -> UpdateRun:
    """One action from a halted roll-out: roll its component back to the newest kept version before it."""
    version = rollout.version
    target = (
        ComponentVersion.objects.offered()
        .filter(component_id=version.component_id, number__lt=version.number)
        .exclude(file_path="")
        .order_by("-number")
        .first()
    )
    if target is None:
        raise RollbackError(f"{version.component.name} has no kept version before {version.label} to roll back to.")
    return component_rollback(component=version.component, version_label_text=target.label, actor=actor)
