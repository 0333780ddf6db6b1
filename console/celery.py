"""The Celery app. Settings come from Django settings under the CELERY_ prefix."""

from __future__ import annotations

import logging
import logging.config
import os
import time

from celery import Celery
from celery.signals import (
    after_task_publish,
    beat_init,
    celeryd_after_setup,
    setup_logging,
    worker_process_init,
    worker_ready,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


def broker_description() -> str:
    """Which broker is in use, in words, for the startup log."""
    from django.conf import settings

    if settings.REDIS_URL:
        return f"Redis broker at {app.connection().as_uri()}"
    return f"embedded filesystem broker under {settings.BROKER_DIR} (single machine; set REDIS_URL for Redis)"


@setup_logging.connect
def _configure_logging(**kwargs) -> None:
    """Workers and beat log like the web server: Django's LOGGING (levels, LOG_FORMAT=json)."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_process_init.connect
def _leave_process_group(**kwargs) -> None:
    """A pool process leaves the worker's process group.

    Supervisors that signal the whole group (honcho, which bin/run uses) would
    otherwise kill pool processes in the middle of a batch while the main
    process is still finishing it. The main process stops them gracefully at
    a warm shutdown, and Celery has the kernel kill them should it die
    (PR_SET_PDEATHSIG), so none is left behind.
    """
    os.setpgid(0, 0)


@celeryd_after_setup.connect
def _log_worker_broker(sender=None, **kwargs) -> None:
    logger.info("Celery worker using %s", broker_description())


@worker_ready.connect
def _worker_ready(sender=None, **kwargs) -> None:
    """A worker that starts consuming is alive now, not only at the next heartbeat task (/health/ready)."""
    from console.tasks import heartbeat

    try:
        heartbeat()
    except Exception:
        logger.warning("the worker could not record its heartbeat", exc_info=True)


_beat = {"running": False, "recorded": 0.0}
BEAT_RECORD_EVERY = 15.0


@beat_init.connect
def _log_beat_broker(sender=None, **kwargs) -> None:
    logger.info("Celery beat using %s", broker_description())
    _beat["running"] = True


@after_task_publish.connect
def _beat_alive(sender=None, **kwargs) -> None:
    """In the beat process: each publish proves beat alive; recorded at most every 15 s (/health/ready)."""
    if not _beat["running"] or time.monotonic() - _beat["recorded"] < BEAT_RECORD_EVERY:
        return
    from django.db import close_old_connections
    from django.utils import timezone

    from console.models import ServiceHeartbeat

    try:
        close_old_connections()
        ServiceHeartbeat.objects.update_or_create(name="beat", defaults={"seen_at": timezone.now()})
        _beat["recorded"] = time.monotonic()
    except Exception:
        logger.warning("beat could not record its heartbeat", exc_info=True)
