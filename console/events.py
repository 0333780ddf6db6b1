"""One log line per update run, written when the run is committed.

The engine's modules log claims and give-ups themselves; scheduled runs are
logged where their window opens (updates_app's scheduling), so only the other
triggers are logged here.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save

logger = logging.getLogger("console.runs")


def _log_new_run(sender, instance, created: bool, **kwargs) -> None:
    from updates_app.models import RunTrigger

    if not created or instance.trigger == RunTrigger.SCHEDULE:
        return

    def log() -> None:
        what = f" for {instance.component_version}" if instance.component_version_id else ""
        who = f" by {instance.created_by}" if instance.created_by_id else ""
        clients = instance.deliveries.count()
        logger.info(
            "new %s run #%s%s%s: %d clients", instance.get_trigger_display().lower(), instance.pk, what, who, clients
        )

    transaction.on_commit(log)


def connect() -> None:
    from updates_app.models import UpdateRun

    post_save.connect(_log_new_run, sender=UpdateRun, dispatch_uid="console.events.new_run")
