"""Benchmark: planning a Daily/Weekly window, and the flatness of the spread.

    .venv/bin/python bench/schedule_bench.py                       # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/NAME .venv/bin/python bench/schedule_bench.py

It creates a throw-away test database (test_NAME on PostgreSQL), a fleet made
with bulk_create, and prints for 10,000 and 100,000 eligible clients the time
and memory of ``schedule_window_plan`` (one run + one delivery per client),
next to a plain ``bulk_create`` of the same rows as a baseline measured in the
same run; then the busiest-minute / mean-minute ratio of the spread beside the
same figure for independent uniform draws. Targets: < 2 s and < 200 MB at
100,000 clients; ratio <= 1.05.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

SIZES = (10_000, 100_000)
T0 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)


def make_fleet(count: int) -> None:
    from agents_app.models import Client, ConnectionStatus, Domain

    Client.objects.all().delete()
    domain = Domain.objects.first() or Domain.objects.create(name="Bench")
    batch = 10_000
    for first in range(0, count, batch):
        Client.objects.bulk_create(
            [
                Client(
                    domain=domain,
                    hostname=f"host-{i:06d}",
                    ip_address=f"127.{1 + i // 65536 % 254}.{i // 256 % 256}.{i % 256}",
                    listener_port=9,  # the discard port: nothing listens there
                    status=ConnectionStatus.ONLINE,
                    scheduled_update_privilege=True,
                    scheduled_update_setting=True,
                )
                for i in range(first, min(first + batch, count))
            ],
            batch_size=batch,
        )


def clear_runs() -> None:
    from updates_app.models import Delivery, UpdateRun

    # Raw deletes: the ORM's delete() may load every row to send signals.
    Delivery.objects.all()._raw_delete(Delivery.objects.db)
    UpdateRun.objects.all()._raw_delete(UpdateRun.objects.db)


def plan_window(index: int) -> int:
    from updates_app.engine.planner import schedule_window_plan
    from updates_app.engine.windows import Window
    from updates_app.models import Delivery

    window = Window(key=f"daily:bench-{index}", start=T0, end=T0 + dt.timedelta(hours=2))
    run = schedule_window_plan(window=window, now=T0, rng=random.Random(index))
    return Delivery.objects.filter(run=run).count()


def plan_window_superseding(index: int) -> int:
    """Like plan_window, while yesterday's run still holds an open delivery for every client (the worst case)."""
    from updates_app.models import Delivery, DeliveryStatus, UpdateRun

    older = UpdateRun.objects.get(window_key="daily:bench-older")
    rows = plan_window(index)
    assert Delivery.objects.filter(run=older, status=DeliveryStatus.SUPERSEDED).count() == rows
    return rows


def baseline_bulk_create(index: int) -> int:
    """The obvious way: fetch the clients, one Delivery object each, bulk_create with Django's default batching."""
    from updates_app.engine.planner import schedule_eligible_clients
    from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

    rng = random.Random(index)
    run = UpdateRun.objects.create(trigger=RunTrigger.SCHEDULE, window_key=f"daily:baseline-{index}")
    ids = list(schedule_eligible_clients().values_list("pk", flat=True))
    Delivery.objects.bulk_create(
        [
            Delivery(
                run=run,
                client_id=pk,
                status=DeliveryStatus.PENDING,
                next_attempt_at=T0 + dt.timedelta(seconds=rng.uniform(0, 7200)),
            )
            for pk in ids
        ]
    )
    return Delivery.objects.filter(run=run).count()


def child_main(mode: str, index: int) -> None:
    """Run one measured call in this fresh process and print "seconds peak_mb max_rss_mb rows"."""
    settings.DATABASES["default"]["NAME"] = os.environ["BENCH_DB_NAME"]
    func = {"plan": plan_window, "supersede": plan_window_superseding, "baseline": baseline_bulk_create}[mode]
    clear_runs()
    if mode == "supersede":
        from updates_app.engine.planner import schedule_window_plan
        from updates_app.engine.windows import Window

        start = T0 - dt.timedelta(days=1)
        schedule_window_plan(window=Window(key="daily:bench-older", start=start, end=T0), now=start)
    if connection.vendor == "sqlite":
        # Start from a checkpointed file, not behind the previous run's write-ahead log.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE updates_app_delivery")
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    traced = os.environ.get("BENCH_TRACE") == "1"
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    rows = func(index)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 1e6 if traced else 0.0
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clear_runs()
    print(f"{seconds} {peak} {rss_before} {rss_after} {rows}")


REPEATS = 3


def measure(mode: str, index: int, db_name: str) -> dict[str, float]:
    """Time in fresh processes (best and median of REPEATS: the machine is shared), traced peak in another."""
    figures: dict[str, float] = {}
    timings: list[float] = []
    for trace in ["0"] * REPEATS + ["1"]:
        env = {**os.environ, "BENCH_DB_NAME": db_name, "BENCH_TRACE": trace}
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(index)], env=env, capture_output=True, text=True, check=True
        )
        seconds, peak, rss_before, rss_after, rows = (float(x) for x in out.stdout.split()[-5:])
        if trace == "0":
            timings.append(seconds)
            figures.update(rss_before=rss_before, rss_after=max(rss_after, figures.get("rss_after", 0)), rows=rows)
        else:
            figures["traced_peak"] = peak
    figures["seconds"] = min(timings)
    figures["median"] = statistics.median(timings)
    return figures


def flatness() -> None:
    from updates_app.engine.spread import per_minute_counts, spread_offsets

    count, duration = 10_000, 7200.0
    rng = random.Random(7)
    spread = per_minute_counts(spread_offsets(count, duration_seconds=duration, rng=rng), duration_seconds=duration)
    uniform = per_minute_counts([rng.uniform(0, duration) for _ in range(count)], duration_seconds=duration)
    mean = count / (duration / 60)
    print(f"\nFlatness, {count:,} clients over 2 hours (mean {mean:.1f} per minute):")
    print(f"  spread (shuffled even slots): busiest minute {max(spread)}, busiest/mean = {max(spread) / mean:.3f}")
    print(f"  independent uniform draws:    busiest minute {max(uniform)}, busiest/mean = {max(uniform) / mean:.3f}")


def main() -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        # A file, not :memory:, so the figures include real writes and child processes share it.
        db.setdefault("TEST", {})["NAME"] = os.path.join(tempfile.mkdtemp(prefix="schedule-bench-"), "bench.sqlite3")
    original_name = db["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(
            f"Database: {connection.vendor}; Python {sys.version.split()[0]}; each figure from a fresh process; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        times = {}
        for count in SIZES:
            make_fleet(count)
            connection.close()
            plan = measure("plan", count, test_name)
            base = measure("baseline", count, test_name)
            worst = measure("supersede", count, test_name)
            assert plan["rows"] == count, plan
            times[count] = plan["seconds"]
            print(
                f"{count:>7,} clients: schedule_window_plan best {plan['seconds']:.2f} s (median {plan['median']:.2f}), "
                f"traced peak {plan['traced_peak']:.0f} MB, process max RSS {plan['rss_after']:.0f} MB "
                f"({plan['rss_before']:.0f} MB before planning) | "
                f"baseline bulk_create best {base['seconds']:.2f} s (median {base['median']:.2f}), traced peak {base['traced_peak']:.0f} MB, "
                f"max RSS {base['rss_after']:.0f} MB"
            )
            print(
                f"{'':>7}          with an open delivery of an older run to supersede for every client: "
                f"best {worst['seconds']:.2f} s (median {worst['median']:.2f}), traced peak {worst['traced_peak']:.0f} MB"
            )
        small, large = SIZES
        print(
            f"Growth {small:,} -> {large:,} clients (x{large // small} clients): "
            f"plan time x{times[large] / times[small]:.1f}"
        )
        flatness()
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
