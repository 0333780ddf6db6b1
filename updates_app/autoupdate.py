"""Saving the Automatic Update settings: the rules, the audit entry, the revision check.

Rules the screen and this service share:

- Fields that do not apply to the chosen frequency are ignored on save and
  keep their stored value (the intervals and "Update client configurations
  only once per day" apply to Minute(s)/Hour(s); start time and time period
  to Daily/Weekly; the day of the week to Weekly). Switching from Minute(s)
  to Daily and back therefore brings the old interval back, and a value the
  browser sends for a hidden field is neither saved nor rejected.
- Every save names the revision it was edited from. If someone saved since,
  the save is refused (``StaleSettings``) instead of silently overwriting
  their change; the check is a conditional UPDATE, so it holds on any
  database and across processes.
- A save that changes something bumps the revision and writes one audit
  entry with every changed field (label, old and new value in words); a save
  that changes nothing writes nothing. The configuration version clients see
  is derived from the settings (updates_app/configuration.py), so a no-op
  save cannot create a new one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from console.audit import audit_record
from updates_app.models import FREQUENCY_FIELDS, AutoUpdateSettings, Frequency, Weekday

AUDIT_ACTION = "automatic_update.save"
AUDIT_TARGET = "Automatic Update settings"

EVENT_FIELDS = ("notify_on_download", "include_roaming_offline", "update_on_restart", "scan_after_update")
SCHEDULE_FIELDS = (
    "frequency",
    "interval_minutes",
    "interval_hours",
    "config_once_per_day",
    "start_time",
    "period_hours",
    "weekday",
)
EDITABLE_FIELDS = EVENT_FIELDS + SCHEDULE_FIELDS

FREQUENCY_DEPENDENT_FIELDS = frozenset(name for names in FREQUENCY_FIELDS.values() for name in names)

# Short names for the audit log, where the screen's long labels would not fit.
AUDIT_LABELS = {
    "notify_on_download": "Initiate component update immediately after the server downloads a new component",
    "include_roaming_offline": "Include roaming and offline client(s)",
    "update_on_restart": "Let clients initiate component update when they restart",
    "scan_after_update": "Perform Scan Now after updating",
    "frequency": "Update frequency",
    "interval_minutes": "Interval (minutes)",
    "interval_hours": "Interval (hours)",
    "config_once_per_day": "Update client configurations only once per day",
    "start_time": "Start time",
    "period_hours": "Time period (hours)",
    "weekday": "Day of the week",
}


def fields_ignored_for(frequency: str) -> frozenset[str]:
    """The frequency-dependent fields that do not apply to ``frequency``."""
    return FREQUENCY_DEPENDENT_FIELDS - set(FREQUENCY_FIELDS.get(frequency, ()))


def settings_values(obj: AutoUpdateSettings) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in EDITABLE_FIELDS}


def display_value(name: str, value: Any) -> str:
    """A stored value in the words the screen uses."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if name == "frequency":
        return str(Frequency(value).label)
    if name == "weekday":
        return str(Weekday(value).label)
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return str(value)


def settings_differences(values: dict[str, Any], current: AutoUpdateSettings) -> list[tuple[str, str, str]]:
    """(label, yours, current) for each applicable value that differs from the stored one.

    Shown to an administrator whose save was refused as stale, so they can
    redo their change on top of the new values.
    """
    ignored = fields_ignored_for(values.get("frequency", current.frequency))
    return [
        (AUDIT_LABELS[name], display_value(name, values[name]), display_value(name, getattr(current, name)))
        for name in EDITABLE_FIELDS
        if name in values and name not in ignored and values[name] != getattr(current, name)
    ]


class StaleSettings(Exception):
    """The settings were saved by someone else after the editor loaded them."""

    def __init__(self, current: AutoUpdateSettings):
        super().__init__("The Automatic Update settings changed since you opened them.")
        self.current = current


@dataclass
class SaveResult:
    settings: AutoUpdateSettings
    # {"field": {"label": ..., "old": ..., "new": ...}}; empty for a no-op save.
    changes: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@transaction.atomic
def autoupdate_settings_save(*, actor, revision: int, values: dict[str, Any]) -> SaveResult:
    """Save the screen's values if ``revision`` is still the stored one.

    ``values`` are validated values of EDITABLE_FIELDS (the form does that);
    unknown keys are an error here too, so a caller cannot write other columns.
    """
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not Automatic Update settings: {', '.join(sorted(unknown))}")
    AutoUpdateSettings.load()  # the row exists from here on
    # The row lock serialises concurrent savers on PostgreSQL; the conditional
    # UPDATE below is what decides on every database.
    current = AutoUpdateSettings.objects.select_for_update().get(pk=1)
    if current.revision != revision:
        raise StaleSettings(current)

    frequency = values.get("frequency", current.frequency)
    ignored = fields_ignored_for(frequency)
    old = settings_values(current)
    new = {name: (old[name] if name in ignored else values.get(name, old[name])) for name in EDITABLE_FIELDS}
    changed = [name for name in EDITABLE_FIELDS if new[name] != old[name]]
    if not changed:
        return SaveResult(settings=current)

    updated = AutoUpdateSettings.objects.filter(pk=1, revision=revision).update(
        **{name: new[name] for name in changed},
        revision=revision + 1,
        updated_by=actor if getattr(actor, "is_authenticated", False) else None,
        updated_at=timezone.now(),
    )
    if updated != 1:
        raise StaleSettings(AutoUpdateSettings.objects.get(pk=1))

    changes = {
        name: {
            "label": AUDIT_LABELS[name],
            "old": display_value(name, old[name]),
            "new": display_value(name, new[name]),
        }
        for name in changed
    }
    audit_record(actor=actor, action=AUDIT_ACTION, target=AUDIT_TARGET, changes=changes)
    return SaveResult(settings=AutoUpdateSettings.objects.get(pk=1), changes=changes)
