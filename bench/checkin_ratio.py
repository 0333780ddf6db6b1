#!/usr/bin/env python
"""Check-ins against the trivial view, on PostgreSQL and on SQLite, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<throw-away db> REDIS_URL=redis://127.0.0.1:6379/<n> \\
        .venv/bin/python bench/checkin_ratio.py [--duration 10] [--rounds 2] [--concurrency 16] [--workers 2]

For each database (SQLite in a temporary file, with the embedded defaults,
and PostgreSQL when DATABASE_URL names one, with Redis as deployed when
REDIS_URL names one) the console runs under gunicorn as deployed
(deploy/gunicorn.conf.py, ``--workers`` workers) on a free loopback port; 64 agents register through the API and
report the server's component versions and configuration; then the same load
generator, at the same concurrency, alternates rounds of ``GET /agent/v1/ping``
(no authentication, no database) and heartbeats (``POST /agent/v1/checkin``
with each agent's token, changing nothing). The ratio of the two rates is the
figure; issue 16 asks for at least 0.5 on PostgreSQL. Beside it, the CPU
each kind of request cost the server (gunicorn processes plus, on
PostgreSQL, the database backends serving them and Redis), which a busy shared machine
disturbs less than the rates. The check-in loop of
bench/agent_protocol_bench.py (with download sizes) is the same measurement on
one database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_protocol_bench import hammer, ping_and_quiet_checkin
from benchserver import Served, process_cpu_seconds, redis_cpu_seconds


def postgres_backend_pids(database_url: str | None) -> list[int]:
    """The server processes PostgreSQL runs for this database's connections (the gunicorn workers' ones)."""
    if not database_url:
        return []
    import psycopg

    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


async def ratio(server: Served, duration: float, concurrency: int, rounds: int) -> dict:
    url = server.url
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        ping, checkin = await ping_and_quiet_checkin(session, url)
        await hammer(session, ping, 1.0, concurrency)  # warm up both paths
        await hammer(session, checkin, 1.0, concurrency)
        rates: dict[str, list[float]] = {"ping": [], "checkin": []}
        # CPU per request of the gunicorn processes and of PostgreSQL's backends for them: on a
        # shared machine this is steadier than the rates, which other processes' load depresses.
        cpu: dict[str, float] = {"ping": 0.0, "checkin": 0.0}
        database_cpu: dict[str, float] = {"ping": 0.0, "checkin": 0.0}
        requests: dict[str, float] = {"ping": 0.0, "checkin": 0.0}
        backends = postgres_backend_pids(server.database_url)

        def database_seconds() -> float:
            # PostgreSQL's backends and Redis (the rate limits' shared counters), when they serve this server.
            return sum(process_cpu_seconds(pid) for pid in backends) + redis_cpu_seconds(server.redis_url)

        errors = 0
        for _ in range(rounds):  # interleaved, so a noisy neighbour hits both alike
            for name, make in (("ping", ping), ("checkin", checkin)):
                web, database = server.cpu_seconds(), database_seconds()
                rate, errs = await hammer(session, make, duration, concurrency)
                database = database_seconds() - database
                cpu[name] += server.cpu_seconds() - web + database
                database_cpu[name] += database
                requests[name] += rate * duration
                rates[name].append(rate)
                errors += errs
        answer: dict = {name: sum(values) / rounds for name, values in rates.items()}
        answer["cpu_ms"] = {name: cpu[name] / max(1.0, requests[name]) * 1000 for name in cpu}
        answer["database_cpu_ms"] = {name: database_cpu[name] / max(1.0, requests[name]) * 1000 for name in cpu}
        return answer | {"errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-class", choices=["gthread", "sync"], default="gthread", help="gthread as deployed; sync to compare"
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL (needs DATABASE_URL)")
    args = parser.parse_args()

    databases: list[str | None] = [] if args.skip_sqlite else [None]
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        databases.insert(0, os.environ["DATABASE_URL"])
    if not databases:
        parser.error("--skip-sqlite needs DATABASE_URL=postgres://...")
    lines = []
    for database_url in databases:
        with Served(
            database_url=database_url,
            # As deployed: PostgreSQL with Redis (REDIS_URL) for the rate limits; SQLite alone is the embedded default.
            redis_url=os.environ.get("REDIS_URL") if database_url else None,
            workers=args.workers,
            env={"AGENT_RATE_LIMIT": "10000000/min"},
            worker_class=args.worker_class,
        ) as server:
            server.manage("download_component", "--component", "virus_pattern")
            server.start()
            load = os.getloadavg()[0]
            rates = asyncio.run(ratio(server, args.duration, args.concurrency, args.rounds))
        cpu = rates["cpu_ms"]
        line = (
            f"{server.database:10}  ping {rates['ping']:7.0f}/s  check-in {rates['checkin']:7.0f}/s  "
            f"ratio {rates['checkin'] / rates['ping']:.2f}  errors {rates['errors']}  |  server CPU per request: "
            f"ping {cpu['ping']:.2f} ms, check-in {cpu['checkin']:.2f} ms "
            f"(of which the database{' and Redis' if server.redis_url else ''} "
            f"{rates['database_cpu_ms']['checkin']:.2f} ms)  (load average {load:.1f})"
        )
        print(line, flush=True)
        lines.append(line)
    print(
        f"\ngunicorn with deploy/gunicorn.conf.py: {args.workers} {args.worker_class} workers"
        + (f" x {os.environ.get('WEB_THREADS') or 4} threads" if args.worker_class == "gthread" else "")
        + ", "
        f"concurrency {args.concurrency}, "
        f"{args.rounds} x {args.duration:.0f} s per kind, cores {os.cpu_count()}"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
