"""Budgets of requests per time window, shared by every process and host.

The counts live in Django's default cache: Redis when ``REDIS_URL`` is set, so
gunicorn workers, Celery workers and other hosts draw from one budget (without
Redis the embedded defaults serve one process, and so does the count).

A budget is a fixed window: one counter per (scope, key, window). On Redis it
is one round trip, ``INCR`` and ``EXPIRE`` in a MULTI/EXEC block (atomic, so
concurrent requests in several processes cannot both take the last slot);
other caches use ``add`` then ``incr`` (atomic within the process).

When Redis cannot be reached the budgets are not enforced (logged): a rate
limit must not turn a Redis outage into an outage of the agent API, whose
work (deliveries, reports) lives in the database. A fixed window lets a
client use its budget at the end of one window and again at the start of the
next (at most twice the rate over a moment); the sliding history that DRF's
SimpleRateThrottle keeps would be exact but is a read-modify-write of a list,
which two processes can interleave and so lose counts.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KEY_PREFIX = "rl"


def parse_rate(rate: str) -> tuple[int, int]:
    """``"120/min"`` -> (120, 60): requests and the period in seconds (s, min, hour, day)."""
    count, _, period = rate.partition("/")
    try:
        number = int(count)
    except ValueError:
        raise ValueError(f"rate must look like 120/min, got {rate!r}") from None
    seconds = _PERIODS.get(period.strip()[:1].lower())
    if number < 1 or seconds is None:
        raise ValueError(f"rate must look like 120/min (a positive count per s, min, hour or day), got {rate!r}")
    return number, seconds


def _backend() -> BaseCache:
    return caches["default"]


# One redis-py client per cache backend: Django's RedisCache builds a new client
# object for every call, which costs more than the round trip itself.
_redis_clients: weakref.WeakKeyDictionary[RedisCache, Any] = weakref.WeakKeyDictionary()


def _redis(backend: RedisCache) -> Any:
    client = _redis_clients.get(backend)
    if client is None:
        client = _redis_clients[backend] = backend._cache.get_client(write=True)
    return client


def _used(backend: BaseCache, cache_key: str) -> int:
    if isinstance(backend, RedisCache):
        return int(_redis(backend).get(backend.make_and_validate_key(cache_key)) or 0)
    return int(backend.get(cache_key) or 0)


def _count(backend: BaseCache, cache_key: str, period: int) -> int:
    """Add one to the window's counter and return it; the counter expires after the window."""
    if isinstance(backend, RedisCache):
        key = backend.make_and_validate_key(cache_key)
        with _redis(backend).pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, period + 1)
            used, _ = pipe.execute()
        return int(used)
    backend.add(cache_key, 0, timeout=period + 1)
    try:
        return backend.incr(cache_key)
    except ValueError:
        # The counter expired between add and incr: this is a new window.
        backend.add(cache_key, 1, timeout=period + 1)
        return 1


@dataclass(frozen=True)
class Budget:
    scope: str
    rate: str

    def _slot(self, key: str, now: float | None) -> tuple[str, int, int, float]:
        limit, period = parse_rate(self.rate)
        current = time.time() if now is None else now
        window = int(current // period)
        wait = (window + 1) * period - current
        return f"{KEY_PREFIX}:{self.scope}:{key}:{window}", limit, period, wait

    def hit(self, key: str, *, now: float | None = None) -> float | None:
        """Count one request; the seconds to wait if that went over the budget, else None."""
        cache_key, limit, period, wait = self._slot(key, now)
        try:
            used = _count(_backend(), cache_key, period)
        except (RedisError, OSError) as exc:
            logger.warning("rate limit %s not enforced: the cache is unreachable (%s)", self.scope, exc)
            return None
        return math.ceil(wait) if used > limit else None

    def exhausted(self, key: str, *, now: float | None = None) -> float | None:
        """Without counting: the seconds to wait if the budget is used up, else None."""
        cache_key, limit, _, wait = self._slot(key, now)
        try:
            used = _used(_backend(), cache_key)
        except (RedisError, OSError) as exc:
            logger.warning("rate limit %s not enforced: the cache is unreachable (%s)", self.scope, exc)
            return None
        return math.ceil(wait) if used >= limit else None
