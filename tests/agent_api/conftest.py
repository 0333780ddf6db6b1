from __future__ import annotations

import pytest

from tests.updates_app.conftest import component_storage  # noqa: F401

SECRET = "enroll-me-please"


@pytest.fixture
def validations(monkeypatch):
    """The bodies the check-in's memo had validated (agent_api/bodies.py)."""
    from agent_api import bodies

    seen: list[dict] = []
    original = bodies.body_validated

    def counted(serializer_class, content):
        seen.append(content)
        return original(serializer_class, content)

    monkeypatch.setattr(bodies, "body_validated", counted)
    return seen


@pytest.fixture
def enrollment(settings):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    return SECRET


@pytest.fixture
def register(client, enrollment):
    """Register an agent through the API; returns (json answer, auth headers)."""

    def _register(**overrides):
        body = {
            "enrollment_secret": SECRET,
            "hostname": "pc-001",
            "ip_address": "127.0.0.1",
            "listener_port": 40001,
            "domain": "Sales",
            "roaming": False,
            **overrides,
        }
        # The server takes the listener address from where the request comes
        # from: an agent "at" another address sends from it.
        response = client.post(
            "/agent/v1/register", body, content_type="application/json", REMOTE_ADDR=body["ip_address"]
        )
        assert response.status_code == 201, response.content
        data = response.json()
        return data, {"HTTP_AUTHORIZATION": f"Bearer {data['token']}"}

    return _register
