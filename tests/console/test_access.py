"""Every console page is for logged-in staff only, and pages that show clients need a permission."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

PUBLIC = {"login", "logout"}
# Pages that list clients need "Can view client" besides being staff.


def console_page_names() -> list[str]:
    """Every named console URL without arguments, found from the URLconf itself."""
    names: list[str] = []

    def walk(patterns, namespace=""):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.pattern.describe().startswith(("'admin/'", "'agent/'")):
                    continue
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, ns)
            elif isinstance(entry, URLPattern) and entry.name and not entry.pattern.regex.groups:
                name = namespace + entry.name
                if name not in PUBLIC:
                    names.append(name)

    walk(get_resolver().url_patterns)
    return names


def test_the_console_has_pages_to_guard():
    names = console_page_names()
    for expected in ("home", "agents:client-management", "updates:automatic-update", "updates:summary"):
        assert expected in names


@pytest.mark.django_db
@pytest.mark.parametrize("name", console_page_names())
def test_anonymous_visitor_is_sent_to_login(client, name):
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("name", console_page_names())
def test_non_staff_user_is_refused(client, django_user_model, name):
    user = django_user_model.objects.create_user("endpoint-user", password="pw-123-long-enough")
    client.force_login(user)
    response = client.get(reverse(name))
    assert response.status_code == 403
    assert "not allowed" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("name", console_page_names())
def test_a_staff_user_with_the_view_permissions_sees_the_page(viewer_client, name):
    assert viewer_client.get(reverse(name)).status_code == 200


# Pages every staff member may open: they show no client (the tree and the
# privileges dialog say "you may not view clients", the overview hides its
# figures, Automatic Update shows the server's settings).
OPEN_TO_ALL_STAFF = {
    "home",
    "agents:client-management",
    "agents:privileges",
    "agents:enrollment",
    "updates:automatic-update",
    "updates:schedule-preview",
    # The Automatic Update screen again (the staged roll-out form's address): counts only.
    "updates:staged-rollout-save",
    # Server settings, no client in sight: read-only without the change permission.
    "updates:proxy-settings",
}
SECRET_HOSTNAME = "hidden-host-4821"


@pytest.fixture
def fleet_with_history(staff_user):
    """A client with a delivery in a run and an audit entry: what the pages would leak."""
    from agents_app.models import Client, ConnectionStatus
    from agents_app.services import domain_create
    from updates_app.engine.runs import run_create_manual

    domain = domain_create(name="Finance", parent=None)
    client = Client.objects.create(
        domain=domain, hostname=SECRET_HOSTNAME, ip_address="127.0.0.9", listener_port=1, status=ConnectionStatus.ONLINE
    )
    run = run_create_manual(created_by=staff_user, clients=Client.objects.all())
    return {"client": client, "run": run, "domain": domain}


def pages_with_arguments(fleet) -> list[str]:
    return [
        reverse("updates:run-detail", args=[fleet["run"].pk]),
        reverse("updates:run-detail", args=[fleet["run"].pk]) + "?partial=1&q=hidden",
        reverse("updates:client-deliveries", args=[fleet["client"].pk]),
        reverse("agents:domain-children", args=[fleet["domain"].pk]),
        reverse("updates:run-progress") + f"?run={fleet['run'].pk}",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("name", console_page_names())
def test_a_staff_user_without_permissions_is_refused_every_page_that_shows_clients(
    staff_client, fleet_with_history, name
):
    response = staff_client.get(reverse(name))
    if name in OPEN_TO_ALL_STAFF:
        assert response.status_code == 200
        assert SECRET_HOSTNAME not in response.content.decode()
    else:
        assert response.status_code == 403
        # The friendly page, not a bare error or a redirect to the login page.
        assert "You are not allowed to do that" in response.content.decode()


@pytest.mark.django_db
def test_a_staff_user_without_permissions_cannot_read_a_run_or_a_client_history(staff_client, fleet_with_history):
    for url in pages_with_arguments(fleet_with_history):
        response = staff_client.get(url)
        assert response.status_code == 403, url
        assert SECRET_HOSTNAME not in response.content.decode()


@pytest.mark.django_db
def test_a_viewer_reads_runs_and_histories(viewer_client, fleet_with_history):
    for url in pages_with_arguments(fleet_with_history):
        assert viewer_client.get(url).status_code == 200, url
    history = viewer_client.get(reverse("updates:client-deliveries", args=[fleet_with_history["client"].pk]))
    assert SECRET_HOSTNAME in history.content.decode()


@pytest.mark.django_db
def test_a_viewer_changes_nothing(viewer_client, fleet_with_history):
    from updates_app.models import AutoUpdateSettings, UpdateRun

    run = fleet_with_history["run"]
    client = fleet_with_history["client"]
    posts = {
        reverse("updates:manual-update"): {"target": "outdated", "confirm": "yes"},
        reverse("updates:run-cancel", args=[run.pk]): {},
        reverse("agents:privileges"): {"client": [client.pk], "scheduled_update": "on"},
        reverse("updates:automatic-update"): {"frequency": "daily"},
    }
    revision = AutoUpdateSettings.load().revision
    for url, data in posts.items():
        response = viewer_client.post(url, data)
        assert response.status_code == 403, url
        assert "You are not allowed to do that" in response.content.decode()
    run.refresh_from_db()
    assert run.cancelled_at is None
    assert UpdateRun.objects.count() == 1
    assert AutoUpdateSettings.load().revision == revision


@pytest.mark.django_db
def test_login_page_is_public_and_served(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert "Log in to the Update Console" in response.content.decode()


@pytest.mark.django_db
def test_unknown_page_gets_the_friendly_404(staff_client):
    response = staff_client.get("/no-such-page/")
    assert response.status_code == 404
    assert "That page does not exist" in response.content.decode()


@pytest.mark.django_db
def test_admin_is_mounted(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_pages_use_only_local_assets():
    from pathlib import Path

    for template in Path(__file__).resolve().parents[2].joinpath("templates").rglob("*.html"):
        text = template.read_text()
        assert "cdn." not in text and "https://" not in text, template
