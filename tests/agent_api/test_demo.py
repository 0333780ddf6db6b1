"""The demo command: reference agents plus downloads, and the pages saying it is a demo."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from agent_api.management.commands.demo_fleet import DemoPlan, demo_specs
from agents_app.models import Client
from tests.updates_app.engine import play_beat_until
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def demo_running(**options):
    """The demo command in a thread until the block ends (then its stop event is set): its output."""
    out = io.StringIO()
    failure: list[BaseException] = []
    stop = threading.Event()

    def demo() -> None:
        try:
            call_command("demo_fleet", stop=stop, stdout=out, **options)
        except BaseException as exc:  # reported below
            failure.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=demo, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert not failure, failure


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demo_fleet_registers_agents_and_downloads_start_event_runs(live_server, settings, component_storage):
    settings.AGENT_ENROLLMENT_SECRET = "demo-enrollment-secret-at-least-32-characters"
    settings.AGENT_RATE_LIMIT = "10000/min"
    options = {"count": 6, "every": 1.5, "first_after": 1.0, "fail_rate": 0.0, "unreachable_rate": 0.0}
    with demo_running(server=live_server.url, nap_rate=0.0, sleep_rate=0.0, **options) as out:
        # Until the second download (about 3 s after the agents registered): bounded for a busy machine.
        deadline = time.monotonic() + 120
        while UpdateRun.objects.filter(trigger=RunTrigger.EVENT).count() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    text = out.getvalue()
    assert "Short retry settings for the demo only" in text
    assert re.search(r"Downloaded Virus Pattern [\d.]+: event run #\d+ notifies 6 clients", text)
    assert Client.objects.count() == 6
    assert UpdateRun.objects.filter(trigger=RunTrigger.EVENT).count() >= 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demos_agents_behind_nat_send_from_their_own_address(live_server, settings, component_storage):
    settings.AGENT_ENROLLMENT_SECRET = "demo-enrollment-secret-at-least-32-characters"
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
    with pytest.raises(CommandError, match="--sleep-rate"):
        call_command("demo_fleet", sleep_rate=-0.1)
    with pytest.raises(CommandError, match="--every"):
        call_command("demo_fleet", every=0.5)


def test_with_the_demos_20_second_retries_the_first_give_up_comes_within_three_minutes():
    plan = DemoPlan(retry_interval=20, max_attempts=5)
    # Downloads at 10 s, then every 130 s: a notification gives up 80 s after its first attempt.
    assert plan.first_give_up_expected == 90
    assert plan.first_give_up_expected + 10 < 180  # the dispatcher's few seconds of lag included
    # A napper wakes before its fifth and last attempt; a sleeper only after it.
    assert 3 * 20 < plan.nap_wake_at_the_latest < 4 * 20
    assert plan.sleep_wake_at_the_latest > plan.give_up_after
    # The next download comes after the sleepers woke, so it never supersedes a notification that could still give up.
    assert plan.download_every > plan.sleep_wake_at_the_latest
    assert DemoPlan(retry_interval=1, max_attempts=5).download_every == 60


def test_the_demo_fleet_has_every_kind_of_agent():
    specs, nappers, sleepers = demo_specs(count=40, fail_rate=0.1, unreachable_rate=0.1, nap_rate=0.1, sleep_rate=0.1)
    assert len(specs) == 40 and len({s.hostname for s in specs}) == 40
    assert len(nappers) == len(sleepers) == 4
    assert sum(s.fail_mode == "error" for s in specs) == 4
    assert sum(s.unreachable for s in specs) == 4
    assert all(s.ip_address.startswith("127.") for s in specs)
    # A small fleet still has one of each kind.
    specs, nappers, sleepers = demo_specs(count=5, fail_rate=0.1, unreachable_rate=0.1, nap_rate=0.1, sleep_rate=0.1)
    assert len(specs) == 5 and len(nappers) == len(sleepers) == 1


def _summary_counts(client) -> dict[int, dict[str, int]]:
    page = client.get(reverse("updates:summary")).content.decode()
    counts: dict[int, dict[str, int]] = {}
    for run, field, value in re.findall(r'data-run-id="(\d+)" data-field="(\w+)">(\d+)<', page):
        counts.setdefault(int(run), {})[field] = int(value)
    return counts


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demos_first_minutes_show_a_retry_a_give_up_and_a_restart_update(
    live_server, settings, component_storage, celery_worker, viewer_client, monkeypatch
):
    """The demo's first cycle, with 2-second retries instead of 20: every kind of outcome on the summary."""
    settings.AGENT_ENROLLMENT_SECRET = "demo-enrollment-secret-at-least-32-characters"
    settings.AGENT_RATE_LIMIT = "10000/min"
    settings.AGENT_UNREACHABLE_NETWORKS = ["127.0.2.0/24"]
    settings.NOTIFY_RETRY_INTERVAL_SECONDS = 2
    # The demo wakes a napper or a sleeper at the latest a few retry intervals after a download, so
    # that a slow worker cannot keep it asleep for good. Here they must wake for the reasons this test
    # proves (three failed attempts; a notification given up), however busy the machine.
    monkeypatch.setattr(DemoPlan, "nap_wake_at_the_latest", 600.0)
    monkeypatch.setattr(DemoPlan, "sleep_wake_at_the_latest", 600.0)
    seen: dict[str, int] = {"retrying": 0, "gave_up": 0}

    def watch_the_summary() -> bool:
        for counts in _summary_counts(viewer_client).values():
            for field in seen:
                seen[field] = max(seen[field], counts.get(field, 0))
        handed_over_after_retries = Delivery.objects.filter(
            run__trigger=RunTrigger.EVENT, status=DeliveryStatus.DELIVERED, attempts__gte=3, push=True
        ).exists()
        # A client whose notification gave up, told to update at its restart check-in, now holds the new version.
        gave_up = Delivery.objects.filter(run__trigger=RunTrigger.EVENT, status=DeliveryStatus.GAVE_UP)
        updated_at_restart = [
            d
            for d in gave_up.select_related("client", "run__component_version")
            if d.client.component_versions.get("virus_pattern") == d.run.component_version.label
            and Delivery.objects.filter(
                client=d.client, run__trigger=RunTrigger.RESTART, delivered_at__gt=d.run.created_at
            ).exists()
        ]
        return bool(handed_over_after_retries and updated_at_restart and seen["retrying"] and seen["gave_up"])

    def time_of_first_download():
        run = UpdateRun.objects.filter(trigger=RunTrigger.EVENT).order_by("created_at").first()
        return run.created_at if run else None

    # The demo runs until the summary has shown everything (about 15 s on an idle machine): the bounds
    # are for a machine so busy that something is wrong.
    with demo_running(server=live_server.url, count=10, every=60, first_after=1.0) as out:
        assert play_beat_until(lambda: time_of_first_download() is not None, timeout=60.0), out.getvalue()
        assert play_beat_until(watch_the_summary, timeout=90.0), (seen, out.getvalue())
    text = out.getvalue()
    # A napper wakes once three attempts failed (with 2-second retries the demo may see a fourth first).
    napped = re.search(r"laptop-nap-\d+ wakes after (\d) failed attempts and checks in as restarting", text)
    assert napped and 3 <= int(napped.group(1)) < 5
    assert re.search(r"laptop-away-\d+ wakes after its notification gave up and checks in as restarting", text)
    # The sleeper's notification was tried exactly five times before it gave up.
    assert set(Delivery.objects.filter(status=DeliveryStatus.GAVE_UP).values_list("attempts", flat=True)) == {5}


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
