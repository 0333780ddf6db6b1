"""Scheduled Client Updates with NAT: a Daily window reaches clients the server cannot push to.

The window plans every eligible client, behind NAT or not, at its moment of
the spread. A client behind NAT is never pushed to: its delivery waits until
its first poll after that moment, and the check-in answer hands it over.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from agents_app.models import Client, ConnectionStatus
from tests.agent_api.conftest import SECRET
from tests.updates_app.engine import engine_round
from updates_app.engine.planner import schedule_window_open
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, Frequency

NOON = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
NAT = "127.0.2.0/24"

pytestmark = pytest.mark.django_db


def register(client, hostname: str, address: str) -> dict:
    body = {
        "enrollment_secret": SECRET,
        "hostname": hostname,
        "ip_address": address,
        "listener_port": 1,
        "domain": "Branch",
    }
    response = client.post("/agent/v1/register", body, content_type="application/json", REMOTE_ADDR=address)
    assert response.status_code == 201, response.content
    return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['token']}", "REMOTE_ADDR": address}


def poll(client, auth: dict) -> list[dict]:
    body = {"event": "poll", "component_versions": {}, "config_version": "", "scheduled_update_disabled": False}
    response = client.post("/agent/v1/checkin", body, content_type="application/json", **auth)
    assert response.status_code == 200, response.content
    return response.json()["actions"]


def test_a_daily_window_hands_each_nat_client_its_update_at_its_first_poll_after_its_moment(
    client, enrollment, settings
):
    settings.AGENT_UNREACHABLE_NETWORKS = [NAT]
    settings.AGENT_OFFLINE_AFTER_SECONDS = 7 * 24 * 3600
    AutoUpdateSettings.objects.update_or_create(
        pk=1, defaults={"frequency": Frequency.DAILY, "start_time": dt.time(12), "period_hours": 1}
    )
    with time_machine.travel(NOON - dt.timedelta(minutes=5), tick=False) as clock:
        behind_nat = {f"nat-{n}": register(client, f"nat-{n}", f"127.0.2.{n + 1}") for n in range(8)}
        register(client, "office-pc", "127.0.0.1")
        assert set(Client.objects.filter(hostname__startswith="nat-").values_list("status", flat=True)) == {
            ConnectionStatus.UNREACHABLE
        }
        clock.move_to(NOON)
        run = schedule_window_open(now=NOON)
        assert run is not None
        due = {d.client.hostname: d.next_attempt_at for d in run.deliveries.select_related("client")}
        assert set(due) == {*behind_nat, "office-pc"}
        # Spread over the window like everybody else's.
        assert all(NOON <= moment < NOON + dt.timedelta(hours=1) for moment in due.values())

        # A poll just before its moment hands nothing over; the first poll after it does.
        for hostname, auth in sorted(behind_nat.items(), key=lambda item: due[item[0]]):
            clock.move_to(due[hostname] - dt.timedelta(seconds=30))
            assert poll(client, auth) == []
            clock.move_to(due[hostname] + dt.timedelta(seconds=1))
            actions = poll(client, auth)
            delivery = Delivery.objects.get(run=run, client__hostname=hostname)
            assert [a["delivery_id"] for a in actions] == [delivery.pk]
            assert delivery.status == DeliveryStatus.DELIVERED

        # The dispatcher never pushed to any of them: no attempt was spent, nothing was posted.
        clock.move_to(NOON + dt.timedelta(hours=2))
        engine_round()
        nat_rows = Delivery.objects.filter(run=run, client__hostname__startswith="nat-")
        assert set(nat_rows.values_list("push", "attempts", "status")) == {(False, 0, DeliveryStatus.DELIVERED)}
