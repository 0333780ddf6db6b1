"""Drive the delivery engine: one round inline, or through a real worker until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from updates_app.engine.claim import deliveries_claim, deliveries_give_up_exhausted
from updates_app.tasks import dispatch_deliveries, send_batch


def engine_round() -> int:
    """What the dispatcher and its send tasks do in one beat, inline: returns deliveries posted."""
    deliveries_give_up_exhausted()
    posted = 0
    while (claim := deliveries_claim(limit=settings.NOTIFY_BATCH_SIZE)) is not None:
        posted += send_batch(claim.token)
    return posted


def play_beat_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Act as beat for a running worker: enqueue the dispatcher until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        dispatch_deliveries.delay()
        time.sleep(0.3)
    return False
