"""A report is recorded once however often it arrives, and the reference agent sends one again only when that can help.

The reference agent sends a report it could not deliver again until the
server acknowledges it (tests/agent_api/test_proxy_agent.py shows it through
real proxies); that is safe only because a report repeated changes nothing
the first one recorded.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from agent_api.simulator import AgentSpec, FleetThread
from agents_app.models import Client
from tests.agent_api.conftest import SECRET
from updates_app.components import component_download, component_resolve
from updates_app.models import ClientComponent, Delivery, DeliveryStatus, RunTrigger, UpdateRun, VersionProfile
from updates_app.version_labels import version_label


def post(client, url, body, headers):
    return client.post(url, body, content_type="application/json", **headers)


@pytest.mark.django_db
def test_the_same_report_arriving_twice_is_recorded_once(client, register, component_storage):
    component = component_resolve("virus_pattern")
    older, latest = component_download(component=component), component_download(component=component)
    data, auth = register(component_versions={"virus_pattern": version_label(older.number)})
    agent = Client.objects.get(guid=data["client_id"])
    run = UpdateRun.objects.create(trigger=RunTrigger.EVENT)
    # A finished run whose counts are kept already: a late report adds to its count of updated clients.
    UpdateRun.objects.filter(pk=run.pk).update(counts_kept_at=timezone.now(), kept_updated=0)
    delivery = Delivery.objects.create(
        run=run, client=agent, status=DeliveryStatus.DELIVERED, next_attempt_at=timezone.now()
    )
    report = {
        "kind": "update",
        "result": "success",
        "trigger": "notification",
        "component_versions": {"virus_pattern": version_label(latest.number)},
        "delivery_id": delivery.pk,
    }

    def recorded():
        delivery.refresh_from_db()
        run.refresh_from_db()
        agent.refresh_from_db()
        return (
            delivery.update_reported_at,
            run.kept_updated,
            agent.component_versions,
            sorted(ClientComponent.objects.values_list("client_id", "component", "number")),
            sorted(
                (str(v), n) for v, n in VersionProfile.objects.filter(clients__gt=0).values_list("versions", "clients")
            ),
        )

    assert post(client, "/agent/v1/report", report, auth).status_code == 200
    once = recorded()
    stamped, kept_updated, versions, *_ = once
    assert stamped is not None
    assert (kept_updated, versions) == (1, {"virus_pattern": version_label(latest.number)})
    # The same report again, a minute later (its first answer was lost on the way back).
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=1)):
        assert post(client, "/agent/v1/report", report, auth).status_code == 200
    assert recorded() == once


@pytest.mark.django_db(transaction=True)
def test_a_report_the_server_refuses_is_not_sent_again(live_server, enrollment, component_storage):
    spec = AgentSpec(hostname="mistaken")
    with FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, specs=[spec], heartbeat_override=3600
    ) as fleet:
        agent = fleet.agents[0]
        # A delivery that is not this client's: the server answers 400 unknown_delivery.
        fleet.call(agent.report, kind="update", ok=True, trigger="notification", delivery_id=2_000_000_000)
        counters = agent.counters
        assert (counters.reports_refused, counters.reports_resent, len(agent.unsent_reports)) == (1, 0, 0)
