"""The demo: reference agents, and a new component version now and then.

``bin/run`` starts it (the ``demo:`` line of the Procfile) with short retry
settings (a resend every 20 seconds), so a newcomer sees within three minutes
the rule the product exists for (SPEC 3.3):

- most agents answer their notification at once and update;
- some answer 503 but keep checking in, so their retrying notification is
  handed over at their next check-in;
- some are behind NAT and get theirs when they poll;
- *nappers* are asleep (listener closed, no check-in) when a download is
  announced: their notification is retried at the retry interval, and when
  they wake, after their third failed attempt, they check in as restarting
  and the server hands the retrying notification over;
- *sleepers* stay asleep past the last attempt: the notification gives up,
  and when they wake they check in as restarting and update through "Let
  clients initiate component update when they restart".

Each download waits until the sleepers of the previous one are awake, so a
new run never supersedes a notification before it could give up.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agent_api.simulator import AgentSpec, Fleet, FleetThread, SimAgent
from updates_app.components import component_download, component_resolve
from updates_app.engine import retry
from updates_app.models import DeliveryStatus, UpdateRun
from updates_app.version_labels import version_label

UNREACHABLE_NETWORK = "127.0.2"  # the simulator's agents "behind NAT"; bin/run marks 127.0.2.0/24 unreachable
NAP_WAKES_AFTER_ATTEMPTS = 3


@dataclass(frozen=True)
class DemoPlan:
    """When things happen in the demo, from the retry rule's settings (all in seconds)."""

    retry_interval: float
    max_attempts: int
    first_after: float = 10.0
    every: float | None = None

    @property
    def give_up_after(self) -> float:
        """From a notification's first attempt to its last: the last failure gives up."""
        return (self.max_attempts - 1) * self.retry_interval

    @property
    def nap_wake_at_the_latest(self) -> float:
        """After a download, a napper wakes at the latest here: half an interval before its last attempt."""
        return min(NAP_WAKES_AFTER_ATTEMPTS + 0.5, self.max_attempts - 1.5) * self.retry_interval

    @property
    def sleep_wake_at_the_latest(self) -> float:
        """After a download, a sleeper wakes at the latest here (its notification has given up by then)."""
        return self.give_up_after + 1.5 * self.retry_interval

    @property
    def download_every(self) -> float:
        """Seconds between downloads: at least a minute, and room for a give-up and the wake after it."""
        if self.every is not None:
            return self.every
        return max(60.0, self.sleep_wake_at_the_latest + self.retry_interval)

    @property
    def first_give_up_expected(self) -> float:
        """Seconds from the demo's start to its first give-up (the dispatcher adds a few seconds)."""
        return self.first_after + self.give_up_after


def demo_specs(*, count: int, fail_rate: float, unreachable_rate: float, nap_rate: float, sleep_rate: float):
    """The demo fleet, named by what each agent does: (specs, nappers' hostnames, sleepers' hostnames)."""

    def share(rate: float) -> int:
        return 0 if rate == 0 else max(1, round(rate * count))

    groups = [
        ("laptop-away", share(sleep_rate)),
        ("laptop-nap", share(nap_rate)),
        ("lab", share(fail_rate)),
        ("roadwarrior", share(unreachable_rate)),
    ]
    specs: list[AgentSpec] = []
    for prefix, n in groups:
        for i in range(1, n + 1):
            if len(specs) >= count:
                break
            spec = AgentSpec(hostname=f"{prefix}-{i:02d}", domain="Laptops")
            if prefix == "lab":
                spec.domain, spec.fail_mode = "Lab", "error"
            elif prefix == "roadwarrior":
                spec.domain, spec.unreachable, spec.ip_address = "Branch Office", True, f"{UNREACHABLE_NETWORK}.{i}"
            specs.append(spec)
    for i in range(1, count - len(specs) + 1):
        specs.append(AgentSpec(hostname=f"ws-{i:03d}", domain="Headquarters" if i % 3 else "Branch Office"))
    nappers = {s.hostname for s in specs if s.hostname.startswith("laptop-nap")}
    sleepers = {s.hostname for s in specs if s.hostname.startswith("laptop-away")}
    return specs, nappers, sleepers


class Command(BaseCommand):
    # A caller in the same process (a test) may pass a threading.Event that stops the demo when set.
    stealth_options = ("stop",)
    help = (
        "Run a demo fleet of reference agents against the console and download a new Virus Pattern now and "
        "then, so notifications, retries, give-ups and restart updates show on the Update Summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--server", default="http://127.0.0.1:8000", help="The console's base URL")
        parser.add_argument("--count", type=int, default=40, help="Agents in the demo fleet (1-2000)")
        parser.add_argument("--fail-rate", type=float, default=0.1, help="Share of agents answering 503")
        parser.add_argument("--unreachable-rate", type=float, default=0.1, help="Share of agents behind NAT")
        parser.add_argument(
            "--nap-rate", type=float, default=0.1, help="Share of agents asleep for a few retries at each download"
        )
        parser.add_argument(
            "--sleep-rate",
            type=float,
            default=0.1,
            help="Share of agents asleep past the last attempt at each download",
        )
        parser.add_argument(
            "--every",
            type=float,
            help="Seconds between downloads (default: time for a notification to give up and its client "
            "to wake, at least 60; 130 with 20-second retries)",
        )
        parser.add_argument("--first-after", type=float, default=10.0, help="Seconds before the first download")
        parser.add_argument("--duration", type=float, help="Stop by itself after this many seconds")

    def handle(self, *args, **opts):
        if threading.current_thread() is threading.main_thread():  # (a test may run the demo in a thread)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped by bin/run: stop the fleet, exit 0
        if not 1 <= opts["count"] <= 2000:
            raise CommandError("--count must be between 1 and 2000")
        for name in ("fail_rate", "unreachable_rate", "nap_rate", "sleep_rate"):
            if not 0 <= opts[name] <= 1:
                raise CommandError(f"--{name.replace('_', '-')} must be between 0 and 1")
        if opts["every"] is not None and opts["every"] < 1:
            raise CommandError("--every must be at least 1 second")
        if opts["first_after"] < 0:
            raise CommandError("--first-after must not be negative")
        plan = DemoPlan(
            retry_interval=retry.retry_interval().total_seconds(),
            max_attempts=retry.max_attempts(),
            first_after=opts["first_after"],
            every=opts["every"],
        )
        server = opts["server"].rstrip("/")
        self._wait_for(server)
        component = component_resolve("virus_pattern")
        if not component.versions.exists():
            component_download(component=component)
        specs, nappers, sleepers = demo_specs(
            count=opts["count"],
            fail_rate=opts["fail_rate"],
            unreachable_rate=opts["unreachable_rate"],
            nap_rate=opts["nap_rate"],
            sleep_rate=opts["sleep_rate"],
        )
        self.stdout.write(
            f"Demo: {len(specs)} reference agents against {server}. Short retry settings for the demo only: "
            f"a failed notification is sent {retry.describe()} (the product's default is every 15 minutes, "
            f"5 attempts). A new Virus Pattern every {plan.download_every:.0f} seconds; {len(nappers)} laptops "
            f"nap through a few retries and {len(sleepers)} sleep until their notification gives up (the first "
            f"after about {plan.first_give_up_expected:.0f} seconds). Watch {server}/updates/summary/"
        )
        started = time.monotonic()
        stop: threading.Event = opts.get("stop") or threading.Event()
        with FleetThread(
            server_url=server,
            enrollment_secret=settings.AGENT_ENROLLMENT_SECRET,
            specs=specs,
            heartbeat_override=15,
            strict=False,
            bad_versions_file=settings.SIMULATOR_BAD_VERSIONS_FILE,
        ) as fleet:
            napping = [a for a in fleet.agents if a.spec.hostname in nappers]
            sleeping = [a for a in fleet.agents if a.spec.hostname in sleepers]
            director = _Director(fleet, plan, napping, sleeping, self.stdout)
            next_download = time.monotonic() + plan.first_after
            while not stop.is_set() and (opts["duration"] is None or time.monotonic() - started < opts["duration"]):
                now = time.monotonic()
                director.wake_the_due(now)
                if now >= next_download and director.all_awake():
                    director.put_to_sleep()
                    version = component_download(component=component)
                    run = UpdateRun.objects.filter(component_version=version).first()
                    director.watch(run, since=now)
                    told = f"event run #{run.pk} notifies {run.deliveries.count()} clients" if run else "no run"
                    self.stdout.write(f"Downloaded Virus Pattern {version_label(version.number)}: {told}")
                    next_download = now + plan.download_every
                stop.wait(0.5)

    def _wait_for(self, server: str) -> None:
        """The web server starts alongside: wait until it answers."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{server}/agent/v1/ping", timeout=2):  # noqa: S310 - our own server
                    return
            except OSError:
                time.sleep(1)
        raise CommandError(f"the console at {server} does not answer")


class _Director:
    """Puts the nappers and sleepers to sleep before a download and wakes each when its moment comes.

    A napper wakes once its notification has failed three times and waits for
    a retry; a sleeper once its notification gave up. Either wakes at the
    latest at the plan's time, so a slow worker or a run that notifies nobody
    never keeps an agent asleep for good.
    """

    def __init__(self, fleet: Fleet, plan: DemoPlan, nappers: list[SimAgent], sleepers: list[SimAgent], out):
        self.fleet, self.plan, self.out = fleet, plan, out
        self.nappers, self.sleepers = nappers, sleepers
        self.run: UpdateRun | None = None
        self.since = 0.0

    def all_awake(self) -> bool:
        return not any(a.asleep for a in self.nappers + self.sleepers)

    def put_to_sleep(self) -> None:
        for agent in self.nappers + self.sleepers:
            self.fleet.call(agent.fall_asleep)

    def watch(self, run: UpdateRun | None, *, since: float) -> None:
        self.run, self.since = run, since

    def _states(self, agents: list[SimAgent]) -> dict[str, tuple[str, int]]:
        if self.run is None:
            return {}
        ids = [a.client_id for a in agents if a.client_id]
        rows = self.run.deliveries.filter(client__guid__in=ids).values_list("client__guid", "status", "attempts")
        return {str(guid): (status, attempts) for guid, status, attempts in rows}

    def wake_the_due(self, now: float) -> None:
        elapsed = now - self.since
        asleep_nappers = [a for a in self.nappers if a.asleep]
        if asleep_nappers:
            states = self._states(asleep_nappers)
            enough = min(NAP_WAKES_AFTER_ATTEMPTS, self.plan.max_attempts - 1)
            for agent in asleep_nappers:
                status, attempts = states.get(agent.client_id or "", ("", 0))
                failed_enough = status == DeliveryStatus.RETRYING and attempts >= enough
                if failed_enough or elapsed >= self.plan.nap_wake_at_the_latest or status == DeliveryStatus.GAVE_UP:
                    self._wake(agent, f"after {attempts} failed attempts" if attempts else "")
        asleep_sleepers = [a for a in self.sleepers if a.asleep]
        if asleep_sleepers:
            states = self._states(asleep_sleepers)
            for agent in asleep_sleepers:
                status, attempts = states.get(agent.client_id or "", ("", 0))
                if status == DeliveryStatus.GAVE_UP or elapsed >= self.plan.sleep_wake_at_the_latest:
                    self._wake(agent, "after its notification gave up" if status == DeliveryStatus.GAVE_UP else "")

    def _wake(self, agent: SimAgent, why: str) -> None:
        self.fleet.call(agent.wake)
        self.out.write(" ".join(filter(None, [agent.spec.hostname, "wakes", why, "and checks in as restarting"])))
