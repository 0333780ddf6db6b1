"""Writing audit entries."""

from __future__ import annotations

from typing import Any

from console.models import AuditEntry


def audit_record(*, actor, action: str, target: str, changes: dict[str, Any]) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target=target[:255],
        changes=changes,
    )
