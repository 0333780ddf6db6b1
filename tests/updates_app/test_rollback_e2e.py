"""End to end: a rollback brings every client back, through the same delivery engine.

The live Django server, a real Celery worker and reference agents
(agent_api.simulator) over real HTTP on loopback; the test plays beat.
Short retry interval (2 s) for the test only.
"""

from __future__ import annotations

import pytest

from agent_api.simulator import AgentSpec, FleetThread
from agent_api.simulator.agent import AgentError
from agent_api.simulator.proxy import DIRECT
from agents_app.models import Client, ConnectionStatus
from tests.updates_app.engine import play_beat_until
from updates_app.components import component_download, component_manifest, component_resolve
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.rollback import component_rollback
from updates_app.summary import component_standings, progress_attach, runs_with_progress
from updates_app.tasks import dispatch_soon
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "enroll-me-please"
NAT = "127.0.2.0/24"


def _holding(label: str) -> set[str]:
    return {c.hostname for c in Client.objects.all() if (c.component_versions or {}).get("virus_pattern") == label}


def test_a_rollback_brings_every_client_back_including_one_offline_and_one_behind_nat(
    live_server, settings, component_storage, celery_worker, admin_user_obj
):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.NOTIFY_RETRY_INTERVAL_SECONDS = 2
    settings.AGENT_UNREACHABLE_NETWORKS = [NAT]
    # The restart rule stays off: the offline client must get its roll-back from the rollback run itself.
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": False})
    component = component_resolve("virus_pattern")
    good = component_download(component=component)
    good_label = version_label(good.number)
    holdings = {"virus_pattern": good_label}
    specs = [AgentSpec(hostname=f"desk-{i}", holdings=dict(holdings)) for i in range(3)]
    specs += [
        AgentSpec(hostname="flaky", holdings=dict(holdings)),
        AgentSpec(hostname="laptop", holdings=dict(holdings)),
        AgentSpec(hostname="natted", ip_address="127.0.2.5", unreachable=True, holdings=dict(holdings)),
    ]
    with FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600
    ) as fleet:
        agents = {a.spec.hostname: a for a in fleet.agents}
        assert Client.objects.get(hostname="natted").status == ConnectionStatus.UNREACHABLE

        # given: a bad version reached the whole fleet (pushed, and at check-in behind NAT)
        bad = component_download(component=component)
        bad_label = version_label(bad.number)
        fleet.call(agents["natted"].checkin, "poll")
        assert play_beat_until(lambda: len(_holding(bad_label)) == 6, timeout=120.0)
        # ... and then the laptop went offline (its listener gone, the server marked it offline)
        fleet.call(fleet.set_fail_mode, agents["laptop"], "refuse")
        Client.objects.filter(hostname="laptop").update(status=ConnectionStatus.OFFLINE)
        # ... and the flaky desk answers 503 for a while
        fleet.call(fleet.set_fail_mode, agents["flaky"], "error")

        # when: the administrator rolls back to the good version
        run = component_rollback(component=component, version_label_text=good_label, actor=admin_user_obj)
        dispatch_soon()

        # then: one rollback run for the six holders; the offline and NAT ones wait for their check-in
        assert run.trigger == RunTrigger.ROLLBACK and run.component_version == good
        assert run.deliveries.count() == 6
        waiting = set(run.deliveries.filter(push=False).values_list("client__hostname", flat=True))
        assert waiting == {"laptop", "natted"}
        # the manifest no longer offers the bad version, and the download is refused
        [item] = component_manifest({"virus_pattern": bad_label})
        assert item["latest_version"] == good_label
        with pytest.raises(AgentError) as refused:
            fleet.call(
                agents["desk-0"]._download,
                f"/agent/v1/components/virus_pattern/versions/{bad_label}/full",
                route=DIRECT,
            )
        assert refused.value.status == 410

        # the reachable desks roll back at once; the flaky one is retried under the rule
        desks = run.deliveries.filter(client__hostname__startswith="desk-")
        assert play_beat_until(lambda: desks.filter(update_reported_at__isnull=False).count() == 3, timeout=120.0)
        flaky = Delivery.objects.get(run=run, client__hostname="flaky")
        assert play_beat_until(lambda: Delivery.objects.get(pk=flaky.pk).attempts >= 1, timeout=120.0)
        assert Delivery.objects.get(pk=flaky.pk).update_reported_at is None
        fleet.call(fleet.set_fail_mode, agents["flaky"], None)
        assert play_beat_until(lambda: Delivery.objects.get(pk=flaky.pk).update_reported_at is not None, timeout=120.0)
        flaky.refresh_from_db()
        assert flaky.status == DeliveryStatus.DELIVERED and flaky.attempts >= 2
        assert flaky.last_error == "HTTP 503"

        # the NAT client at its next poll, the offline laptop when it restarts
        assert _holding(bad_label) == {"laptop", "natted"}
        fleet.call(agents["natted"].checkin, "poll")
        fleet.call(fleet.set_fail_mode, agents["laptop"], None)
        fleet.call(agents["laptop"].checkin, "restart")
        assert play_beat_until(lambda: len(_holding(good_label)) == 6, timeout=120.0)

        for agent in fleet.agents:
            assert agent.versions == {"virus_pattern": good_label}, agent.spec.hostname
            assert agent.counters.rollbacks == 1, agent.spec.hostname
            # the full file of the kept version, verified against its sha256
            assert agent.held_file("virus_pattern") is not None
        [progress] = progress_attach(runs_with_progress().filter(pk=run.pk))
        assert (progress.total, progress.delivered, progress.updated) == (6, 6, 6)
        [standing] = component_standings().components
        assert (standing.latest_number, standing.withdrawn_number, standing.on_withdrawn) == (
            good.number,
            bad.number,
            0,
        )

        # a genuinely newer version clears the state and is offered again as usual
        fixed = component_download(component=component)
        assert fixed.number == bad.number + 1
        [standing] = component_standings().components
        assert (standing.latest_number, standing.withdrawn_number) == (fixed.number, None)
        event = UpdateRun.objects.get(trigger=RunTrigger.EVENT, component_version=fixed)
        fleet.call(agents["natted"].checkin, "poll")
        assert play_beat_until(
            lambda: event.deliveries.filter(update_reported_at__isnull=False).count() == 6, timeout=30.0
        )
        assert agents["desk-0"].versions == {"virus_pattern": version_label(fixed.number)}
