"""The Automatic Update settings' own saving rule; the save itself is updates_app/settings_save.py.

Fields that do not apply to the chosen frequency are ignored on save and keep
their stored value (the intervals and "Update client configurations only once
per day" apply to Minute(s)/Hour(s); start time and time period to
Daily/Weekly; the day of the week to Weekly). Switching from Minute(s) to
Daily and back therefore brings the old interval back, and a value the
browser sends for a hidden field is neither saved nor rejected.

Like every settings screen, a save names the revision it was edited from and
writes one audit entry for what changed (nothing for a no-op save). The
configuration version clients see is derived from the settings
(updates_app/configuration.py), so a no-op save cannot create a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from updates_app.models import FREQUENCY_FIELDS, AutoUpdateSettings
from updates_app.settings_save import SaveResult, SettingsRules

FREQUENCY_DEPENDENT_FIELDS = frozenset(name for names in FREQUENCY_FIELDS.values() for name in names)

# Every editable field, in the screen's order, with a short name for the audit
# log, where the screen's long labels would not fit.
AUDIT_LABELS = {
    # Event-triggered update
    "notify_on_download": "Initiate component update immediately after the server downloads a new component",
    "include_roaming_offline": "Include roaming and offline client(s)",
    "update_on_restart": "Let clients initiate component update when they restart",
    "scan_after_update": "Perform Scan Now after updating",
    # Schedule-based update
    "frequency": "Update frequency",
    "interval_minutes": "Interval (minutes)",
    "interval_hours": "Interval (hours)",
    "config_once_per_day": "Update client configurations only once per day",
    "start_time": "Start time",
    "period_hours": "Time period (hours)",
    "weekday": "Day of the week",
}
EDITABLE_FIELDS = tuple(AUDIT_LABELS)


def fields_ignored_for(frequency: str) -> frozenset[str]:
    """The frequency-dependent fields that do not apply to ``frequency``."""
    return FREQUENCY_DEPENDENT_FIELDS - set(FREQUENCY_FIELDS.get(frequency, ()))


class AutoUpdateRules(SettingsRules[AutoUpdateSettings]):
    def kept(self, values: Mapping[str, Any], current: AutoUpdateSettings) -> frozenset[str]:
        return fields_ignored_for(values.get("frequency", current.frequency))


AUTOMATIC_UPDATE = AutoUpdateRules(model=AutoUpdateSettings, action="automatic_update.save", labels=AUDIT_LABELS)


def autoupdate_settings_save(*, actor: Any, revision: int, values: Mapping[str, Any]) -> SaveResult[AutoUpdateSettings]:
    """Save the screen's values if ``revision`` is still the stored one (``StaleSettings`` if not).

    ``values`` are validated values of EDITABLE_FIELDS (the form does that);
    unknown keys are an error here too, so a caller cannot write other columns.
    """
    return AUTOMATIC_UPDATE.save(actor=actor, revision=revision, values=values)
