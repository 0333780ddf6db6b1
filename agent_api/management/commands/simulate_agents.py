"""Run a fleet of reference agents against a server (docs/agent-protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agent_api.simulator import Fleet


def _rate(value: str) -> float:
    rate = float(value)
    if not 0 <= rate <= 1:
        raise ValueError("a rate is between 0 and 1")
    return rate


class Command(BaseCommand):
    help = (
        "Run N simulated agents in one asyncio process, each with its own HTTP listener on 127.0.0.1. "
        "Prints a live summary line; stops cleanly on Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True, help="How many agents (1-20000)")
        parser.add_argument("--server", default="http://127.0.0.1:8000", help="The console's base URL")
        parser.add_argument("--enrollment-secret", help="Defaults to this project's AGENT_ENROLLMENT_SECRET")
        parser.add_argument("--port-start", type=int, default=0, help="First listener port (default: any free port)")
        parser.add_argument("--offline-rate", type=_rate, default=0.0)
        parser.add_argument("--fail-rate", type=_rate, default=0.0, help="Agents answering 503 or refusing connections")
        parser.add_argument("--roaming-rate", type=_rate, default=0.0)
        parser.add_argument(
            "--unreachable-rate",
            type=_rate,
            default=0.0,
            help="Agents behind NAT: they report an address in --unreachable-network and poll",
        )
        parser.add_argument(
            "--unreachable-network",
            default="127.0.2.0/24",
            help="Loopback range unreachable agents report; list it in the server's AGENT_UNREACHABLE_NETWORKS",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--domain", default="Simulated", help="Domain hint the agents register with")
        parser.add_argument("--heartbeat", type=float, help="Heartbeat seconds (default: what the server says)")
        parser.add_argument(
            "--time-scale", type=float, default=1.0, help="Run the Minute(s)/Hour(s) schedule this many times faster"
        )
        parser.add_argument(
            "--start-behind",
            action="store_true",
            help="Agents start holding no components (each downloads every full file at its restart check-in); "
            "by default they start holding the server's current ones, fetched once for the fleet",
        )
        parser.add_argument("--duration", type=float, help="Stop by itself after this many seconds")
        parser.add_argument("--summary-every", type=float, default=2.0, help="Seconds between summary lines")

    def handle(self, *args, **opts):
        if not 1 <= opts["count"] <= 20_000:
            raise CommandError("--count must be between 1 and 20000")
        if opts["port_start"] and not 1024 <= opts["port_start"] <= 65535 - opts["count"]:
            raise CommandError("--port-start must leave room for --count ports below 65536")
        if opts["time_scale"] <= 0:
            raise CommandError("--time-scale must be positive")
        fleet = Fleet(
            server_url=opts["server"],
            enrollment_secret=opts["enrollment_secret"] or settings.AGENT_ENROLLMENT_SECRET,
            count=opts["count"],
            port_start=opts["port_start"],
            offline_rate=opts["offline_rate"],
            fail_rate=opts["fail_rate"],
            roaming_rate=opts["roaming_rate"],
            unreachable_rate=opts["unreachable_rate"],
            unreachable_network=opts["unreachable_network"],
            seed=opts["seed"],
            domain=opts["domain"],
            heartbeat_override=opts["heartbeat"],
            time_scale=opts["time_scale"],
            strict=False,
            start_current=not opts["start_behind"],
            # Versions marked bad with `manage.py mark_bad_version` hurt a share of these agents.
            bad_versions_file=settings.SIMULATOR_BAD_VERSIONS_FILE,
        )
        try:
            asyncio.run(self._run(fleet, opts["duration"], opts["summary_every"]))
        except OSError as exc:
            raise CommandError(f"cannot run the fleet: {exc}") from None

    async def _run(self, fleet: Fleet, duration: float | None, every: float) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        started = time.monotonic()
        self.stdout.write(f"starting {len(fleet.specs)} agents against {fleet.server_url} ...")
        starting = asyncio.ensure_future(fleet.start())
        try:
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)
                if starting.done() and starting.exception() is not None:
                    raise CommandError(f"the fleet did not start: {starting.exception()}")
                elapsed = time.monotonic() - started
                line = f"[{elapsed:7.1f}s] {fleet.summary_line()}"
                if sys.stdout.isatty():
                    self.stdout.write("\r" + line, ending="")
                else:
                    self.stdout.write(line)
                self.stdout.flush()
                if duration is not None and elapsed >= duration:
                    break
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            await fleet.stop()
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.stdout.write(f"\nstopped: {fleet.summary_line()} | peak memory {peak_mb:.0f} MB")
