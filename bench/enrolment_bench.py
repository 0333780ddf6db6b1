#!/usr/bin/env python
"""Enrolment at fleet speed: registrations per second through the API, and a reference fleet's start-up.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<throw-away db> REDIS_URL=redis://127.0.0.1:6379/<n> \\
        .venv/bin/python bench/enrolment_bench.py [--registrations 1000] [--concurrency 16] [--fleet 10000]

Against gunicorn as deployed (deploy/gunicorn.conf.py, 2 workers; Redis for the rate limits and the
broker when REDIS_URL is set) on a free loopback port:

1. ``--registrations`` agents register through ``POST /agent/v1/register`` at
   ``--concurrency``; a tenth of them name new domains, ten registrations per
   new name at once, so the advisory lock that keeps two registrations from
   creating one domain twice is exercised; afterwards every new name must exist
   exactly once and every registration must have succeeded;
2. ``--fleet`` reference agents (agent_api.simulator, each with its own
   listener on 127.0.0.1) start: one registration each that reports what the
   agent holds, which is also its restart check-in and answers its
   configuration. The clock stops when all have started. A Virus Pattern is
   downloaded first when the server holds no component, so the restart
   check-in has something to be behind on; ``--start-behind`` starts the agents
   holding nothing (each then downloads the full file at its restart), as the
   reference agent did before issue 16.

The whole fleet registers from one address, so the server runs with a
registration rate limit that lets it (AGENT_REGISTRATION_RATE_LIMIT is per
address). Without DATABASE_URL a temporary SQLite file is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchserver import SECRET, Served, share_settings


async def register_many(url: str, count: int, concurrency: int, tag: str) -> tuple[float, int, set[str]]:
    """(registrations per second, errors, the new domain names used)."""
    errors = 0
    new_domains: set[str] = set()
    next_index = 0

    def body(i: int) -> dict:
        domain = "Bench"
        if i % 10 == 0:
            # Ten registrations in a row name the same new domain: they run at once.
            domain = f"Branch {tag} {i // 100}"
            new_domains.add(domain)
        return {
            "enrollment_secret": SECRET,
            "hostname": f"enrol-{tag}-{i:06d}",
            "ip_address": f"127.20.{(i // 250) % 250}.{1 + i % 250}",
            "listener_port": 9,
            "domain": domain,
        }

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, next_index
        while next_index < count:
            i = next_index
            next_index += 1
            async with session.post(url + "/agent/v1/register", json=body(i)) as response:
                await response.read()
                if response.status != 201:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return (count - errors) / elapsed, errors, new_domains


async def start_fleet(url: str, count: int, start_current: bool) -> tuple[float, int]:
    from agent_api.simulator import Fleet

    fleet = Fleet(
        server_url=url,
        enrollment_secret=SECRET,
        count=count,
        seed=int(time.time()),
        domain="Fleet",
        start_current=start_current,
    )
    started = time.monotonic()
    try:
        await fleet.start()
        elapsed = time.monotonic() - started
        return elapsed, fleet.totals()["errors"]
    finally:
        await fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registrations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fleet", type=int, default=10000, help="reference agents to start (0: skip)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-class", choices=["gthread", "sync"], default="gthread", help="gthread as deployed; sync to compare"
    )
    parser.add_argument(
        "--start-behind",
        action="store_true",
        help="the fleet's agents start holding no component (the reference agent before issue 16)",
    )
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL")
    env = {"AGENT_REGISTRATION_RATE_LIMIT": "10000000/min", "AGENT_RATE_LIMIT": "10000000/min"}
    with Served(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL"),
        workers=args.workers,
        env=env,
        worker_class=args.worker_class,
    ) as server:
        share_settings(server.env)
        import django

        django.setup()
        from agents_app.models import Domain
        from updates_app.models import Component

        server.start()
        print(
            f"server: gunicorn, {args.workers} {args.worker_class} workers, {server.database}, {server.url}; cores: {os.cpu_count()}"
        )
        print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
        if args.registrations:
            tag = uuid.uuid4().hex[:6]
            cpu = server.cpu_seconds()
            rate, errors, new_domains = asyncio.run(
                register_many(server.url, args.registrations, args.concurrency, tag)
            )
            cpu = server.cpu_seconds() - cpu
            created = {name: Domain.objects.filter(name=name).count() for name in new_domains}
            twice = sorted(name for name, n in created.items() if n != 1)
            print(
                f"registrations: {args.registrations} at concurrency {args.concurrency}: {rate:.0f}/s, "
                f"errors {errors}, server CPU {cpu:.1f} s; new domains {len(new_domains)} "
                f"(10 concurrent registrations each), created exactly once: {len(new_domains) - len(twice)}"
                + (f" -- NOT ONCE: {twice}" if twice else ""),
                flush=True,
            )
        if args.fleet:
            if not Component.objects.exists():
                server.manage("download_component", "--component", "virus_pattern")
            server_cpu, fleet_cpu = server.cpu_seconds(), time.process_time()
            elapsed, errors = asyncio.run(start_fleet(server.url, args.fleet, not args.start_behind))
            server_cpu, fleet_cpu = server.cpu_seconds() - server_cpu, time.process_time() - fleet_cpu
            holding = "no components" if args.start_behind else "the current components"
            print(
                f"reference fleet of {args.fleet} starting with {holding}: started in {elapsed:.1f} s "
                f"({args.fleet / elapsed:.0f} agents/s), errors {errors}; CPU: server {server_cpu:.1f} s, "
                f"fleet {fleet_cpu:.1f} s",
                flush=True,
            )
        print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
