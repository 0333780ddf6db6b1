from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import models

from console import wording

# What each recorded action is called on the audit log. An action missing
# here is still shown in words ("some.action" -> "Some action").
ACTION_LABELS = {
    "automatic_update.save": "Automatic Update settings saved",
    "privileges.save": "Privileges and Other Settings saved",
    "privileges.future_domains": "Defaults for future domains saved",
    "manual update": "Manual Update started",
    "cancel update run": "Update run cancelled",
}

# Keys of an entry's details that are not lines of their own: the selection a
# save covered and the run an entry is about become links.
SELECTION_KEY = "selection"
RUN_KEY = "run"


@dataclass(frozen=True)
class AuditLine:
    """One detail of an entry in words: a change (old -> new) or a fact (value)."""

    label: str
    old: str = ""
    new: str = ""
    value: str = ""
    is_change: bool = False


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
        return f"{wording.moment(self.created_at, seconds=False)} {self.actor} {self.action_label} {self.target}"

    @property
    def action_label(self) -> str:
        return action_label(self.action)

    def lines(self) -> list[AuditLine]:
        """The details in labelled words: "Enable roaming mode: off -> on", "Clients selected: 3"."""
        lines = []
        details: dict[str, Any] = self.changes if isinstance(self.changes, dict) else {}
        for key, detail in details.items():
            if key in (SELECTION_KEY, RUN_KEY):
                continue
            if isinstance(detail, dict) and ("old" in detail or "new" in detail):
                lines.append(
                    AuditLine(
                        label=str(detail.get("label") or wording.field_label(key)),
                        old=wording.value_words(detail.get("old")),
                        new=wording.value_words(detail.get("new")),
                        is_change=True,
                    )
                )
            elif isinstance(detail, dict) and "value" in detail:
                label = str(detail.get("label") or wording.field_label(key))
                lines.append(AuditLine(label=label, value=wording.value_words(detail["value"])))
            else:
                lines.append(AuditLine(label=wording.field_label(key), value=wording.value_words(detail)))
        return lines

    @property
    def run_id(self) -> int | None:
        """The update run this entry is about, if any (its page lists the clients it notified)."""
        run = self.changes.get(RUN_KEY) if isinstance(self.changes, dict) else None
        return run if isinstance(run, int) else None

    def clients_query(self) -> str | None:
        """The client list's query string for the clients this entry's selection covers (None: no selection)."""
        selection = self.changes.get(SELECTION_KEY) if isinstance(self.changes, dict) else None
        if not isinstance(selection, dict):
            return None
        if selection.get("root"):
            return ""
        pairs = [("domain", d) for d in selection.get("domains", [])] + [
            ("client", c) for c in selection.get("clients", [])
        ]
        return urlencode(pairs)


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action) or wording.field_label(action)


class ServiceHeartbeat(models.Model):
    """When a background service last proved it was alive (beat -> worker)."""

    name = models.CharField(max_length=32, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at}"
