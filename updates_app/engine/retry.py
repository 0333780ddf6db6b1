"""The retry rule (SPEC 3.3), in one place.

A notification that fails (no connection, a timeout, an answer other than 2xx)
is sent again NOTIFY_RETRY_INTERVAL_SECONDS later (15 minutes), at most
NOTIFY_MAX_ATTEMPTS attempts in all (5: the first and four resends). After the
last failure the server stops. An attempt is counted when a worker claims the
row, before anything is sent, so an attempt interrupted by a dying worker still
counts and no crash can ever make a sixth.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Case, Value, When

from console import wording
from updates_app.models import DeliveryStatus


def max_attempts() -> int:
    return settings.NOTIFY_MAX_ATTEMPTS


def retry_interval() -> dt.timedelta:
    return dt.timedelta(seconds=settings.NOTIFY_RETRY_INTERVAL_SECONDS)


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
