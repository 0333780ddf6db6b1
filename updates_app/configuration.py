"""The configuration document a client applies (SPEC 3.5).

Every console change that clients must apply (the Automatic Update settings,
the privileges dialog) changes this document; its content hash is the client's
configuration version, so "is there a newer configuration?" is a comparison of
hashes and a save that changes nothing produces no new version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agents_app.models import Client
from updates_app.models import AutoUpdateSettings, Frequency

CONFIG_SCHEMA_VERSION = 1


def schedule_document(auto: AutoUpdateSettings) -> dict[str, Any]:
    """The schedule part, identical for every client."""
    schedule: dict[str, Any] = {"frequency": auto.frequency}
    if auto.frequency == Frequency.MINUTES:
        schedule.update(interval_minutes=auto.interval_minutes, config_once_per_day=auto.config_once_per_day)
    elif auto.frequency == Frequency.HOURS:
        schedule.update(interval_hours=auto.interval_hours, config_once_per_day=auto.config_once_per_day)
    else:
        schedule.update(start_time=auto.start_time.strftime("%H:%M"), period_hours=auto.period_hours)
        if auto.frequency == Frequency.WEEKLY:
            schedule["weekday"] = auto.weekday
    return schedule


def client_configuration(client: Client, auto: AutoUpdateSettings | None = None) -> dict[str, Any]:
    """The whole document for one client (without its version)."""
    auto = auto or AutoUpdateSettings.load()
    return {
        "schema": CONFIG_SCHEMA_VERSION,
        "schedule": schedule_document(auto),
        "update_on_restart": auto.update_on_restart,
        "privileges": {
            "roaming": client.roaming_privilege,
            "update_now": client.update_now_privilege,
            "scheduled_update": client.scheduled_update_privilege,
        },
        "update_settings": {
            "download_from_activeupdate": client.download_from_activeupdate,
            "scheduled_update": client.scheduled_update_setting,
            "components_only": client.components_only,
        },
        # The client user's own choice is reported by the agent, not configured:
        # it is left out so that flipping it does not make a new version.
        "scheduled_update": {
            "enabled": client.scheduled_update_privilege,
            "user_may_disable": client.scheduled_update_privilege and client.scheduled_update_setting,
        },
    }


def configuration_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()
