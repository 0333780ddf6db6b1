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
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

import django  # noqa: E402

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
                    ip_address=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
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

    Delivery.objects.all().delete()
    UpdateRun.objects.all().delete()


def plan_window(index: int) -> int:
    from updates_app.models import Delivery
    from updates_app.scheduling import schedule_window_plan
    from updates_app.windows import Window

    window = Window(key=f"daily:bench-{index}", start=T0, end=T0 + dt.timedelta(hours=2))
    run = schedule_window_plan(window=window, now=T0, rng=random.Random(index))
    return Delivery.objects.filter(run=run).count()


def baseline_bulk_create(index: int) -> int:
    """The obvious way: fetch the clients, one Delivery object each, bulk_create with Django's default batching."""
    from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun
    from updates_app.scheduling import schedule_eligible_clients

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


def measure(func, index: int) -> tuple[float, float, int]:
    """Seconds (untraced run), peak traced MB (a second, traced run), rows."""
    clear_runs()
    gc.collect()
    started = time.perf_counter()
    rows = func(index)
    seconds = time.perf_counter() - started
    clear_runs()
    gc.collect()
    tracemalloc.start()
    func(index + 1000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 1e6, rows


def flatness() -> None:
    from updates_app.spread import per_minute_counts, spread_offsets

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
        # A file, not :memory:, so the figures include real writes.
        db.setdefault("TEST", {})["NAME"] = os.path.join(tempfile.mkdtemp(prefix="schedule-bench-"), "bench.sqlite3")
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"Database: {connection.vendor}; Python {sys.version.split()[0]}")
        results = {}
        for count in SIZES:
            make_fleet(count)
            base = measure(baseline_bulk_create, count)
            plan = measure(plan_window, count)
            assert plan[2] == count, plan
            results[count] = plan[0]
            print(
                f"{count:>7,} clients: plan {plan[0]:.2f} s, peak {plan[1]:.0f} MB traced | "
                f"baseline bulk_create {base[0]:.2f} s, peak {base[1]:.0f} MB traced"
            )
        small, large = SIZES
        print(
            f"Growth {small:,} -> {large:,} clients (x{large // small}): plan time x{results[large] / results[small]:.1f}"
        )
        print(f"Process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        flatness()
    finally:
        connection.creation.destroy_test_db(db["NAME"], verbosity=0)


if __name__ == "__main__":
    main()
