"""The demo: reference agents, and a new component version every minute.

``bin/run`` starts it (the ``demo:`` line of the Procfile) with short retry
settings, so a newcomer sees within a minute a download turn into
notifications, retries and updates on the Update Summary.
"""

from __future__ import annotations

import time
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agent_api.simulator import FleetThread
from updates_app.components import component_download, component_resolve
from updates_app.engine import retry
from updates_app.models import UpdateRun
from updates_app.version_labels import version_label


class Command(BaseCommand):
    help = (
        "Run a demo fleet of reference agents against the console and download a new Virus Pattern "
        "every --every seconds, so notifications, retries and updates show on the Update Summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--server", default="http://127.0.0.1:8000", help="The console's base URL")
        parser.add_argument("--count", type=int, default=40, help="Agents in the demo fleet (1-2000)")
        parser.add_argument("--fail-rate", type=float, default=0.15, help="Share of agents answering 503")
        parser.add_argument("--unreachable-rate", type=float, default=0.1, help="Share of agents behind NAT")
        parser.add_argument("--every", type=float, default=60.0, help="Seconds between downloads")
        parser.add_argument("--first-after", type=float, default=10.0, help="Seconds before the first download")
        parser.add_argument("--duration", type=float, help="Stop by itself after this many seconds")

    def handle(self, *args, **opts):
        if not 1 <= opts["count"] <= 2000:
            raise CommandError("--count must be between 1 and 2000")
        for name in ("fail_rate", "unreachable_rate"):
            if not 0 <= opts[name] <= 1:
                raise CommandError(f"--{name.replace('_', '-')} must be between 0 and 1")
        if opts["every"] < 1:
            raise CommandError("--every must be at least 1 second")
        server = opts["server"].rstrip("/")
        self._wait_for(server)
        component = component_resolve("virus_pattern")
        if not component.versions.exists():
            component_download(component=component)
        self.stdout.write(
            f"Demo: {opts['count']} reference agents against {server}. Short retry settings for the demo only: "
            f"a failed notification is sent {retry.describe()} (the product's default is every 15 minutes, "
            f"5 attempts). Watch {server}/updates/summary/"
        )
        started = time.monotonic()
        with FleetThread(
            server_url=server,
            enrollment_secret=settings.AGENT_ENROLLMENT_SECRET,
            count=opts["count"],
            fail_rate=opts["fail_rate"],
            unreachable_rate=opts["unreachable_rate"],
            heartbeat_override=15,
            strict=False,
            bad_versions_file=settings.SIMULATOR_BAD_VERSIONS_FILE,
        ):
            next_download = time.monotonic() + opts["first_after"]
            while opts["duration"] is None or time.monotonic() - started < opts["duration"]:
                if time.monotonic() >= next_download:
                    version = component_download(component=component)
                    run = UpdateRun.objects.filter(component_version=version).first()
                    told = f"event run #{run.pk} notifies {run.deliveries.count()} clients" if run else "no run"
                    self.stdout.write(f"Downloaded Virus Pattern {version_label(version.number)}: {told}")
                    next_download += opts["every"]
                time.sleep(0.2)

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
