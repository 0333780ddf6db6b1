"""The reference agent follows the proxy rules, through real tinyproxy and squid instances on loopback.

Automatic update: automatic proxy settings (detection, configuration script)
first, then the internal proxy, else direct. Update Now: automatic settings
first, then the client user's proxy (with the privilege), else direct.
ActiveUpdate downloads: the external proxy. Every case is read off the
proxies' own logs, not off the agent's word. Reports survive a proxy: they
reach the server through tinyproxy and squid, and one that could not be sent
is sent again until the server records it (counted on the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from agent_api.simulator import AgentSpec, FleetThread
from agent_api.simulator.activeupdate import ActiveUpdateFeedThread, feed_contents
from agent_api.simulator.proxy import UserProxy
from agents_app.models import Client, Domain
from console.encryption import encrypt
from tests.agent_api.conftest import SECRET
from tests.agent_api.proxies import Proxy, free_port, squid, tinyproxy
from updates_app.components import component_download, component_resolve
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, ProxySettings, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def no_restart_updates(db):
    # Agents start with a "restart" check-in; with the restart option on they would
    # update at once, before the step each test takes. These tests are about that step.
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": False})


@pytest.fixture
def versions(component_storage):
    component = component_resolve("virus_pattern")
    return [component_download(component=component) for _ in range(3)]


def configure_proxy(**fields) -> None:
    for kind in ("internal", "external"):
        if f"{kind}_password" in fields:
            fields[f"{kind}_password"] = encrypt(fields[f"{kind}_password"])
    ProxySettings.load()
    ProxySettings.objects.filter(pk=1).update(**fields)


def use_proxy(kind: str, proxy: Proxy) -> dict:
    return {
        f"{kind}_enabled": True,
        f"{kind}_host": proxy.host,
        f"{kind}_port": proxy.port,
        f"{kind}_username": proxy.username,
        f"{kind}_password": proxy.password,
    }


def domain_defaults(**settings) -> None:
    """New agents join "Simulated": give it the dialog settings the test needs."""
    domain = Domain.objects.filter(name="Simulated").first() or Domain.objects.create(name="Simulated")
    for name, value in settings.items():
        setattr(domain, name, value)
    domain.save()


def fleet_for(live_server, specs, **kwargs):
    return FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600, **kwargs
    )


@contextlib.contextmanager
def pac_server(tmp_path: Path, script: str) -> Iterator[str]:
    """Serves proxy.pac over HTTP on loopback; yields its URL."""
    folder = tmp_path / "pac"
    folder.mkdir()
    (folder / "proxy.pac").write_text(script)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/proxy.pac"
    finally:
        server.shutdown()
        server.server_close()


def pac_for(proxy: Proxy) -> str:
    return 'function FindProxyForURL(url, host) { return "PROXY ' + f"{proxy.host}:{proxy.port}" + '; DIRECT"; }'


def test_automatic_update_goes_through_the_internal_proxy_with_its_password(
    live_server, enrollment, versions, tmp_path
):
    with tinyproxy(tmp_path, username="agent", password="s3cret") as proxy:
        configure_proxy(**use_proxy("internal", proxy))
        spec = AgentSpec(hostname="behind-proxy", holdings={"virus_pattern": version_label(versions[0].number)})
        with fleet_for(live_server, [spec]) as fleet:
            agent = fleet.agents[0]
            assert fleet.call(agent.update, trigger="notification") is True
            paths = proxy.paths()
        # The manifest and the download went through the proxy (authenticated, or it would have refused).
        assert "/agent/v1/manifest" in paths
        assert any(p.startswith("/agent/v1/components/virus_pattern/") for p in paths)
        assert "/agent/v1/report" in paths
        assert agent.versions["virus_pattern"] == version_label(versions[-1].number)
        client = Client.objects.get(guid=agent.client_id)
        assert client.last_update_source == "server"
        assert client.last_update_proxy == f"{proxy.url} (internal proxy)"


def test_the_automatic_configuration_script_comes_before_the_internal_proxy(
    live_server, enrollment, versions, tmp_path
):
    with (
        tinyproxy(tmp_path, name="scripted") as scripted,
        tinyproxy(tmp_path, name="internal") as internal,
        pac_server(tmp_path, pac_for(scripted)) as pac_url,
    ):
        configure_proxy(use_pac=True, pac_url=pac_url, **use_proxy("internal", internal))
        spec = AgentSpec(hostname="pac", holdings={"virus_pattern": version_label(versions[0].number)})
        with fleet_for(live_server, [spec]) as fleet:
            agent = fleet.agents[0]
            assert fleet.call(agent.update, trigger="schedule") is True
        assert "/agent/v1/manifest" in scripted.paths()
        assert internal.requests() == []
        assert agent.last_report["proxy"] == f"{scripted.url} (automatic configuration script)"


def test_automatic_detection_comes_first_and_a_network_without_it_falls_through(
    live_server, enrollment, versions, tmp_path
):
    with (
        tinyproxy(tmp_path, name="detected") as detected,
        tinyproxy(tmp_path, name="internal") as internal,
        pac_server(tmp_path, pac_for(detected)) as wpad_url,
    ):
        configure_proxy(auto_detect=True, **use_proxy("internal", internal))
        specs = [
            AgentSpec(
                hostname="wpad", wpad_url=wpad_url, holdings={"virus_pattern": version_label(versions[0].number)}
            ),
            AgentSpec(hostname="no-wpad", holdings={"virus_pattern": version_label(versions[0].number)}),
        ]
        with fleet_for(live_server, specs) as fleet:
            with_wpad, without = fleet.agents
            assert fleet.call(with_wpad.update, trigger="notification") is True
            detected_paths, internal_before = detected.paths(), internal.paths()
            assert fleet.call(without.update, trigger="notification") is True
        assert "/agent/v1/manifest" in detected_paths and "/agent/v1/manifest" not in internal_before
        assert "/agent/v1/manifest" in internal.paths()


def test_update_now_uses_the_users_proxy_only_with_the_privilege(live_server, enrollment, versions, tmp_path):
    with tinyproxy(tmp_path, name="user") as user_proxy, tinyproxy(tmp_path, name="internal") as internal:
        configure_proxy(**use_proxy("internal", internal))
        holdings = {"virus_pattern": version_label(versions[0].number)}
        mine = UserProxy(host=user_proxy.host, port=user_proxy.port)
        domain_defaults(proxy_privilege=True)
        with fleet_for(live_server, [AgentSpec(hostname="allowed", user_proxy=mine, holdings=holdings)]) as fleet:
            allowed = fleet.agents[0]
            assert fleet.call(allowed.update_now) is True
        assert "/agent/v1/manifest" in user_proxy.paths()
        # Update Now never falls back to the internal proxy (that one is for automatic update).
        assert "/agent/v1/manifest" not in internal.paths()
        seen_by_user_proxy = len(user_proxy.requests())

        domain_defaults(proxy_privilege=False)
        with fleet_for(live_server, [AgentSpec(hostname="refused", user_proxy=mine, holdings=holdings)]) as fleet:
            refused = fleet.agents[0]
            assert fleet.call(refused.update_now) is True
        # Without the privilege the user's proxy is ignored: a direct connection.
        assert len(user_proxy.requests()) == seen_by_user_proxy
        assert refused.last_report["proxy"] == ""


def test_update_now_without_its_privilege_is_refused_and_reported(live_server, enrollment, versions, tmp_path):
    domain_defaults(update_now_privilege=False)
    spec = AgentSpec(hostname="no-update-now", holdings={"virus_pattern": version_label(versions[0].number)})
    with fleet_for(live_server, [spec]) as fleet:
        agent = fleet.agents[0]
        assert fleet.call(agent.update_now) is False
    assert agent.versions["virus_pattern"] == version_label(versions[0].number)
    assert agent.last_report["result"] == "failure"
    assert agent.last_report["trigger"] == "update_now"
    assert "Perform Update Now" in agent.last_report["message"]


def test_a_wrong_proxy_password_fails_with_a_clear_error_in_the_report(live_server, enrollment, versions, tmp_path):
    with tinyproxy(tmp_path, username="agent", password="right") as proxy:
        domain_defaults(proxy_privilege=True)
        mine = UserProxy(host=proxy.host, port=proxy.port, username="agent", password="wrong")
        spec = AgentSpec(
            hostname="typo", user_proxy=mine, holdings={"virus_pattern": version_label(versions[0].number)}
        )
        with fleet_for(live_server, [spec]) as fleet:
            agent = fleet.agents[0]
            assert fleet.call(agent.update_now) is False
        assert agent.last_report["result"] == "failure"
        assert "refused the credentials" in agent.last_report["message"]
        assert proxy.url in agent.last_report["message"]


def test_an_agent_falls_back_to_activeupdate_through_the_external_proxy(
    live_server, enrollment, versions, tmp_path, component_storage, settings
):
    with (
        tinyproxy(tmp_path, username="out", password="bound") as external,
        ActiveUpdateFeedThread(feed_contents()) as feed,
    ):
        settings.ACTIVEUPDATE_URL = feed.url
        configure_proxy(**use_proxy("external", external))
        # The server's copy of the latest full file is gone (e.g. a disk cleaned by hand).
        (component_storage / versions[-1].file_path).unlink()
        holdings = {"virus_pattern": version_label(versions[0].number)}
        domain_defaults(download_from_activeupdate=True)
        with fleet_for(live_server, [AgentSpec(hostname="fallback", holdings=holdings)]) as fleet:
            fallback = fleet.agents[0]
            assert fleet.call(fallback.update, trigger="notification") is True
        domain_defaults(download_from_activeupdate=False)
        with fleet_for(live_server, [AgentSpec(hostname="server-only", holdings=holdings)]) as fleet:
            server_only = fleet.agents[0]
            assert fleet.call(server_only.update, trigger="notification") is False
    full = f"/components/virus_pattern/versions/{version_label(versions[-1].number)}/full"
    assert full in external.paths()
    assert feed.feed.requests.count(full) == 1  # the second agent never asked the feed
    assert fallback.versions["virus_pattern"] == version_label(versions[-1].number)
    client = Client.objects.get(guid=fallback.client_id)
    assert (client.last_update_source, client.last_update_proxy) == ("activeupdate", f"{external.url} (external proxy)")
    assert server_only.versions["virus_pattern"] == version_label(versions[0].number)


def test_components_only_skips_the_client_program_and_hot_fixes(live_server, enrollment, versions):
    program = component_download(component=component_resolve("Client Program"))
    hot_fix = component_download(component=component_resolve("Hot Fix"))
    holdings = {"virus_pattern": version_label(versions[0].number)}
    domain_defaults(components_only=True)
    with fleet_for(live_server, [AgentSpec(hostname="components-only", holdings=holdings)]) as fleet:
        limited = fleet.agents[0]
        assert fleet.call(limited.update, trigger="notification") is True
    domain_defaults(components_only=False)
    with fleet_for(live_server, [AgentSpec(hostname="everything", holdings=holdings)]) as fleet:
        full = fleet.agents[0]
        assert fleet.call(full.update, trigger="notification") is True
    assert set(limited.versions) == {"virus_pattern"}
    assert full.versions["client_program"] == version_label(program.number)
    assert full.versions["hot_fix"] == version_label(hot_fix.number)
    assert limited.versions["virus_pattern"] == full.versions["virus_pattern"] == version_label(versions[-1].number)


def test_roaming_mode_needs_the_roaming_privilege(live_server, enrollment, component_storage):
    domain_defaults(roaming_privilege=False)
    with fleet_for(live_server, [AgentSpec(hostname="wants-roaming", roaming=True)]) as fleet:
        agent = fleet.agents[0]
        fleet.call(agent.checkin, "heartbeat")
    assert agent.reports_roaming() is False
    assert Client.objects.get(guid=agent.client_id).reports_roaming is False


# --- reports survive a proxy ------------------------------------------------------------------


@pytest.fixture(params=["tinyproxy", "squid"])
def start_proxy(request, tmp_path) -> Callable[..., contextlib.AbstractContextManager[Proxy]]:
    """``with start_proxy() as proxy``: a real tinyproxy or squid (``port=`` to choose where it listens)."""
    if request.param == "tinyproxy":
        return lambda port=0: tinyproxy(tmp_path, name=f"tinyproxy-{port}", port=port)
    return lambda port=0: squid(port=port)


def delivery_for(agent) -> Delivery:
    """A notification this agent was sent, for its report to answer."""
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    client = Client.objects.get(guid=agent.client_id)
    return Delivery.objects.create(
        run=run, client=client, status=DeliveryStatus.DELIVERED, next_attempt_at=timezone.now()
    )


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def posted(proxy: Proxy, path: str) -> int:
    return sum(1 for method, url in proxy.requests() if method == "POST" and url.endswith(path))


def test_a_report_made_after_the_proxy_closed_the_agents_connection_arrives_at_once(
    live_server, enrollment, versions, start_proxy
):
    with start_proxy() as proxy:
        configure_proxy(**use_proxy("internal", proxy))
        spec = AgentSpec(hostname="busy", holdings={"virus_pattern": version_label(versions[0].number)})
        with fleet_for(live_server, [spec]) as fleet:
            agent = fleet.agents[0]
            delivery = delivery_for(agent)

            async def check_in_then_report_after_a_busy_moment() -> None:
                await agent.checkin("heartbeat")
                # The agent's loop is busy (verifying a download, serving other agents) while the
                # proxy closes the connection it answered on: tinyproxy at once, squid after an
                # idle second. A pooled connection would still look open to the report.
                time.sleep(1.5)
                await agent.report(kind="update", ok=True, trigger="notification", delivery_id=delivery.pk)

            fleet.call(check_in_then_report_after_a_busy_moment)
        # Sent on its first try (before the fix: "Can not write request body" through tinyproxy,
        # "Server disconnected" through squid, and the report was lost).
        assert (agent.counters.errors, agent.counters.reports_resent, len(agent.unsent_reports)) == (0, 0, 0)
        assert posted(proxy, "/agent/v1/report") == 1
    delivery.refresh_from_db()
    assert delivery.update_reported_at is not None


def test_agents_restarting_behind_the_proxy_update_and_the_server_records_every_update(
    live_server, enrollment, versions, start_proxy
):
    """The issue's case: restarting agents are told to update, through the proxy, and report it."""
    old, latest = version_label(versions[0].number), version_label(versions[-1].number)
    specs = [AgentSpec(hostname=f"restarts-{i}", holdings={"virus_pattern": old}) for i in range(8)]
    with start_proxy() as proxy:
        configure_proxy(**use_proxy("internal", proxy))
        # Heartbeats every second through the proxy keep its connections busy while the agents restart.
        with FleetThread(
            server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=1
        ) as fleet:
            assert wait_for(lambda: posted(proxy, "/agent/v1/checkin") >= 8, timeout=20)
            for agent in fleet.agents:
                fleet.call(agent.fall_asleep)
            AutoUpdateSettings.objects.filter(pk=1).update(update_on_restart=True)

            async def restart_all() -> None:
                await asyncio.gather(*(agent.wake() for agent in fleet.agents))

            fleet.call(restart_all)
            restarts = Delivery.objects.filter(run__trigger=RunTrigger.RESTART)
            recorded = restarts.filter(update_reported_at__isnull=False)
            wait_for(lambda: recorded.count() == 8, timeout=30)
            agents = list(fleet.agents)
        reports = posted(proxy, "/agent/v1/report")
    assert (restarts.count(), recorded.count()) == (8, 8)
    assert reports == 8
    assert [a.counters.updates_ok for a in agents] == [1] * 8
    assert sum(a.counters.errors for a in agents) == 0
    clients = Client.objects.filter(guid__in=[a.client_id for a in agents])
    assert [c.component_versions for c in clients] == [{"virus_pattern": latest}] * 8


def test_a_report_that_could_not_be_sent_is_sent_again_until_the_server_records_it(
    live_server, enrollment, versions, start_proxy
):
    port = free_port()  # the proxy is down: nothing listens there yet
    configure_proxy(internal_enabled=True, internal_host="127.0.0.1", internal_port=port)
    spec = AgentSpec(hostname="patient", holdings={"virus_pattern": version_label(versions[0].number)})
    with fleet_for(live_server, [spec]) as fleet:
        agent = fleet.agents[0]
        agent.report_retry_first_seconds, agent.report_retry_most_seconds = 0.2, 0.5
        delivery = delivery_for(agent)
        fleet.call(agent.report, kind="update", ok=True, trigger="notification", delivery_id=delivery.pk)
        # Kept, and tried again while the proxy stays down.
        assert wait_for(lambda: agent.counters.reports_resent >= 2, timeout=10)
        assert len(agent.unsent_reports) == 1
        assert Delivery.objects.get(pk=delivery.pk).update_reported_at is None
        with start_proxy(port=port) as proxy:
            assert wait_for(lambda: not agent.unsent_reports, timeout=20)
            reports = posted(proxy, "/agent/v1/report")
    assert reports == 1
    delivery.refresh_from_db()
    assert delivery.update_reported_at is not None
