"""The reference agent's command line: a real process against the live server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from agent_api.simulator.fleet import Fleet
from agents_app.models import Client
from tests.agent_api.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]


def simulate(live_server, *args):
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "simulate_agents",
            "--server",
            live_server.url,
            "--enrollment-secret",
            SECRET,
            "--summary-every",
            "0.5",
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_command_runs_a_fleet_and_stops_by_itself(live_server, enrollment, component_storage):
    process = simulate(live_server, "--count", "6", "--duration", "2", "--offline-rate", "0.3", "--roaming-rate", "0.5")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "agents 6" in out and "stopped:" in out
    assert Client.objects.filter(hostname__startswith="sim-0-").count() == 6


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_command_stops_cleanly_on_ctrl_c(live_server, enrollment, component_storage):
    process = simulate(live_server, "--count", "3")
    deadline = time.monotonic() + 30
    first = ""
    while time.monotonic() < deadline and "agents 3" not in first:
        first = process.stdout.readline()
    assert "agents 3" in first
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped:" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "--count must be between"),
        (["--count", "5", "--port-start", "65534"], "--port-start"),
        (["--count", "5", "--time-scale", "0"], "--time-scale"),
    ],
)
def test_bad_options_are_clear_errors(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulate_agents", *args)


def test_rates_decide_the_mix_of_agents():
    fleet = Fleet(
        server_url="http://127.0.0.1:1",
        enrollment_secret="x",
        count=1000,
        offline_rate=0.1,
        fail_rate=0.1,
        roaming_rate=0.2,
        unreachable_rate=0.05,
        seed=3,
    )
    specs = fleet.specs
    assert 20 <= sum(s.unreachable for s in specs) <= 80
    assert 50 <= sum(s.offline for s in specs) <= 150
    assert 50 <= sum(s.fail_mode is not None for s in specs) <= 150
    assert 120 <= sum(s.roaming for s in specs) <= 280
    assert all(s.ip_address.startswith("127.0.2.") for s in specs if s.unreachable)
    # The same seed gives the same fleet.
    again = Fleet(server_url="http://127.0.0.1:1", enrollment_secret="x", count=1000, offline_rate=0.1, seed=3)
    assert [s.hostname for s in again.specs] == [s.hostname for s in specs]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("start_current", [True, False])
def test_a_fleet_starts_holding_the_current_components_fetched_once(
    live_server, enrollment, component_storage, start_current
):
    from agent_api.simulator import FleetThread
    from updates_app.components import component_download, component_resolve
    from updates_app.models import Delivery, RunTrigger

    latest = component_download(component=component_resolve("virus_pattern"))
    with FleetThread(
        server_url=live_server.url, enrollment_secret=SECRET, count=4, start_current=start_current
    ) as fleet:
        if start_current:
            # One download for the whole fleet; nobody is behind at its restart check-in.
            assert fleet.totals()["full_downloads"] == 1
            assert all(agent.versions == {"virus_pattern": latest.label} for agent in fleet.agents)
            assert not Delivery.objects.filter(run__trigger=RunTrigger.RESTART).exists()
        else:
            # Starting empty, every agent is told to update at its restart check-in.
            assert Delivery.objects.filter(run__trigger=RunTrigger.RESTART).count() == 4
    # Every agent registered once: the one that fetched the files kept its registration.
    assert Client.objects.filter(hostname__startswith="sim-0-").count() == 4
