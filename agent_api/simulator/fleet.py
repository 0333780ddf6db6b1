"""Many simulated agents in one asyncio process.

Every agent has its own listening socket on 127.0.0.1 (its own port), but all
sockets feed one aiohttp application: the handler finds the agent by the local
port the request arrived on. One application for 10,000 sockets keeps memory
small; the file-descriptor limit is raised to its hard limit at start (10,000
listeners need about 10,100 descriptors).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import random
import resource
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent_api.simulator.agent import SERVER, AgentError, AgentSpec, SimAgent
from updates_app.patterns import PatternError

logger = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Fleet:
    def __init__(
        self,
        *,
        server_url: str,
        enrollment_secret: str,
        count: int = 0,
        specs: list[AgentSpec] | None = None,
        port_start: int = 0,
        offline_rate: float = 0.0,
        fail_rate: float = 0.0,
        roaming_rate: float = 0.0,
        unreachable_rate: float = 0.0,
        unreachable_network: str = "127.0.2.0/24",
        seed: int = 0,
        domain: str = "Simulated",
        heartbeat_override: float | None = None,
        time_scale: float = 1.0,
        scan_seconds: float = 0.05,
        max_connections: int = 50,
        clock: Callable[[], float] = time.time,
        strict: bool = True,
        start_current: bool = True,
        bad_versions_file: str | Path | None = None,
    ):
        self.server_url = server_url.rstrip("/")
        self.enrollment_secret = enrollment_secret
        self.seed = seed
        self.port_start = port_start
        self.heartbeat_override = heartbeat_override
        self.time_scale = time_scale
        self.scan_seconds = scan_seconds
        self.max_connections = max_connections
        self.clock = clock
        # Strict (tests): an agent that cannot start fails Fleet.start. Otherwise it keeps retrying.
        self.strict = strict
        # Agents made from ``count`` start as installed agents do: holding the
        # server's current components (fetched once for the whole fleet). Off,
        # they hold nothing, and every one of them downloads every full file
        # when its restart check-in tells it to update.
        self.start_current = start_current and specs is None
        # Versions marked bad for the simulation (manage.py mark_bad_version writes this file).
        self.bad_versions_file = Path(bad_versions_file) if bad_versions_file else None
        self._bad_versions: dict[str, dict[str, dict[str, Any]]] = {}
        self._bad_versions_stamp: float | None = None
        # Full files shared by content: 10,000 agents at the same version hold one copy.
        self.store: dict[str, bytes] = {}
        self.specs = (
            specs
            if specs is not None
            else self._make_specs(
                count, offline_rate, fail_rate, roaming_rate, unreachable_rate, unreachable_network, domain
            )
        )
        self.agents: list[SimAgent] = []
        self.by_port: dict[int, SimAgent] = {}
        # One client session per source address: an agent's requests leave from
        # its own address (spec.ip_address), which the server takes as its
        # listener address at registration.
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self._runner: web.AppRunner | None = None
        self._sites: dict[int, web.SockSite] = {}
        self._reserved: dict[int, socket.socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started_at = 0.0

    def _make_specs(self, count, offline_rate, fail_rate, roaming_rate, unreachable_rate, network, domain):
        rng = random.Random(self.seed)
        hosts = list(ipaddress.ip_network(network).hosts())
        specs = []
        for i in range(count):
            spec = AgentSpec(hostname=f"sim-{self.seed}-{i:05d}", domain=domain)
            if rng.random() < unreachable_rate:
                spec.unreachable = True
                spec.ip_address = str(hosts[i % len(hosts)])
            elif rng.random() < offline_rate:
                spec.offline = True
            elif rng.random() < fail_rate:
                spec.fail_mode = rng.choice(("error", "refuse"))
            spec.roaming = rng.random() < roaming_rate
            specs.append(spec)
        return specs

    def bad_versions(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{slug: {label: {"share": percent, "mode": "fail" | "silent"}}}, re-read when the file changes."""
        if self.bad_versions_file is None:
            return {}
        try:
            stamp = self.bad_versions_file.stat().st_mtime
        except FileNotFoundError:
            return {}
        if stamp != self._bad_versions_stamp:
            try:
                self._bad_versions = json.loads(self.bad_versions_file.read_text())
            except ValueError:
                logger.warning("unreadable bad-versions file %s; ignored", self.bad_versions_file)
                self._bad_versions = {}
            self._bad_versions_stamp = stamp
        return self._bad_versions

    def fault_for(self, agent: SimAgent, slug: str, label: str) -> str | None:
        """ "fail", "silent" or None: whether this agent suffers from a version marked bad.

        The chosen share of agents is stable: the same agents are hit by the
        same version every time (a hash of hostname and version).
        """
        mark = self.bad_versions().get(slug, {}).get(label)
        if not mark:
            return None
        digest = hashlib.sha256(f"{agent.spec.hostname}:{slug}:{label}".encode()).hexdigest()
        if int(digest[:8], 16) % 100 >= int(mark.get("share", 100)):
            return None
        return "silent" if mark.get("mode") == "silent" else "fail"

    def store_put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.store.setdefault(digest, data)
        return digest

    # --- life cycle ----------------------------------------------------------------------

    async def start(self, *, concurrency: int = 50) -> None:
        self.started_at = time.monotonic()
        self._loop = asyncio.get_running_loop()
        raise_fd_limit(len(self.specs) + 1000)
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/notify", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self.agents = [SimAgent(self, spec, i) for i, spec in enumerate(self.specs)]
        for agent in self.agents:
            if agent.spec.unreachable:
                continue  # behind NAT: nothing the server could reach
            if agent.spec.offline or agent.spec.fail_mode == "refuse":
                self._reserve(agent)  # a port where nothing listens: connections are refused
            else:
                await self._listen(agent)
        if self.start_current and self.agents:
            try:
                await self._take_current_components(self.agents[0])
            except (TimeoutError, AgentError, aiohttp.ClientError, PatternError, ValueError) as exc:
                if self.strict:
                    raise
                logger.warning("fleet: could not fetch the current components (%s); agents start holding none", exc)
        gate = asyncio.Semaphore(concurrency)

        async def start_one(agent: SimAgent) -> None:
            async with gate:
                await agent.start()

        results = await asyncio.gather(*(start_one(a) for a in self.agents), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise RuntimeError(f"{len(failures)} agents failed to start; first: {failures[0]!r}") from failures[0]

    def session_for(self, address: str, *, through_proxy: bool = False) -> aiohttp.ClientSession:
        """The client session whose connections leave from ``address`` (a loopback address in tests).

        ``through_proxy``: a session that never reuses a connection. A proxy
        may close a connection it answered on at any moment without saying so
        (tinyproxy serves one request per connection; squid closes idle ones
        after client_idle_pconn_timeout), and a pooled connection taken up at
        that moment fails the request written on it ("Can not write request
        body", "Server disconnected"). aiohttp sends a GET again by itself, a
        POST never: check-ins and reports were lost. So every request through
        a proxy has a connection of its own; direct ones keep theirs alive.
        """
        key = f"{address} via proxy" if through_proxy else address
        session = self.sessions.get(key)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, local_addr=(address, 0), force_close=through_proxy
            )
            session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))
            self.sessions[key] = session
        return session

    async def _take_current_components(self, probe: SimAgent) -> None:
        """Register ``probe``, download each component's latest full file once, and give every agent those.

        The files go into the fleet's shared store, so 10,000 agents hold one
        copy; the probe's registration is kept (its start does not register
        again, and checks in as after a restart with what it then holds).
        """
        await probe.register(report_versions=False)
        route = await probe.server_route(path="/agent/v1/manifest")
        manifest = await probe._call("GET", "/agent/v1/manifest", route=route)
        for item in manifest["components"]:
            await probe._fetch_component(item, source=SERVER, route=route)
        for agent in self.agents:
            if not agent.spec.holdings:
                agent.versions = dict(probe.versions)
                agent.file_hashes = dict(probe.file_hashes)

    def _bind(self, agent: SimAgent) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = agent.port or (self.port_start + agent.index if self.port_start else 0)
        sock.bind((LISTEN_HOST, port))
        agent.port = sock.getsockname()[1]
        return sock

    def _reserve(self, agent: SimAgent) -> None:
        """Bind without listening: the port stays this agent's, and connecting to it is refused."""
        sock = self._bind(agent)
        self._reserved[agent.port] = sock

    async def _listen(self, agent: SimAgent) -> None:
        sock = self._bind(agent)
        sock.listen(128)
        sock.setblocking(False)
        agent.port = sock.getsockname()[1]
        assert self._runner is not None, "the fleet's loop is running"
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._sites[agent.port] = site
        self.by_port[agent.port] = agent

    async def set_fail_mode(self, agent: SimAgent, mode: str | None) -> None:
        """Switch an agent between answering, answering 503 ("error") and refusing connections."""
        if mode == "refuse" and agent.port in self._sites:
            await self._sites.pop(agent.port).stop()
            self._reserve(agent)
        elif mode != "refuse" and agent.port and agent.port not in self._sites:
            reserved = self._reserved.pop(agent.port, None)
            if reserved is not None:
                reserved.close()
            await self._listen(agent)
        agent.fail_mode = mode

    async def _dispatch(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        agent = self.by_port.get(sockname[1]) if sockname else None
        if agent is None:
            return web.json_response({"code": "no_agent"}, status=404)
        return await agent.handle_notify(request)

    async def stop(self) -> None:
        await asyncio.gather(*(agent.stop() for agent in self.agents), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        for session in self.sessions.values():
            await session.close()
        self.sessions.clear()
        for sock in self._reserved.values():
            sock.close()
        self._reserved.clear()

    def call(self, fn, *args, timeout: float = 60, **kwargs):
        """From another thread: run ``fn(*args, **kwargs)`` (a coroutine function) in the fleet's loop."""
        assert self._loop is not None, "the fleet was started"
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop).result(timeout=timeout)

    # --- figures -------------------------------------------------------------------------

    def notification_counts(self) -> dict[str, int]:
        """Notifications received per agent (client id), duplicates included."""
        return {a.client_id: a.counters.notifications_received for a in self.agents if a.client_id}

    def agent(self, client_id: str) -> SimAgent:
        return next(a for a in self.agents if a.client_id == str(client_id))

    def totals(self) -> dict[str, Any]:
        totals: dict[str, Any] = {}
        for agent in self.agents:
            for name, value in vars(agent.counters).items():
                totals[name] = totals.get(name, 0) + value
        statuses: dict[str, int] = {}
        for agent in self.agents:
            statuses[agent.status] = statuses.get(agent.status, 0) + 1
        totals["agents"] = len(self.agents)
        totals["statuses"] = statuses
        totals["listeners"] = len(self._sites)
        return totals

    def summary_line(self) -> str:
        t = self.totals()
        status = " ".join(f"{k}={v}" for k, v in sorted(t["statuses"].items()))
        return (
            f"agents {t['agents']} ({status}) | listeners {t['listeners']} | check-ins {t['checkins']} | "
            f"notified {t['notifications_received']} (dup {t['notifications_duplicate']}, "
            f"rejected {t['notifications_rejected']}) | updates {t['updates_ok']} ok / {t['updates_failed']} failed | "
            f"scans {t['scans']} | downloaded {t['bytes_downloaded'] / 1e6:.1f} MB | errors {t['errors']}"
        )


class FleetThread:
    """Run a Fleet in a background thread with its own event loop (for tests and benchmarks).

    ``with FleetThread(server_url=..., enrollment_secret=..., count=3) as fleet:`` starts the
    agents (registered, checked in, configured) and stops them on exit. ``fleet.call(coro_fn,
    *args, **kwargs)`` runs a coroutine function in the fleet's loop and returns its result.
    """

    def __init__(self, **fleet_kwargs):
        self.fleet_kwargs = fleet_kwargs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="agent-fleet", daemon=True)
        self.fleet: Fleet | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def __enter__(self) -> Fleet:
        self.thread.start()

        async def create_and_start() -> Fleet:
            fleet = Fleet(**self.fleet_kwargs)
            self.fleet = fleet
            await fleet.start()
            return fleet

        try:
            fleet = asyncio.run_coroutine_threadsafe(create_and_start(), self.loop).result(timeout=600)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return fleet

    def __exit__(self, *exc) -> None:
        if self.fleet is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.fleet.stop(), self.loop).result(timeout=60)
            except Exception:
                logger.exception("fleet did not stop cleanly")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()
