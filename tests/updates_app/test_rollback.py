"""Rollback: withdrawing newer versions, the rollback run, validation, the screen and the download refusal."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from agent_api.authentication import token_digest
from agents_app.models import Client, ConnectionStatus, Domain
from console.models import AuditEntry
from updates_app.compliance import client_versions_record, latest_version_numbers, outdated_slugs
from updates_app.components import (
    FULL_VERSIONS_KEPT,
    ComponentWithdrawn,
    component_download,
    component_file,
    component_manifest,
    component_resolve,
)
from updates_app.engine.handover import actions_for_checkin
from updates_app.models import AutoUpdateSettings, ComponentVersion, Delivery, RunTrigger, UpdateRun
from updates_app.rollback import RollbackError, clients_holding, component_rollback
from updates_app.summary import component_standings
from updates_app.version_labels import version_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(component_storage, django_capture_on_commit_callbacks):
    """Three Virus Pattern versions, with every on-commit step (pruning, the event run) done."""
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"notify_on_download": False})
    component = component_resolve("virus_pattern")
    made = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            made.append(component_download(component=component))
    return made


@pytest.fixture
def holders(versions):
    domain = Domain.objects.create(name="Desks")
    labels = [version_label(v.number) for v in versions]

    def make(hostname, held, **fields):
        fields.setdefault("status", ConnectionStatus.ONLINE)
        client = Client.objects.create(
            domain=domain,
            hostname=hostname,
            ip_address="127.0.0.1",
            component_versions={"virus_pattern": held},
            **fields,
        )
        if client.revoked_at is None:  # recorded as a check-in would (updates_app.compliance)
            client_versions_record(client=client, reported=client.component_versions)
        return client

    return {
        "old": make("old", labels[0]),
        "mid": make("mid", labels[1]),
        "new": make("new", labels[2]),
        "digits": make("digits", str(versions[2].number)),
        "number": make("number", versions[2].number),
        "offline": make("offline", labels[2], status=ConnectionStatus.OFFLINE),
        "revoked": make("revoked", labels[2], revoked_at="2026-01-01T00:00:00Z"),
    }


def test_a_rollback_withdraws_the_newer_versions_and_makes_the_chosen_one_current(versions, holders, admin_user):
    first, _second, third = versions
    run = component_rollback(
        component=first.component, version_label_text=version_label(first.number), actor=admin_user
    )
    assert set(ComponentVersion.objects.offered().values_list("number", flat=True)) == {first.number}
    assert ComponentVersion.objects.get(pk=third.pk).withdrawn_at is not None
    assert latest_version_numbers() == {"virus_pattern": first.number}
    [item] = component_manifest({"virus_pattern": version_label(third.number)})
    assert item["latest_version"] == version_label(first.number)
    assert item["incremental"] is None and item["sha256"] == first.sha256
    # The run reaches every active holder of a withdrawn version, whichever form it reported.
    assert run.trigger == RunTrigger.ROLLBACK and run.component_version == first and run.created_by == admin_user
    notified = set(run.deliveries.values_list("client__hostname", flat=True))
    assert notified == {"mid", "new", "digits", "number", "offline"}
    # The offline one is not pushed: it gets the roll-back when it restarts.
    assert set(run.deliveries.filter(push=False).values_list("client__hostname", flat=True)) == {"offline"}
    [entry] = AuditEntry.objects.filter(action="rollback")
    assert entry.changes["current_version"]["old"] == version_label(third.number)
    assert entry.changes["current_version"]["new"] == version_label(first.number)
    assert entry.changes["clients to roll back"] == 5


def test_a_client_on_a_withdrawn_version_counts_as_outdated_and_is_told_at_restart(versions, holders, admin_user):
    first, _second, third = versions
    component_rollback(component=first.component, version_label_text=version_label(first.number), actor=admin_user)
    assert outdated_slugs({"virus_pattern": version_label(third.number)}) == ["virus_pattern"]
    assert outdated_slugs({"virus_pattern": version_label(first.number)}) == []
    [standing] = component_standings().components
    assert (standing.latest_number, standing.withdrawn_number) == (first.number, third.number)
    assert standing.on_withdrawn == 5  # mid, new, digits, number and offline (the revoked one does not count)
    # The offline client's waiting delivery is handed over when it restarts.
    offline = holders["offline"]
    [action] = actions_for_checkin(
        offline, event="restart", reported_versions={"virus_pattern": version_label(third.number)}
    )
    assert Delivery.objects.get(pk=action["delivery_id"]).run.trigger == RunTrigger.ROLLBACK


@pytest.mark.parametrize(
    ("choose", "message"),
    [
        (lambda v: "18.999.00", "The server has no Virus Pattern version 18.999.00."),
        (lambda v: version_label(v[2].number), "is not older than the current version"),
        (lambda v: "eighteen", "is not a version such as 18.523.00"),
    ],
)
def test_bad_choices_are_refused_with_a_clear_message_and_change_nothing(
    versions, holders, admin_user, choose, message
):
    with pytest.raises(RollbackError, match=message):
        component_rollback(component=versions[0].component, version_label_text=choose(versions), actor=admin_user)
    assert not ComponentVersion.objects.filter(withdrawn_at__isnull=False).exists()
    assert not UpdateRun.objects.filter(trigger=RunTrigger.ROLLBACK).exists()
    assert not AuditEntry.objects.filter(action="rollback").exists()


def test_a_withdrawn_version_cannot_be_the_target(versions, holders, admin_user):
    first, second, _third = versions
    component_rollback(component=first.component, version_label_text=version_label(first.number), actor=admin_user)
    with pytest.raises(RollbackError, match="was itself withdrawn"):
        component_rollback(component=first.component, version_label_text=version_label(second.number), actor=admin_user)


def test_a_version_whose_full_file_is_no_longer_kept_is_refused(
    component_storage, django_capture_on_commit_callbacks, admin_user
):
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"notify_on_download": False})
    component = component_resolve("virus_pattern")
    made = []
    for _ in range(FULL_VERSIONS_KEPT + 1):
        with django_capture_on_commit_callbacks(execute=True):
            made.append(component_download(component=component))
    with pytest.raises(RollbackError, match="no longer kept"):
        component_rollback(component=component, version_label_text=version_label(made[0].number), actor=admin_user)
    run = component_rollback(component=component, version_label_text=version_label(made[1].number), actor=admin_user)
    assert run.component_version == made[1]


def test_the_download_of_a_withdrawn_version_is_refused_with_a_json_error(client, versions, admin_user):
    first, _second, third = versions
    component_rollback(component=first.component, version_label_text=version_label(first.number), actor=admin_user)
    with pytest.raises(ComponentWithdrawn):
        component_file(slug="virus_pattern", label=version_label(third.number))
    token = "t" * 43
    Client.objects.create(
        domain=Domain.objects.create(name="API"), hostname="api", ip_address="127.0.0.1", token_hash=token_digest(token)
    )
    response = client.get(
        f"/agent/v1/components/virus_pattern/versions/{version_label(third.number)}/full",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 410
    assert response.json()["code"] == "withdrawn"
    assert "withdrawn by a rollback" in response.json()["message"]
    ok = client.get(
        f"/agent/v1/components/virus_pattern/versions/{version_label(first.number)}/full",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert ok.status_code == 200


def test_a_later_download_is_numbered_after_the_withdrawn_ones_and_built_on_the_good_one(
    versions, admin_user, django_capture_on_commit_callbacks
):
    first, _second, third = versions
    component_rollback(component=first.component, version_label_text=version_label(first.number), actor=admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        fixed = component_download(component=first.component)
    assert fixed.number == third.number + 1
    assert latest_version_numbers() == {"virus_pattern": fixed.number}
    [standing] = component_standings().components
    assert standing.withdrawn_number is None
    # The withdrawn versions stay withdrawn.
    assert ComponentVersion.objects.get(pk=third.pk).withdrawn_at is not None


def test_clients_holding_matches_labels_and_digits_only(versions, holders):
    third = versions[2]
    found = set(clients_holding(component=third.component, numbers=[third.number]).values_list("hostname", flat=True))
    assert found == {"new", "digits", "number", "offline"}


# --- the screen ---------------------------------------------------------------------


def test_the_screen_lists_kept_earlier_versions(viewer_client, versions):
    response = viewer_client.get(reverse("updates:rollback"))
    body = response.content.decode()
    assert response.status_code == 200
    assert version_label(versions[0].number) in body and version_label(versions[1].number) in body
    assert "may look at this page but not roll components back" in body


@pytest.mark.parametrize("as_viewer", [False, True])
def test_rolling_back_needs_the_permission(staff_client, staff_user, versions, as_viewer):
    if as_viewer:  # may look at the page (Can view client), still may not roll back
        staff_user.user_permissions.add(Permission.objects.get(codename="view_client"))
    response = staff_client.post(
        reverse("updates:rollback"), {"component": "virus_pattern", "version": version_label(versions[0].number)}
    )
    assert response.status_code == 403
    assert not ComponentVersion.objects.filter(withdrawn_at__isnull=False).exists()


def test_an_operator_with_the_permission_rolls_back_and_sees_the_run(client, viewer_user, versions, holders):
    viewer_user.user_permissions.add(Permission.objects.get(codename="rollback_component"))
    client.force_login(viewer_user)
    response = client.post(
        reverse("updates:rollback"), {"component": "virus_pattern", "version": version_label(versions[0].number)}
    )
    run = UpdateRun.objects.get(trigger=RunTrigger.ROLLBACK)
    assert response.status_code == 302 and response["Location"] == reverse("updates:run-detail", args=[run.pk])
    page = client.get(response["Location"]).content.decode()
    assert "roll back to Virus Pattern" in page


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"component": "nope", "version": "18.500.00"}, "Choose a component to roll back."),
        ({"component": "virus_pattern", "version": ""}, "Choose the Virus Pattern version to roll back to."),
        ({"component": "virus_pattern", "version": "18.502.00"}, "is not older than the current version"),
        ({"component": "virus_pattern", "version": "1.2.3"}, "is not a version such as"),
    ],
)
def test_bad_input_on_the_screen_is_refused_and_changes_nothing(superuser_client, versions, data, error):
    response = superuser_client.post(reverse("updates:rollback"), data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not ComponentVersion.objects.filter(withdrawn_at__isnull=False).exists()
    assert not AuditEntry.objects.exists()
