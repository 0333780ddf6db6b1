"""The agent API through Django's test client: every endpoint, its errors and what it records."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest
from django.utils import timezone

from agent_api import serializers as s
from agent_api.authentication import token_digest
from agents_app.models import Client, ConnectionStatus, Domain
from agents_app.signing import client_signing_key, decode_key
from updates_app.compliance import compliance_counts
from updates_app.components import component_download, component_resolve
from updates_app.configuration import client_configuration, configuration_hash
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = pytest.mark.django_db


def post(client, url, body, headers=None, **extra):
    return client.post(url, body, content_type="application/json", **(headers or {}), **extra)


def test_registration_creates_a_client_with_its_domain_defaults(client, enrollment):
    domain = Domain.objects.create(name="Sales", roaming_privilege=True, scheduled_update_setting=False)
    response = post(
        client,
        "/agent/v1/register",
        {
            "enrollment_secret": enrollment,
            "hostname": "pc-001",
            "ip_address": "127.0.0.5",
            "listener_port": 40001,
            "domain": "sales",
            "roaming": True,
        },
        REMOTE_ADDR="127.0.0.5",
    )
    assert response.status_code == 201
    data = response.json()
    created = Client.objects.get(guid=data["client_id"])
    assert created.domain == domain
    assert created.roaming_privilege and not created.scheduled_update_setting
    assert created.status == ConnectionStatus.ROAMING
    assert created.ip_address == "127.0.0.5"
    # Only the hash of the token is stored.
    assert created.token_hash == hashlib.sha256(data["token"].encode()).hexdigest()
    assert data["token"] not in str(Client.objects.values().get(pk=created.pk))
    assert decode_key(data["signing_key"]) == client_signing_key(str(created.guid))
    assert data["heartbeat_interval_seconds"] > 0


def test_a_registration_that_reports_versions_is_the_agents_start(client, register, component_storage):
    """One request: versions recorded and counted, the restart rule applied, the configuration answered."""
    versions = [component_download(component=component_resolve("virus_pattern")) for _ in range(2)]
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": True})
    current, behind = (
        {"virus_pattern": version_label(versions[1].number)},
        {"virus_pattern": version_label(versions[0].number)},
    )

    up_to_date, up_to_date_auth = register(
        hostname="current", component_versions=current, scheduled_update_disabled=True
    )
    assert up_to_date["actions"] == []
    assert up_to_date["status"] == ConnectionStatus.ONLINE
    configuration = client.get("/agent/v1/configuration", **up_to_date_auth).json()
    assert up_to_date["configuration"] == configuration["configuration"]
    assert up_to_date["config_version"] == configuration["config_version"]
    registered = Client.objects.get(guid=up_to_date["client_id"])
    assert registered.component_versions == current
    assert registered.user_disabled_scheduled_update  # the user's choice, as a check-in reports it
    assert compliance_counts().outdated_clients == 0

    outdated, _ = register(hostname="behind", ip_address="127.0.0.2", component_versions=behind)
    (action,) = outdated["actions"]
    delivery = Delivery.objects.get(pk=action["delivery_id"])
    assert delivery.client.guid == uuid.UUID(outdated["client_id"])
    assert delivery.run.trigger == RunTrigger.RESTART and delivery.status == DeliveryStatus.DELIVERED
    assert compliance_counts().outdated_clients == 1


def test_a_registration_without_versions_starts_nothing(client, register, component_storage):
    """Agents that do not report at registration check in afterwards: no action is decided for them here."""
    component_download(component=component_resolve("virus_pattern"))
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": True})
    data, _ = register()
    assert data["actions"] == []
    assert not Delivery.objects.exists()
    assert Client.objects.get(guid=data["client_id"]).component_versions == {}


def test_a_registration_reporting_an_unknown_version_registers_nothing(client, enrollment, component_storage):
    response = post(
        client,
        "/agent/v1/register",
        {
            "enrollment_secret": enrollment,
            "hostname": "pc-002",
            "listener_port": 40001,
            "component_versions": {"virus_pattern": "99.999.00"},
        },
    )
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_version"
    assert not Client.objects.exists()


def test_registration_with_an_unknown_domain_creates_it(register):
    data, _ = register(domain="New Branch")
    assert Client.objects.get(guid=data["client_id"]).domain.name == "New Branch"


def test_a_domain_hint_names_a_domain_in_any_case_and_never_as_a_pattern(register):
    # On SQLite iexact is a LIKE: "_" and "%" in a name must not match other names (agent_api/protocol.py).
    hints = [("pc-1", "Sales_EU%"), ("pc-2", "SalesXEUx"), ("pc-3", "SALES_eu%")]
    names = []
    for n, (hostname, hint) in enumerate(hints, start=1):
        data, _ = register(hostname=hostname, ip_address=f"127.0.0.{n}", domain=hint)
        names.append(Client.objects.get(guid=data["client_id"]).domain.name)
    assert names == ["Sales_EU%", "SalesXEUx", "Sales_EU%"]


def test_a_wrong_enrollment_secret_registers_nothing(client, enrollment):
    response = post(
        client,
        "/agent/v1/register",
        {"enrollment_secret": "wrong", "hostname": "h", "ip_address": "127.0.0.1", "listener_port": 1},
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_enrollment_secret"
    assert not Client.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hostname": "h", "ip_address": "not-an-ip", "listener_port": 1}, "ip_address"),
        ({"hostname": "h", "ip_address": "127.0.0.1", "listener_port": 70000}, "listener_port"),
        ({"hostname": "h", "ip_address": "127.0.0.1", "listener_port": "x"}, "listener_port"),
        ({"ip_address": "127.0.0.1", "listener_port": 1}, "hostname"),
        ({"hostname": "h" * 300, "ip_address": "127.0.0.1", "listener_port": 1}, "hostname"),
    ],
)
def test_invalid_registration_is_a_400_naming_the_field(client, enrollment, body, field):
    response = post(client, "/agent/v1/register", {"enrollment_secret": enrollment, **body})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    assert not Client.objects.exists()


def test_checkin_keeps_the_client_online_and_records_what_it_reports(client, register, component_storage):
    version = component_download(component=component_resolve("virus_pattern"))
    data, auth = register()
    registered = Client.objects.get(guid=data["client_id"])
    Client.objects.filter(pk=registered.pk).update(status=ConnectionStatus.OFFLINE)

    response = post(
        client,
        "/agent/v1/checkin",
        {
            "event": "heartbeat",
            "component_versions": {"virus_pattern": version_label(version.number)},
            "config_version": "",
            "scheduled_update_disabled": True,
        },
        auth,
    )

    assert response.status_code == 200, response.content
    answer = response.json()
    registered.refresh_from_db()
    assert answer["status"] == registered.status == ConnectionStatus.ONLINE
    assert registered.component_versions == {"virus_pattern": "18.500.00"}
    assert registered.user_disabled_scheduled_update is True
    assert answer["config_changed"] is True
    assert answer["config_version"] == configuration_hash(client_configuration(registered))
    assert answer["actions"] == []


def test_checkin_with_the_current_configuration_says_nothing_changed(client, register):
    data, auth = register()
    registered = Client.objects.get(guid=data["client_id"])
    current = configuration_hash(client_configuration(registered))
    answer = post(client, "/agent/v1/checkin", {"event": "poll", "config_version": current}, auth).json()
    assert answer["config_changed"] is False


def test_checkin_hands_over_pending_actions(client, register):
    data, auth = register()
    registered = Client.objects.get(guid=data["client_id"])
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL, scan_after=True)
    delivery = Delivery.objects.create(run=run, client=registered, next_attempt_at=timezone.now())

    answer = post(client, "/agent/v1/checkin", {"event": "poll"}, auth).json()

    assert answer["actions"] == [{"type": "update", "delivery_id": delivery.pk, "run_id": run.pk, "scan_after": True}]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED


def test_the_checkin_answer_has_the_published_shape(client, register, settings):
    """The view answers the protocol's dict as it is: the schema's serializer must describe it exactly."""
    settings.TIME_ZONE = "Europe/Berlin"  # server_time stays UTC whatever the server's zone
    data, auth = register()
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    Delivery.objects.create(run=run, client=Client.objects.get(guid=data["client_id"]), next_attempt_at=timezone.now())
    for _ in range(2):  # with an action to hand over, then quiet
        answer = post(client, "/agent/v1/checkin", {"event": "heartbeat"}, auth).json()
        published = s.CheckinResponse(data=answer)
        assert published.is_valid(), published.errors
        assert set(answer) == set(s.CheckinResponse().fields)
        for action in answer["actions"]:
            assert set(action) == set(s.ActionSerializer().fields)
        assert answer["server_time"].endswith("Z")
    assert answer["actions"] == []


def test_roaming_needs_the_roaming_privilege(client, register):
    data, auth = register()
    answer = post(client, "/agent/v1/checkin", {"event": "heartbeat", "roaming": True}, auth).json()
    assert answer["status"] == ConnectionStatus.ONLINE
    Client.objects.filter(guid=data["client_id"]).update(roaming_privilege=True)
    answer = post(client, "/agent/v1/checkin", {"event": "heartbeat", "roaming": True}, auth).json()
    assert answer["status"] == ConnectionStatus.ROAMING


def test_clients_in_unreachable_ranges_are_unreachable(client, register, settings):
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    data, auth = register(ip_address="127.0.2.9")
    assert Client.objects.get(guid=data["client_id"]).status == ConnectionStatus.UNREACHABLE
    answer = post(client, "/agent/v1/checkin", {"event": "poll"}, auth).json()
    assert answer["status"] == ConnectionStatus.UNREACHABLE


def test_unknown_component_versions_are_refused_and_nothing_changes(client, register, component_storage):
    component_download(component=component_resolve("virus_pattern"))
    data, auth = register()
    for versions, code in (
        ({"nope": "1.000.00"}, "unknown_version"),
        ({"virus_pattern": "99.999.00"}, "unknown_version"),
        ({"virus_pattern": "banana"}, "invalid"),
        ({"virus_pattern": 5}, "invalid"),
    ):
        response = post(client, "/agent/v1/checkin", {"event": "heartbeat", "component_versions": versions}, auth)
        assert response.status_code == 400, versions
        assert response.json()["code"] == code
    assert Client.objects.get(guid=data["client_id"]).component_versions == {}


def test_unauthenticated_calls_get_401(client):
    for method, url in (("post", "/agent/v1/checkin"), ("get", "/agent/v1/manifest"), ("post", "/agent/v1/report")):
        response = getattr(client, method)(url, content_type="application/json")
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"
    response = client.get("/agent/v1/manifest", HTTP_AUTHORIZATION="Basic abc")
    assert response.status_code == 401


def test_unknown_or_revoked_clients_are_told_to_register_again(client, register):
    data, auth = register()
    response = client.get("/agent/v1/manifest", HTTP_AUTHORIZATION="Bearer not-a-real-token")
    assert response.status_code == 403
    assert response.json()["code"] == "register_again"
    Client.objects.filter(guid=data["client_id"]).update(revoked_at=timezone.now())
    response = client.get("/agent/v1/manifest", **auth)
    assert response.status_code == 403
    assert response.json()["code"] == "register_again"


def test_malformed_json_is_a_400(client, register):
    _, auth = register()
    response = client.post("/agent/v1/checkin", b"{not json", content_type="application/json", **auth)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    response = client.post("/agent/v1/checkin", b"[1, 2]", content_type="application/json", **auth)
    assert response.status_code == 400
    response = client.post("/agent/v1/checkin", b"[" * 50000, content_type="application/json", **auth)
    assert response.status_code == 400


@pytest.mark.parametrize("url", ["/agent/v1/checkin", "/agent/v1/report", "/agent/v1/register"])
def test_oversized_bodies_are_a_413(client, register, settings, url):
    _, auth = register()
    body = {"event": "heartbeat", "kind": "scan", "message": "x" * (settings.AGENT_MAX_BODY_BYTES + 10)}
    response = post(client, url, body, auth)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert Client.objects.count() == 1


def test_other_content_types_are_refused(client, register):
    _, auth = register()
    response = client.post("/agent/v1/checkin", "event=heartbeat", content_type="text/plain", **auth)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_unknown_paths_answer_json_404(client):
    response = client.get("/agent/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_configuration_is_the_client_document_with_its_version(client, register):
    data, auth = register()
    answer = client.get("/agent/v1/configuration", **auth).json()
    registered = Client.objects.get(guid=data["client_id"])
    assert answer["configuration"] == client_configuration(registered)
    assert answer["config_version"] == configuration_hash(client_configuration(registered))


def test_manifest_and_downloads(client, register, component_storage, django_capture_on_commit_callbacks):
    component = component_resolve("virus_pattern")
    versions = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            versions.append(component_download(component=component))
    _, auth = register()
    post(
        client,
        "/agent/v1/checkin",
        {"event": "heartbeat", "component_versions": {"virus_pattern": version_label(versions[1].number)}},
        auth,
    )
    [item] = client.get("/agent/v1/manifest", **auth).json()["components"]
    assert item["latest_version"] == version_label(versions[2].number)
    assert item["up_to_date"] is False

    for entry in (item["full"], item["incremental"]):
        response = client.get(entry["url"], **auth)
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        assert len(body) == entry["size"]
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] == response["X-Content-SHA256"]

    assert client.get(item["full"]["url"]).status_code == 401
    for url in (
        "/agent/v1/components/virus_pattern/versions/99.999.00/full",
        "/agent/v1/components/nope/versions/18.500.00/full",
        "/agent/v1/components/virus_pattern/versions/garbage/full",
        f"/agent/v1/components/virus_pattern/versions/{item['latest_version']}/incremental/1.000.00",
    ):
        response = client.get(url, **auth)
        assert response.status_code == 404, url
        assert response.json()["code"] == "not_found"


def test_report_records_versions_delivery_and_scheduled_update(client, register, component_storage):
    version = component_download(component=component_resolve("virus_pattern"))
    data, auth = register()
    registered = Client.objects.get(guid=data["client_id"])
    run = UpdateRun.objects.create(trigger=RunTrigger.EVENT)
    delivery = Delivery.objects.create(run=run, client=registered, next_attempt_at=timezone.now())
    label = version_label(version.number)

    response = post(
        client,
        "/agent/v1/report",
        {
            "kind": "update",
            "result": "success",
            "trigger": "notification",
            "component_versions": {"virus_pattern": label},
            "delivery_id": delivery.pk,
        },
        auth,
    )
    assert response.status_code == 200, response.content
    delivery.refresh_from_db()
    registered.refresh_from_db()
    assert delivery.update_reported_at is not None
    assert registered.component_versions == {"virus_pattern": label}
    assert registered.last_scheduled_update_at is None

    post(
        client,
        "/agent/v1/report",
        {"kind": "update", "result": "success", "trigger": "schedule", "component_versions": {"virus_pattern": label}},
        auth,
    )
    registered.refresh_from_db()
    assert registered.last_scheduled_update_at is not None


def test_report_for_another_clients_delivery_is_refused(client, register):
    _, auth = register()
    other, _ = register(hostname="other")
    run = UpdateRun.objects.create(trigger=RunTrigger.EVENT)
    foreign = Delivery.objects.create(
        run=run, client=Client.objects.get(guid=other["client_id"]), next_attempt_at=timezone.now()
    )
    response = post(
        client,
        "/agent/v1/report",
        {"kind": "update", "result": "success", "trigger": "notification", "delivery_id": foreign.pk},
        auth,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_delivery"
    foreign.refresh_from_db()
    assert foreign.update_reported_at is None


def test_a_failed_update_does_not_mark_the_delivery_updated(client, register):
    data, auth = register()
    run = UpdateRun.objects.create(trigger=RunTrigger.EVENT)
    delivery = Delivery.objects.create(
        run=run, client=Client.objects.get(guid=data["client_id"]), next_attempt_at=timezone.now()
    )
    response = post(
        client,
        "/agent/v1/report",
        {"kind": "update", "result": "failure", "trigger": "notification", "delivery_id": delivery.pk},
        auth,
    )
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.update_reported_at is None


def test_the_rate_limit_answers_429(client, register, settings):
    _, auth = register()
    settings.AGENT_RATE_LIMIT = "3/min"
    codes = [post(client, "/agent/v1/checkin", {"event": "heartbeat"}, auth).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]
    response = post(client, "/agent/v1/checkin", {"event": "heartbeat"}, auth)
    assert response.json()["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0


def test_the_schema_is_published(client):
    response = client.get("/agent/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/agent/v1/register", "/agent/v1/checkin", "/agent/v1/manifest", "/agent/v1/report"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["agentToken"]["scheme"] == "bearer"


def test_the_schema_has_ping_and_the_notification_the_server_sends(client):
    schema = client.get("/agent/v1/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["openapi"].startswith("3.1")
    assert "/agent/v1/ping" in schema["paths"]
    ping = schema["paths"]["/agent/v1/ping"]["get"]
    assert ping.get("security", []) in ([], [{}])  # no token needed
    webhook = schema["webhooks"]["notification"]["post"]
    assert webhook["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Action"
    assert {p["name"] for p in webhook["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    signature = next(p for p in webhook["parameters"] if p["name"] == "webhook-signature")
    assert "separated by spaces" in signature["description"]
    assert {"202", "200", "401"} <= set(webhook["responses"])
    assert "unknown_delivery" in schema["paths"]["/agent/v1/report"]["post"]["responses"]["400"]["description"]


def test_token_digest_is_sha256():
    assert token_digest("abc") == hashlib.sha256(b"abc").hexdigest()


def test_heartbeat_timestamp_moves(client, register):
    data, auth = register()
    past = timezone.now() - dt.timedelta(hours=1)
    Client.objects.filter(guid=data["client_id"]).update(last_contact_at=past)
    post(client, "/agent/v1/checkin", {"event": "heartbeat"}, auth)
    assert Client.objects.get(guid=data["client_id"]).last_contact_at > past


@pytest.mark.parametrize(
    "versions",
    [{"virus\x00pattern": "18.500.00"}, {"": "18.500.00"}, {"x" * 51: "18.500.00"}, {"a/b": "18.500.00"}],
)
def test_component_names_with_odd_characters_are_a_400(client, register, versions):
    _, auth = register()
    response = post(client, "/agent/v1/checkin", {"event": "heartbeat", "component_versions": versions}, auth)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_nul_characters_in_text_fields_are_a_400(client, enrollment):
    body = {"enrollment_secret": enrollment, "hostname": "pc\x00", "ip_address": "127.0.0.1", "listener_port": 5}
    response = post(client, "/agent/v1/register", body)
    assert response.status_code == 400
    assert not Client.objects.exists()


def test_ping_needs_nothing(client):
    assert client.get("/agent/v1/ping").json() == {"status": "ok"}


def test_the_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/agent/v1/checkin" in (tmp_path / "schema.yaml").read_text()


def test_a_heartbeat_costs_a_handful_of_queries(client, register, component_storage, django_assert_max_num_queries):
    component_download(component=component_resolve("virus_pattern"))
    _, auth = register()
    body = {"event": "heartbeat", "component_versions": {"virus_pattern": "18.500.00"}}
    post(client, "/agent/v1/checkin", body, auth)
    # token lookup, update, pending deliveries, settings (+ savepoints)
    with django_assert_max_num_queries(9):
        assert post(client, "/agent/v1/checkin", body, auth).status_code == 200


def test_the_component_admin_pages_load(superuser_client, component_storage):
    version = component_download(component=component_resolve("virus_pattern"))
    assert superuser_client.get("/admin/updates_app/componentversion/").status_code == 200
    assert superuser_client.get(f"/admin/updates_app/component/{version.component_id}/change/").status_code == 200


def test_a_domain_created_at_registration_starts_with_the_future_domain_defaults(register):
    from agents_app.models import FutureDomainDefaults

    defaults = FutureDomainDefaults.load()
    defaults.roaming_privilege = True
    defaults.components_only = True
    defaults.save()
    data, _ = register(domain="Brand New")
    created = Client.objects.get(guid=data["client_id"])
    assert created.domain.roaming_privilege and created.domain.components_only
    assert created.roaming_privilege and created.components_only


def test_registration_check_in_and_report_keep_the_compliance_counts(client, register, component_storage):
    from updates_app.compliance import OUTDATED, UNKNOWN, UP_TO_DATE, compliance_counts
    from updates_app.models import ClientComponent

    component = component_resolve("virus_pattern")
    older = component_download(component=component)
    latest = component_download(component=component)

    def virus_counts():
        [row] = [r for r in compliance_counts().components if r.slug == "virus_pattern"]
        return row.counts[UP_TO_DATE], row.counts[OUTDATED], row.counts[UNKNOWN]

    _data, auth = register()
    assert virus_counts() == (0, 0, 1)  # registered, nothing reported yet

    body = {"event": "heartbeat", "component_versions": {"virus_pattern": version_label(older.number)}}
    assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    assert virus_counts() == (0, 1, 0)
    assert list(ClientComponent.objects.values_list("component", "number")) == [("virus_pattern", older.number)]

    report = {"kind": "update", "result": "success", "trigger": "notification"}
    report["component_versions"] = {"virus_pattern": version_label(latest.number)}
    assert post(client, "/agent/v1/report", report, auth).status_code == 200
    assert virus_counts() == (1, 0, 0)
    # A heartbeat that repeats what is on record changes nothing.
    body["component_versions"] = report["component_versions"]
    assert post(client, "/agent/v1/checkin", body, auth).status_code == 200
    assert virus_counts() == (1, 0, 0) and compliance_counts().clients == 1
