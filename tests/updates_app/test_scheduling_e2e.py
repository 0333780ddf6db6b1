"""End to end over real HTTP on loopback: reference agents and the schedule-based update."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from agent_api.simulator import AgentSpec, FleetThread
from agents_app.connection import clients_mark_offline
from agents_app.models import Client, ConnectionStatus
from tests.updates_app.engine import play_beat_until
from updates_app.engine.planner import schedule_window_plan
from updates_app.engine.windows import Window
from updates_app.late import late_clients
from updates_app.models import AutoUpdateSettings, DeliveryStatus, Frequency

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECRET = "schedule-e2e-secret"
WINDOW_SECONDS = 10


@pytest.fixture
def enrollment(settings):
    settings.AGENT_ENROLLMENT_SECRET = SECRET
    settings.AGENT_RATE_LIMIT = "10000/min"
    return SECRET


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_agents_run_a_minute_schedule_themselves_and_a_silent_one_shows_as_late(live_server, enrollment):
    # given: a 1-minute schedule, saved long ago; the agents run it 60 times faster (one update a second)
    config = AutoUpdateSettings.load()
    config.frequency, config.interval_minutes = Frequency.MINUTES, 1
    config.save()
    AutoUpdateSettings.objects.filter(pk=config.pk).update(updated_at=timezone.now() - dt.timedelta(days=1))
    specs = [AgentSpec(hostname=f"runner-{i}") for i in range(4)] + [AgentSpec(hostname="silent", offline=True)]
    started = timezone.now()
    with FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600, time_scale=60
    ) as fleet:
        running = [a for a in fleet.agents if a.spec.hostname.startswith("runner-")]
        # when: each running agent has done a couple of scheduled updates (random phases, 1 s interval)
        assert wait_for(lambda: all(a.counters.scheduled_updates >= 2 for a in running), timeout=120)
    runners = [a.spec.hostname for a in running]
    # then: the server recorded each runner's last scheduled update; the silent agent never reported
    recorded = dict(Client.objects.values_list("hostname", "last_scheduled_update_at"))
    assert recorded["silent"] is None
    assert all(recorded[name] is not None and recorded[name] > started for name in runners)
    # The server counts real minutes while the agents ran 60 times faster, so move the silent agent's
    # registration half a minute before the runners' last updates; then, just under two minutes
    # after them, only it has missed two intervals.
    last = min(recorded[name] for name in runners)
    Client.objects.filter(hostname="silent").update(registered_at=last - dt.timedelta(seconds=30))
    later = last + dt.timedelta(minutes=2) - dt.timedelta(seconds=10)
    assert [c.hostname for c in late_clients(now=later)] == ["silent"]
    # And once they all stop, every one of them is late after two more intervals.
    assert late_clients(now=max(recorded[name] for name in runners) + dt.timedelta(minutes=3)).count() == 5


def test_a_one_minute_window_plans_every_eligible_agent_inside_it_and_no_other(live_server, enrollment, settings):
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    eligible = [AgentSpec(hostname=f"eligible-{i}") for i in range(6)] + [
        AgentSpec(hostname="roaming", roaming=True),
        # Asks for roaming mode without the privilege: treated as online, so notified.
        AgentSpec(hostname="roaming-refused", roaming=True),
        # Polling from behind NAT: planned too, never pushed (handed over at its poll).
        AgentSpec(hostname="behind-nat", unreachable=True, ip_address="127.0.2.7"),
    ]
    ineligible = [
        AgentSpec(hostname="offline", offline=True),
        AgentSpec(hostname="user-turned-off", scheduled_update_disabled=True),
        AgentSpec(hostname="no-privilege"),
    ]
    with FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=eligible + ineligible, heartbeat_override=3600
    ) as fleet:
        agents = {a.spec.hostname: a for a in fleet.agents}
        # The administrator's side: privileges, as the Privileges dialog would save them.
        Client.objects.filter(hostname="no-privilege").update(scheduled_update_privilege=False)
        Client.objects.filter(hostname="roaming").update(roaming_privilege=True)
        # The first check-in brings the configuration that grants the privilege; the
        # agent enters roaming mode only once it holds it, at the next check-in.
        fleet.call(agents["roaming"].checkin, "heartbeat")
        fleet.call(agents["roaming"].checkin, "heartbeat")
        # The offline agent went silent after registering; the offline beat task notices.
        silent = dt.timedelta(seconds=settings.AGENT_OFFLINE_AFTER_SECONDS + 60)
        Client.objects.filter(hostname="offline").update(last_contact_at=timezone.now() - silent)
        assert clients_mark_offline() == 1
        statuses = dict(Client.objects.values_list("hostname", "status"))
        assert statuses["roaming"] == ConnectionStatus.ROAMING
        assert statuses["roaming-refused"] == ConnectionStatus.ONLINE
        assert statuses["offline"] == ConnectionStatus.OFFLINE
        assert statuses["behind-nat"] == ConnectionStatus.UNREACHABLE
        assert Client.objects.get(hostname="user-turned-off").user_disabled_scheduled_update

        # when: a one-minute window opens now
        start = timezone.now()
        window = Window(key="daily:e2e", start=start, end=start + dt.timedelta(minutes=1))
        run = schedule_window_plan(window=window, now=start)

        # then: one delivery per eligible agent, due inside the window, none for the others
        deliveries = list(run.deliveries.select_related("client"))
        assert sorted(d.client.hostname for d in deliveries) == sorted(s.hostname for s in eligible)
        assert all(start <= d.next_attempt_at < window.end for d in deliveries)
        assert all(d.status == DeliveryStatus.PENDING for d in deliveries)
        assert {d.client.hostname for d in deliveries if not d.push} == {"behind-nat"}


def test_a_window_notifies_every_eligible_agent_at_its_moment_inside_it(live_server, enrollment, celery_worker):
    # given: registered agents, two of which must not be notified
    specs = [AgentSpec(hostname=f"eligible-{i}") for i in range(10)] + [
        AgentSpec(hostname="user-turned-off", scheduled_update_disabled=True),
        AgentSpec(hostname="no-privilege"),
    ]
    with FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=specs, heartbeat_override=3600
    ) as fleet:
        agents = {a.spec.hostname: a for a in fleet.agents}
        Client.objects.filter(hostname="no-privilege").update(scheduled_update_privilege=False)
        # when: a window opens now (ten seconds here, one slot a second; the planner cuts any length
        # the same way) and the test plays beat for the real worker until every notification arrived
        start = timezone.now()
        window = Window(key="daily:e2e-sent", start=start, end=start + dt.timedelta(seconds=WINDOW_SECONDS))
        run = schedule_window_plan(window=window, now=start)
        delivered = run.deliveries.filter(status=DeliveryStatus.DELIVERED)
        assert play_beat_until(lambda: delivered.count() == 10, timeout=WINDOW_SECONDS + 60)
        # then: every eligible agent was notified once, inside the window, never before its moment
        deliveries = list(run.deliveries.select_related("client"))
        assert len(deliveries) == 10
        for delivery in deliveries:
            assert delivery.status == DeliveryStatus.DELIVERED, delivery
            assert start <= delivery.next_attempt_at < window.end
            assert delivery.next_attempt_at <= delivery.delivered_at, delivery
            assert agents[delivery.client.hostname].notifications_received == 1
        # Spread over the window, not sent at once.
        sent = sorted(d.delivered_at for d in deliveries)
        assert sent[-1] - sent[0] > dt.timedelta(seconds=WINDOW_SECONDS / 2)
        assert agents["user-turned-off"].notifications_received == 0
        assert agents["no-privilege"].notifications_received == 0
