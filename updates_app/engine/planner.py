"""Schedule-based update, Daily/Weekly: open a window and plan its notifications.

Every minute the beat asks ``schedule_window_open``. When the window of the
saved schedule is open and has no run yet, one UpdateRun (trigger=schedule,
unique window_key) is created and one pending Delivery per eligible client,
each due at its moment of the spread inside [max(now, start), end). The
delivery engine's dispatcher sends each one when it is due and retries it under
the usual rule. Clients that become eligible after that are not added: they
update through the restart option, the next window or a manual update.

Idempotent: the unique window_key means several beats or workers racing to
open the same window create one run between them; the loser's insert fails
and it plans nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any, cast

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus
from updates_app.engine.runs import OPEN_STATUSES, deliveries_supersede_older
from updates_app.engine.spread import spread_assign
from updates_app.engine.windows import Window, window_open_at
from updates_app.models import AutoUpdateSettings, Delivery, DeliveryStatus, Frequency, RunTrigger, UpdateRun

logger = logging.getLogger(__name__)

# Rows per executemany() call on SQLite: bounds the memory of one batch of
# prepared rows while keeping the number of calls small.
DELIVERY_BATCH_SIZE = 5000


def schedule_eligible_clients():
    """The clients a Daily/Weekly window notifies.

    Effective scheduled-update state on (agents_app.scheduled_state is the only
    place that encodes the rule), not revoked, and online, roaming or
    unreachable. A client's status is "roaming" only while it holds the roaming
    privilege; the privilege is checked here too so a stale status cannot widen
    the set. Offline clients are not notified (the seed). Unreachable clients
    (behind NAT, "Scheduled Client Updates with NAT") are polling: the server
    cannot push to them, so their delivery is never pushed and is handed over
    at their first poll after its due moment, which keeps the window's spread.
    """
    polling = Q(status=ConnectionStatus.ONLINE) | Q(status=ConnectionStatus.UNREACHABLE)
    eligible = polling | Q(status=ConnectionStatus.ROAMING, roaming_privilege=True)
    return Client.objects.scheduled_update_on().filter(eligible, revoked_at__isnull=True)


def agent_scheduled_clients():
    """Clients that run a Minute(s)/Hour(s) schedule themselves: state on, not revoked, not offline."""
    return Client.objects.scheduled_update_on().filter(revoked_at__isnull=True).exclude(status=ConnectionStatus.OFFLINE)


def schedule_window_current(*, now: dt.datetime, config: AutoUpdateSettings) -> Window | None:
    """The Daily/Weekly window of the given settings open at ``now``, if any."""
    if config.frequency not in (Frequency.DAILY, Frequency.WEEKLY):
        return None
    return window_open_at(
        now=now,
        frequency=config.frequency,
        start_time=config.start_time,
        period_hours=config.period_hours,
        weekday=config.weekday,
    )


def schedule_window_open(*, now: dt.datetime | None = None, rng: random.Random | None = None) -> UpdateRun | None:
    """Open the window that is due now, if any and if nobody has opened it yet. Called by the beat task.

    The settings are read here, when the window opens: a change saved while a
    window runs applies from the next window (the run keeps its own bounds).
    """
    now = now or timezone.now()
    window = schedule_window_current(now=now, config=AutoUpdateSettings.load())
    if window is None:
        return None
    return schedule_window_plan(window=window, now=now, rng=rng)


@transaction.atomic
def schedule_window_plan(*, window: Window, now: dt.datetime, rng: random.Random | None = None) -> UpdateRun | None:
    """Create the window's run and its deliveries; None when the window already has a run or is over."""
    if now >= window.end:
        return None
    # The cheap check first: the beat asks every minute of a window.
    if UpdateRun.objects.filter(window_key=window.key).exists():
        return None
    begin = max(now, window.start)
    try:
        # A savepoint, so that losing the race leaves the outer transaction usable.
        with transaction.atomic():
            run = UpdateRun.objects.create(
                trigger=RunTrigger.SCHEDULE,
                window_key=window.key,
                window_start=begin,
                window_end=window.end,
                # "Perform Scan Now after updating" belongs to event-triggered update.
                scan_after=False,
            )
    except IntegrityError:
        logger.info("Window %s was opened by another worker", window.key)
        return None
    rows = list(schedule_eligible_clients().values_list("pk", "status"))
    client_ids = [pk for pk, _status in rows]
    behind_nat = {pk for pk, status in rows if status == ConnectionStatus.UNREACHABLE}
    planned = spread_assign(
        client_ids, duration_seconds=(window.end - begin).total_seconds(), rng=rng or random.Random()
    )
    # Asked before this run adds its own open rows, so that the usual case (no
    # open deliveries left) costs one index probe instead of a pass over them.
    others_open = Delivery.objects.filter(status__in=OPEN_STATUSES).exists()
    deliveries_insert(run_id=run.pk, planned=planned, begin=begin, now=now, not_pushed=behind_nat)
    if others_open:
        # The delivery engine's rule for every new run: it replaces its clients'
        # older open deliveries (e.g. the end of yesterday's 24-hour window), so
        # no client is notified twice for the same thing.
        deliveries_supersede_older(run=run)
    logger.info("Opened window %s: %d clients from %s to %s", window.key, len(client_ids), begin, window.end)
    return run


def deliveries_insert(
    *,
    run_id: int,
    planned: list[tuple[int, float]],
    begin: dt.datetime,
    now: dt.datetime,
    not_pushed: set[int] | frozenset[int] = frozenset(),
) -> None:
    """Bulk-insert one pending delivery per (client id, seconds after begin).

    Clients in ``not_pushed`` (behind NAT) get ``push=False``: the dispatcher
    leaves their row alone and their check-in hands it over once it is due.

    Not Delivery.objects.bulk_create: building 100,000 model instances and
    preparing every field of every row through the ORM took about 6 s for
    100,000 rows on SQLite (bench/schedule_bench.py prints it as the
    baseline). Here the constant columns are prepared once, each row only
    carries its client and due time, and PostgreSQL receives the rows
    through COPY. The column list comes from the model, so a field added
    later is filled with its default rather than breaking the insert.
    """
    second = dt.timedelta(seconds=1)
    per_row = ("client", "next_attempt_at", "push")
    constants = {"run": run_id, "status": DeliveryStatus.PENDING, "attempts": 0}
    fields = [f for f in Delivery._meta.concrete_fields if not f.primary_key]
    columns = [cast(str, f.column) for f in fields]  # concrete fields always have a column
    prepared: list[Any] = []
    for field in fields:
        if field.name in per_row:
            prepared.append(None)
            continue
        if field.name in constants:
            value = constants[field.name]
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
        prepared.append(field.get_db_prep_save(value, connection))
    client_at = columns.index(Delivery._meta.get_field("client").column)
    due_at = columns.index(Delivery._meta.get_field("next_attempt_at").column)  # type: ignore[arg-type]
    push_at = columns.index(Delivery._meta.get_field("push").column)  # type: ignore[arg-type]
    pushed, held = (Delivery._meta.get_field("push").get_db_prep_save(v, connection) for v in (True, False))
    if connection.vendor == "postgresql":
        # psycopg adapts aware datetimes itself.
        def due(offset: float) -> object:
            return begin + offset * second
    elif connection.vendor == "sqlite" and connection.timezone_name == "UTC":
        # What the SQLite backend's adapter returns (naive UTC, str()), without its
        # per-row time-zone work: a third of the insert's Python time.
        naive_begin = timezone.make_naive(begin, dt.UTC)

        def due(offset: float) -> object:
            return str(naive_begin + offset * second)
    else:

        def due(offset: float) -> object:
            return connection.ops.adapt_datetimefield_value(begin + offset * second)

    def rows():
        for client_id, offset in planned:
            row = prepared.copy()
            row[client_at] = client_id
            row[due_at] = due(offset)
            row[push_at] = held if client_id in not_pushed else pushed
            yield row

    table = connection.ops.quote_name(Delivery._meta.db_table)
    column_sql = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({column_sql}) VALUES ({placeholders})"  # noqa: S608 - names from the model
            batch: list[list[Any]] = []
            for row in rows():
                batch.append(row)
                if len(batch) == DELIVERY_BATCH_SIZE:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
