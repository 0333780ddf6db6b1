"""Writing audit entries, and the words their values are written in."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from console.models import AuditEntry

logger = logging.getLogger(__name__)


def audit_record(*, actor, action: str, target: str, changes: dict[str, Any]) -> AuditEntry:
    entry = AuditEntry.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target=target[:255],
        changes=changes,
    )
    # One line per change an administrator made; the values stay in the audit log.
    logger.info("%s by %s: %s (%s)", action, entry.actor or "system", entry.target, ", ".join(map(str, changes)) or "-")
    return entry


NOT_SET = "(not set)"
NONE_CHOSEN = "(none)"


def audit_words(value: Any, *, choices: Iterable[tuple[Any, Any]] = ()) -> str:
    """A setting's value in the words its screen uses, for audit entries and the stale-save notice.

    "on"/"off", a choice's label, a time as HH:MM, chosen objects by name
    (sorted; "(none)" when nothing is chosen) and "(not set)" for an empty value.
    Numbers are written as typed (a port is 3128, not "3,128").
    """
    if value is None or value == "":
        return NOT_SET
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, Iterable) and not isinstance(value, str):
        return ", ".join(sorted(str(item) for item in value)) or NONE_CHOSEN
    return str(dict(choices).get(value, value))
