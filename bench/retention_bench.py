"""Claim, check-in and Update Summary with millions of old delivery rows against none.

Usage (from the project folder; PostgreSQL is the case that matters):

    createdb -h 127.0.0.1 -U postgres bench16b
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench16b .venv/bin/python bench/retention_bench.py
    ... --rows 1000000 --clients 10000 --max-minutes 20   # scale down, bound the fill

It REPLACES the fleet and runs of the database it runs on. The same live work
is measured twice: a fleet of --clients seeded clients, one manual run with a
pending delivery for each (what the claim takes), 200 clients with nothing
pending that check in over HTTP with their token (a quiet heartbeat: the
second of two rounds, so the first round's stamp writes are not on the
clock), and --rows / --clients old runs of the last 30 days with their counts
kept (what the Summary shows).
First with no other delivery (as if the old runs' detail was pruned), then
after the old runs get one delivery per client each (inside the retention
period, so kept): --rows rows, filled with INSERT ... SELECT over runs x
clients in chunks (the fill stops after --max-minutes; the figures say how many
rows it reached). The old runs' counts are then kept again from their rows,
as the retention round does (timed).
Last, one retention round removes an expired run's detail in batches of
RETENTION_BATCH_SIZE, and the longest batch (the longest any lock is held) is
printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("AGENT_RATE_LIMIT", "1000000/min")
os.environ.setdefault("CONSOLE_VAR_DIR", str(Path(tempfile.gettempdir()) / "retention_bench"))
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.gettempdir()}/retention_bench.sqlite3"

import django  # noqa: E402

django.setup()

from client_tree_bench import wipe  # noqa: E402 - the same fast reset (bench/ is on sys.path)
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402
from django.utils import timezone  # noqa: E402

from agent_api.authentication import token_digest, token_generate  # noqa: E402
from agents_app.models import Client  # noqa: E402
from updates_app.configuration import client_configuration, configuration_hash  # noqa: E402
from updates_app.engine.claim import deliveries_claim  # noqa: E402
from updates_app.engine.runs import deliveries_create  # noqa: E402
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, RunTrigger, UpdateRun  # noqa: E402
from updates_app.retention import delivery_details_prune, run_counts_keep, runs_due_for_counts  # noqa: E402

CHECKIN_CLIENTS = 200
CLAIM = 500


def median_ms(samples: list[float]) -> tuple[float, float]:
    """(median, fastest) in ms: on a shared, busy machine the fastest is the cost without waiting for a core."""
    return statistics.median(samples) * 1000, min(samples) * 1000


def setup_fleet(clients: int) -> tuple[list[tuple[Client, str]], UpdateRun]:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM updates_app_delivery")
        cursor.execute("DELETE FROM updates_app_updaterun")
    wipe()
    call_command("seed_fleet", domains=20, clients=clients, verbosity=0)
    # Online, so the live run's deliveries are pushed (claimed), and tokens for the check-in clients.
    Client.objects.update(status="online")
    tokens = []
    for client in Client.objects.order_by("pk")[:CHECKIN_CLIENTS]:
        token = token_generate()
        client.token_hash = token_digest(token)
        client.save(update_fields=["token_hash"])
        tokens.append((client, token))
    live = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=live, clients=Client.objects.exclude(pk__in=[c.pk for c, _ in tokens]))
    return tokens, live


def measure(http: HttpClient, tokens: list[tuple[Client, str]], live: UpdateRun) -> dict[str, tuple[float, float]]:
    analyze()
    claims = []
    for _ in range(25):
        started = time.perf_counter()
        claim = deliveries_claim(limit=CLAIM)
        claims.append(time.perf_counter() - started)
        assert claim is not None and len(claim.delivery_ids) == CLAIM
        Delivery.objects.filter(pk__in=claim.delivery_ids).update(
            status=DeliveryStatus.PENDING, attempts=0, lease_expires_at=None, claim_token=""
        )
    # Each client's first heartbeat may write (its last-contact stamp); the
    # measured round is the second, a quiet heartbeat, in both measurements.
    for client, token in tokens:
        heartbeat(http, client, token)
    checkins = [heartbeat(http, client, token) for client, token in tokens]
    summaries = []
    for _ in range(26):
        started = time.perf_counter()
        response = http.get("/updates/summary/")
        summaries.append(time.perf_counter() - started)
        assert response.status_code == 200
    return {
        "claim": median_ms(claims),
        "checkin": median_ms(checkins),
        "summary": median_ms(summaries[1:]),
    }


def heartbeat(http: HttpClient, client: Client, token: str) -> float:
    """One check-in over HTTP that reports what is on record and gets nothing; returns its seconds."""
    body = {
        "event": "heartbeat",
        "component_versions": client.component_versions,
        "config_version": configuration_hash(client_configuration(client)),
    }
    started = time.perf_counter()
    response = http.post(
        "/agent/v1/checkin", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.content
    assert response.json()["actions"] == []
    return elapsed


def analyze() -> None:
    """Statistics now, and no autovacuum of the fresh rows during the measurement."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def old_runs(rows: int, clients: int) -> list[int]:
    """The old runs (3..30 days ago), without deliveries yet: as after their detail was pruned.

    Their counts are kept on them (the values the fill will give), so the
    Summary shows the same runs in both measurements; only the table differs.
    """
    runs_wanted = max(1, rows // clients)
    now = timezone.now()
    span = dt.timedelta(days=27)
    ids = list(Client.objects.values_list("pk", flat=True))
    gave_up = sum(1 for pk in ids if pk % 33 == 0)
    counts = {
        "kept_total": len(ids),
        "kept_pending": 0,
        "kept_delivered": len(ids) - gave_up,
        "kept_retrying": 0,
        "kept_gave_up": gave_up,
        "kept_stopped": 0,
        "kept_updated": sum(1 for pk in ids if pk % 10),
    }
    UpdateRun.objects.bulk_create(
        [UpdateRun(trigger=RunTrigger.EVENT, counts_kept_at=now, **counts) for _ in range(runs_wanted)],
        batch_size=1000,
    )
    run_ids = list(UpdateRun.objects.exclude(trigger=RunTrigger.MANUAL).order_by("pk").values_list("pk", flat=True))
    for n, pk in enumerate(run_ids):
        UpdateRun.objects.filter(pk=pk).update(created_at=now - dt.timedelta(days=3) - span * n / len(run_ids))
    return run_ids


# What the fill writes in every column of the delivery table: a string is SQL
# over r (the old run) and c (the client), anything else a parameter. Every
# column is named, so a column added to Delivery stops the benchmark at its
# start (fill_columns_check) instead of failing the fill after the first half.
FILL_COLUMNS: dict[str, str | bool] = {
    "run_id": "r.id",
    "client_id": "c.id",
    "status": "CASE WHEN c.id %% 33 = 0 THEN 'gave_up' ELSE 'delivered' END",
    "attempts": "CASE WHEN c.id %% 33 = 0 THEN 5 ELSE 1 END",
    "next_attempt_at": "r.created_at",
    "lease_expires_at": "NULL",
    "last_error": "''",
    "claim_token": "''",
    "push": True,
    "at_checkin": False,
    "no_scan": False,
    "delivered_at": "CASE WHEN c.id %% 33 = 0 THEN NULL ELSE r.created_at END",
    "update_reported_at": "CASE WHEN c.id %% 10 = 0 THEN NULL ELSE r.created_at END",
    "failure_reported_at": "NULL",
    "failure_message": "''",
    "created_at": "r.created_at",
}


def fill_columns_check() -> None:
    """Exit with the difference if FILL_COLUMNS does not name exactly the delivery table's columns."""
    columns = {field.column for field in Delivery._meta.concrete_fields if not field.primary_key}
    missing, unknown = sorted(columns - FILL_COLUMNS.keys()), sorted(FILL_COLUMNS.keys() - columns)
    if missing or unknown:
        sys.exit(f"FILL_COLUMNS is out of date with Delivery: missing {missing}, unknown {unknown}")


def fill(ids: list[int], clients: int, max_minutes: float) -> int:
    """One delivery per client for each old run, with INSERT ... SELECT in chunks; returns the rows inserted."""
    table = Delivery._meta.db_table
    run_table = UpdateRun._meta.db_table
    client_table = Client._meta.db_table
    columns = ", ".join(FILL_COLUMNS)
    values = ", ".join(value if isinstance(value, str) else "%s" for value in FILL_COLUMNS.values())
    parameters = [value for value in FILL_COLUMNS.values() if not isinstance(value, str)]
    inserted = 0
    started = time.perf_counter()
    chunk = max(1, 500_000 // clients)
    for first in range(0, len(ids), chunk):
        if time.perf_counter() - started > max_minutes * 60:
            print(f"  fill stopped after {max_minutes} min (--max-minutes)", flush=True)
            break
        batch = ids[first : first + chunk]
        marks = ", ".join(["%s"] * len(batch))
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {table} ({columns})
                SELECT {values}
                FROM {run_table} r CROSS JOIN {client_table} c
                WHERE r.id IN ({marks})
                """,  # noqa: S608 - table and column names from the models, values as parameters
                [*parameters, *batch],
            )
            inserted += cursor.rowcount
        print(f"  {inserted:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    return inserted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="old delivery rows to add (default 10M)")
    parser.add_argument("--clients", type=int, default=10_000, help="fleet size (one delivery per client per run)")
    parser.add_argument("--max-minutes", type=float, default=25.0, help="stop filling after this long")
    args = parser.parse_args()
    fill_columns_check()
    call_command("migrate", verbosity=0)
    auto = AutoUpdateSettings.load()
    auto.notify_on_download = False
    auto.save()
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    http = HttpClient()
    http.force_login(user)

    tokens, live = setup_fleet(args.clients)
    run_ids = old_runs(args.rows, args.clients)
    empty = measure(http, tokens, live)
    print(f"database: {connection.vendor}; {args.clients:,} clients; empty table measured", flush=True)

    started = time.perf_counter()
    rows = fill(run_ids, args.clients, args.max_minutes)
    fill_s = time.perf_counter() - started
    # Runs the fill did not reach keep no counts; the others are counted again, for real.
    UpdateRun.objects.filter(pk__in=run_ids).exclude(deliveries__isnull=False).delete()
    UpdateRun.objects.filter(pk__in=run_ids).update(counts_kept_at=None)
    analyze()
    started = time.perf_counter()
    kept = 0
    while due := runs_due_for_counts(now=timezone.now()):
        for run in due:
            run_counts_keep(run=run, now=timezone.now())
        kept += len(due)
    keep_s = time.perf_counter() - started
    total = Delivery.objects.count()
    full = measure(http, tokens, live)

    # One expired run: how long does each delete batch (and so each lock) last?
    oldest = UpdateRun.objects.filter(counts_kept_at__isnull=False).order_by("created_at").first()
    batches = []
    if oldest is not None:
        UpdateRun.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - dt.timedelta(days=60))
        while True:
            started = time.perf_counter()
            _kept, pruned, removed = delivery_details_prune(budget=1)
            batches.append(time.perf_counter() - started)
            if pruned or not removed:
                break

    print(f"filled {rows:,} old delivery rows in {fill_s:.0f} s; table now holds {total:,} rows")
    print(f"counts kept on {kept} settled runs in {keep_s:.1f} s")
    print(f"{'median / fastest':>18} {'empty':>16} {'with rows':>16} {'ratio':>14}")
    for name in ("claim", "checkin", "summary"):
        (em, ef), (fm, ff) = empty[name], full[name]
        print(f"{name + ' ms':>18} {em:>7.2f} / {ef:>6.2f} {fm:>7.2f} / {ff:>6.2f} {fm / em:>5.2f}x / {ff / ef:.2f}x")
    if batches:
        print(
            f"retention: {len(batches)} batch(es) of up to {settings.RETENTION_BATCH_SIZE:,} rows for one run of "
            f"{args.clients:,} deliveries, longest {max(batches) * 1000:.0f} ms (each its own transaction)"
        )


if __name__ == "__main__":
    main()
