"""The retry rule (SPEC 3.3), in one place.

A notification that fails (no connection, a timeout, an answer other than 2xx)
is sent again NOTIFY_RETRY_INTERVAL_SECONDS later (15 minutes), at most
NOTIFY_MAX_ATTEMPTS attempts in all (5: the first and four resends). After the
last failure the server stops.

An attempt is counted when a worker claims the row to send it, so no crash can
ever make a sixth: a row that has used every attempt is never claimed again.

A worker may die (SIGKILL, the out-of-memory killer, Celery's hard time
limit) after posting some of its batch and before recording any outcome. Its
rows stay "sending" until their lease (NOTIFY_LEASE_SECONDS) runs out; the next
claim after that sends each of them again **as the same attempt**: the same
webhook-id, so an agent that got the first copy ignores the second, and no
attempt used up, since the server never learned what became of the first.
Those re-sends are counted apart, in ``lost_leases``, and capped: a row lost
NOTIFY_MAX_LOST_LEASES times (3) is given up at its next loss instead of being
sent again, so a batch that kills its worker every time ends after that many
leases (4 x 180 s with the defaults) rather than looping forever. The cap is
per delivery, over its whole life. So a client gets at most NOTIFY_MAX_ATTEMPTS
counted attempts, and at most NOTIFY_MAX_LOST_LEASES extra copies of them.

A claim whose worker died is taken over within NOTIFY_LEASE_SECONDS +
NOTIFY_DISPATCH_INTERVAL_SECONDS of being made (183 s with the defaults), as
long as a worker and beat run.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Case, F, IntegerField, Q, Value, When

from console import wording
from updates_app.models import OPEN_STATUSES, DeliveryStatus


def max_attempts() -> int:
    return settings.NOTIFY_MAX_ATTEMPTS


def max_lost_leases() -> int:
    return settings.NOTIFY_MAX_LOST_LEASES


def retry_interval() -> dt.timedelta:
    return dt.timedelta(seconds=settings.NOTIFY_RETRY_INTERVAL_SECONDS)


def may_be_sent() -> Q:
    """Among rows due now: those the rule lets a worker send.

    An open row with an attempt left, or a row whose worker was lost, with a
    re-send left.
    """
    return Q(status__in=OPEN_STATUSES, attempts__lt=max_attempts()) | Q(
        status=DeliveryStatus.SENDING, lost_leases__lt=max_lost_leases()
    )


def spent() -> Q:
    """Among rows due now: those the rule gives up (every attempt used, or every re-send after a lost worker)."""
    return Q(status__in=OPEN_STATUSES, attempts__gte=max_attempts()) | Q(
        status=DeliveryStatus.SENDING, lost_leases__gte=max_lost_leases()
    )


def counted_at_claim() -> dict[str, Case]:
    """The counts a claim writes, in SQL (the right side of an UPDATE reads the row before it).

    An open row starts its next attempt; a row still "sending" (its worker
    lost) is the same attempt once more, counted as a lost lease.
    """
    lost = When(status=DeliveryStatus.SENDING, then=F("lost_leases") + 1)
    same = When(status=DeliveryStatus.SENDING, then=F("attempts"))
    return {
        "attempts": Case(same, default=F("attempts") + 1, output_field=IntegerField()),
        "lost_leases": Case(lost, default=F("lost_leases"), output_field=IntegerField()),
    }


def lost_worker_gave_up() -> str:
    """Why a row whose worker was lost once more than the rule allows gave up."""
    losses = max_lost_leases() + 1
    return (
        f"gave up: the worker sending it stopped answering {wording.plural(losses, 'time')} "
        "without recording an outcome"
    )


def status_after_failure() -> Case:
    """The same rule in SQL, for recording a batch of failed attempts in one UPDATE.

    The attempt was already counted at claim time, so a row that has used every
    attempt gives up; any other row retries after ``retry_interval()``.
    """
    return Case(
        When(attempts__gte=max_attempts(), then=Value(DeliveryStatus.GAVE_UP)), default=Value(DeliveryStatus.RETRYING)
    )


def describe() -> str:
    """The rule in words, for the screens (the demo runs with short settings and says so)."""
    return f"again {wording.every(retry_interval())}, {max_attempts()} attempts in all"
