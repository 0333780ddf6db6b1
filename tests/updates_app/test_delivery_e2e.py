"""End to end with the reference agent: a download turns into notifications, retries and updates.

The live Django server, a real Celery worker and the reference agents
(agent_api.simulator) talk over real HTTP on loopback. The test plays beat.
"""

from __future__ import annotations

import pytest

from agent_api.simulator import AgentSpec, FleetThread
from agents_app.models import Client
from tests.updates_app.engine import play_beat_until
from updates_app.components import component_download, component_resolve
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "enroll-me-please"


def test_a_download_notifies_the_fleet_which_updates_and_a_failing_agent_is_retried_then_given_up(
    live_server, settings, component_storage, celery_worker
):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.NOTIFY_RETRY_INTERVAL_SECONDS = 1
    # Agents start behind; keep the restart path out so the push is what updates them.
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": False, "scan_after_update": True})
    component = component_resolve("virus_pattern")
    first = component_download(component=component)
    specs = [AgentSpec(hostname=f"desk-{i}", holdings={"virus_pattern": version_label(first.number)}) for i in range(4)]
    specs.append(
        AgentSpec(hostname="broken", fail_mode="error", holdings={"virus_pattern": version_label(first.number)})
    )
    with FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600
    ) as fleet:
        assert Client.objects.count() == 5
        # when: the server downloads a new version
        newer = component_download(component=component)
        run = UpdateRun.objects.get(trigger=RunTrigger.EVENT, component_version=newer)
        # then: healthy agents are notified, update and report; the broken one is retried
        healthy = run.deliveries.exclude(client__hostname="broken")
        assert play_beat_until(lambda: healthy.filter(update_reported_at__isnull=False).count() == 4, timeout=120.0)
        assert set(healthy.values_list("status", "attempts")) == {(DeliveryStatus.DELIVERED, 1)}
        broken = Delivery.objects.get(run=run, client__hostname="broken")
        assert play_beat_until(
            lambda: Delivery.objects.get(pk=broken.pk).status == DeliveryStatus.GAVE_UP, timeout=120.0
        )
        broken.refresh_from_db()
        assert (broken.attempts, broken.last_error) == (5, "HTTP 503")
        agents = {a.spec.hostname: a for a in fleet.agents}
        assert all(agents[f"desk-{i}"].counters.updates_ok == 1 for i in range(4))
        assert all(agents[f"desk-{i}"].counters.scans == 1 for i in range(4))
        assert all(agents[f"desk-{i}"].versions == {"virus_pattern": version_label(newer.number)} for i in range(4))
        assert agents["broken"].counters.updates_ok == 0
