"""Numbers, durations and moments in the words an administrator reads.

Every screen and message says "1 client", "3 deliveries", "every minute",
"2 hours 30 minutes" and shows a moment as "2026-11-26 14:05:09 CET" in the
server's time zone: one helper for each, so no page invents its own form
(no parenthesised plurals, no "0:01:00", no three date formats). The template filters
in ``console.templatetags.wording`` call these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

# Plurals that do not just add "s"; everything else does.
IRREGULAR_PLURALS = {"delivery": "deliveries", "entry": "entries", "this": "these", "is": "are", "was": "were"}

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def plural_word(count: int, singular: str, plural: str | None = None) -> str:
    """The word alone, in the form that goes with ``count``."""
    if count == 1:
        return singular
    return plural or IRREGULAR_PLURALS.get(singular) or f"{singular}s"


def plural(count: int, singular: str, plural: str | None = None) -> str:
    """ "1 client", "0 clients", "100,040 clients", "2 deliveries"."""
    return f"{count:,} {plural_word(count, singular, plural)}"


_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def duration(value: dt.timedelta | float | int) -> str:
    """A length of time in words: "20 seconds", "1 minute", "2 hours 30 minutes", "1 day 2 hours".

    At most two units, the larger ones first; what is below the second unit is
    left out (a duration is read, not computed with).
    """
    seconds = int(value.total_seconds() if isinstance(value, dt.timedelta) else value)
    if seconds <= 0:
        return "0 seconds"
    parts = []
    for unit, size in _UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(plural(amount, unit))
        if len(parts) == 2 or (parts and not amount):
            break
    return " ".join(parts)


def every(value: dt.timedelta | float | int) -> str:
    """ "every minute", "every 20 seconds", "every 2 hours"."""
    text = duration(value)
    return f"every {text[2:]}" if text.startswith("1 ") and " " not in text[2:] else f"every {text}"


def moment(value: dt.datetime | None, *, seconds: bool = True) -> str:
    """One format for every date and time on the console, in the server's time zone, zone named."""
    if value is None:
        return ""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return local.strftime(DATETIME_FORMAT if seconds else DATETIME_FORMAT.replace(":%S", ""))


def field_label(name: str) -> str:
    """A stored identifier as words: "clients_selected" -> "Clients selected"."""
    words = str(name).replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:]


def value_words(value: Any) -> str:
    """A stored value as an administrator reads it: on/off, "not set", numbers with separators."""
    if value is None:
        return "not set"
    if value is True:
        return "on"
    if value is False:
        return "off"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(value_words(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{field_label(k)}: {value_words(v)}" for k, v in value.items())
    return str(value)
