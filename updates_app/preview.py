"""What a schedule would do to the current fleet, shown before it is saved.

The numbers come from the planner's own pieces: the same eligibility
selector and the same spread function, so the preview shows what opening the
window now would plan (a test holds the two together).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from django.utils import timezone

from updates_app.engine.planner import agent_scheduled_clients, schedule_eligible_clients
from updates_app.engine.spread import per_minute_counts, spread_offsets
from updates_app.engine.windows import Window, next_window_after
from updates_app.models import Frequency

# A fixed seed: the preview re-renders on every change, and its histogram
# should change because the settings did, not because of a new draw.
PREVIEW_SEED = 0
# Bars in the histogram: a 24-hour period is shown in 48 bars of 30 minutes.
MAX_BARS = 60
SVG_WIDTH, SVG_HEIGHT = 480, 120


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


@dataclass
class SchedulePreview:
    frequency: str
    clients: int
    # Daily/Weekly: notifications per minute of the window.
    mean_per_minute: float = 0.0
    peak_per_minute: int = 0
    per_minute: list[int] = field(default_factory=list)
    next_window: Window | None = None
    bars: list[Bar] = field(default_factory=list)
    bar_minutes: int = 1
    bar_peak: int = 0
    # The per-minute rate a full-height bar stands for.
    bar_top: float = 0.0
    # Minute(s)/Hour(s): update checks per minute, the agents' random phases averaged.
    checks_per_minute: float = 0.0
    interval_minutes: int = 0
    config_fetches_per_day: int = 0

    @property
    def interval(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.interval_minutes)


def schedule_preview(
    *,
    frequency: str,
    start_time: dt.time | None = None,
    period_hours: int | None = None,
    weekday: int | None = None,
    interval_minutes: int | None = None,
    interval_hours: int | None = None,
    config_once_per_day: bool = True,
    now: dt.datetime | None = None,
    rng: random.Random | None = None,
) -> SchedulePreview:
    now = now or timezone.now()
    # The preview's form (updates_app/forms/schedule.py) requires the fields each frequency uses.
    if frequency in (Frequency.MINUTES, Frequency.HOURS):
        minutes = interval_minutes if frequency == Frequency.MINUTES else (interval_hours or 0) * 60
        assert minutes
        clients = agent_scheduled_clients().count()
        return SchedulePreview(
            frequency=frequency,
            clients=clients,
            checks_per_minute=clients / minutes,
            interval_minutes=minutes,
            # With "only once per day" each agent fetches its configuration once a day, else at every check.
            config_fetches_per_day=clients if config_once_per_day else round(clients * 1440 / minutes),
        )
    assert start_time is not None and period_hours is not None
    clients = schedule_eligible_clients().count()
    duration = period_hours * 3600.0
    offsets = spread_offsets(clients, duration_seconds=duration, rng=rng or random.Random(PREVIEW_SEED))
    per_minute = per_minute_counts(offsets, duration_seconds=duration)
    preview = SchedulePreview(
        frequency=frequency,
        clients=clients,
        mean_per_minute=clients / (duration / 60),
        peak_per_minute=max(per_minute),
        per_minute=per_minute,
        next_window=next_window_after(
            now=now, frequency=frequency, start_time=start_time, period_hours=period_hours, weekday=weekday
        ),
    )
    _add_bars(preview, start_time=start_time)
    return preview


def _add_bars(preview: SchedulePreview, *, start_time: dt.time) -> None:
    """Group the minutes into at most MAX_BARS bars of whole minutes; heights are per-minute averages."""
    minutes = len(preview.per_minute)
    group = math.ceil(minutes / MAX_BARS)
    sums = [sum(preview.per_minute[i : i + group]) for i in range(0, minutes, group)]
    averages = [s / len(preview.per_minute[i * group : (i + 1) * group]) for i, s in enumerate(sums)]
    top = max(averages) or 1.0
    width = SVG_WIDTH / len(averages)
    start = dt.datetime.combine(dt.date(2000, 1, 1), start_time)
    preview.bar_minutes = group
    preview.bar_peak = max(sums)
    preview.bar_top = max(averages)
    for i, (total, average) in enumerate(zip(sums, averages, strict=True)):
        height = (SVG_HEIGHT - 10) * average / top
        at = (start + dt.timedelta(minutes=i * group)).strftime("%H:%M")
        preview.bars.append(
            Bar(
                x=round(i * width, 2),
                y=round(SVG_HEIGHT - height, 2),
                width=round(max(width - 1, 0.5), 2),
                height=round(height, 2),
                label=at,
                count=total,
            )
        )
