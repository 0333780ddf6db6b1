"""End to end over real HTTP on loopback: the live Django server and the reference agent."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from django.utils import timezone

from agent_api.simulator import AgentSpec, FleetThread
from agents_app.models import Client, ConnectionStatus
from agents_app.signing import client_signing_key, signature_headers
from updates_app.components import component_download, component_resolve
from updates_app.engine.sender import notification_payload
from updates_app.models import AutoUpdateSettings, Delivery, Frequency, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def versions(component_storage):
    component = component_resolve("virus_pattern")
    return [component_download(component=component) for _ in range(17)]


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def fleet_for(live_server, specs, **kwargs):
    from tests.agent_api.conftest import SECRET

    return FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600, **kwargs
    )


def test_agents_update_incrementally_when_1_behind_and_fully_when_16_behind(
    live_server, enrollment, component_storage, versions
):
    latest = version_label(versions[-1].number)
    one_behind = (component_storage / versions[-2].file_path).read_bytes()
    specs = [
        AgentSpec(hostname="one-behind", holdings={"virus_pattern": one_behind}),
        AgentSpec(hostname="far-behind", holdings={"virus_pattern": version_label(versions[0].number)}),
    ]
    with fleet_for(live_server, specs) as fleet:
        near, far = fleet.agents
        # Registered and checked in: the server knows what each holds.
        assert Client.objects.get(guid=near.client_id).component_versions == {
            "virus_pattern": version_label(versions[-2].number)
        }
        assert near.config is not None and near.config_version

        assert fleet.call(near.update, trigger="manual") is True
        assert fleet.call(far.update, trigger="manual") is True

        assert near.counters.incremental_downloads == 1 and near.counters.full_downloads == 0
        assert far.counters.full_downloads == 1 and far.counters.incremental_downloads == 0
        assert near.counters.bytes_downloaded * 10 < far.counters.bytes_downloaded == versions[-1].size
        for agent in (near, far):
            assert agent.versions == {"virus_pattern": latest}
            assert (
                fleet.store[agent.file_hashes["virus_pattern"]]
                == (component_storage / versions[-1].file_path).read_bytes()
            )
            assert Client.objects.get(guid=agent.client_id).component_versions == {"virus_pattern": latest}


def _notify(agent, body: bytes, message_id: str, *, now=None, key=None):
    headers = signature_headers(key or client_signing_key(agent.client_id), message_id, body, now=now)
    request = urllib.request.Request(f"http://127.0.0.1:{agent.port}/notify", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_signed_notification_makes_the_agent_update_scan_and_report(
    live_server, enrollment, component_storage, versions
):
    # The agent starts (a "restart" check-in) behind: with "Let clients initiate
    # component update when they restart" on it would update right away
    # (the restart path); this test is about the notification alone.
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": False})
    specs = [AgentSpec(hostname="notified", holdings={"virus_pattern": version_label(versions[-3].number)})]
    with fleet_for(live_server, specs) as fleet:
        agent = fleet.agents[0]
        client = Client.objects.get(guid=agent.client_id)
        run = UpdateRun.objects.create(trigger=RunTrigger.EVENT, scan_after=True)
        delivery = Delivery.objects.create(run=run, client=client, next_attempt_at=timezone.now())
        body = json.dumps(notification_payload(delivery)).encode()

        status, answer = _notify(agent, body, f"dlv_{delivery.pk}")
        assert (status, answer["status"]) == (202, "accepted")
        assert wait_for(lambda: Delivery.objects.get(pk=delivery.pk).update_reported_at is not None)
        assert wait_for(lambda: agent.counters.scans == 1)
        assert Client.objects.get(pk=client.pk).component_versions == {
            "virus_pattern": version_label(versions[-1].number)
        }

        # A retry with the same id is acknowledged but not acted on twice.
        status, answer = _notify(agent, body, f"dlv_{delivery.pk}")
        assert (status, answer["status"]) == (200, "duplicate")
        time.sleep(0.3)
        assert agent.counters.updates_ok == 1
        assert agent.notifications_received == 2
        assert fleet.notification_counts() == {agent.client_id: 2}


def test_the_listener_rejects_bad_signatures_and_stale_timestamps(live_server, enrollment, component_storage):
    with fleet_for(live_server, [AgentSpec(hostname="guarded")]) as fleet:
        agent = fleet.agents[0]
        body = json.dumps({"type": "update", "delivery_id": 1, "run_id": 1, "scan_after": False}).encode()
        status, answer = _notify(agent, body, "dlv_1", key=b"not the key" * 3)
        assert (status, answer["code"]) == (401, "bad_signature")
        status, _ = _notify(agent, body, "dlv_1", now=time.time() - 3600)
        assert status == 401
        # A rejected id may still arrive later, correctly signed, and is then acted on.
        request = urllib.request.Request(f"http://127.0.0.1:{agent.port}/notify", data=body)
        try:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback only
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        assert agent.counters.notifications_rejected == 3
        assert agent.counters.updates_ok == 0


def test_failing_agents_answer_errors_or_refuse_connections(live_server, enrollment, component_storage):
    specs = [AgentSpec(hostname="err", fail_mode="error"), AgentSpec(hostname="refuse", fail_mode="refuse")]
    with fleet_for(live_server, specs) as fleet:
        err, refuse = fleet.agents
        body = b'{"type": "update", "delivery_id": 1, "run_id": 1, "scan_after": false}'
        assert _notify(err, body, "dlv_1")[0] == 503
        with pytest.raises(urllib.error.URLError):
            _notify(refuse, body, "dlv_1")
        # A refusing agent can come back.
        fleet.call(fleet.set_fail_mode, refuse, None)
        assert _notify(refuse, body, "dlv_2")[0] == 202


def test_an_unreachable_agent_gets_its_actions_when_it_polls(
    live_server, enrollment, component_storage, versions, settings
):
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    specs = [AgentSpec(hostname="natted", ip_address="127.0.2.5", unreachable=True)]
    with fleet_for(live_server, specs) as fleet:
        agent = fleet.agents[0]
        client = Client.objects.get(guid=agent.client_id)
        # The reference agent really sends from its NAT address: the server stores where it came from.
        assert (client.ip_address, client.status) == ("127.0.2.5", ConnectionStatus.UNREACHABLE)
        run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
        delivery = Delivery.objects.create(run=run, client=client, next_attempt_at=timezone.now())

        fleet.call(agent.checkin, "poll")

        assert wait_for(lambda: Delivery.objects.get(pk=delivery.pk).update_reported_at is not None)
        assert agent.versions == {"virus_pattern": version_label(versions[-1].number)}


def test_the_agent_runs_the_minute_schedule_from_its_configuration(
    live_server, enrollment, component_storage, versions
):
    AutoUpdateSettings.objects.update_or_create(
        pk=1, defaults={"frequency": Frequency.MINUTES, "interval_minutes": 1, "config_once_per_day": False}
    )
    specs = [AgentSpec(hostname="scheduled", holdings={"virus_pattern": version_label(versions[-2].number)})]
    # 60x faster: one minute is one second.
    with fleet_for(live_server, specs, time_scale=60) as fleet:
        agent = fleet.agents[0]
        assert agent.schedule_interval_seconds() == 1
        assert wait_for(lambda: agent.counters.scheduled_updates >= 2, timeout=60)
        assert Client.objects.get(guid=agent.client_id).last_scheduled_update_at is not None


def test_without_the_privilege_the_agent_runs_no_scheduled_update(live_server, enrollment, component_storage, versions):
    from agents_app.models import Domain

    Domain.objects.create(name="Locked", scheduled_update_privilege=False)
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"frequency": Frequency.MINUTES, "interval_minutes": 1})
    specs = [AgentSpec(hostname="locked", domain="Locked"), AgentSpec(hostname="allowed")]
    with fleet_for(live_server, specs, time_scale=60) as fleet:
        locked, allowed = fleet.agents
        assert locked.scheduled_update_on() is False
        # As long as an agent with the privilege needs for two scheduled updates (one a second).
        assert wait_for(lambda: allowed.counters.scheduled_updates >= 2)
        assert locked.counters.scheduled_updates == 0


def test_config_once_per_day_defers_new_configurations(live_server, enrollment, component_storage):
    AutoUpdateSettings.objects.update_or_create(
        pk=1, defaults={"frequency": Frequency.HOURS, "interval_hours": 24, "config_once_per_day": True}
    )
    now = [time.time()]
    with fleet_for(live_server, [AgentSpec(hostname="daily")], clock=lambda: now[0]) as fleet:
        agent = fleet.agents[0]
        first_version = agent.config_version
        assert first_version and agent.counters.config_fetches == 0  # it came with the registration

        AutoUpdateSettings.objects.filter(pk=1).update(scan_after_update=True, update_on_restart=False)
        answer = fleet.call(agent.checkin, "heartbeat")
        assert answer["config_changed"] is True
        assert agent.config_version == first_version  # deferred: received less than a day ago
        assert agent.counters.config_fetches == 0

        now[0] += 86_401
        fleet.call(agent.maybe_fetch_config, at_schedule=True)
        assert agent.counters.config_fetches == 1
        assert agent.config_version == answer["config_version"]


def test_a_revoked_agent_registers_again(live_server, enrollment, component_storage):
    with fleet_for(live_server, [AgentSpec(hostname="revoked")]) as fleet:
        agent = fleet.agents[0]
        first = agent.client_id
        Client.objects.filter(guid=first).update(revoked_at=timezone.now())
        fleet.call(agent.checkin, "heartbeat")
        assert agent.client_id != first
        assert Client.objects.get(guid=agent.client_id).hostname == "revoked"


@pytest.mark.postgres
def test_many_agents_of_a_new_domain_registering_at_once_make_one_domain(live_server, enrollment, component_storage):
    from agents_app.models import Domain

    specs = [AgentSpec(hostname=f"branch-{i}", domain="New Branch") for i in range(30)]
    with fleet_for(live_server, specs) as fleet:
        assert len({a.client_id for a in fleet.agents}) == 30
    [domain] = Domain.objects.filter(name="New Branch")
    assert domain.clients.count() == 30
    assert len(set(Domain.objects.values_list("tree_id", flat=True))) == Domain.objects.count()
