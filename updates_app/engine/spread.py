"""The spread: when inside a window each client is notified.

Independent uniform draws (Puppet's and Salt's splay) leave random clumps: over
10,000 clients and two hours the busiest minute is typically 25-30% above the
mean. Instead the window is cut into as many equal slots as there are clients,
each client (in shuffled order, so no client is always first) gets one slot,
and its moment is a random offset inside that slot. Every minute then holds the
same number of slots give or take one, so the load is flat, and nobody can
predict a client's moment.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def spread_offsets(count: int, *, duration_seconds: float, rng: random.Random) -> list[float]:
    """``count`` offsets in seconds, ascending, each in [0, duration_seconds).

    Slot i is [i * width, (i + 1) * width); its offset is drawn uniformly inside
    it. The draws happen in slot order, so the same seed gives the same offsets
    for the same count, which is what lets the preview show exactly what the
    planner would do.
    """
    if count <= 0 or duration_seconds <= 0:
        return []
    width = duration_seconds / count
    # min(): float rounding must never push the last moment onto the window's end.
    latest = duration_seconds - 1e-6
    return [min((i + rng.random()) * width, latest) for i in range(count)]


def spread_assign(items: Sequence[T], *, duration_seconds: float, rng: random.Random) -> list[tuple[T, float]]:
    """Pair each item with an offset: offsets first (see above), then a shuffled order of items."""
    offsets = spread_offsets(len(items), duration_seconds=duration_seconds, rng=rng)
    order = list(items)
    rng.shuffle(order)
    return list(zip(order, offsets, strict=True))


def per_minute_counts(offsets: Sequence[float], *, duration_seconds: float) -> list[int]:
    """How many offsets fall in each minute of the window (the last minute may be partial)."""
    minutes = max(1, -(-int(duration_seconds) // 60))
    counts = [0] * minutes
    for offset in offsets:
        counts[min(int(offset // 60), minutes - 1)] += 1
    return counts
