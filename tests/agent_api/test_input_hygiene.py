"""What agents may write: ASCII version labels, printable names, a bounded number of domains, escaped logs."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ValidationError

from agents_app.models import Client, Domain
from agents_app.services import domain_create
from updates_app.components import component_download, component_resolve
from updates_app.version_labels import VersionLabelError, parse_version_label, reported_number

pytestmark = pytest.mark.django_db

ARABIC_INDIC_18 = "\u0661\u0668"  # "١٨": str.isdigit() and \d take it, int() reads 18


def post(client, url, body, headers=None, **extra):
    return client.post(url, body, content_type="application/json", **(headers or {}), **extra)


@pytest.mark.parametrize(
    "label", [f"{ARABIC_INDIC_18}.500.00", "18.\u0665\u0660\u0660.00", "\uff11\uff18.500.00", "18.500.00\n"]
)
def test_version_labels_take_ascii_digits_only(label):
    with pytest.raises(VersionLabelError):
        parse_version_label(label)


def test_reported_numbers_take_ascii_digits_only():
    assert reported_number("18500") == 18500
    assert reported_number(ARABIC_INDIC_18 + "500") is None
    assert reported_number("\u00b2") is None  # superscript two: isdigit() but not a number


def test_a_non_ascii_version_is_a_400_naming_the_field_and_nothing_is_stored(client, register, component_storage):
    component_download(component=component_resolve("virus_pattern"))
    data, auth = register()
    for url, body in (
        ("/agent/v1/checkin", {"event": "heartbeat", "component_versions": {"virus_pattern": "١٨.500.00"}}),
        (
            "/agent/v1/report",
            {
                "kind": "update",
                "result": "success",
                "trigger": "manual",
                "component_versions": {"virus_pattern": "١٨.500.00"},
            },
        ),
    ):
        response = post(client, url, body, auth)
        assert response.status_code == 400, response.content
        assert "component_versions" in response.json()["errors"]
    assert Client.objects.get(guid=data["client_id"]).component_versions == {}


def test_a_download_url_with_non_ascii_digits_is_a_404(client, register, component_storage):
    component_download(component=component_resolve("virus_pattern"))
    _, auth = register()
    assert client.get("/agent/v1/components/virus_pattern/versions/18.500.00/full", **auth).status_code == 200
    response = client.get(f"/agent/v1/components/virus_pattern/versions/{ARABIC_INDIC_18}.500.00/full", **auth)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hostname", "invoice\u202egpj.exe"),  # RIGHT-TO-LEFT OVERRIDE
        ("hostname", "pc\u2066-1"),  # LEFT-TO-RIGHT ISOLATE
        ("hostname", "pc\x1b[31m-1"),  # ESC
        ("hostname", "pc\x07"),  # BEL
        ("hostname", "pc\n2026-01-01 INFO forged"),
        ("hostname", "pc\u200b1"),  # ZERO WIDTH SPACE
        ("domain", "Sales\u202e"),
        ("domain", "Sales\x1b]0;title\x07"),
        ("domain", "Sales\u2028Ops"),  # LINE SEPARATOR
    ],
)
def test_control_and_bidi_characters_are_a_400_naming_the_field_and_nothing_is_stored(client, enrollment, field, value):
    body = {
        "enrollment_secret": enrollment,
        "hostname": "pc-1",
        "ip_address": "127.0.0.1",
        "listener_port": 40001,
        "domain": "Sales",
    }
    response = post(client, "/agent/v1/register", {**body, field: value})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert list(response.json()["errors"]) == [field]
    assert "U+" in response.json()["message"]
    assert not Client.objects.exists()
    assert not Domain.objects.exists()


def test_ordinary_international_names_are_welcome(register):
    data, _ = register(hostname="büro-αβγ-東京", domain="Zürich Büro")
    stored = Client.objects.get(guid=data["client_id"])
    assert (stored.hostname, stored.domain.name) == ("büro-αβγ-東京", "Zürich Büro")


def test_domain_names_from_the_console_follow_the_same_rule():
    with pytest.raises(ValidationError) as refused:
        domain_create(name="Sales\u202e")
    assert "name" in refused.value.message_dict
    assert not Domain.objects.exists()


def test_a_client_hostname_edited_in_the_admin_follows_the_same_rule(register):
    data, _ = register()
    stored = Client.objects.get(guid=data["client_id"])
    stored.hostname = "pc\u202e1"
    with pytest.raises(ValidationError) as refused:
        stored.full_clean()
    assert "hostname" in refused.value.message_dict


def test_the_admin_refuses_a_bidi_domain_name(superuser_client):
    response = superuser_client.post(
        "/admin/agents_app/domain/add/",
        {
            "name": "Sales\u202egpj",
            "update_now_privilege": "on",
            "scheduled_update_privilege": "on",
            "scheduled_update_setting": "on",
        },
    )
    assert response.status_code == 200
    assert "text-direction characters are not allowed" in response.content.decode()
    assert not Domain.objects.exists()


def test_agents_create_top_level_domains_by_hint_only_up_to_the_limit(client, register, settings, caplog):
    settings.AGENT_MAX_HINTED_DOMAINS = 2
    register(hostname="a", domain="Branch A")
    register(hostname="b", domain="Branch B")
    with caplog.at_level(logging.WARNING, logger="agent_api.protocol"):
        data, _ = register(hostname="c", domain="Branch C")
    assert Client.objects.get(guid=data["client_id"]).domain.name == "Workgroup"
    assert not Domain.objects.filter(name="Branch C").exists()
    assert "'Branch C' not created" in caplog.text and "AGENT_MAX_HINTED_DOMAINS" in caplog.text
    # Existing domains, subdomains included, are still joined by hint.
    sub = Domain.objects.create(name="Floor 2", parent=Domain.objects.get(name="Branch A"))
    data, _ = register(hostname="d", domain="floor 2")
    assert Client.objects.get(guid=data["client_id"]).domain == sub
    assert Domain.objects.filter(parent=None).count() == 3  # Branch A, Branch B, Workgroup


def test_a_report_message_cannot_forge_a_log_line(client, register, caplog):
    _, auth = register()
    forged = "ok\n2026-11-26 05:00:00,000 ERROR django.security: admin password reset\r\x1b[2K"
    body = {"kind": "scan", "result": "success", "trigger": "manual", "message": forged}
    # A successful report is logged at debug (one line per agent per update would drown the log).
    with caplog.at_level(logging.DEBUG, logger="agent_api.protocol"):
        assert post(client, "/agent/v1/report", body, auth).status_code == 200
    [record] = [r for r in caplog.records if r.getMessage().startswith("agent report:")]
    text = record.getMessage()
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    # Still all there, escaped.
    assert "\\n2026-11-26 05:00:00,000 ERROR django.security: admin password reset\\r\\x1b[2K" in text
