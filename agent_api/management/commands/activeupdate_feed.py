"""Run the ActiveUpdate stand-in on loopback, republishing the server's latest files as they change."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys
import threading

from aiohttp import web
from asgiref.sync import sync_to_async
from django.core.management.base import BaseCommand, CommandError

from agent_api.simulator.activeupdate import ActiveUpdateFeed, feed_contents


class Command(BaseCommand):
    help = "Serve the ActiveUpdate stand-in (the vendor's feed) on a loopback address."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="A loopback address (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8099)
        parser.add_argument(
            "--refresh", type=float, default=10.0, help="Seconds between re-reading the server's files."
        )

    def handle(self, *args, host: str, port: int, refresh: float, **options):
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise CommandError(
                f"--host must be a loopback address (the stand-in never leaves this machine), got {host!r}."
            )
        if not 0 < port < 65536:
            raise CommandError(f"--port must be 1-65535, got {port}.")
        if refresh <= 0:
            raise CommandError("--refresh must be positive.")
        # Stopped by bin/run (honcho) or systemd: a normal end, exit 0.
        if threading.current_thread() is threading.main_thread():
            for stop in (signal.SIGTERM, signal.SIGINT):
                signal.signal(stop, lambda *_: sys.exit(0))
        asyncio.run(self._serve(host, port, refresh))

    async def _serve(self, host: str, port: int, refresh: float) -> None:
        feed = ActiveUpdateFeed(await sync_to_async(feed_contents)())
        runner = web.AppRunner(feed.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self.stdout.write(f"ActiveUpdate stand-in on http://{host}:{port}/ ({len(feed.contents)} components)")
        try:
            while True:
                await asyncio.sleep(refresh)
                feed.contents = await sync_to_async(feed_contents)()
        finally:
            await runner.cleanup()
