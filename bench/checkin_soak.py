#!/usr/bin/env python
"""Soak: 100,000 agents checking in at the default heartbeat against gunicorn and PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<throw-away db> REDIS_URL=redis://127.0.0.1:6379/<n> \\
        .venv/bin/python bench/checkin_soak.py [--agents 100000] [--seconds 300] [--workers 2]

1. Inserts ``--agents`` registered clients in bulk (replacing the soak clients
   of an earlier run): known bearer tokens, addresses in 127.0.0.0/8 on a
   port where nothing listens, reporting the server's current component
   versions and configuration, each last seen at a random moment of the last
   heartbeat interval: a fleet in its steady state.
2. Serves the console with gunicorn as deployed (deploy/gunicorn.conf.py, ``--workers`` workers; Redis
   for the rate limits when REDIS_URL is set) with the production defaults for the heartbeat (the
   interval comes from the server's own answer) and the per-client rate limit.
3. A poll-only load generator (no listeners) holding every token sends each
   agent's heartbeat one interval after its last contact, then every interval,
   for ``--seconds``; the offered rate is agents / heartbeat.
4. Prints, every 30 seconds and at the end: check-ins done, offered and
   achieved rate, latency p50/p99/max (request sent to answer read), errors
   (anything but 200, or no answer within 30 s), and the CPU the gunicorn
   processes used (utime + stime from /proc, as a share of one core), with the
   machine's load average for context.

Target (issue 16): p99 under 500 ms and no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import os
import random
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchserver import Served, percentile, share_settings

HOST_PREFIX = "soak-"
DOMAIN = "Soak"


def token_for(index: int) -> str:
    return hashlib.sha256(f"checkin-soak-token:{index}".encode()).hexdigest()


def address_for(index: int) -> str:
    # 127.64.0.1 .. 127.65.134.160 for 100,000 agents: loopback only.
    return f"127.{64 + index // 62500}.{(index // 250) % 250}.{1 + index % 250}"


def seed_fleet(count: int, heartbeat: int, seed: int) -> tuple[dict[str, str], str, list[float], list[str]]:
    """Insert the soak clients; returns (their reported versions, their config version, seconds since last
    contact, the id of each one's signing key, which its heartbeat names as the reference agent's does)."""
    import datetime as dt

    from django.db import connection, transaction
    from django.utils import timezone

    from agent_api.authentication import token_digest
    from agents_app.models import Client, ConnectionStatus, Domain
    from agents_app.services import domain_create
    from agents_app.signing import client_signing_key, key_id
    from updates_app.components import component_download, component_resolve
    from updates_app.configuration import ConfigurationBuilder
    from updates_app.models import ComponentVersion, Delivery

    if not ComponentVersion.objects.exists():
        component_download(component=component_resolve("virus_pattern"))
    latest: dict[str, str] = {}
    for version in ComponentVersion.objects.select_related("component").order_by("component_id", "-number"):
        latest.setdefault(version.component.slug, version.label)

    with transaction.atomic():
        old = Client.objects.filter(hostname__startswith=HOST_PREFIX)
        Delivery.objects.filter(client__in=old).delete()
        old.delete()
    domain = Domain.objects.filter(name=DOMAIN, parent=None).first() or domain_create(name=DOMAIN)
    settings_values = domain.settings_dict()
    config_version = ConfigurationBuilder().version_of_values(settings_values)

    rng = random.Random(seed)
    now = timezone.now()
    ages = [rng.uniform(0, heartbeat) for _ in range(count)]
    batch = []
    for i in range(count):
        batch.append(
            Client(
                domain=domain,
                hostname=f"{HOST_PREFIX}{i:06d}",
                ip_address=address_for(i),
                listener_port=9,  # discard: nothing listens, nothing is pushed during the soak
                status=ConnectionStatus.ONLINE,
                last_contact_at=now - dt.timedelta(seconds=ages[i]),
                token_hash=token_digest(token_for(i)),
                component_versions=latest,
                config_version=config_version,
                **settings_values,
            )
        )
        if len(batch) == 5000:
            Client.objects.bulk_create(batch)
            batch = []
    if batch:
        Client.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE agents_app_client")
    guids = Client.objects.filter(hostname__startswith=HOST_PREFIX).order_by("hostname").values_list("guid", flat=True)
    key_ids = [key_id(client_signing_key(str(guid))) for guid in guids]
    return latest, config_version, ages, key_ids


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.window: list[float] = []
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.late_max = 0.0
        self.config_changed = 0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def soak(
    url: str, count: int, heartbeat: float, ages: list[float], seconds: float, body: dict, key_ids: list[str], server
) -> Stats:
    stats = Stats()
    started = time.monotonic()
    stop_at = started + seconds
    # Each agent is due one heartbeat after its last contact, then every heartbeat.
    due = [(started + heartbeat - ages[i], i) for i in range(count)]
    heapq.heapify(due)
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=30)
    in_flight: set[asyncio.Task] = set()

    async def checkin(index: int, scheduled: float) -> None:
        headers = {"Authorization": f"Bearer {token_for(index)}"}
        sent = time.monotonic()
        stats.late_max = max(stats.late_max, sent - scheduled)
        try:
            own = {**body, "signing_key_id": key_ids[index]}
            async with session.post(url + "/agent/v1/checkin", json=own, headers=headers) as response:
                data = await response.json(content_type=None)
                if response.status != 200:
                    stats.error(f"http {response.status} {data.get('code', '')}")
                    return
                if data.get("config_changed"):
                    stats.config_changed += 1
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            stats.error(type(exc).__name__)
            return
        elapsed = time.monotonic() - sent
        stats.latencies.append(elapsed)
        stats.window.append(elapsed)

    async def report_every(period: float) -> None:
        cpu_before, at_before, done_before = server.cpu_seconds(), time.monotonic(), 0
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            cpu_now, done = server.cpu_seconds(), len(stats.latencies)
            window = sorted(stats.window)
            stats.window = []
            print(
                f"[{now - started:5.0f}s] check-ins {done:7d} ({(done - done_before) / (now - at_before):5.0f}/s) "
                f"p50 {percentile(window, 0.5) * 1000:6.1f} ms p99 {percentile(window, 0.99) * 1000:6.1f} ms "
                f"errors {stats.errors} | gunicorn CPU {(cpu_now - cpu_before) / (now - at_before) * 100:5.1f}% "
                f"of a core | load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            cpu_before, at_before, done_before = cpu_now, now, done

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        reporter = asyncio.ensure_future(report_every(30.0))
        while due and due[0][0] < stop_at:
            when, index = due[0]
            delay = when - time.monotonic()
            if delay > 0:
                await asyncio.sleep(min(delay, 0.05))
                continue
            heapq.heappop(due)
            task = asyncio.ensure_future(checkin(index, when))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            heapq.heappush(due, (when + heartbeat, index))
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=35)
        reporter.cancel()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a throw-away PostgreSQL database (the soak replaces its soak clients).")
    if not 1 <= args.agents <= 250_000:
        raise SystemExit("--agents must be between 1 and 250000")

    # The server runs on its defaults: no heartbeat or rate-limit overrides.
    overrides = dict.fromkeys(("AGENT_HEARTBEAT_SECONDS", "AGENT_OFFLINE_AFTER_SECONDS", "AGENT_RATE_LIMIT"), "")
    with Served(
        database_url=database_url, redis_url=os.environ.get("REDIS_URL"), workers=args.workers, env=overrides
    ) as server:
        share_settings(server.env)
        for name in overrides:
            os.environ.pop(name, None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
        import django

        django.setup()
        from django.conf import settings

        heartbeat = settings.AGENT_HEARTBEAT_SECONDS
        print(f"seeding {args.agents} agents (heartbeat {heartbeat} s) ...", flush=True)
        began = time.monotonic()
        versions, config_version, ages, key_ids = seed_fleet(args.agents, heartbeat, args.seed)
        print(f"seeded in {time.monotonic() - began:.0f} s; versions {versions}", flush=True)
        server.start()
        print(
            f"server: gunicorn, {args.workers} workers, PostgreSQL, {server.url}; cores {os.cpu_count()}; "
            f"offered {args.agents / heartbeat:.0f} check-ins/s for {args.seconds:.0f} s",
            flush=True,
        )
        body = {"event": "heartbeat", "component_versions": versions, "config_version": config_version}
        cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
        stats = asyncio.run(soak(server.url, args.agents, heartbeat, ages, args.seconds, body, key_ids, server))
        cpu, wall = server.cpu_seconds() - cpu_before, time.monotonic() - wall_before
    latencies = sorted(stats.latencies)
    print(
        f"\nsoak: {args.agents} agents, heartbeat {heartbeat} s, {args.seconds:.0f} s: "
        f"{len(latencies)} check-ins ({len(latencies) / args.seconds:.0f}/s, offered {args.agents / heartbeat:.0f}/s)\n"
        f"latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000 if latencies else float('nan'):.1f} ms; "
        f"errors {stats.errors} {stats.error_kinds or ''}; told of a new configuration {stats.config_changed}\n"
        f"gunicorn CPU {cpu:.1f} s over {wall:.0f} s = {cpu / wall * 100:.1f}% of one core "
        f"({cpu / max(1, len(latencies)) * 1000:.2f} ms per check-in); generator late by at most "
        f"{stats.late_max * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
