"""Silence in a staged roll-out, judged from the update report, at the default timings, on a frozen clock.

Agents speak the protocol through Django's test client (register, report, the
post-update check-in); the test plays beat one round at a time: the roll-out
check every ROLLOUT_CHECK_INTERVAL_SECONDS and the offline marker every minute,
as celery beat would. Nothing is shortened: the soak is the policy's default
60 minutes, the post-update bound 300 s, the offline timer three 30-minute
heartbeats (which alone could never halt a ring before the next one starts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import time_machine
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from agents_app.tasks import mark_silent_clients_offline
from updates_app.components import component_download, component_resolve
from updates_app.engine.rings import rollouts_advance
from updates_app.models import Delivery, Rollout, RolloutPolicy, RolloutState
from updates_app.staged import rollouts_for_summary
from updates_app.version_labels import version_label

pytestmark = pytest.mark.django_db

SECRET = "enroll-me-please-at-the-defaults"
START = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
# The defaults this file is about, checked before anything is measured.
DEFAULTS = {
    "AGENT_POST_UPDATE_CHECKIN_SECONDS": 300,
    "ROLLOUT_SOAK_SECONDS": 0,
    "ROLLOUT_CHECK_INTERVAL_SECONDS": 15,
    "AGENT_HEARTBEAT_SECONDS": 1800,
    "AGENT_OFFLINE_AFTER_SECONDS": 5400,
}


class Agent:
    """One agent speaking the protocol through the test client."""

    def __init__(self, http: HttpClient, hostname: str, domain: str, address: str, holds: str):
        self.http = http
        self.address = address
        answer = self._post(
            "/agent/v1/register",
            {
                "enrollment_secret": SECRET,
                "hostname": hostname,
                "listener_port": 40000,
                "domain": domain,
                "roaming": False,
                "component_versions": {"virus_pattern": holds},
            },
            status=201,
        )
        self.token = answer["token"]
        self.bound = answer["post_update_checkin_seconds"]
        self.client = Client.objects.get(guid=answer["client_id"])
        self.versions = {"virus_pattern": holds}

    def _post(self, url: str, body: dict, *, status: int = 200) -> dict:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if hasattr(self, "token") else {}
        response = self.http.post(url, body, content_type="application/json", REMOTE_ADDR=self.address, **headers)
        assert response.status_code == status, response.content
        return response.json()

    def report_update(self, *, delivery: Delivery, label: str) -> None:
        self.versions = {"virus_pattern": label}
        self._post(
            "/agent/v1/report",
            {
                "kind": "update",
                "result": "success",
                "trigger": "notification",
                "component_versions": self.versions,
                "delivery_id": delivery.pk,
            },
        )

    def checkin(self, event: str, *, versions: dict | None = None) -> dict:
        return self._post("/agent/v1/checkin", {"event": event, "component_versions": versions or self.versions})


@pytest.fixture
def at_the_defaults(settings, component_storage):
    for name, value in DEFAULTS.items():
        assert getattr(django_settings, name) == value, f"{name} is not at its default"
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    assert RolloutPolicy._meta.get_field("soak_minutes").default == 60
    return settings


@pytest.fixture
def rolling_out(at_the_defaults, django_capture_on_commit_callbacks):
    """Ring 1 (4 canaries) notified of a new version at START; 8 other agents wait for ring 2."""
    with time_machine.travel(START, tick=False) as clock:
        component = component_resolve("virus_pattern")
        with django_capture_on_commit_callbacks(execute=True):
            first = component_download(component=component)
        canary = Domain.objects.create(name="Canary")
        policy = RolloutPolicy.load()  # the defaults: 60-minute soak, halt at 10 % and at least 2
        policy.enabled, policy.ring1_percent = True, 0
        policy.save()
        policy.ring1_domains.set([canary])
        http = HttpClient()
        held = version_label(first.number)
        canaries = [Agent(http, f"canary-{i}", "Canary", f"127.0.3.{i + 1}", held) for i in range(4)]
        others = [Agent(http, f"desk-{i}", "Office", f"127.0.4.{i + 1}", held) for i in range(8)]
        with django_capture_on_commit_callbacks(execute=True):
            new = component_download(component=component)
        rollout = Rollout.objects.get(version=new)
        yield clock, rollout, canaries, others


def beat_until(clock, done: Callable[[], bool], *, until: dt.datetime, events=()) -> dt.datetime | None:
    """Play beat one round (ROLLOUT_CHECK_INTERVAL_SECONDS) at a time, with the agents' moments in between.

    ``events``: (moment, action) pairs, each run with the clock at its moment.
    Returns the moment of the round after which ``done()`` first held, or None by ``until``.
    """
    step = dt.timedelta(seconds=django_settings.ROLLOUT_CHECK_INTERVAL_SECONDS)
    pending = sorted(events, key=lambda event: event[0])
    now = timezone.now()
    while now <= until:
        while pending and pending[0][0] <= now:
            at, action = pending.pop(0)
            clock.move_to(at)
            action()
        clock.move_to(now)
        rollouts_advance(now=now)
        if now.second == 0:
            mark_silent_clients_offline()
        if done():
            return now
        now += step
    return None


def updating(rollout: Rollout, agents: list[Agent], *, at: dt.datetime, checks_in: bool) -> list:
    """Events: ``agents`` report the update at ``at``; then, if ``checks_in``, they make their post-update
    check-in half-way through the bound as the protocol asks, else they crashed and are never heard of again."""
    deliveries = {d.client_id: d for d in Delivery.objects.filter(run=rollout.run)}

    def report() -> None:
        for agent in agents:
            agent.report_update(delivery=deliveries[agent.client.pk], label=rollout.version.label)

    def check_in() -> None:
        for agent in agents:
            agent.checkin("post_update")

    half_bound = dt.timedelta(seconds=DEFAULTS["AGENT_POST_UPDATE_CHECKIN_SECONDS"] / 2)
    return [(at, report), *([(at + half_bound, check_in)] if checks_in else [])]


def state_of(rollout: Rollout) -> str:
    return Rollout.objects.get(pk=rollout.pk).state


def next_ring_started(rollout: Rollout) -> Callable[[], bool]:
    return lambda: rollout.rings.filter(number=2, started_at__isnull=False).exists()


def test_a_ring_that_falls_silent_after_updating_halts_within_the_bound_long_before_the_next_ring(rolling_out):
    clock, rollout, canaries, others = rolling_out
    assert set(Delivery.objects.filter(run=rollout.run).values_list("client", flat=True)) == {
        a.client.pk for a in canaries
    }
    assert canaries[0].bound == 300  # told to every agent
    # given: every canary reports the update 5 s after the ring starts; two check in after it, two crashed
    # (a heartbeat each had sent before its report, with the old version, arrives a second after it)
    reported_at = START + dt.timedelta(seconds=5)
    healthy, crashed = canaries[:2], canaries[2:]
    held_before = {"virus_pattern": version_label(rollout.version.number - 1)}

    def late_heartbeats() -> None:
        for agent in crashed:
            agent.checkin("heartbeat", versions=held_before)

    events = [
        *updating(rollout, healthy, at=reported_at, checks_in=True),
        *updating(rollout, crashed, at=reported_at, checks_in=False),
        (reported_at + dt.timedelta(seconds=1), late_heartbeats),
    ]

    # when: beat runs at its default interval
    halted_at = beat_until(
        clock, lambda: state_of(rollout) == RolloutState.HALTED, until=START + dt.timedelta(hours=2), events=events
    )

    # then: the roll-out halts once the bound has passed since the reports, at the first round after it
    assert halted_at is not None, "the silent ring never halted"
    to_halt = (halted_at - reported_at).total_seconds()
    assert 300 <= to_halt < 300 + DEFAULTS["ROLLOUT_CHECK_INTERVAL_SECONDS"]
    print(f"silent ring: {to_halt:.0f} s from the update reports to the halt, at the defaults")
    assert halted_at < START + dt.timedelta(minutes=60)  # long before ring 2 could start
    # ... while the crashed clients are still "online": the offline timer had nothing to do with it; and their
    # late heartbeats moved their contact stamps past the reports, which proves nothing about the update
    for agent in crashed:
        stored = Client.objects.get(pk=agent.client.pk)
        assert stored.status == ConnectionStatus.ONLINE
        assert stored.last_contact_at == reported_at + dt.timedelta(seconds=1)
    rollout.refresh_from_db()
    assert sorted((e["hostname"], e["kind"]) for e in rollout.halt_evidence) == [
        ("canary-2", "silent"),
        ("canary-3", "silent"),
    ]
    assert "no post-update check-in within 5 minutes" in rollout.halt_evidence[0]["message"]
    assert "2 fell silent after updating" in rollout.halt_summary
    # and nothing more happens: ring 2 is never notified, even hours later
    assert beat_until(clock, lambda: False, until=halted_at + dt.timedelta(hours=3)) is None
    assert not next_ring_started(rollout)()
    assert not Delivery.objects.filter(run=rollout.run, client__in=[a.client.pk for a in others]).exists()


def test_a_healthy_ring_whose_agents_check_in_after_updating_goes_on_after_the_soak(rolling_out):
    clock, rollout, canaries, _others = rolling_out
    events = updating(rollout, canaries, at=START + dt.timedelta(seconds=5), checks_in=True)
    # The next ring starts at the end of the 60-minute soak, at the first round of beat after it.
    started_at = beat_until(clock, next_ring_started(rollout), until=START + dt.timedelta(hours=2), events=events)
    assert started_at == START + dt.timedelta(minutes=60)
    assert state_of(rollout) == RolloutState.COMPLETED
    assert Delivery.objects.filter(run=rollout.run).count() == 12


def test_an_update_reported_at_the_end_of_the_soak_is_judged_before_the_next_ring_starts(rolling_out):
    clock, rollout, canaries, _others = rolling_out
    # Two canaries were asleep: they update 30 s before the soak ends, then crash.
    reported_late = START + dt.timedelta(minutes=59, seconds=30)
    events = [
        *updating(rollout, canaries[:2], at=START + dt.timedelta(seconds=5), checks_in=True),
        *updating(rollout, canaries[2:], at=reported_late, checks_in=False),
    ]
    halted_at = beat_until(
        clock,
        lambda: state_of(rollout) != RolloutState.ACTIVE or next_ring_started(rollout)(),
        until=START + dt.timedelta(hours=2),
        events=events,
    )
    # The soak ended at +60 min, but ring 2 waited for the late reports to be judged: they were silent.
    assert state_of(rollout) == RolloutState.HALTED
    assert halted_at is not None and 300 <= (halted_at - reported_late).total_seconds() < 315
    assert not next_ring_started(rollout)()


def test_late_updates_that_check_in_let_the_next_ring_start_as_soon_as_they_do(rolling_out):
    clock, rollout, canaries, _others = rolling_out
    reported_late = START + dt.timedelta(minutes=59, seconds=30)
    events = updating(rollout, canaries, at=reported_late, checks_in=True)
    started_at = beat_until(clock, next_ring_started(rollout), until=START + dt.timedelta(hours=2), events=events)
    # Not at +60 min (four reports were still unjudged), but at the first round after their check-ins.
    assert started_at == reported_late + dt.timedelta(seconds=150)
    assert state_of(rollout) == RolloutState.COMPLETED


def test_the_summary_says_how_silence_is_judged(rolling_out, viewer_client):
    _clock, rollout, _canaries, _others = rolling_out
    [view] = rollouts_for_summary()
    assert view.silence_rule.startswith(
        "A client that reports the update and then makes no post-update check-in within 5 minutes, or goes offline"
    )
    body = viewer_client.get(reverse("updates:summary")).content.decode()
    assert view.silence_rule in body
    assert f'id="rollout-{rollout.pk}"' in body
