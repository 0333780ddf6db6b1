"""Rotating the signing secret: the server's notifications verified by the standardwebhooks library.

Before, during and after a rotation the notifications the server really posts
(updates_app.engine.sender, over HTTP on loopback) are checked with the
Standard Webhooks reference implementation from PyPI, not with our own
verify, and the reference agent follows a rotation without rejecting one.
"""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from agent_api.simulator import AgentSpec
from agents_app.models import Client
from agents_app.signing import decode_key, key_id
from updates_app.engine.sender import notifications_send, outgoing_for

OLD_SECRET = "old-signing-secret-0123456789-0123456789"
NEW_SECRET = "new-signing-secret-9876543210-9876543210"


class Capture:
    """A loopback listener that answers 204 and keeps every request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                capture.requests.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture():
    listener = Capture()
    yield listener
    listener.close()


def send_one(client: Client, port: int, delivery_id: int) -> None:
    item = outgoing_for(
        delivery_id=delivery_id,
        run_id=1,
        scan_after=False,
        client_guid=str(client.guid),
        ip_address="127.0.0.1",
        port=port,
    )
    assert notifications_send([item]) == {delivery_id: None}


def checkin(client, auth: dict, held_key: str) -> dict:
    response = client.post(
        "/agent/v1/checkin",
        {"event": "heartbeat", "signing_key_id": key_id(decode_key(held_key))},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_notifications_verify_with_standardwebhooks_before_during_and_after_a_rotation(
    client, register, settings, capture
):
    settings.AGENT_SIGNING_SECRET = OLD_SECRET
    settings.AGENT_SIGNING_SECRET_FALLBACKS = []
    answer, auth = register()
    old_key = answer["signing_key"]
    assert old_key.startswith("whsec_")
    agent = Client.objects.get(guid=answer["client_id"])

    # Before: one signature, the agent's key verifies it; check-in hands over nothing.
    send_one(agent, capture.port, 1)
    headers, body = capture.requests[-1]
    assert len(headers["webhook-signature"].split()) == 1
    assert Webhook(old_key).verify(body, headers) == {
        "type": "update",
        "delivery_id": 1,
        "run_id": 1,
        "scan_after": False,
    }
    assert checkin(client, auth, old_key)["signing_key"] is None

    # During: a new secret, the old one as a fallback. Every notification is
    # signed with both keys, so the agent that has not checked in yet accepts it.
    settings.AGENT_SIGNING_SECRET = NEW_SECRET
    settings.AGENT_SIGNING_SECRET_FALLBACKS = [OLD_SECRET]
    send_one(agent, capture.port, 2)
    headers, body = capture.requests[-1]
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(old_key).verify(body, headers)
    # The agent reports the old key's id at check-in and is told its new key.
    new_key = checkin(client, auth, old_key)["signing_key"]
    assert new_key and new_key.startswith("whsec_") and new_key != old_key
    Webhook(new_key).verify(body, headers)
    assert checkin(client, auth, new_key)["signing_key"] is None

    # After: the fallback is gone; only the new key verifies.
    settings.AGENT_SIGNING_SECRET_FALLBACKS = []
    send_one(agent, capture.port, 3)
    headers, body = capture.requests[-1]
    assert len(headers["webhook-signature"].split()) == 1
    Webhook(new_key).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_key).verify(body, headers)


@pytest.mark.django_db
def test_the_signing_key_does_not_come_from_secret_key(register, settings):
    settings.AGENT_SIGNING_SECRET = OLD_SECRET
    first, _ = register()
    settings.SECRET_KEY = "a-rotated-session-secret-key-0123456789-0123456789"
    settings.SECRET_KEY_FALLBACKS = []
    agent = Client.objects.get(guid=first["client_id"])
    from agents_app.signing import client_signing_key, encode_key

    # Rotating SECRET_KEY leaves every agent's key as it was.
    assert encode_key(client_signing_key(str(agent.guid))) == first["signing_key"]


@pytest.mark.django_db
def test_an_agent_that_reports_no_key_id_is_always_told_its_key(client, register, settings):
    settings.AGENT_SIGNING_SECRET = OLD_SECRET
    answer, auth = register()
    response = client.post("/agent/v1/checkin", {"event": "heartbeat"}, content_type="application/json", **auth)
    assert response.json()["signing_key"] == answer["signing_key"]
    bad = client.post(
        "/agent/v1/checkin",
        {"event": "heartbeat", "signing_key_id": "whsec_not-an-id"},
        content_type="application/json",
        **auth,
    )
    assert bad.status_code == 400 and "signing_key_id" in bad.json()["errors"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_reference_agent_follows_a_rotation_without_rejecting_a_notification(
    live_server, enrollment, component_storage, settings
):
    from tests.agent_api.test_api_e2e import fleet_for

    settings.AGENT_SIGNING_SECRET = OLD_SECRET
    settings.AGENT_SIGNING_SECRET_FALLBACKS = []
    with fleet_for(live_server, [AgentSpec(hostname="rotating")]) as fleet:
        agent = fleet.agents[0]
        client = Client.objects.get(guid=agent.client_id)
        old_key = agent.key

        def notify(delivery_id: int) -> None:
            send_one(client, agent.port, delivery_id)

        notify(101)
        settings.AGENT_SIGNING_SECRET = NEW_SECRET
        settings.AGENT_SIGNING_SECRET_FALLBACKS = [OLD_SECRET]
        notify(102)  # still holding the old key
        fleet.call(agent.checkin, "heartbeat")
        assert agent.key != old_key and agent.previous_key == old_key
        notify(103)  # holding the new key
        settings.AGENT_SIGNING_SECRET_FALLBACKS = []
        notify(104)
        deadline = time.monotonic() + 10
        while len(agent.notification_log) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [entry["delivery_id"] for entry in agent.notification_log] == [101, 102, 103, 104]
        assert agent.counters.notifications_rejected == 0
