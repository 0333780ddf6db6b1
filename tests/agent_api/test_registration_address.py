"""Where notifications go: the listener address is where the registration came from."""

from __future__ import annotations

import pytest

from agents_app.models import Client, ConnectionStatus

pytestmark = pytest.mark.django_db


def register(client, enrollment, *, ip_address=None, **extra):
    body = {"enrollment_secret": enrollment, "hostname": "pc-1", "listener_port": 40001, "domain": "Sales"}
    if ip_address is not None:
        body["ip_address"] = ip_address
    response = client.post("/agent/v1/register", body, content_type="application/json", **extra)
    assert response.status_code == 201, response.content
    return Client.objects.get(guid=response.json()["client_id"])


def test_a_registration_claiming_another_address_is_stored_with_its_source_address(client, enrollment):
    # The database server's port on the server itself, or any internal host: not the agent's to choose.
    stored = register(client, enrollment, ip_address="127.10.0.5", REMOTE_ADDR="127.0.0.9")
    assert stored.ip_address == "127.0.0.9"


def test_an_agent_may_leave_its_address_out(client, enrollment):
    assert register(client, enrollment, REMOTE_ADDR="127.0.0.4").ip_address == "127.0.0.4"


def test_a_rotated_x_forwarded_for_from_an_untrusted_peer_does_not_change_the_stored_address(client, enrollment):
    stored = [
        register(client, enrollment, REMOTE_ADDR="127.0.0.9", HTTP_X_FORWARDED_FOR=forwarded).ip_address
        for forwarded in ("127.10.0.5", "127.192.1.1, 127.10.0.6", "127.0.0.1")
    ]
    assert stored == ["127.0.0.9"] * 3


def test_behind_a_trusted_proxy_the_forwarded_address_is_stored(client, enrollment, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.2/32"]
    # What the client wrote (127.10.0.5) is ignored; what our proxy appended counts.
    stored = register(client, enrollment, REMOTE_ADDR="127.0.0.2", HTTP_X_FORWARDED_FOR="127.10.0.5, 127.0.3.7")
    assert stored.ip_address == "127.0.3.7"


def test_a_reported_address_counts_only_when_trusted_and_inside_the_allowed_networks(client, enrollment, settings):
    assert register(client, enrollment, ip_address="127.0.0.8", REMOTE_ADDR="127.0.0.9").ip_address == "127.0.0.9"
    settings.AGENT_TRUST_REPORTED_ADDRESS = True
    settings.AGENT_ALLOWED_NETWORKS = ["127.0.0.0/16"]
    assert register(client, enrollment, ip_address="127.0.0.8", REMOTE_ADDR="127.0.0.9").ip_address == "127.0.0.8"
    # Outside the allowed networks the report is ignored: the source address stays.
    assert register(client, enrollment, ip_address="127.10.0.5", REMOTE_ADDR="127.0.0.9").ip_address == "127.0.0.9"


def test_a_source_address_in_an_unreachable_range_makes_the_client_unreachable(client, enrollment, settings):
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    # Claiming a reachable address does not make a NATed agent pushable.
    stored = register(client, enrollment, ip_address="127.0.0.1", REMOTE_ADDR="127.0.2.9")
    assert (stored.ip_address, stored.status) == ("127.0.2.9", ConnectionStatus.UNREACHABLE)
