#!/usr/bin/env python
"""Fan-out benchmark: from a component download to every delivery recorded, against a bare sender.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> REDIS_URL=redis://127.0.0.1:6379/<n> \\
        .venv/bin/python bench/fanout_bench.py --agents 10000 --reset
    ... --rounds 3 --worker-concurrency 2 --notify-concurrency 200 --batch-size 500 --batches-in-flight 8

What it does, all on loopback:
1. starts a fleet of N agent listeners (one process, one port each; every
   notification's signature is checked, as a reference agent does);
2. measures the ceiling: a bare aiohttp sender posting the same signed
   payloads to the same agents, no database, no Celery, with as many
   processes as the worker has (--worker-concurrency) and NOTIFY_CONCURRENCY
   requests in flight in each, kept full from the first request to the last
   (before the engine's first round and after each; the ratio is best to best);
3. starts a real Celery worker (prefork, --worker-concurrency processes; a
   send task keeps at most NOTIFY_CONCURRENCY requests in flight, so the
   engine may have as many in flight as the ceiling) and, --rounds times,
   adds a component version and announces it (component_version_announce):
   the event run is created, the dispatcher claims batches, send tasks post
   them and record the outcomes; the clock stops when no delivery is pending
   or sending any more;
4. prints the settings, notifications/second for the engine and the ceiling
   and their ratio (engine / ceiling: 1.00 would be an engine that costs
   nothing beyond the sending itself), the worker's peak RSS (main process and
   children), and the queries of one send task at two batch sizes (the count
   must not grow with the batch).

The NOTIFY_* options set the environment of this process and of the worker it
starts (defaults: the settings' values, from the environment or built in).
The database named by DATABASE_URL must hold no clients, or pass --reset to
empty the clients, runs and components in it first; the Redis database's
queue is purged: use throw-away ones. Needs PostgreSQL and Redis: the worker
is another process.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# --- The fleet (its own process) -------------------------------------------------


def fleet_main(keys: list[bytes], conn, received) -> None:
    """Listen on one port per key; answer 200 to a notification whose signature checks out."""
    import socket

    from aiohttp import web

    from agents_app.signing import SignatureError, verify

    async def serve() -> None:
        by_port: dict[int, bytes] = {}

        async def notify(request: web.Request) -> web.Response:
            key = by_port[request.transport.get_extra_info("sockname")[1]]
            body = await request.read()
            try:
                verify(key, dict(request.headers), body)
            except SignatureError:
                return web.Response(status=401)
            with received.get_lock():
                received.value += 1
            return web.Response(status=200, text="ok")

        app = web.Application()
        app.router.add_post("/notify", notify)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        ports = []
        for key in keys:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(512)
            sock.setblocking(False)
            site = web.SockSite(runner, sock)
            await site.start()
            port = sock.getsockname()[1]
            by_port[port] = key
            ports.append(port)
        conn.send(ports)
        while not conn.poll():
            await asyncio.sleep(0.2)
        await runner.cleanup()

    asyncio.run(serve())


# --- The ceiling: a bare sender, no database, no Celery -------------------------------


async def bare_send(items: list[tuple[str, bytes, dict]], concurrency: int, timeout: float) -> int:
    """Post every item with ``concurrency`` requests in flight (as a send task's connector); returns the 2xx."""
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    ok = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:

        async def post(url: str, body: bytes, headers: dict) -> None:
            nonlocal ok
            async with gate, session.post(url, data=body, headers=headers) as response:
                await response.read()
                ok += 200 <= response.status < 300

        await asyncio.gather(*(post(*item) for item in items))
    return ok


def sender_main(items: list[tuple[str, bytes, dict]], concurrency: int, timeout: float, go, results) -> None:
    """One sender process: wait for the common start, post its share, report (started, finished, 2xx)."""
    import aiohttp  # noqa: F401 - loaded before the start, not on the clock

    go.wait()
    started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    ok = asyncio.run(bare_send(items, concurrency, timeout))
    results.put((started, time.monotonic(), ok))


def ceiling(
    items: list[tuple[str, bytes, dict]], processes: int, concurrency: int, timeout: float
) -> tuple[float, list[float]]:
    """Seconds for ``processes`` bare senders to post every item between them (first start to last end), and each's.

    The senders are spawned, not forked: by now this process runs threads
    (Celery's control connection, the queue's feeder), and a fork copies
    their locks held.
    """
    context = mp.get_context("spawn")
    go, results = context.Event(), context.Queue()
    senders = [
        context.Process(target=sender_main, args=(items[i::processes], concurrency, timeout, go, results), daemon=True)
        for i in range(processes)
    ]
    for sender in senders:
        sender.start()
    go.set()
    reports = [results.get(timeout=600) for _ in senders]
    for sender in senders:
        sender.join(10)
    ok = sum(r[2] for r in reports)
    assert ok == len(items), f"bare sender: only {ok} of {len(items)} answered 2xx"
    return max(r[1] for r in reports) - min(r[0] for r in reports), [r[1] - r[0] for r in reports]


# --- Helpers ----------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10_000, help="agent listeners, one delivery each (10,000)")
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=2,
        help="the worker's processes, and the ceiling's (2, as the Procfile)",
    )
    parser.add_argument("--notify-concurrency", type=int, help="NOTIFY_CONCURRENCY: requests in flight per process")
    parser.add_argument("--batch-size", type=int, help="NOTIFY_BATCH_SIZE: deliveries per send task")
    parser.add_argument("--batches-in-flight", type=int, help="NOTIFY_MAX_BATCHES_IN_FLIGHT: claimed batches at most")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="engine runs, a new version each, with a ceiling before and after each (3)",
    )
    parser.add_argument("--reset", action="store_true", help="empty clients, runs and components first")
    parser.add_argument("--timeout", type=float, default=600, help="give up waiting after this many seconds")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("Set DATABASE_URL=postgres://... and REDIS_URL=redis://...: the worker is another process.")
    # Before the settings load: they read these, and the worker inherits them.
    for name, value in (
        ("NOTIFY_CONCURRENCY", args.notify_concurrency),
        ("NOTIFY_BATCH_SIZE", args.batch_size),
        ("NOTIFY_MAX_BATCHES_IN_FLIGHT", args.batches_in_flight),
    ):
        if value is not None:
            os.environ[name] = str(value)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from agents_app.models import Client, ConnectionStatus, Domain
    from agents_app.signing import client_signing_key
    from updates_app.components import component_version_announce
    from updates_app.engine.claim import deliveries_claim
    from updates_app.engine.runs import deliveries_create
    from updates_app.engine.sender import outgoing_for
    from updates_app.models import (
        AutoUpdateSettings,
        Component,
        ComponentVersion,
        Delivery,
        DeliveryStatus,
        RolloutPolicy,
        RunTrigger,
        UpdateRun,
    )
    from updates_app.tasks import dispatch_deliveries, send_batch

    call_command("migrate", verbosity=0)
    if args.reset:
        Delivery.objects.all().delete()
        UpdateRun.objects.all().delete()
        Client.objects.all().delete()
        Component.objects.all().delete()
    elif Client.objects.exists():
        sys.exit("The database already holds clients: pass --reset to empty clients, runs and components first.")
    # A download notifies the whole fleet at once only with these two settings
    # (another benchmark may have left them otherwise in a throw-away database).
    auto, policy = AutoUpdateSettings.load(), RolloutPolicy.load()
    if not auto.notify_on_download:
        auto.notify_on_download = True
        auto.save()
        print("Automatic Update: notify on download turned on (it was off in this database)")
    if policy.enabled:
        policy.enabled = False
        policy.save()
        print("staged roll-out turned off (it was on in this database)")
    connection.close()

    load_at_start = os.getloadavg()[0]
    n = args.agents
    processes = args.worker_concurrency
    concurrency = settings.NOTIFY_CONCURRENCY
    in_flight = f"{processes} process{'es' if processes != 1 else ''} x {concurrency} requests in flight"
    print(
        f"settings: {n:,} agents; {in_flight} (NOTIFY_CONCURRENCY {concurrency}); "
        f"NOTIFY_BATCH_SIZE {settings.NOTIFY_BATCH_SIZE}, NOTIFY_MAX_BATCHES_IN_FLIGHT "
        f"{settings.NOTIFY_MAX_BATCHES_IN_FLIGHT}, dispatcher every {settings.NOTIFY_DISPATCH_INTERVAL_SECONDS} s",
        flush=True,
    )
    guids = [str(uuid.uuid4()) for _ in range(n)]
    keys = [client_signing_key(g) for g in guids]
    received = mp.get_context("fork").Value("l", 0)
    parent_end, child_end = mp.get_context("fork").Pipe()
    fleet = mp.get_context("fork").Process(target=fleet_main, args=(keys, child_end, received), daemon=True)
    fleet.start()
    ports = parent_end.recv()
    print(f"fleet: {n:,} agent listeners on 127.0.0.1 (pid {fleet.pid})", flush=True)

    domain, _ = Domain.objects.get_or_create(name="Benchmark fleet")
    Client.objects.bulk_create(
        [
            Client(
                guid=guid,
                domain=domain,
                hostname=f"bench-{i:05d}",
                ip_address="127.0.0.1",
                listener_port=port,
                status=ConnectionStatus.ONLINE,
            )
            for i, (guid, port) in enumerate(zip(guids, ports, strict=True))
        ],
        batch_size=2000,
    )

    # 1. The ceiling: the same signed payloads, bare senders, as many requests in flight as the worker may have.
    def ceiling_round() -> float:
        # Signed afresh each round (off the clock): agents refuse a signature
        # older than a few minutes, and the rounds take longer than that.
        items = []
        for i, (guid, port) in enumerate(zip(guids, ports, strict=True)):
            out = outgoing_for(
                delivery_id=i + 1, run_id=1, scan_after=False, client_guid=guid, ip_address="127.0.0.1", port=port
            )
            items.append((out.url, out.body, out.headers))
        seconds, each = ceiling(items, processes, concurrency, settings.NOTIFY_TIMEOUT_SECONDS)
        senders = ", ".join(f"{t:.2f} s" for t in each)
        print(
            f"ceiling: {n:,} notifications in {seconds:.2f} s = {n / seconds:,.0f}/s (each sender: {senders})",
            flush=True,
        )
        return n / seconds

    # 2. The engine, end to end through a real worker: one new version a round.
    peak = {"main": 0.0, "children": 0.0, "total": 0.0}

    def engine_round(component: Component, number: int) -> float:
        received.value = 0
        marks: dict[float, float] = {}
        started = time.perf_counter()
        version = ComponentVersion.objects.create(
            component=component, number=number, sha256="0" * 64, released_at=timezone.now()
        )
        # As the components service does: after commit.
        component_version_announce(version=version)
        created = time.perf_counter() - started
        run = UpdateRun.objects.get(component_version=version)
        next_beat = time.monotonic() + settings.NOTIFY_DISPATCH_INTERVAL_SECONDS
        while True:
            main_rss = rss_mb(worker.pid)
            child_rss = sum(rss_mb(c) for c in children_of(worker.pid))
            peak["main"] = max(peak["main"], main_rss)
            peak["children"] = max(peak["children"], child_rss)
            peak["total"] = max(peak["total"], main_rss + child_rss)
            open_rows = run.deliveries.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING]).count()
            done_share = 1 - open_rows / n
            for mark in (0.01, 0.5, 0.9):
                if done_share >= mark and mark not in marks:
                    marks[mark] = time.perf_counter() - started
            if open_rows == 0:
                break
            if time.monotonic() >= next_beat:  # stand in for beat
                dispatch_deliveries.delay()
                next_beat += settings.NOTIFY_DISPATCH_INTERVAL_SECONDS
            if time.perf_counter() - started > args.timeout:
                sys.exit(f"timed out with {open_rows} deliveries open")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        delivered = run.deliveries.filter(status=DeliveryStatus.DELIVERED).count()
        print(
            f"engine: {n:,} deliveries from download to recorded in {seconds:.2f} s = {n / seconds:,.0f}/s "
            f"(run and {n:,} rows created in {created:.2f} s; {delivered:,} delivered; agents saw {received.value:,})"
        )
        print("  recorded: " + ", ".join(f"{int(m * 100)}% after {t:.2f} s" for m, t in sorted(marks.items())))
        if 0.01 in marks and 0.9 in marks and marks[0.9] > marks[0.01]:
            print(f"  from 1% to 90% recorded: {0.89 * n / (marks[0.9] - marks[0.01]):,.0f}/s", flush=True)
        return n / seconds

    # The machine is shared: the ceiling is measured before the first round
    # and after each, and the best of each side is compared, so noise never
    # flatters the engine (nor the ceiling).
    ceilings = [ceiling_round()]
    engines = []
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "fanout-bench-worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "console",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(processes),
            "--loglevel",
            "WARNING",
            "-n",
            f"bench-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        from console.celery import app

        app.control.purge()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not app.control.ping(timeout=0.5):
            pass
        component = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
        for number in range(1, args.rounds + 1):
            print(f"round {number} of {args.rounds}", flush=True)
            engines.append(engine_round(component, number))
            ceilings.append(ceiling_round())
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()

    def rates(values: list[float]) -> str:
        return f"best {max(values):,.0f}/s of {len(values)} (" + ", ".join(f"{v:,.0f}" for v in values) + ")"

    print()
    print(f"ceiling (bare aiohttp sender, {in_flight}, no database): {rates(ceilings)}")
    print(f"engine  (Celery prefork worker, {in_flight}, download to recorded): {rates(engines)}")
    print(f"ratio engine / ceiling, best to best: {max(engines) / max(ceilings):.2f}")
    # The ratio moves with the load (a starved machine squeezes both sides): quote it with the load.
    print(
        f"load average (1 min): {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} now ({os.cpu_count()} cores)"
    )
    print(
        f"worker peak RSS: main {peak['main']:.0f} MB, {processes} pool processes "
        f"{peak['children']:.0f} MB, total {peak['total']:.0f} MB"
    )

    # 3. Queries of one send task, at two batch sizes.
    def queries_for(size: int) -> tuple[int, int]:
        extra = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
        first = Client.objects.order_by("pk").values_list("pk", flat=True)[:size]
        deliveries_create(run=extra, clients=Client.objects.filter(pk__in=list(first)))
        with CaptureQueriesContext(connection) as claim_queries:
            claim = deliveries_claim(limit=size)
        with CaptureQueriesContext(connection) as send_queries:
            send_batch(claim.token)
        return len(claim_queries.captured_queries), len(send_queries.captured_queries)

    for size in (100, min(1000, n)):
        claim_q, send_q = queries_for(size)
        print(f"batch of {size}: claim {claim_q} queries, send task {send_q} queries")
    parent_end.send("stop")
    fleet.join(10)


if __name__ == "__main__":
    main()
