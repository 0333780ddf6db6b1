#!/usr/bin/env python
"""Agent protocol benchmark: download bytes (incremental vs full) and check-ins per second.

Serves the console with gunicorn as deployed (bench/benchserver.py) on a free loopback port and
measures, in the same run:

1. bytes a reference agent downloads when it is 1 version behind (incremental)
   and when it is 16 versions behind (full file), with the default pattern
   sizes (COMPONENT_PATTERN_* settings);
2. authenticated check-ins per second against the same server's trivial view
   ``GET /agent/v1/ping`` (no auth, no database), same load generator, same
   concurrency; the ratio is the figure (absolute numbers depend on the machine).

Usage (from the project root):

    .venv/bin/python bench/agent_protocol_bench.py [--duration 10] [--concurrency 16] [--workers 2]

With DATABASE_URL set (point it at an empty PostgreSQL database) the server
uses it; otherwise a temporary SQLite file. Everything else lives in a
temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchserver import SECRET, Served, share_settings  # noqa: E402


async def register(session, url: str, n: int) -> list[str]:
    """Registers ``n`` agents; their tokens."""
    return [token for token, _ in await register_with_keys(session, url, n)]


async def register_with_keys(session, url: str, n: int) -> list[tuple[str, str]]:
    """Registers ``n`` agents; each one's token and the id of its signing key (what its heartbeat names)."""
    from agents_app.signing import decode_key, key_id

    agents = []
    for i in range(n):
        body = {
            "enrollment_secret": SECRET,
            "hostname": f"bench-{i}",
            "ip_address": "127.0.0.1",
            "listener_port": 9,
            "domain": "Bench",
        }
        async with session.post(url + "/agent/v1/register", json=body) as response:
            response.raise_for_status()
            answer = await response.json()
            agents.append((answer["token"], key_id(decode_key(answer["signing_key"]))))
    return agents


async def hammer(session, make_request, duration: float, concurrency: int) -> tuple[float, int]:
    """Requests per second over ``duration`` with ``concurrency`` workers; returns (rate, errors)."""
    ok = errors = 0
    stop_at = time.monotonic() + duration

    async def worker(index: int) -> None:
        nonlocal ok, errors
        i = index
        while time.monotonic() < stop_at:
            method, path, kwargs = make_request(i)
            i += concurrency
            async with session.request(method, path, **kwargs) as response:
                await response.read()
                if response.status == 200:
                    ok += 1
                else:
                    errors += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return ok / (time.monotonic() - started), errors


async def ping_and_quiet_checkin(session, url: str):
    """Request makers for ``hammer``: the trivial view, and heartbeats that change nothing.

    64 agents register and report the server's versions and configuration, so
    every heartbeat afterwards is the quiet one a settled fleet sends: the
    reference agent's, naming the signing key it holds (so the answer carries
    none), a body that differs from agent to agent by that field alone.
    """
    agents = await register_with_keys(session, url, 64)
    auth = {"Authorization": f"Bearer {agents[0][0]}"}
    async with session.get(url + "/agent/v1/manifest", headers=auth) as response:
        latest = {c["component"]: c["latest_version"] for c in (await response.json())["components"]}
    async with session.get(url + "/agent/v1/configuration", headers=auth) as response:
        config_version = (await response.json())["config_version"]
    body = {"event": "heartbeat", "component_versions": latest, "config_version": config_version}

    def checkin(i: int):
        token, own_key = agents[i % len(agents)]
        headers = {"Authorization": f"Bearer {token}"}
        return "POST", url + "/agent/v1/checkin", {"json": {**body, "signing_key_id": own_key}, "headers": headers}

    def ping(i: int):
        return "GET", url + "/agent/v1/ping", {}

    return ping, checkin


async def throughput(url: str, duration: float, concurrency: int, rounds: int) -> dict:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        ping, checkin = await ping_and_quiet_checkin(session, url)
        await hammer(session, ping, 1.0, concurrency)  # warm up both paths
        await hammer(session, checkin, 1.0, concurrency)
        results: dict[str, list[float]] = {"ping": [], "checkin": []}
        errors = 0
        # Interleaved rounds, so a noisy neighbour on a shared machine hits both alike.
        for _ in range(rounds):
            for name, make in (("ping", ping), ("checkin", checkin)):
                rate, errs = await hammer(session, make, duration, concurrency)
                results[name].append(rate)
                errors += errs
        return {
            "ping": sum(results["ping"]) / rounds,
            "checkin": sum(results["checkin"]) / rounds,
            "errors": errors,
        }


def download_bytes(url: str) -> dict:
    from agent_api.simulator import AgentSpec, FleetThread
    from updates_app.version_labels import parse_version_label, version_label

    with FleetThread(server_url=url, enrollment_secret=SECRET, specs=[AgentSpec(hostname="probe")]) as fleet:
        probe = fleet.agents[0]
        manifest = fleet.call(probe._call, "GET", "/agent/v1/manifest")
        item = next(c for c in manifest["components"] if c["component"] == "virus_pattern")
        latest = parse_version_label(item["latest_version"])
        path = f"/agent/v1/components/virus_pattern/versions/{version_label(latest - 1)}/full"
        previous = fleet.call(probe._download, path, route=fleet.call(probe.server_route, path=path))
    specs = [
        AgentSpec(hostname="one-behind", holdings={"virus_pattern": previous}),
        AgentSpec(hostname="sixteen-behind", holdings={"virus_pattern": version_label(latest - 16)}),
    ]
    with FleetThread(server_url=url, enrollment_secret=SECRET, specs=specs) as fleet:
        near, far = fleet.agents
        assert fleet.call(near.update, trigger="manual") and fleet.call(far.update, trigger="manual")
        assert near.counters.incremental_downloads == 1 and far.counters.full_downloads == 1
        return {
            "incremental": near.counters.bytes_downloaded,
            "full": far.counters.bytes_downloaded,
            "full_size": item["size"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()

    env = {"AGENT_RATE_LIMIT": "10000000/min", "AGENT_REGISTRATION_RATE_LIMIT": "10000000/min"}
    with Served(database_url=os.environ.get("DATABASE_URL"), workers=args.workers, env=env) as server:
        share_settings(server.env)
        print("setting up: 17 versions of Virus Pattern ...", flush=True)
        server.manage("download_component", "--component", "virus_pattern", "--count", "17")
        server.start()
        url = server.url
        print(
            f"server: gunicorn, {args.workers} workers, {server.database}, {url}; cores: {os.cpu_count()}", flush=True
        )

        sizes = download_bytes(url)
        print(
            f"download, 1 version behind (incremental): {sizes['incremental']:>9} bytes\n"
            f"download, 16 versions behind (full):      {sizes['full']:>9} bytes\n"
            f"incremental / full: {sizes['incremental'] / sizes['full']:.4f} "
            f"({sizes['full'] / sizes['incremental']:.0f}x fewer bytes)",
            flush=True,
        )

        rates = asyncio.run(throughput(url, args.duration, args.concurrency, args.rounds))
        print(
            f"trivial view (GET /agent/v1/ping):  {rates['ping']:8.0f} requests/s\n"
            f"check-in (POST /agent/v1/checkin):  {rates['checkin']:8.0f} requests/s\n"
            f"check-in / trivial view: {rates['checkin'] / rates['ping']:.2f}  "
            f"(concurrency {args.concurrency}, {args.rounds} x {args.duration:.0f}s each, errors {rates['errors']})",
            flush=True,
        )


if __name__ == "__main__":
    main()
