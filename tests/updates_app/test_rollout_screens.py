"""The staged roll-out on the screens: its policy form, and the actions on the Update Summary."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from console.models import AuditEntry
from updates_app.compliance import client_versions_record
from updates_app.components import component_download, component_resolve
from updates_app.engine.reports import delivery_mark_failed
from updates_app.engine.rings import rollouts_advance
from updates_app.models import Delivery, Rollout, RolloutPolicy, RolloutState, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = pytest.mark.django_db

SAVE_URL = reverse("updates:staged-rollout-save")
VALID = {
    "enabled": "on",
    "ring1_percent": "10",
    "ring2_percent": "40",
    "soak_minutes": "30",
    "halt_percent": "20",
    "halt_min_count": "3",
}


def form_data(**overrides) -> dict:
    """VALID, edited from the stored policy's revision, with overrides (None drops a field)."""
    data = {"revision": RolloutPolicy.load().revision, **VALID, **overrides}
    return {key: value for key, value in data.items() if value is not None}


def test_the_automatic_update_screen_shows_the_staged_roll_out_off_and_marked_as_an_improvement(staff_client):
    body = staff_client.get(reverse("updates:automatic-update")).content.decode()
    assert "Staged roll-out of event-triggered updates" in body
    assert "Improvement" in body and "off by default" in body
    assert 'id="save-staged-rollout"' not in body  # staff without the permission: read-only


def test_saving_the_policy_writes_one_audit_entry(superuser_client):
    canary = Domain.objects.create(name="Canary")
    response = superuser_client.post(SAVE_URL, form_data(ring1_domains=[canary.pk]))
    assert response.status_code == 302
    policy = RolloutPolicy.load()
    assert (policy.enabled, policy.ring1_percent, policy.ring2_percent, policy.soak_minutes) == (True, 10, 40, 30)
    assert list(policy.ring1_domains.all()) == [canary]
    [entry] = AuditEntry.objects.filter(action="staged_rollout.save")
    assert entry.changes["enabled"] == {"label": "Staged roll-out", "old": "off", "new": "on"}
    assert entry.changes["ring1_domains"]["new"] == "Canary"
    assert (entry.changes["soak_minutes"]["old"], entry.changes["soak_minutes"]["new"]) == ("60", "30")
    assert policy.revision == 2 and policy.updated_by.username == "root"
    # The same values again: nothing to save, no entry, the same revision.
    response = superuser_client.post(SAVE_URL, form_data(ring1_domains=[canary.pk]), follow=True)
    assert "No changes to save" in response.content.decode()
    assert AuditEntry.objects.filter(action="staged_rollout.save").count() == 1
    assert RolloutPolicy.load().revision == 2


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ring1_percent": "101"}, "ring1_percent", "Enter a whole number from 0 to 100."),
        ({"soak_minutes": "0"}, "soak_minutes", "Enter a whole number from 1 to 2880."),
        ({"soak_minutes": "x"}, "soak_minutes", "Enter a whole number from 1 to 2880."),
        ({"ring2_percent": "5"}, "ring2_percent", "Ring 2&#x27;s share must be larger than ring 1&#x27;s"),
        ({"ring1_percent": "0"}, "ring1_percent", "Ring 1 would be empty"),
        ({"halt_min_count": "0"}, "halt_min_count", "Enter a whole number from 1 to 100000."),
        ({"surprise": "1"}, None, "Unknown field: surprise."),
        ({"revision": None}, "revision", "The form is missing its revision: reload the page and try again."),
    ],
)
def test_bad_policy_input_is_refused_and_changes_nothing(superuser_client, change, field, message):
    response = superuser_client.post(SAVE_URL, form_data(**change))
    assert response.status_code == 400
    assert message in response.content.decode()
    if field and field != "revision":
        assert f'id="error-{field}"' in response.content.decode()
    assert RolloutPolicy.load().enabled is False
    assert not AuditEntry.objects.exists()


def test_saving_the_policy_needs_the_automatic_update_permission(staff_client):
    response = staff_client.post(SAVE_URL, form_data())
    assert response.status_code == 403
    assert RolloutPolicy.load().enabled is False
    assert not AuditEntry.objects.exists()


def test_a_stale_save_of_the_policy_is_refused_and_shows_the_unsaved_values(
    superuser_client, client, django_user_model
):
    # given two administrators who opened the screen at revision 1
    canary = Domain.objects.create(name="Canary")
    opened = form_data()
    editor = django_user_model.objects.create_user("editor", password="pw-correct-horse", is_staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_autoupdatesettings"))
    client.force_login(editor)
    # when the first saves a longer soak
    assert client.post(SAVE_URL, {**opened, "soak_minutes": "120"}).status_code == 302
    # and the second saves other changes from the page they loaded earlier
    response = superuser_client.post(SAVE_URL, {**opened, "halt_percent": "50", "ring1_domains": [canary.pk]})
    # then the second is told, nothing of theirs is saved, and they see the current values next to theirs
    assert response.status_code == 409
    html = response.content.decode()
    assert "The staged roll-out settings were changed since you opened them (by editor)" in html
    assert 'id="staged-rollout-unsaved-values"' in html
    assert "Halt threshold (% of the ring): yours 50, now 20" in html
    assert "Ring 1 domains: yours Canary, now (none)" in html
    assert "Soak time (minutes): yours 30, now 120" in html
    form = response.context["rollout_form"]
    assert (form["revision"].value(), form["soak_minutes"].value(), form["halt_percent"].value()) == (2, 120, 20)
    policy = RolloutPolicy.load()
    assert (policy.soak_minutes, policy.halt_percent, policy.revision) == (120, 20, 2)
    assert not policy.ring1_domains.exists()
    assert AuditEntry.objects.filter(action="staged_rollout.save").count() == 1
    assert AuditEntry.objects.get().actor == editor
    # and saving again from the refreshed page works
    response = superuser_client.post(SAVE_URL, form_data(soak_minutes="120", halt_percent="50"))
    assert response.status_code == 302
    assert (RolloutPolicy.load().halt_percent, RolloutPolicy.load().revision) == (50, 3)


@pytest.fixture
def halted(component_storage, django_capture_on_commit_callbacks, settings):
    settings.ROLLOUT_SOAK_SECONDS = 3600
    canary = Domain.objects.create(name="Canary")
    component = component_resolve("virus_pattern")
    with django_capture_on_commit_callbacks(execute=True):
        first = component_download(component=component)
    clients = [
        Client.objects.create(
            domain=canary,
            hostname=f"canary-{i}",
            ip_address="127.0.0.1",
            status=ConnectionStatus.ONLINE,
            component_versions={"virus_pattern": version_label(first.number)},
        )
        for i in range(2)
    ]
    policy = RolloutPolicy.load()
    policy.enabled, policy.ring1_percent, policy.halt_min_count = True, 0, 2
    policy.save()
    policy.ring1_domains.set([canary])
    with django_capture_on_commit_callbacks(execute=True):
        bad = component_download(component=component)
    rollout = Rollout.objects.get(version=bad)
    for client in clients:
        delivery = Delivery.objects.get(run=rollout.run, client=client)
        delivery_mark_failed(client=client, delivery_id=delivery.pk, at=timezone.now(), message="scan service crashed")
        Client.objects.filter(pk=client.pk).update(component_versions={"virus_pattern": version_label(bad.number)})
        client_versions_record(client=client, reported={"virus_pattern": version_label(bad.number)})
    rollouts_advance()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.HALTED
    return rollout


def test_the_summary_shows_the_halt_with_its_evidence(viewer_client, halted):
    body = viewer_client.get(reverse("updates:summary")).content.decode()
    assert "Halted" in body and "Ring 1: 2 of 2 clients" in body
    assert "canary-0" in body and "scan service crashed" in body


def test_the_actions_need_their_permissions(staff_client, halted):
    for action in ("resume", "stop", "rollback"):
        assert staff_client.post(reverse("updates:rollout-action", args=[halted.pk, action])).status_code == 403
    halted.refresh_from_db()
    assert halted.state == RolloutState.HALTED


def test_roll_back_from_the_summary_is_one_action(superuser_client, halted):
    response = superuser_client.post(reverse("updates:rollout-action", args=[halted.pk, "rollback"]))
    run = UpdateRun.objects.get(trigger=RunTrigger.ROLLBACK)
    assert response["Location"] == reverse("updates:run-detail", args=[run.pk])
    assert run.deliveries.count() == 2
    halted.refresh_from_db()
    assert halted.state == RolloutState.ROLLED_BACK


def test_stop_and_resume_from_the_summary(client, viewer_user, halted):
    viewer_user.user_permissions.add(Permission.objects.get(codename="change_rollout"))
    client.force_login(viewer_user)
    client.post(reverse("updates:rollout-action", args=[halted.pk, "resume"]))
    halted.refresh_from_db()
    assert halted.state == RolloutState.COMPLETED
    response = client.post(reverse("updates:rollout-action", args=[halted.pk, "stop"]), follow=True)
    assert "nothing to stop" in response.content.decode()
    response = client.post(reverse("updates:rollout-action", args=[halted.pk, "explode"]), follow=True)
    assert "Unknown action" in response.content.decode()


def test_the_screen_previews_the_rings_and_the_soak_for_the_current_fleet(staff_client, settings):
    settings.ROLLOUT_SOAK_SECONDS = 0
    canary = Domain.objects.create(name="Canary")
    office = Domain.objects.create(name="Office")
    for i in range(4):
        Client.objects.create(
            domain=canary if i < 1 else office,
            hostname=f"pc-{i}",
            ip_address="127.0.0.1",
            status=ConnectionStatus.ONLINE,
        )
    policy = RolloutPolicy.load()
    policy.ring1_percent, policy.ring2_percent, policy.soak_minutes = 0, 100, 90
    policy.save()
    policy.ring1_domains.set([canary])
    body = staff_client.get(reverse("updates:automatic-update")).content.decode()
    assert "<strong>+0 s</strong>: Ring 1, about 1 client" in body
    assert "<strong>+90 min</strong>: Ring 2, about 3 clients" in body
    assert "<strong>+180 min</strong>: Everyone else, about 0 clients" in body


def test_the_run_page_of_a_staged_roll_out_shows_its_rings(viewer_client, halted):
    body = viewer_client.get(reverse("updates:run-detail", args=[halted.run_id])).content.decode()
    assert "Staged roll-out</span> Halted" in body
    assert "ring 1 2 clients from" in body and "everyone else not started" in body
    assert "update failed" in body  # the failure the agents reported, on their deliveries


def test_resume_on_a_superseded_roll_out_changes_nothing_and_says_why(
    superuser_client, halted, django_capture_on_commit_callbacks
):
    # given: a newer version is downloaded while the older roll-out is halted
    with django_capture_on_commit_callbacks(execute=True):
        newer = component_download(component=halted.version.component)
    # the Summary says it is superseded and by what, and offers Stop and Roll back but not Resume
    body = superuser_client.get(reverse("updates:summary")).content.decode()
    [card] = [c for c in body.split('<div class="card mb-3 rollout') if f'id="rollout-{halted.pk}"' in c]
    assert f"Superseded by {newer.label}" in card
    assert f"{halted} was superseded by {newer.label}: it can be stopped or rolled back, but not resumed" in card
    assert reverse("updates:rollout-action", args=[halted.pk, "resume"]) not in card
    assert reverse("updates:rollout-action", args=[halted.pk, "stop"]) in card
    assert reverse("updates:rollout-action", args=[halted.pk, "rollback"]) in card
    deliveries = Delivery.objects.filter(run=halted.run).count()
    # when: a resume is posted anyway (an old page, a script)
    response = superuser_client.post(reverse("updates:rollout-action", args=[halted.pk, "resume"]), follow=True)
    # then: it is refused with the reason, and nothing changed
    assert f"was superseded by {newer.label}: it can be stopped or rolled back, but not resumed" in (
        response.content.decode()
    )
    halted.refresh_from_db()
    assert halted.state == RolloutState.HALTED
    assert halted.rings.filter(number__gt=1, started_at__isnull=False).count() == 0
    assert Delivery.objects.filter(run=halted.run).count() == deliveries
    assert not AuditEntry.objects.filter(action="staged roll-out resumed").exists()


def test_the_policy_refuses_a_soak_shorter_than_the_post_update_bound(superuser_client, settings):
    settings.AGENT_POST_UPDATE_CHECKIN_SECONDS = 600
    body = superuser_client.get(reverse("updates:automatic-update")).content.decode()
    assert "At least 10 minutes on this server" in body
    response = superuser_client.post(SAVE_URL, form_data(soak_minutes="9"))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="error-soak_minutes"' in html
    assert "The soak time must be at least 10 minutes: silence after an update is judged 10 minutes after" in html
    assert RolloutPolicy.load().soak_minutes == 60 and not AuditEntry.objects.exists()
    # The bound itself is accepted.
    assert superuser_client.post(SAVE_URL, form_data(soak_minutes="10")).status_code == 302
    assert RolloutPolicy.load().soak_minutes == 10
