"""Celery tasks of the delivery engine: thin wrappers around updates_app.delivery.

Beat runs ``dispatch_deliveries`` every few seconds; it claims due rows in
batches and enqueues one ``send_batch`` per batch (never one task per client).
Nothing waits in the broker: a retry is a row whose next_attempt_at lies in
the future, so an emptied Redis or a killed worker loses nothing.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction

from agents_app.connection import push_allowed
from agents_app.models import Client
from updates_app.delivery import (
    deliveries_claim,
    deliveries_claimed,
    deliveries_give_up_exhausted,
    deliveries_hold_for_checkin,
    deliveries_in_flight,
    deliveries_record_outcomes,
)
from updates_app.models import Delivery, DeliveryStatus
from updates_app.notify import notifications_send, outgoing_for

logger = logging.getLogger(__name__)

NOT_PUSHED = "not pushed: the server may not reach this address; handed over at the next check-in"


@shared_task(name="updates_app.tasks.dispatch_deliveries", ignore_result=True)
def dispatch_deliveries() -> int:
    """Claim due deliveries and hand each batch to a send task; returns the number claimed."""
    if gave_up := deliveries_give_up_exhausted():
        logger.warning("gave up %d deliveries whose worker was lost during their last attempt", gave_up)
    size = settings.NOTIFY_BATCH_SIZE
    in_flight = -(-deliveries_in_flight() // size)
    claimed = 0
    for _ in range(settings.NOTIFY_MAX_BATCHES_IN_FLIGHT - in_flight):
        claim = deliveries_claim(limit=settings.NOTIFY_BATCH_SIZE)
        if claim is None:
            break
        claimed += len(claim.delivery_ids)
        # The claim is committed (deliveries_claim is atomic); enqueue after any
        # outer transaction too, so the worker sees the rows.
        transaction.on_commit(lambda token=claim.token: send_batch.delay(token))
    if claimed:
        logger.info("claimed %d deliveries", claimed)
    return claimed


@shared_task(name="updates_app.tasks.send_batch", ignore_result=True)
def send_batch(token: str) -> int:
    """Post one claimed batch and record every outcome in bulk; returns the number posted."""
    items, held = [], []
    for pk, run_id, run_scan, no_scan, guid, ip, port, status, revoked_at in deliveries_claimed(token=token):
        # Only the registered address and port, never an unreachable one or
        # one outside AGENT_ALLOWED_NETWORKS (agents_app.connection).
        client = Client(ip_address=ip, listener_port=port, status=status, revoked_at=revoked_at)
        if not push_allowed(client):
            held.append(pk)
            continue
        items.append(
            outgoing_for(
                delivery_id=pk,
                run_id=run_id,
                scan_after=run_scan and not no_scan,
                client_guid=guid,
                ip_address=ip,
                port=port,
            )
        )
    deliveries_hold_for_checkin(token=token, delivery_ids=held, reason=NOT_PUSHED)
    outcomes = notifications_send(items)
    deliveries_record_outcomes(token=token, outcomes=outcomes)
    failed = [pk for pk, error in outcomes.items() if error is not None]
    if failed and (gave_up := Delivery.objects.filter(pk__in=failed, status=DeliveryStatus.GAVE_UP).count()):
        logger.warning("gave up %d deliveries after %d failed attempts", gave_up, settings.NOTIFY_MAX_ATTEMPTS)
    if len(items) + len(held) >= settings.NOTIFY_BATCH_SIZE:
        # A full batch suggests more are due: claim the next one now rather
        # than at the next beat.
        dispatch_deliveries.delay()
    return len(items)
