"""The Update Summary with real runs in progress, in headless Chromium.

Reference agents register with the live server; the server downloads new
component versions through the real component service; a real Celery worker
sends the notifications; healthy agents download the update and report it,
failing ones wait for their retry and the ones behind NAT for their check-in.
``UPDATE_SCREENSHOTS=1`` writes docs/screenshots/update-summary.png for the README.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_api.simulator import AgentSpec, FleetThread
from console.models import ServiceHeartbeat
from console.tasks import heartbeat
from tests.updates_app.engine import play_beat_until
from updates_app.components import component_download, component_resolve
from updates_app.models import AutoUpdateSettings, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "update-summary.png"
SECRET = "enroll-me-please"
HEALTHY, FAILING, BEHIND_NAT = 14, 3, 2


def test_the_update_summary_shows_real_runs_in_progress(
    logged_in_page, live_server, settings, component_storage, celery_worker, tmp_path
):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    # The versions the agents start with are downloaded quietly; then the agents start behind, and the
    # restart path stays out so the notifications are what updates them.
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"notify_on_download": False})
    virus, spyware = component_resolve("virus_pattern"), component_resolve("spyware_pattern")
    holdings = {
        "virus_pattern": version_label(component_download(component=virus).number),
        "spyware_pattern": version_label(component_download(component=spyware).number),
    }
    assert not UpdateRun.objects.exists()
    AutoUpdateSettings.objects.filter(pk=1).update(notify_on_download=True, update_on_restart=False)
    specs = [
        AgentSpec(hostname=f"ws-{i:03d}", domain="Headquarters" if i % 3 else "Branch Office", holdings=holdings)
        for i in range(1, HEALTHY + 1)
    ]
    specs += [AgentSpec(hostname=f"lab-{i}", domain="Lab", fail_mode="error", holdings=holdings) for i in range(2)]
    specs.append(AgentSpec(hostname="kiosk-1", domain="Lab", fail_mode="refuse", holdings=holdings))
    specs += [
        AgentSpec(hostname=f"roadwarrior-{i}", domain="Branch Office", unreachable=True, ip_address=f"127.0.2.{i + 1}")
        for i in range(BEHIND_NAT)
    ]
    with FleetThread(server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600):
        # when: the server downloads a new Virus Pattern, then a new Spyware Pattern
        first = UpdateRun.objects.get(trigger=RunTrigger.EVENT, component_version=component_download(component=virus))
        assert play_beat_until(
            lambda: first.deliveries.filter(update_reported_at__isnull=False).count() == HEALTHY, timeout=60.0
        )
        second = UpdateRun.objects.get(
            trigger=RunTrigger.EVENT, component_version=component_download(component=spyware)
        )
        retrying = second.deliveries.filter(status=DeliveryStatus.RETRYING)
        assert play_beat_until(
            lambda: (
                second.deliveries.filter(update_reported_at__isnull=False).count() == HEALTHY
                and retrying.count() == FAILING
            ),
            timeout=60.0,
        )

        # then: the summary shows both runs as they stand, from the database (and the worker's heartbeat)
        heartbeat.delay()
        assert play_beat_until(lambda: ServiceHeartbeat.objects.filter(name="worker").exists(), timeout=60.0)
        page = logged_in_page
        page.goto(f"{live_server.url}/updates/summary/")

        def cell(run: UpdateRun, field: str) -> str:
            return page.locator(f'#runs td[data-run-id="{run.pk}"][data-field="{field}"]').inner_text()

        assert cell(second, "total") == str(HEALTHY + FAILING + BEHIND_NAT)
        assert cell(second, "delivered") == str(HEALTHY)
        assert cell(second, "updated") == str(HEALTHY)
        assert cell(second, "retrying") == str(FAILING)
        assert cell(second, "pending") == str(BEHIND_NAT)  # they receive it when they check in
        assert cell(first, "updated") == str(HEALTHY)
        # The failing agents' open notifications of the first run were superseded by the second.
        assert first.deliveries.filter(status=DeliveryStatus.SUPERSEDED).count() == FAILING + BEHIND_NAT

        shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "update-summary.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
