"""Writing audit entries."""

from __future__ import annotations

import logging
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
