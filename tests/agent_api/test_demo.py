"""The demo command: reference agents plus downloads, and the pages saying it is a demo."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from agents_app.models import Client
from updates_app.models import RunTrigger, UpdateRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demo_fleet_registers_agents_and_downloads_start_event_runs(live_server, settings, component_storage):
    settings.AGENT_ENROLLMENT_SECRET = "demo-secret"
    settings.AGENT_RATE_LIMIT = "10000/min"
    out = io.StringIO()
    call_command(
        "demo_fleet",
        server=live_server.url,
        count=6,
        every=1.5,
        first_after=1.0,
        duration=4.0,
        fail_rate=0.0,
        unreachable_rate=0.0,
        stdout=out,
    )
    text = out.getvalue()
    assert "Short retry settings for the demo only" in text
    assert re.search(r"Downloaded Virus Pattern [\d.]+: event run #\d+ notifies 6 clients", text)
    assert Client.objects.count() == 6
    assert UpdateRun.objects.filter(trigger=RunTrigger.EVENT).count() >= 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demos_agents_behind_nat_send_from_their_own_address(live_server, settings, component_storage):
    settings.AGENT_ENROLLMENT_SECRET = "demo-secret"
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    call_command(
        "demo_fleet",
        server=live_server.url,
        count=8,
        first_after=60.0,
        duration=1.0,
        fail_rate=0.0,
        unreachable_rate=0.5,
        stdout=io.StringIO(),
    )
    stored = set(Client.objects.values_list("ip_address", "status"))
    natted = {(ip, status) for ip, status in stored if ip.startswith("127.0.2.")}
    # The server stored where each agent's requests came from, so the NATed
    # ones are unreachable (never pushed to) and the others online.
    assert natted and {status for _, status in natted} == {"unreachable"}
    assert stored - natted == {("127.0.0.1", "online")}


@pytest.mark.django_db
def test_bad_demo_options_are_refused():
    with pytest.raises(CommandError, match="--count"):
        call_command("demo_fleet", count=0)
    with pytest.raises(CommandError, match="--fail-rate"):
        call_command("demo_fleet", fail_rate=2.0)


@pytest.mark.django_db
def test_the_update_pages_say_when_the_demo_shortens_retries(viewer_client, settings):
    settings.CONSOLE_DEMO = True
    settings.NOTIFY_RETRY_INTERVAL_SECONDS = 20
    page = viewer_client.get(reverse("updates:summary")).content.decode()
    assert "Demo mode" in page and "again every 20 seconds" in page
    settings.CONSOLE_DEMO = False
    assert "Demo mode" not in viewer_client.get(reverse("updates:summary")).content.decode()


def test_the_run_command_starts_the_demo_fleet_unless_told_not_to():
    procfile = (ROOT / "Procfile").read_text()
    assert re.search(r"^demo: .*manage\.py demo_fleet", procfile, re.M)
    run = (ROOT / "bin" / "run").read_text()
    assert "NOTIFY_RETRY_INTERVAL_SECONDS=${NOTIFY_RETRY_INTERVAL_SECONDS:-20}" in run
    assert "--procfile Procfile web worker beat" in run
