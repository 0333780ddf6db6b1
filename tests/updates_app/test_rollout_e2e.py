"""End to end: a staged roll-out with a real worker and reference agents over real HTTP.

The test plays beat: it enqueues the dispatcher, the roll-out check and the
offline marker, as celery beat would. Short soak (ROLLOUT_SOAK_SECONDS),
post-update bound (AGENT_POST_UPDATE_CHECKIN_SECONDS) and retry settings for
the tests only; the offline timer is left an hour long, so no halt here owes
anything to it. A version is marked bad with the ``mark_bad_version`` command,
which the reference agents read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from agent_api.simulator import AgentSpec, FleetThread
from agents_app.models import Client, ConnectionStatus, Domain
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
SOAK = 8
# An agent checks in half-way through it: 4 s of slack for a busy machine.
POST_UPDATE_BOUND = 8
# A roll-out that is to halt soaks its first ring this long: it halts as soon as the reports come,
# however long a busy machine takes to deliver them (a soak of a few seconds let ring 2 start first).
HALTING_SOAK = 120


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


def reference_fleet(live_server, specs, settings) -> FleetThread:
    """The reference agents of ``specs``, beating every half second, reading the versions marked bad."""
    return FleetThread(
        server_url=live_server.url,
        enrollment_secret=SECRET,
        specs=specs,
        heartbeat_override=0.5,
        bad_versions_file=settings.SIMULATOR_BAD_VERSIONS_FILE,
    )


def bad_version_halts(component, *, mode: str) -> Rollout:
    """Mark the next version bad for every agent that applies it, download it, and wait for its roll-out to halt."""
    call_command("mark_bad_version", component="Virus Pattern", next=True, share=100, mode=mode)
    with override_settings(ROLLOUT_SOAK_SECONDS=HALTING_SOAK):  # copied onto the roll-out when it starts
        rollout = Rollout.objects.get(version=component_download(component=component))
    assert play_beat_until(lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.HALTED, timeout=120.0)
    rollout.refresh_from_db()
    return rollout


def stays_halted(rollout: Rollout) -> bool:
    """Beat, asked an hour later, starts no next ring of the halted roll-out."""
    rollouts_advance(now=timezone.now() + dt.timedelta(hours=1))
    rollout.refresh_from_db()
    return (
        rollout.state == RolloutState.HALTED
        and not rollout.rings.filter(number__gt=1, started_at__isnull=False).exists()
    )


@pytest.fixture
def staged(settings, component_storage, tmp_path):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.NOTIFY_RETRY_INTERVAL_SECONDS = 1
    settings.ROLLOUT_SOAK_SECONDS = SOAK
    settings.AGENT_POST_UPDATE_CHECKIN_SECONDS = POST_UPDATE_BOUND
    # Far longer than any test here: silence is judged from the update report, not from the offline timer.
    settings.AGENT_OFFLINE_AFTER_SECONDS = 3600
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
    with reference_fleet(live_server, specs, settings) as fleet:
        agents = {a.spec.hostname: a for a in fleet.agents}
        # given: the next version is marked bad: every agent that applies it reports a failure
        call_command("mark_bad_version", component="Virus Pattern", next=True, share=100, mode="fail")

        # when: the server downloads it
        with override_settings(ROLLOUT_SOAK_SECONDS=HALTING_SOAK):
            bad = component_download(component=component)
        rollout = Rollout.objects.get(version=bad)
        ring1, *later = rollout.rings.order_by("number")

        # then: ring 1 (the Canary domain) is notified, its agents report failures, and the roll-out halts
        assert play_beat_until(lambda: Rollout.objects.get(pk=rollout.pk).state == RolloutState.HALTED, timeout=120.0)
        rollout.refresh_from_db()
        # (the halt comes at the first round that sees the threshold: 2 of the 3, or all 3)
        assert len(rollout.halt_evidence) >= 2
        assert {e["hostname"] for e in rollout.halt_evidence} <= {"canary-0", "canary-1", "canary-2"}
        assert {e["kind"] for e in rollout.halt_evidence} == {"failure"}
        assert all("simulated fault" in e["message"] for e in rollout.halt_evidence)
        assert f"Ring 1: {len(rollout.halt_evidence)} of 3 clients" in rollout.halt_summary
        # ... and stays halted well past the soak: the next rings never start
        assert stays_halted(rollout)
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


def test_a_version_whose_agents_fall_silent_after_updating_halts_within_the_post_update_bound(
    staged, live_server, celery_worker
):
    component, _first, specs, settings = staged
    with reference_fleet(live_server, specs, settings) as fleet:
        # given: every agent that applies the next version reports success, then crashes (no more contact)
        # when / then: the roll-out halts once the post-update bound has passed since their reports
        rollout = bad_version_halts(component, mode="silent")
        assert {e["kind"] for e in rollout.halt_evidence} == {"silent"}
        assert len(rollout.halt_evidence) >= 2
        assert all("no post-update check-in within 8 seconds" in e["message"] for e in rollout.halt_evidence)
        first_report = min(
            Delivery.objects.filter(run=rollout.run)
            .exclude(update_reported_at=None)
            .values_list("update_reported_at", flat=True)
        )
        assert rollout.halted_at >= first_report + dt.timedelta(seconds=POST_UPDATE_BOUND)
        silent = {a.spec.hostname for a in fleet.agents if a.counters.fell_silent}
        assert {e["hostname"] for e in rollout.halt_evidence} <= silent <= {"canary-0", "canary-1", "canary-2"}
        # No client was marked offline: the offline timer played no part.
        assert not Client.objects.filter(status=ConnectionStatus.OFFLINE).exists()
        # ... and it stays halted past the soak: the rest of the fleet never hears of the version
        assert stays_halted(rollout)
        assert not Delivery.objects.filter(run=rollout.run, client__hostname__startswith="desk-").exists()
        assert all(a.counters.notifications_received == 0 for a in fleet.agents if a.spec.domain == "Office")


def test_a_healthy_version_reaches_every_ring_in_order_each_after_its_soak(staged, live_server, celery_worker):
    component, _first, specs, settings = staged
    with reference_fleet(live_server, specs, settings) as fleet:
        good = component_download(component=component)
        rollout = Rollout.objects.get(version=good)
        rings = list(rollout.rings.order_by("number"))
        assert [r.number for r in rings] == [1, 2, 3]
        assert play_beat_until(
            lambda: Delivery.objects.filter(run=rollout.run, update_reported_at__isnull=False).count() == 12,
            timeout=120.0,
        )
        rollout.refresh_from_db()
        assert rollout.state == RolloutState.COMPLETED
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
        # Every agent checks in after its update (the last ring's within the bound), as the protocol asks.
        assert play_beat_until(lambda: all(a.counters.post_update_checkins >= 1 for a in fleet.agents), timeout=60.0)
        assert all(a.counters.fell_silent == 0 for a in fleet.agents)


def test_a_superseded_halted_roll_out_never_pushes_its_older_version(
    staged, live_server, celery_worker, superuser_client
):
    component, _first, specs, settings = staged
    with reference_fleet(live_server, specs, settings) as fleet:
        # given: 18.501 halted after its first ring (its canaries report failures) ...
        halted = bad_version_halts(component, mode="fail")
        # ... and 18.502 downloaded, its own roll-out under way
        newer = component_download(component=component)
        current = Rollout.objects.get(version=newer)
        # when: the administrator presses Resume on 18.501 (a page loaded before 18.502 came)
        response = superuser_client.post(reverse("updates:rollout-action", args=[halted.pk, "resume"]), follow=True)
        assert f"superseded by {newer.label}" in response.content.decode()
        # then: 18.502 reaches the whole fleet, ring by ring ...
        assert play_beat_until(
            lambda: all(a.versions == {"virus_pattern": newer.label} for a in fleet.agents), timeout=180.0
        )
        assert Rollout.objects.get(pk=current.pk).state == RolloutState.COMPLETED
        # (and every agent made its post-update check-in for it: the fleet is quiet again)
        assert play_beat_until(lambda: all(a.counters.post_update_checkins >= 1 for a in fleet.agents), timeout=60.0)
        # ... while 18.501 went to nobody outside its first ring, and its roll-out stayed halted
        halted.refresh_from_db()
        assert halted.state == RolloutState.HALTED
        assert halted.rings.filter(number__gt=1, started_at__isnull=False).count() == 0
        assert set(Delivery.objects.filter(run=halted.run).values_list("client__hostname", flat=True)) == {
            "canary-0",
            "canary-1",
            "canary-2",
        }
        for desk in (a for a in fleet.agents if a.spec.domain == "Office"):
            # pushed, or handed over at a check-in (which the log of pushes does not show)
            assert {n["run_id"] for n in desk.notification_log} <= {current.run_id}
            assert desk.counters.updates_failed == 0  # 18.501 (marked bad) was never applied
