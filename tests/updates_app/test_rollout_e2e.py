"""End to end: a staged roll-out with a real worker and reference agents over real HTTP.

The test plays beat: it enqueues the dispatcher, the roll-out check and the
offline marker, as celery beat would. Short soak (ROLLOUT_SOAK_SECONDS) and
retry settings for the tests only. A version is marked bad with the
``mark_bad_version`` command, which the reference agents read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.utils import timezone

from agent_api.simulator import AgentSpec, FleetThread
from agents_app.models import Client, Domain
from agents_app.tasks import mark_silent_clients_offline
from updates_app.components import component_download, component_resolve
from updates_app.engine.rings import rollouts_advance
from updates_app.models import (
    AutoUpdateSettings,
    Delivery,
    Rollout,
    RolloutMember,
    RolloutPolicy,
    RolloutState,
)
from updates_app.tasks import advance_rollouts, dispatch_deliveries
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "enroll-me-please"
SOAK = 2


def play_beat_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        dispatch_deliveries.delay()
        advance_rollouts.delay()
        mark_silent_clients_offline.delay()
        time.sleep(0.3)
    return False


@pytest.fixture
def staged(settings, component_storage, tmp_path):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.NOTIFY_RETRY_INTERVAL_SECONDS = 1
    settings.ROLLOUT_SOAK_SECONDS = SOAK
    # Agents beat every half second; one silent for 5 seconds is marked offline (ten beats missed:
    # a busy machine delays a beat, it does not miss ten).
    settings.AGENT_OFFLINE_AFTER_SECONDS = 5
    settings.SIMULATOR_BAD_VERSIONS_FILE = tmp_path / "bad-versions.json"
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"update_on_restart": True})
    canary = Domain.objects.create(name="Canary")
    policy = RolloutPolicy.load()
    policy.enabled = True
    policy.ring1_percent = 0
    policy.ring2_percent = 50
    policy.halt_percent = 50
    policy.halt_min_count = 2
    policy.save()
    policy.ring1_domains.set([canary])
    component = component_resolve("virus_pattern")
    first = component_download(component=component)
    label = version_label(first.number)
    specs = [AgentSpec(hostname=f"canary-{i}", domain="Canary", holdings={"virus_pattern": label}) for i in range(3)]
    specs += [AgentSpec(hostname=f"desk-{i:02d}", domain="Office", holdings={"virus_pattern": label}) for i in range(9)]
    return component, first, specs, settings


def test_a_bad_version_halts_after_the_first_ring_and_the_rest_of_the_fleet_never_sees_it(
    staged, live_server, celery_worker
):
    component, first, specs, settings = staged
    # Ring 1 is watched for a minute: its reports halt the roll-out as soon as they arrive, however
    # long a busy machine takes to deliver them (a 2-second soak let ring 2 start first).
    settings.ROLLOUT_SOAK_SECONDS = 60
    with FleetThread(
        server_url=live_server.url,
        enrollment_secret=SECRET,
        specs=specs,
        heartbeat_override=0.5,
        bad_versions_file=settings.SIMULATOR_BAD_VERSIONS_FILE,
    ) as fleet:
        agents = {a.spec.hostname: a for a in fleet.agents}
        # given: the next version is marked bad: every agent that applies it reports a failure
        call_command("mark_bad_version", component="Virus Pattern", next=True, share=100, mode="fail")

        # when: the server downloads it
        bad = component_download(component=component)
        rollout = Rollout.objects.get(version=bad)
        ring1, *later = rollout.rings.order_by("number")

        # then: ring 1 (the Canary domain) is notified, its agents report failures, and the roll-out halts
        assert play_beat_until(lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.HALTED, timeout=120.0)
        rollout.refresh_from_db()
        # It halts at the first beat past the threshold (50 % and at least 2): after two or three reports.
        failing = {e["hostname"] for e in rollout.halt_evidence}
        assert failing <= {"canary-0", "canary-1", "canary-2"} and len(failing) >= 2
        assert {e["kind"] for e in rollout.halt_evidence} == {"failure"}
        assert all("simulated fault" in e["message"] for e in rollout.halt_evidence)
        assert re.match(r"Ring 1: ([23]) of 3 clients — \1 reported a failed update, 0 fell", rollout.halt_summary)
        # ... and stays halted well past the soak: beat, asked an hour later, starts no next ring
        assert rollouts_advance(now=timezone.now() + dt.timedelta(hours=1)) == {"halted": 0, "started": 0}
        assert not rollout.rings.filter(number__gt=1, started_at__isnull=False).exists()
        rollout.refresh_from_db()
        assert rollout.state == RolloutState.HALTED
        notified = set(Delivery.objects.filter(run=rollout.run).values_list("client__hostname", flat=True))
        assert notified == {"canary-0", "canary-1", "canary-2"}
        assert set(RolloutMember.objects.filter(rollout=rollout).values_list("ring__number", flat=True)) == {1}
        for i in range(9):
            desk = agents[f"desk-{i:02d}"]
            assert desk.counters.notifications_received == 0
            # its manifest does not offer the bad version, nor does a restart or an update now fetch it
            manifest = fleet.call(desk._call, "GET", "/agent/v1/manifest")
            assert manifest["components"][0]["latest_version"] == version_label(first.number)
            answer = fleet.call(desk.checkin, "restart")
            assert answer["actions"] == []
            fleet.call(desk.update, trigger="manual")
            assert desk.versions == {"virus_pattern": version_label(first.number)}
        assert agents["canary-0"].versions == {"virus_pattern": version_label(bad.number)}
        assert ring1.clients == 3 and all(ring.clients == 0 for ring in later)


def test_a_version_whose_agents_fall_silent_after_updating_halts_too(staged, live_server, celery_worker):
    component, _first, specs, settings = staged
    # Long enough a soak for a silent agent to be marked offline inside it; the halt comes as soon as
    # it is, so a long soak costs nothing.
    settings.ROLLOUT_SOAK_SECONDS = 60
    with FleetThread(
        server_url=live_server.url,
        enrollment_secret=SECRET,
        specs=specs,
        heartbeat_override=0.5,
        bad_versions_file=settings.SIMULATOR_BAD_VERSIONS_FILE,
    ) as fleet:
        call_command("mark_bad_version", component="Virus Pattern", next=True, share=100, mode="silent")
        bad = component_download(component=component)
        rollout = Rollout.objects.get(version=bad)
        assert play_beat_until(lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.HALTED, timeout=120.0)
        rollout.refresh_from_db()
        assert {e["kind"] for e in rollout.halt_evidence} == {"silent"}
        assert len(rollout.halt_evidence) >= 2
        silent = {a.spec.hostname for a in fleet.agents if a.counters.fell_silent}
        assert {e["hostname"] for e in rollout.halt_evidence} <= silent
        assert silent <= {"canary-0", "canary-1", "canary-2"}
        assert not Delivery.objects.filter(run=rollout.run, client__hostname__startswith="desk-").exists()


def test_a_healthy_version_reaches_every_ring_in_order_each_after_its_soak(staged, live_server, celery_worker):
    component, _first, specs, settings = staged
    with FleetThread(
        server_url=live_server.url,
        enrollment_secret=SECRET,
        specs=specs,
        heartbeat_override=0.5,
        bad_versions_file=settings.SIMULATOR_BAD_VERSIONS_FILE,
    ) as fleet:
        good = component_download(component=component)
        rollout = Rollout.objects.get(version=good)
        rings = list(rollout.rings.order_by("number"))
        assert [r.number for r in rings] == [1, 2, 3]
        reported = Delivery.objects.filter(run=rollout.run, update_reported_at__isnull=False)
        assert play_beat_until(lambda: reported.count() == 12, timeout=120.0), Rollout.objects.values_list(
            "state", "halt_summary"
        ).get(pk=rollout.pk)
        rollout.refresh_from_db()
        assert rollout.state == RolloutState.COMPLETED, rollout.halt_summary
        rings = list(rollout.rings.order_by("number"))
        # each ring after the previous one's soak
        for before, after in itertools.pairwise(rings):
            assert after.started_at >= before.started_at + dt.timedelta(seconds=SOAK)
        assert rings[0].clients == 3
        assert sum(r.clients for r in rings) == 12
        # no client was notified before its ring started, and none is in two rings
        for ring in rings:
            members = ring.members.values("client_id")
            for delivery in Delivery.objects.filter(run=rollout.run, client__in=members):
                assert delivery.created_at >= ring.started_at
                assert delivery.update_reported_at >= ring.started_at
        assert RolloutMember.objects.filter(rollout=rollout).count() == 12
        assert Client.objects.count() == 12
        assert all(a.versions == {"virus_pattern": version_label(good.number)} for a in fleet.agents)
