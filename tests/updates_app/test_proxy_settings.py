"""Administration > Proxy Settings: validation, encrypted passwords, audit, revisions, permissions, the document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from agents_app.models import Client, Domain
from console.encryption import decrypt
from console.models import AuditEntry
from updates_app.configuration import client_configuration_and_version
from updates_app.models import ProxySettings

pytestmark = pytest.mark.django_db

URL = reverse("updates:proxy-settings")
ROOT = Path(__file__).resolve().parents[2]


def form_data(**overrides) -> dict:
    """What the browser posts for the stored settings, with overrides (None drops a field)."""
    proxy = ProxySettings.load()
    data: dict = {"revision": proxy.revision, "pac_url": proxy.pac_url}
    for kind in ("internal", "external"):
        data[f"{kind}_host"] = getattr(proxy, f"{kind}_host")
        data[f"{kind}_port"] = getattr(proxy, f"{kind}_port") or ""
        data[f"{kind}_username"] = getattr(proxy, f"{kind}_username")
    for name in ("auto_detect", "use_pac", "internal_enabled", "external_enabled"):
        if getattr(proxy, name):
            data[name] = "on"
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def snapshot() -> dict:
    return {k: v for k, v in ProxySettings.load().__dict__.items() if not k.startswith("_")}


INTERNAL = {"internal_enabled": "on", "internal_host": "proxy.example.test", "internal_port": "3128"}


def test_the_screen_shows_the_three_parts_with_help(superuser_client):
    page = superuser_client.get(URL).content.decode()
    for text in (
        "Automatic Proxy Settings",
        "Automatically detect settings",
        "Use automatic configuration script",
        "Internal Proxy",
        "External Proxy",
        "ActiveUpdate server",
        "Update Now",
    ):
        assert text in page


def test_a_good_save_stores_the_values_and_encrypts_the_password(superuser_client):
    response = superuser_client.post(
        URL, form_data(**INTERNAL, internal_username="agent", internal_password="pa55-word"), follow=True
    )
    assert response.status_code == 200
    assert "Proxy settings saved" in response.content.decode()
    proxy = ProxySettings.load()
    assert (proxy.internal_enabled, proxy.internal_host, proxy.internal_port) == (True, "proxy.example.test", 3128)
    assert proxy.internal_password and "pa55-word" not in proxy.internal_password
    assert decrypt(proxy.internal_password) == "pa55-word"
    assert proxy.revision == 2


def test_the_password_is_never_shown_back_and_a_blank_field_keeps_it(superuser_client):
    superuser_client.post(URL, form_data(**INTERNAL, internal_username="agent", internal_password="pa55-word"))
    page = superuser_client.get(URL).content.decode()
    assert "pa55-word" not in page
    assert "A password is stored." in page
    superuser_client.post(URL, form_data(internal_port="8080"))
    assert decrypt(ProxySettings.load().internal_password) == "pa55-word"
    superuser_client.post(URL, form_data(internal_password_remove="on"))
    assert ProxySettings.load().internal_password == ""


def test_the_audit_entry_masks_passwords(superuser_client):
    superuser_client.post(URL, form_data(**INTERNAL, internal_password="pa55-word"))
    entry = AuditEntry.objects.get(action="proxy_settings.save")
    assert "pa55-word" not in str(entry.changes)
    assert entry.changes["internal_password"]["new"] == "changed"
    assert entry.changes["internal_host"]["new"] == "proxy.example.test"
    superuser_client.post(URL, form_data())  # nothing changed
    assert AuditEntry.objects.filter(action="proxy_settings.save").count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({**INTERNAL, "internal_host": "http://proxy.example.test"}, "internal_host", "without http://"),
        ({**INTERNAL, "internal_host": "proxy..example"}, "internal_host", "host name"),
        ({**INTERNAL, "internal_host": "bad host"}, "internal_host", "host name"),
        ({**INTERNAL, "internal_port": "0"}, "internal_port", "1 to 65535"),
        ({**INTERNAL, "internal_port": "65536"}, "internal_port", "1 to 65535"),
        ({**INTERNAL, "internal_port": "eighty"}, "internal_port", "Enter a port from 1 to 65535."),
        ({"internal_enabled": "on", "internal_host": "", "internal_port": "3128"}, "internal_host", "Enter the proxy"),
        ({"external_enabled": "on", "external_host": "10.x", "external_port": ""}, "external_port", "Enter the port"),
        ({"use_pac": "on", "pac_url": "ftp://example.test/proxy.pac"}, "pac_url", "http:// or https://"),
        ({"use_pac": "on", "pac_url": ""}, "pac_url", "address of the automatic configuration script"),
        (
            {**INTERNAL, "internal_password": "x", "internal_password_remove": "on"},
            "internal_password",
            "not both",
        ),
    ],
)
def test_bad_input_gets_a_field_error_and_saves_nothing(superuser_client, overrides, field, message):
    before = snapshot()
    response = superuser_client.post(URL, form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert snapshot() == before
    assert not AuditEntry.objects.exists()


def test_ip_addresses_are_proxy_hosts_too(superuser_client):
    superuser_client.post(URL, form_data(internal_enabled="on", internal_host="127.0.0.1", internal_port="3128"))
    superuser_client.post(URL, form_data(external_enabled="on", external_host="::1", external_port="8080"))
    proxy = ProxySettings.load()
    assert (proxy.internal_host, proxy.external_host) == ("127.0.0.1", "::1")


def test_unknown_fields_are_refused(superuser_client):
    before = snapshot()
    response = superuser_client.post(URL, form_data(internal_password_plain="x"))
    assert "Unknown field: internal_password_plain. Reload the page" in response.content.decode()
    assert snapshot() == before


def test_without_an_encryption_key_a_password_is_refused_with_a_reason(superuser_client, settings):
    settings.FIELD_ENCRYPTION_KEY = ""
    before = snapshot()
    response = superuser_client.post(URL, form_data(**INTERNAL, internal_password="pa55-word"))
    assert "FIELD_ENCRYPTION_KEY is not set" in " ".join(response.context["form"].errors["internal_password"])
    assert snapshot() == before


def test_a_stale_save_is_refused_and_shows_the_unsaved_values(superuser_client):
    # given a page opened at revision 1, then someone else's save
    stale = form_data(**INTERNAL, internal_password="pa55-word")
    superuser_client.post(URL, form_data(external_enabled="on", external_host="out.example.test", external_port="80"))
    # when the page's values are saved
    response = superuser_client.post(URL, stale)
    # then nothing of them is saved, and the page shows the current values next to the unsaved ones
    assert response.status_code == 409
    html = response.content.decode()
    assert "The proxy settings were changed since you opened them (by root)" in html
    assert 'name="revision" value="2"' in html
    assert 'value="out.example.test"' in html
    assert "Internal proxy: proxy server: yours proxy.example.test, now (not set)" in html
    assert "Internal proxy: port: yours 3128, now (not set)" in html
    # The typed password is neither saved nor shown back.
    assert "Internal proxy: password: yours (not shown: type it again), now (not set)" in html
    assert "pa55-word" not in html
    proxy = ProxySettings.load()
    assert (proxy.internal_enabled, proxy.internal_password, proxy.revision) == (False, "", 2)
    assert proxy.external_host == "out.example.test"
    assert AuditEntry.objects.filter(action="proxy_settings.save").count() == 1


def test_view_only_staff_see_it_read_only_and_cannot_post(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw-correct-horse", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_proxysettings"))
    client.force_login(user)
    assert "You can view these settings but not change them" in client.get(URL).content.decode()
    before = snapshot()
    assert client.post(URL, form_data(**INTERNAL)).status_code == 403
    assert snapshot() == before


def test_the_configuration_carries_the_proxy_and_a_change_makes_a_new_version(superuser_client):
    domain = Domain.objects.create(name="Office")
    client = Client.objects.create(domain=domain, hostname="pc", ip_address="127.0.0.1")
    _document, before = client_configuration_and_version(client)
    superuser_client.post(URL, form_data(**INTERNAL, internal_username="agent", internal_password="pa55-word"))
    document, after = client_configuration_and_version(client)
    assert after != before
    assert document["proxy"]["internal"] == {
        "host": "proxy.example.test",
        "port": 3128,
        "username": "agent",
        "password": "pa55-word",
    }
    assert document["proxy"]["external"] is None
    assert document["privileges"]["configure_proxy"] is False
    # A new password alone is a new configuration too.
    superuser_client.post(URL, form_data(internal_password="another"))
    assert client_configuration_and_version(client)[1] not in (before, after)


def test_check_deploy_requires_the_encryption_key():
    env = {
        "DEBUG": "false",
        "SECRET_KEY": "x" * 60,
        "AGENT_ENROLLMENT_SECRET": "y" * 40,
        "AGENT_SIGNING_SECRET": "s" * 40,
        "ALLOWED_HOSTS": "console.example.test",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "console.E101" in result.stderr + result.stdout
    assert result.returncode != 0
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security"],
        cwd=ROOT,
        env={**env, "FIELD_ENCRYPTION_KEY": "z" * 50},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "console.E101" not in result.stderr + result.stdout
