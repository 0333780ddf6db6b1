"""Writing audit entries."""

from __future__ import annotations

from typing import Any

from console.models import AuditEntry


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields whose value differs, as {"field": {"old": a, "new": b}}."""
    return {key: {"old": old.get(key), "new": value} for key, value in new.items() if old.get(key) != value}


def audit_record(*, actor, action: str, target: str, changes: dict[str, Any]) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target=target[:255],
        changes=changes,
    )
