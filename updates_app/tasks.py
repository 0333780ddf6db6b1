"""Celery tasks: thin wrappers around the engine (updates_app.engine), and the only place that enqueues.

Beat runs ``dispatch_deliveries`` every few seconds; it claims due rows in
batches and enqueues one ``send_batch`` per batch (never one task per client).
Nothing waits in the broker: a retry is a row whose next_attempt_at lies in
the future, so an emptied Redis or a killed worker loses nothing. Beat also
runs ``open_schedule_window`` every minute for Daily/Weekly schedules, and
``prune_retained_data`` every ten minutes (updates_app/retention.py).
"""

from __future__ import annotations

import logging
import time
from functools import partial

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from agents_app.connection import push_allowed
from updates_app.engine.claim import (
    deliveries_claim,
    deliveries_claimed,
    deliveries_give_up_exhausted,
    deliveries_given_up_among,
    deliveries_hold_for_checkin,
    deliveries_in_flight,
    deliveries_record_outcomes,
)
from updates_app.engine.planner import schedule_window_open
from updates_app.engine.rings import rollouts_advance
from updates_app.engine.sender import notifications_send, outgoing_for, scan_after_for
from updates_app.retention import retention_prune

logger = logging.getLogger(__name__)

NOT_PUSHED = "not pushed: the server may not reach this address; handed over at the next check-in"


def dispatch_soon() -> None:
    """Start sending once the current transaction commits, instead of at the next beat.

    Beat would get there anyway within NOTIFY_DISPATCH_INTERVAL_SECONDS, so a
    broker that is down costs a few seconds, never a notification.
    """

    def enqueue() -> None:
        try:
            dispatch_deliveries.delay()
        except Exception:
            logger.warning("could not enqueue the dispatcher; beat will pick the run up", exc_info=True)

    transaction.on_commit(enqueue)


@shared_task(name="updates_app.tasks.dispatch_deliveries", ignore_result=True)
def dispatch_deliveries() -> int:
    """Claim due deliveries and hand each batch to a send task; returns the number claimed."""
    if gave_up := deliveries_give_up_exhausted():
        logger.warning(
            "gave up %d deliveries with no attempt left or whose worker was lost %d times",
            gave_up,
            settings.NOTIFY_MAX_LOST_LEASES + 1,
        )
    size = settings.NOTIFY_BATCH_SIZE
    in_flight = -(-deliveries_in_flight() // size)
    claimed = resent = 0
    for _ in range(settings.NOTIFY_MAX_BATCHES_IN_FLIGHT - in_flight):
        claim = deliveries_claim(limit=settings.NOTIFY_BATCH_SIZE)
        if claim is None:
            break
        claimed += len(claim.delivery_ids)
        resent += claim.resent
        # The claim is committed (deliveries_claim is atomic); enqueue after any
        # outer transaction too, so the worker sees the rows.
        transaction.on_commit(partial(send_batch.delay, claim.token))
    if resent:
        logger.warning(
            "claimed %d deliveries again whose worker stopped answering before recording an outcome: "
            "the same attempt is sent again (same webhook-id, no attempt used)",
            resent,
        )
    if claimed:
        logger.info("claimed %d deliveries", claimed)
    return claimed


@shared_task(name="updates_app.tasks.send_batch", ignore_result=True)
def send_batch(token: str) -> int:
    """Post one claimed batch and record every outcome in bulk; returns the number posted."""
    rows = deliveries_claimed(token=token)
    # Only the registered address and port, never an unreachable one or one
    # outside AGENT_ALLOWED_NETWORKS (agents_app.connection).
    held = [row.pk for row in rows if not push_allowed(row)]
    items = [
        outgoing_for(
            delivery_id=row.pk,
            run_id=row.run_id,
            scan_after=scan_after_for(run_scan_after=row.run_scan_after, no_scan=row.no_scan),
            client_guid=str(row.client_guid),
            ip_address=row.ip_address,
            port=row.listener_port,
        )
        for row in rows
        if push_allowed(row)
    ]
    deliveries_hold_for_checkin(token=token, delivery_ids=held, reason=NOT_PUSHED)
    outcomes = notifications_send(items)
    _record_outcomes(token=token, outcomes=outcomes)
    failed = [pk for pk, error in outcomes.items() if error is not None]
    if failed and (gave_up := deliveries_given_up_among(failed)):
        logger.warning("gave up %d deliveries after %d failed attempts", gave_up, settings.NOTIFY_MAX_ATTEMPTS)
    if len(rows) >= settings.NOTIFY_BATCH_SIZE:
        # A full batch suggests more are due: claim the next one now rather
        # than at the next beat.
        dispatch_deliveries.delay()
    return len(items)


# Recording a batch's outcomes: tries in all, and the wait before the second
# (doubled before each next one: 0.5 + 1 + 2 + 4 = 7.5 s, far inside the lease).
RECORD_TRIES = 5
RECORD_FIRST_BACKOFF_SECONDS = 0.5


def _record_outcomes(*, token: str, outcomes: dict[int, str | None]) -> None:
    """Record what became of a posted batch, surviving a database connection that died meanwhile.

    The posts are made and cannot be taken back: if this one write is lost, the
    whole batch waits "sending" for its lease, is claimed again and every
    agent in it gets the same notification once more (the same attempt, but a
    lease late and one lost lease nearer its cap). A connection terminated under the task (a database restart, a
    failover, an administrator's pg_terminate_backend) is the common cause, so
    the write is tried again on a fresh connection, a bounded number of times
    with backoff. Retrying is safe: the write is one transaction and only
    touches rows still held under the batch's token, so a write that did
    commit before the error is not applied twice. Only when every try fails do
    the rows go back to the queue, by their lease, as before.
    """
    for attempt in range(1, RECORD_TRIES + 1):
        try:
            deliveries_record_outcomes(token=token, outcomes=outcomes)
            return
        except (OperationalError, InterfaceError) as exc:
            # Inside a caller's transaction a new connection would lose that
            # transaction's work: nothing to retry here.
            if attempt == RECORD_TRIES or connection.in_atomic_block:
                raise
            wait = RECORD_FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1)
            logger.warning(
                "recording the outcomes of batch %s failed (try %d of %d: %s); retrying in %.1f s on a new connection",
                token,
                attempt,
                RECORD_TRIES,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                wait,
            )
            connection.close()
            time.sleep(wait)


@shared_task(name="updates_app.tasks.open_schedule_window", ignore_result=True)
def open_schedule_window() -> str:
    """Every minute: open the Daily/Weekly window whose start time has come, once."""
    run = schedule_window_open()
    return f"opened {run.window_key}" if run else "nothing to open"


@shared_task(name="updates_app.tasks.prune_retained_data", ignore_result=True)
def prune_retained_data() -> str:
    """Every ten minutes: retention (updates_app/retention.py), in short batches."""
    result = retention_prune()
    return (
        f"runs kept {result.runs_kept}, pruned {result.runs_pruned}, deliveries removed "
        f"{result.deliveries_removed}, clients retired {result.clients_retired}, removed {result.clients_removed}"
    )


@shared_task(name="updates_app.tasks.advance_rollouts", ignore_result=True)
def advance_rollouts() -> dict[str, int]:
    """Staged roll-outs: halt a bad ring, or start the next ring once the soak is over (safe to run twice)."""
    done = rollouts_advance()
    if done["started"]:
        dispatch_soon()
    return done
