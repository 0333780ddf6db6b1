"""Every console page is for logged-in staff only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, get_resolver, reverse

PUBLIC = {"login", "logout"}
# Pages that list clients need "Can view client" besides being staff.
NEEDS_PERMISSION = {"updates:clients": "view_client"}


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
def test_staff_user_sees_the_page(staff_client, staff_user, name):
    if name in NEEDS_PERMISSION:
        assert staff_client.get(reverse(name)).status_code == 403
        staff_user.user_permissions.add(Permission.objects.get(codename=NEEDS_PERMISSION[name]))
    assert staff_client.get(reverse(name)).status_code == 200


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
