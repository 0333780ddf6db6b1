"""Drive the delivery engine one round at a time, in the test's own process."""

from __future__ import annotations

from django.conf import settings

from updates_app.delivery import deliveries_claim, deliveries_give_up_exhausted
from updates_app.tasks import send_batch


def engine_round() -> int:
    """What the dispatcher and its send tasks do in one beat, inline: returns deliveries posted."""
    deliveries_give_up_exhausted()
    posted = 0
    while (claim := deliveries_claim(limit=settings.NOTIFY_BATCH_SIZE)) is not None:
        posted += send_batch(claim.token)
    return posted
