"""A small fleet of real agent listeners on loopback for the delivery tests.

Each agent listens on its own port (one aiohttp app, many sites) in a
background thread, checks every notification's signature with
agents_app.signing.verify, and records what it received. ``failures`` makes an
agent answer 503 to that many requests before it accepts one; ``delay`` makes
it slow; a "down" agent has a port nobody listens on (connection refused).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web

from agents_app.signing import SignatureError, client_signing_key, verify


@dataclass
class Agent:
    guid: str
    port: int = 0
    failures: int = 0
    delay: float = 0.0
    down: bool = False
    # (message id, wall-clock time, payload) of every notification that checked out
    received: list[tuple[str, float, dict]] = field(default_factory=list)
    rejected: int = 0

    @property
    def message_ids(self) -> list[str]:
        return [message_id for message_id, _, _ in self.received]


def closed_port() -> int:
    """A loopback port with nothing listening on it (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Fleet:
    def __init__(self) -> None:
        self.agents: dict[int, Agent] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.lock = threading.Lock()

    def start(self) -> Fleet:
        self.thread.start()
        app = web.Application()
        app.router.add_post("/notify", self._notify)
        self.runner = web.AppRunner(app, access_log=None)
        asyncio.run_coroutine_threadsafe(self.runner.setup(), self.loop).result(10)
        return self

    def add(self, guid: str, *, failures: int = 0, delay: float = 0.0, down: bool = False) -> Agent:
        agent = Agent(guid=str(guid), failures=failures, delay=delay, down=down)
        if down:
            agent.port = closed_port()
        else:
            site = web.SockSite(self.runner, self._listening_socket())
            asyncio.run_coroutine_threadsafe(site.start(), self.loop).result(10)
            agent.port = site._sock.getsockname()[1]
        self.agents[agent.port] = agent
        return agent

    @staticmethod
    def _listening_socket() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def _notify(self, request: web.Request) -> web.Response:
        port = request.transport.get_extra_info("sockname")[1]
        agent = self.agents[port]
        body = await request.read()
        try:
            message_id = verify(client_signing_key(agent.guid), dict(request.headers), body)
        except SignatureError:
            with self.lock:
                agent.rejected += 1
            return web.Response(status=401)
        if agent.delay:
            await asyncio.sleep(agent.delay)
        with self.lock:
            if agent.failures > 0:
                agent.failures -= 1
                return web.Response(status=503)
            agent.received.append((message_id, time.time(), json.loads(body)))
        return web.json_response({"ok": True})

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
