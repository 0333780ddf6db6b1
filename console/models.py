from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One administrator change, field by field.

    Shared by every screen that changes what clients do (the privileges dialog,
    the Automatic Update screen, manual updates), so "who changed what" has one
    answer and one page.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # What was done, e.g. "automatic_update.save" or "privileges.apply".
    action = models.CharField(max_length=64)
    # What it was done to, in words ("Automatic Update settings", "3 domains, 12 clients").
    target = models.CharField(max_length=255)
    # {"field": {"old": ..., "new": ...}} for settings; free-form detail otherwise.
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class ServiceHeartbeat(models.Model):
    """When a background service last proved it was alive (beat -> worker)."""

    name = models.CharField(max_length=32, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at}"
