"""What a check-in costs, and that its cheap path never hides work or a change (issue 16)."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from agent_api import bodies, checkin
from agent_api.bodies import BodyMemo
from agent_api.serializers import CheckinRequest
from agents_app.models import Client, ConnectionStatus
from updates_app.components import component_download, component_resolve
from updates_app.configuration import client_configuration, configuration_hash
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, ProxySettings, RunTrigger, UpdateRun

pytestmark = pytest.mark.django_db


def post(client, url, body, headers):
    return client.post(url, body, content_type="application/json", **headers)


@pytest.fixture
def settled(client, register, component_storage):
    """A registered client that has reported its versions and applied the current configuration."""
    version = component_download(component=component_resolve("virus_pattern"))
    data, auth = register()
    registered = Client.objects.get(guid=data["client_id"])
    body = {
        "event": "heartbeat",
        "component_versions": {"virus_pattern": version.label},
        "config_version": configuration_hash(client_configuration(registered)),
    }
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert answer["config_changed"] is False and answer["actions"] == []
    return registered, body, auth


def test_a_heartbeat_that_changes_nothing_costs_one_query(client, settled, django_assert_max_num_queries):
    registered, body, auth = settled
    stamp = Client.objects.get(pk=registered.pk).last_contact_at
    # Through the test client, authentication included: one statement reads the client by its
    # token, both settings rows and whether any delivery waits for it (at most 2 is the requirement).
    with django_assert_max_num_queries(1):
        response = post(client, "/agent/v1/checkin", body, auth)
    assert response.status_code == 200
    answer = response.json()
    assert answer["actions"] == [] and answer["config_changed"] is False
    assert answer["status"] == ConnectionStatus.ONLINE
    # Nothing was written: the stamp is younger than AGENT_CONTACT_REFRESH_SECONDS.
    assert Client.objects.get(pk=registered.pk).last_contact_at == stamp


def test_an_aged_stamp_is_refreshed_with_one_update(client, settled, settings, django_assert_max_num_queries):
    registered, body, auth = settled
    aged = timezone.now() - dt.timedelta(seconds=settings.AGENT_CONTACT_REFRESH_SECONDS + 1)
    Client.objects.filter(pk=registered.pk).update(last_contact_at=aged)
    # The token look-up (which also reads the settings rows and probes for work), the UPDATE:
    # no transaction around one statement.
    with django_assert_max_num_queries(2):
        post(client, "/agent/v1/checkin", body, auth)
    assert Client.objects.get(pk=registered.pk).last_contact_at > aged


def test_a_client_marked_offline_comes_back_online_at_once(client, settled):
    registered, body, auth = settled
    Client.objects.filter(pk=registered.pk).update(status=ConnectionStatus.OFFLINE)
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert answer["status"] == ConnectionStatus.ONLINE
    assert Client.objects.get(pk=registered.pk).status == ConnectionStatus.ONLINE


@pytest.mark.parametrize(
    "change",
    [
        {"roaming": True},
        {"scheduled_update_disabled": True},
        {"config_version": "0" * 64},
        {"component_versions": "a newer version"},
    ],
)
def test_a_heartbeat_that_reports_a_change_records_it_at_once(client, settled, component_storage, change):
    registered, body, auth = settled
    if "component_versions" in change:
        newer = component_download(component=component_resolve("virus_pattern"))
        body["component_versions"], change = {"virus_pattern": newer.label}, {}
    answer = post(client, "/agent/v1/checkin", {**body, **change}, auth)
    assert answer.status_code == 200, answer.content
    stored = Client.objects.get(pk=registered.pk)
    assert stored.component_versions == body["component_versions"]
    assert stored.reports_roaming is bool(change.get("roaming"))
    assert stored.user_disabled_scheduled_update is bool(change.get("scheduled_update_disabled"))
    assert stored.config_version == change.get("config_version", body["config_version"])


@pytest.mark.parametrize("status", [DeliveryStatus.RETRYING, DeliveryStatus.PENDING])
def test_work_waiting_is_handed_over_even_when_nothing_else_changed(client, settled, status):
    registered, body, auth = settled
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    delivery = Delivery.objects.create(run=run, client=registered, status=status, next_attempt_at=timezone.now())
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert [action["delivery_id"] for action in answer["actions"]] == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED


def test_a_pending_delivery_not_yet_due_stays_pending(client, settled):
    registered, body, auth = settled
    run = UpdateRun.objects.create(trigger=RunTrigger.SCHEDULE)
    later = timezone.now() + dt.timedelta(minutes=30)
    delivery = Delivery.objects.create(run=run, client=registered, next_attempt_at=later)
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert answer["actions"] == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING


def test_a_settings_change_reaches_a_quiet_heartbeat_even_without_a_new_revision(client, settled):
    registered, body, auth = settled
    # Written behind the screen's back: no revision bump, no audit.
    AutoUpdateSettings.objects.filter(pk=1).update(scan_after_update=True)
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert answer["config_changed"] is True
    assert answer["config_version"] == configuration_hash(client_configuration(Client.objects.get(pk=registered.pk)))


def test_two_settings_changes_in_one_transaction_both_reach_the_checkin(client, settled):
    """The settings rows are held per process under their version (console.compiled.RowVersion).

    Both writes here share one transaction (the test's), so they share a
    transaction id: the version must still tell them apart.
    """
    registered, body, auth = settled
    versions = []
    for scan_after in (True, False):
        AutoUpdateSettings.objects.filter(pk=1).update(scan_after_update=scan_after, include_roaming_offline=True)
        answer = post(client, "/agent/v1/checkin", body, auth).json()
        expected = configuration_hash(client_configuration(Client.objects.get(pk=registered.pk)))
        assert answer["config_version"] == expected
        versions.append(answer["config_version"])
    assert versions[0] != versions[1]


def test_a_changed_settings_row_is_read_once_then_held(client, settled, django_assert_max_num_queries):
    _, body, auth = settled
    AutoUpdateSettings.objects.filter(pk=1).update(scan_after_update=True)
    # The check-in's statement, then the changed row (once per process).
    with django_assert_max_num_queries(2):
        assert post(client, "/agent/v1/checkin", body, auth).json()["config_changed"] is True
    with django_assert_max_num_queries(1):
        assert post(client, "/agent/v1/checkin", body, auth).status_code == 200


def test_repeated_heartbeat_bodies_are_validated_once(client, settled, validations):
    """A fleet sends the same body over and over (agent_api/bodies.py)."""
    _, body, auth = settled
    bodies.forget_all()
    for _ in range(3):
        assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    assert len(validations) == 1
    # Another body is another validation.
    assert post(client, "/agent/v1/checkin", {**body, "roaming": True}, auth).status_code == 200
    assert len(validations) == 2


def test_an_invalid_body_is_refused_every_time_and_never_remembered(client, settled):
    _, body, auth = settled
    bodies.forget_all()
    for _ in range(2):
        response = post(client, "/agent/v1/checkin", {**body, "event": "reboot"}, auth)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid" and "event" in response.json()["errors"]
    assert checkin._BODIES._known == {}


def test_what_a_remembered_body_answers_cannot_be_changed_by_its_caller():
    memo = BodyMemo(CheckinRequest, per_request=("signing_key_id",))
    body = {"event": "heartbeat", "component_versions": {"virus_pattern": "1.000.00"}}
    first = memo.validated(json.loads(json.dumps(body)), size=100)
    again = memo.validated(json.loads(json.dumps(body)), size=100)
    again["component_versions"]["virus_pattern"] = "2.000.00"
    assert memo.validated(json.loads(json.dumps(body)), size=100) == first
    assert first["component_versions"] == {"virus_pattern": "1.000.00"}


def _key_id(answer: dict) -> str:
    from agents_app.signing import decode_key, key_id

    return key_id(decode_key(answer["signing_key"]))


def test_a_fleet_naming_each_its_own_key_is_validated_once(client, settled, register, validations):
    """The reference agent's heartbeat names its signing key: the one field that differs per agent."""
    _, body, auth = settled
    agents = [auth]
    for n in range(2):
        _, other_auth = register(hostname=f"pc-{n + 2}", ip_address=f"127.0.0.{n + 2}")
        post(client, "/agent/v1/checkin", body, other_auth)  # the registration's restart rule aside
        agents.append(other_auth)
    bodies.forget_all()
    validations.clear()
    own_keys = []
    for agent_auth in agents:
        first = post(client, "/agent/v1/checkin", body, agent_auth).json()  # learns its key
        own_keys.append(_key_id(first))
    for agent_auth, own in zip(agents, own_keys, strict=True):
        # The same content spaced and ordered otherwise, naming this agent's key: nothing to hand over.
        spaced = json.dumps({"signing_key_id": own, **dict(reversed(list(body.items())))}, indent=2)
        answer = client.post("/agent/v1/checkin", spaced, content_type="application/json", **agent_auth)
        assert answer.status_code == 200 and answer.json()["signing_key"] is None
        # Another agent's key id: the answer hands over this agent's own key.
        other = next(k for k in own_keys if k != own)
        answer = post(client, "/agent/v1/checkin", {**body, "signing_key_id": other}, agent_auth).json()
        assert _key_id(answer) == own
    assert len(validations) == 1


def test_an_invalid_own_field_is_refused_even_when_the_rest_is_remembered(client, settled):
    _, body, auth = settled
    bodies.forget_all()
    assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    refused = post(client, "/agent/v1/checkin", {**body, "signing_key_id": "not-a-key-id"}, auth)
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid" and "signing_key_id" in refused.json()["errors"]


def test_agents_get_json_whatever_their_accept_header_says(client, settled):
    _, body, auth = settled
    response = post(client, "/agent/v1/checkin", body, {**auth, "HTTP_ACCEPT": "text/html"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert client.get("/agent/v1/ping", HTTP_ACCEPT="text/html").json() == {"status": "ok"}


def test_a_privileges_change_reaches_a_quiet_heartbeat(client, settled):
    registered, body, auth = settled
    Client.objects.filter(pk=registered.pk).update(roaming_privilege=True)
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert answer["config_changed"] is True
    assert answer["config_version"] == configuration_hash(client_configuration(Client.objects.get(pk=registered.pk)))


def test_a_proxy_settings_change_reaches_a_quiet_heartbeat(client, settled):
    registered, body, auth = settled
    # Its version is read with the client in the check-in's one statement, so a held copy is never stale.
    ProxySettings.objects.update_or_create(pk=1, defaults={"auto_detect": True})
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert answer["config_changed"] is True
    assert answer["config_version"] == configuration_hash(client_configuration(Client.objects.get(pk=registered.pk)))


def test_without_settings_rows_the_version_is_the_defaults_document(client, settled):
    """A new server has no settings rows until first use: the check-in answers the defaults' version."""
    registered, body, auth = settled
    ProxySettings.objects.all().delete()
    answer = post(client, "/agent/v1/checkin", body, auth).json()
    assert answer["config_version"] == configuration_hash(client_configuration(Client.objects.get(pk=registered.pk)))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_checkin_on_a_connection_the_database_dropped_succeeds(client, register):
    """The check-in's statement checks its persistent connection itself (console/compiled.py).

    Django's health check (a SELECT 1 before each request's first query) is
    skipped on that path; a connection the server closed since the last
    request (a database restart) must still cost no failed check-in.
    """
    assert connection.settings_dict["CONN_MAX_AGE"] and connection.settings_dict["CONN_HEALTH_CHECKS"]
    _, auth = register()
    assert post(client, "/agent/v1/checkin", {"event": "heartbeat"}, auth).status_code == 200
    backend = connection.connection.info.backend_pid
    with psycopg.connect(_dsn(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend])
    # What a server does when the next request starts (the test client leaves it out).
    close_old_connections()
    response = post(client, "/agent/v1/checkin", {"event": "heartbeat"}, auth)
    assert response.status_code == 200, response.content
    assert connection.connection.info.backend_pid != backend


def _dsn() -> str:
    params = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=params["NAME"], user=params["USER"], host=params["HOST"], port=params["PORT"] or 5432
    )


@pytest.mark.postgres
def test_the_checkin_statement_is_prepared_once_per_connection(client, settled):
    """Prepared on the server (console/compiled.py): PostgreSQL plans it once, not at every heartbeat."""
    _, body, auth = settled
    for _ in range(3):
        assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%"agents_app_client"."token_hash" = $%'],
        )
        executions = [row[0] for row in cursor.fetchall()]
    assert len(executions) == 1 and executions[0] >= 3


# --- One path: a plain view (agent_api/checkin.py), with the rules of the DRF views -------------------


@pytest.fixture
def drf_cycles(monkeypatch):
    """Counts the requests that went through DRF's request cycle."""
    from rest_framework.views import APIView

    counted: list[str] = []
    original = APIView.initial

    def initial(self, request, *args, **kwargs):
        counted.append(type(self).__name__)
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initial", initial)
    return counted


def test_no_checkin_takes_drfs_request_cycle_whatever_it_sends(client, settled, drf_cycles):
    _, body, auth = settled
    assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    assert post(client, "/agent/v1/checkin", {**body, "event": "reboot"}, auth).status_code == 400
    assert post(client, "/agent/v1/checkin", body, {"HTTP_AUTHORIZATION": "Basic abc"}).status_code == 401
    assert post(client, "/agent/v1/checkin", body, {}).status_code == 401
    assert client.post("/agent/v1/checkin", "event=heartbeat", content_type="text/plain", **auth).status_code == 415
    assert client.get("/agent/v1/checkin", **auth).status_code == 405
    assert drf_cycles == []
    assert client.get("/agent/v1/manifest", **auth).status_code == 200
    assert drf_cycles == ["ManifestView"]  # the fixture sees DRF's cycle where there is one


def test_a_missing_or_malformed_token_is_a_401_naming_the_scheme(client, settled):
    _, body, _ = settled
    for headers, message in (({}, "credentials were not provided"), ({"HTTP_AUTHORIZATION": "Basic abc"}, "Bearer")):
        refused = post(client, "/agent/v1/checkin", body, headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthenticated" and message in refused.json()["message"]
        assert refused["WWW-Authenticate"] == 'Bearer realm="agent"'
        assert refused["Content-Type"] == "application/json"


def test_another_method_is_a_405_after_the_token(client, settled):
    _, _, auth = settled
    for method in ("get", "put", "delete", "options"):
        refused = getattr(client, method)("/agent/v1/checkin", **auth)
        assert refused.status_code == 405, method
        assert refused.json()["code"] == "method_not_allowed"
        assert refused["Allow"] == "POST"
    # As on the DRF views, the token comes first: no token is a 401 whatever the method.
    assert client.get("/agent/v1/checkin").status_code == 401


def test_an_empty_body_is_missing_its_fields_and_a_non_object_is_refused(client, settled):
    _, _, auth = settled
    empty = client.post("/agent/v1/checkin", b"", content_type="application/json", **auth)
    assert empty.status_code == 400 and "event" in empty.json()["errors"]
    listed = client.post("/agent/v1/checkin", b"[1, 2]", content_type="application/json", **auth)
    assert listed.status_code == 400
    assert listed.json()["errors"] == {"non_field_errors": ["The body must be a JSON object."]}


def test_a_revoked_or_unknown_token_is_refused_and_counted(client, settled):
    registered, body, auth = settled
    Client.objects.filter(pk=registered.pk).update(revoked_at=timezone.now())
    revoked = post(client, "/agent/v1/checkin", body, auth)
    unknown = post(client, "/agent/v1/checkin", body, {"HTTP_AUTHORIZATION": "Bearer not-a-token"})
    for refused in (revoked, unknown):
        assert refused.status_code == 403
        assert refused.json()["code"] == "register_again"
        assert refused["Content-Type"] == "application/json"


def test_a_client_over_its_rate_is_refused_before_any_query(client, settled, settings, django_assert_num_queries):
    from console.ratelimit import local_counts_clear

    _, body, auth = settled
    settings.AGENT_RATE_LIMIT = "1/min"
    local_counts_clear()
    assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    with django_assert_num_queries(0):
        refused = post(client, "/agent/v1/checkin", body, auth)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1


def test_failed_authentications_are_counted_and_then_refuse_the_address(client, settled, settings):
    _, body, auth = settled
    assert post(client, "/agent/v1/checkin", body, auth).status_code == 200  # the body is remembered now
    settings.AGENT_AUTH_FAILURE_RATE_LIMIT = "2/min"
    wrong = {"HTTP_AUTHORIZATION": "Bearer not-a-token"}
    assert [post(client, "/agent/v1/checkin", body, wrong).status_code for _ in range(3)] == [403, 403, 429]
    # The address is refused now, right token or not.
    refused = post(client, "/agent/v1/checkin", body, auth)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
