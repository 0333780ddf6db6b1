#!/usr/bin/env python
"""Check-ins against the trivial view, on PostgreSQL and on SQLite, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<throw-away db> REDIS_URL=redis://127.0.0.1:6379/<n> \\
        .venv/bin/python bench/checkin_ratio.py [--duration 10] [--rounds 2] [--concurrency 16] [--workers 2] \\
        [--against /tmp/before]

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

``--against CHECKOUT`` compares two versions of the code in one run: the
other checkout (``git worktree add /tmp/before <commit>``, its ``.venv`` this
one's) is served beside this one, from its own ``bench/benchserver.py``, and
the rounds alternate between the two (in turn first), so a busy machine's
load falls on both alike. The two share the PostgreSQL database (their
migrations must agree) and Redis; each has its own agents.

How the server's CPU is counted, whatever its processes and connections do:

- gunicorn: the master's own CPU, the CPU of the workers it has reaped (its
  children's, from /proc) and that of the workers running now, so a worker
  that is replaced keeps its CPU in the sum;
- PostgreSQL: a backend's CPU can be read only while it runs, and Django
  reconnects (``CONN_MAX_AGE``, 60 s: a new backend per thread every minute),
  so a list of backends taken once and read before and after a round counted
  a backend that ended as losing all its CPU (a negative figure) and never
  counted one that started. Instead a thread samples the database's backends
  every ``SAMPLE_SECONDS`` during a round and keeps, per backend (its pid and
  start time, so a reused pid is another backend), the CPU it had when the
  round began (0 for one started since) and the last CPU read; the round's
  figure is the sum of last minus first. A backend that ends loses only what
  it used after its last sample, at most ``SAMPLE_SECONDS`` of CPU, and the
  output says how many ended. The sampler's own backend is not counted;
- Redis: the server's own counters (it never restarts during a run).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_protocol_bench import hammer, ping_and_quiet_checkin
from benchserver import CLOCK_TICKS, Served, child_pids, redis_cpu_seconds

SAMPLE_SECONDS = 0.05


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 first), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def gunicorn_cpu_seconds(server: Served) -> float:
    """CPU used so far by the master, the workers it reaped and the workers running now."""
    if server.process is None:
        return 0.0
    master = _stat(server.process.pid)
    if master is None:
        return 0.0
    # utime, stime, cutime, cstime: its own and its reaped children's.
    total = sum(int(field) for field in master[11:15])
    for pid in child_pids(server.process.pid):
        worker = _stat(pid)
        if worker is not None:
            total += int(worker[11]) + int(worker[12])
    return total / CLOCK_TICKS


class BackendCPU:
    """CPU of the PostgreSQL backends serving one database during a round, sampled (see the module's docstring)."""

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self._lock = threading.Lock()
        self._first: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], float] = {}
        self._alive: set[tuple[int, int]] = set()
        self._round_started = 0.0
        self._measuring = False
        self._stop = threading.Event()
        self._connection = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackendCPU:
        if self.database_url:
            import psycopg

            self._connection = psycopg.connect(self.database_url, autocommit=True)
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._connection is not None:
            self._connection.close()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            with self._lock:
                if self._measuring:
                    self._sample()

    def _sample(self) -> None:
        assert self._connection is not None
        rows = self._connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        self._alive = set()
        for (pid,) in rows:
            fields = _stat(pid)
            if fields is None:
                continue  # ended since the list was read
            started = int(fields[19]) / CLOCK_TICKS  # seconds after boot
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            key = (pid, int(fields[19]))
            self._alive.add(key)
            if key not in self._first:
                # Running when the round began: count from now. Started since: all of it is the round's.
                self._first[key] = cpu if started < self._round_started else 0.0
            self._last[key] = cpu

    def start(self) -> None:
        with self._lock:
            self._first, self._last = {}, {}
            self._round_started = _uptime()
            if self._connection is not None:
                self._sample()
            self._measuring = True

    def stop(self) -> tuple[float, int]:
        """The round's CPU seconds, and how many backends ended during it."""
        with self._lock:
            self._measuring = False
            if self._connection is None:
                return 0.0, 0
            self._sample()
            ended = len(self._first.keys() - self._alive)
            return sum(self._last[key] - first for key, first in self._first.items()), ended


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


async def ratio(servers: dict[str, Served], duration: float, concurrency: int, rounds: int) -> dict[str, dict]:
    """Per server: the mean rate of each kind of request, the server's CPU per request, errors, backends ended."""
    connector = aiohttp.TCPConnector(limit=concurrency * len(servers))
    async with aiohttp.ClientSession(connector=connector) as session:
        makers = {name: await ping_and_quiet_checkin(session, server.url) for name, server in servers.items()}
        for ping, checkin in makers.values():
            await hammer(session, ping, 1.0, concurrency)  # warm up both paths
            await hammer(session, checkin, 1.0, concurrency)
        kinds = ("ping", "checkin")
        rates: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in kinds} for name in servers}
        # CPU per request of the gunicorn processes and of PostgreSQL's backends for them: on a
        # shared machine this is steadier than the rates, which other processes' load depresses.
        cpu = {name: dict.fromkeys(kinds, 0.0) for name in servers}
        database_cpu = {name: dict.fromkeys(kinds, 0.0) for name in servers}
        requests = {name: dict.fromkeys(kinds, 0.0) for name in servers}
        errors = dict.fromkeys(servers, 0)
        ended = dict.fromkeys(servers, 0)
        database_url = next(iter(servers.values())).database_url
        with BackendCPU(database_url) as backends:
            for round_ in range(rounds):  # interleaved, so a noisy neighbour hits every kind alike
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for name in order:
                    server = servers[name]
                    for kind, make in zip(kinds, makers[name], strict=True):
                        web, redis = gunicorn_cpu_seconds(server), redis_cpu_seconds(server.redis_url)
                        backends.start()
                        rate, errs = await hammer(session, make, duration, concurrency)
                        backend_seconds, backends_ended = backends.stop()
                        # PostgreSQL's backends and Redis (the rate limits' shared counters), when they serve it.
                        database = backend_seconds + redis_cpu_seconds(server.redis_url) - redis
                        cpu[name][kind] += gunicorn_cpu_seconds(server) - web + database
                        database_cpu[name][kind] += database
                        requests[name][kind] += rate * duration
                        rates[name][kind].append(rate)
                        errors[name] += errs
                        ended[name] += backends_ended
    answers = {}
    for name in servers:
        answer: dict = {kind: sum(values) / rounds for kind, values in rates[name].items()}
        answer["cpu_ms"] = {kind: cpu[name][kind] / max(1.0, requests[name][kind]) * 1000 for kind in kinds}
        answer["database_cpu_ms"] = {
            kind: database_cpu[name][kind] / max(1.0, requests[name][kind]) * 1000 for kind in kinds
        }
        answers[name] = answer | {"errors": errors[name], "backends_ended": ended[name]}
    return answers


def _served_class(checkout: Path) -> type[Served]:
    """The other checkout's own ``Served`` (its gunicorn configuration, its code)."""
    spec = importlib.util.spec_from_file_location("benchserver_against", checkout / "bench" / "benchserver.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"{checkout}: no bench/benchserver.py")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Served


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
    parser.add_argument("--against", type=Path, metavar="CHECKOUT", help="also serve this checkout, rounds alternating")
    args = parser.parse_args()

    databases: list[str | None] = [] if args.skip_sqlite else [None]
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        databases.insert(0, os.environ["DATABASE_URL"])
    if not databases:
        parser.error("--skip-sqlite needs DATABASE_URL=postgres://...")
    checkouts: dict[str, type[Served]] = {str(Path(__file__).resolve().parent.parent): Served}
    if args.against:
        checkouts[str(args.against.resolve())] = _served_class(args.against.resolve())
    lines = []
    for database_url in databases:
        with ExitStack() as stack:
            servers = {}
            for checkout, served in checkouts.items():
                server = stack.enter_context(
                    served(
                        database_url=database_url,
                        # As deployed: PostgreSQL with Redis (REDIS_URL) for the rate limits; SQLite alone is the
                        # embedded default.
                        redis_url=os.environ.get("REDIS_URL") if database_url else None,
                        workers=args.workers,
                        env={"AGENT_RATE_LIMIT": "10000000/min"},
                        worker_class=args.worker_class,
                    )
                )
                server.manage("download_component", "--component", "virus_pattern")
                server.start()
                servers[checkout] = server
            load = os.getloadavg()[0]
            results = asyncio.run(ratio(servers, args.duration, args.concurrency, args.rounds))
        for checkout, rates in results.items():
            cpu = rates["cpu_ms"]
            server = servers[checkout]
            line = (
                f"{server.database:10}  ping {rates['ping']:7.0f}/s  check-in {rates['checkin']:7.0f}/s  "
                f"ratio {rates['checkin'] / rates['ping']:.2f}  errors {rates['errors']}  |  server CPU per request: "
                f"ping {cpu['ping']:.2f} ms, check-in {cpu['checkin']:.2f} ms "
                f"(of which the database{' and Redis' if server.redis_url else ''} "
                f"{rates['database_cpu_ms']['checkin']:.2f} ms; backends that ended: {rates['backends_ended']})  "
                f"(load average {load:.1f})" + (f"  {checkout}" if len(checkouts) > 1 else "")
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
