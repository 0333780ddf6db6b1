"""Generated bad requests against every agent endpoint: never a 500, always a JSON error, nothing changed."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents_app.models import Client
from updates_app.models import Delivery

pytestmark = pytest.mark.django_db

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)

FIELDS = {
    "/agent/v1/register": ["enrollment_secret", "hostname", "ip_address", "listener_port", "domain", "roaming"],
    "/agent/v1/checkin": ["event", "component_versions", "config_version", "scheduled_update_disabled", "roaming"],
    "/agent/v1/report": ["kind", "result", "trigger", "component_versions", "delivery_id", "message"],
}


def field_bodies(url):
    """Objects with the endpoint's own field names and arbitrary values (the dangerous kind)."""
    return st.dictionaries(st.sampled_from(FIELDS[url]), json_values, max_size=len(FIELDS[url]))


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture
def agent_auth(register, component_storage):
    _data, auth = register()
    return auth


def check(response):
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["code"], str) and body["code"]
        assert isinstance(body["message"], str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_generated_bodies_never_cause_a_server_error(client, agent_auth, enrollment, url, data):
    before = (Client.objects.count(), list(Client.objects.values_list("component_versions", flat=True)))
    raw = json.dumps(data.draw(field_bodies(url))).encode() if data.draw(st.booleans()) else data.draw(bodies)
    response = client.post(url, raw, content_type="application/json", **agent_auth)
    check(response)
    if response.status_code >= 400:
        after = (Client.objects.count(), list(Client.objects.values_list("component_versions", flat=True)))
        assert after == before
    assert not Delivery.objects.filter(update_reported_at__isnull=False).exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_characters="?#%"), max_size=40),
    header=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
)
def test_generated_paths_and_tokens_never_cause_a_server_error(client, agent_auth, path, header):
    for url in (f"/agent/v1/{path}", f"/agent/v1/components/{path}/versions/{path}/full"):
        check(client.get(url, **agent_auth))
        check(client.get(url, HTTP_AUTHORIZATION=header))
    check(client.get("/agent/v1/manifest", HTTP_AUTHORIZATION=header))
    check(client.post("/agent/v1/checkin", b"{}", content_type="application/json", HTTP_AUTHORIZATION=header))
