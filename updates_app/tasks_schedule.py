"""Beat task for schedule-based update (Daily/Weekly windows)."""

from __future__ import annotations

from celery import shared_task

from updates_app.scheduling import schedule_window_open


@shared_task(name="updates_app.tasks_schedule.open_schedule_window")
def open_schedule_window() -> str:
    """Every minute: open the Daily/Weekly window whose start time has come, once."""
    run = schedule_window_open()
    return f"opened {run.window_key}" if run else "nothing to open"
