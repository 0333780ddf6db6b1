"""Budgets of requests per time window, shared by every process and host.

The counts live in Django's default cache: Redis when ``REDIS_URL`` is set, so
gunicorn workers, Celery workers and other hosts draw from one budget (without
Redis the embedded defaults serve one process, and so does the count).

A budget is a fixed window: one counter per (scope, key, window). On Redis it
is one round trip, ``INCR`` and ``EXPIRE`` pipelined (``INCR`` is atomic, so
concurrent requests in several processes each get their own count and cannot
both take the last slot); other caches use ``add`` then ``incr`` (atomic
within the process). ``admit`` asks one budget and counts against another,
as every agent request needs, without asking the cache at all while the
traffic stays well inside both, and in one round trip when it must.

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
import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KEY_PREFIX = "rl"


@lru_cache(maxsize=64)
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


def _count(backend: BaseCache, cache_key: str, period: int, amount: int = 1) -> int:
    """Add ``amount`` to the window's counter and return it; the counter expires after the window."""
    if isinstance(backend, RedisCache):
        key = backend.make_and_validate_key(cache_key)
        with _redis(backend).pipeline(transaction=False) as pipe:
            pipe.incrby(key, amount)
            pipe.expire(key, period + 1)
            used, _ = pipe.execute()
        return int(used)
    backend.add(cache_key, 0, timeout=period + 1)
    try:
        return backend.incr(cache_key, amount)
    except ValueError:
        # The counter expired between add and incr: this is a new window.
        backend.add(cache_key, amount, timeout=period + 1)
        return amount


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
        _tally(cache_key, now, wait)  # ``admit`` asks the cache about keys hit here
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


def admit(
    check: tuple[Budget, str], count: tuple[Budget, str], *, now: float | None = None
) -> tuple[float | None, float | None]:
    """Is ``check`` used up, and is ``count`` after counting one more request? At most one round trip.

    What every agent request asks (failed authentications from its address,
    then its own rate), made cheap for the traffic a fleet sends, which is far
    below both budgets:

    - ``check`` is asked of the shared cache only for a key this process has
      counted a hit of in the current window (``Budget.hit``; an address that
      never failed here is not asked about). A key that other processes
      exhausted is refused here from this process's own first hit on: a
      process admits at most one more request for it per window.
    - ``count`` is counted in this process up to ``1/LOCAL_SHARE`` of its
      limit per window; past that, the requests counted here so far go to the
      shared counter at once, then every request does. A key spread over many
      processes gets at most that share of its limit more per process.

    When the cache must be asked, both answers come from one round trip (one
    pipeline on Redis).
    """
    check_budget, check_key = check
    count_budget, count_key = count
    checked, check_limit, _, check_wait = check_budget._slot(check_key, now)
    counted, count_limit, period, count_wait = count_budget._slot(count_key, now)
    ask_check = _tallied(checked)
    here = _tally(counted, now, count_wait)
    local_share = count_limit // LOCAL_SHARE
    if here <= local_share:
        amount = 0
    elif here == local_share + 1:
        amount = here  # past the local share: every request counted here so far
    else:
        amount = 1
    if not ask_check and not amount:
        return None, None
    backend = _backend()
    used = hits = 0
    try:
        if isinstance(backend, RedisCache):
            with _redis(backend).pipeline(transaction=False) as pipe:
                if ask_check:
                    pipe.get(backend.make_and_validate_key(checked))
                if amount:
                    counter = backend.make_and_validate_key(counted)
                    pipe.incrby(counter, amount)
                    pipe.expire(counter, period + 1)
                answers = pipe.execute()
            if ask_check:
                used = int(answers.pop(0) or 0)
            if amount:
                hits = int(answers[0])
        else:
            used = _used(backend, checked) if ask_check else 0
            hits = _count(backend, counted, period, amount) if amount else 0
    except (RedisError, OSError) as exc:
        logger.warning(
            "rate limits %s and %s not enforced: the cache is unreachable (%s)",
            check_budget.scope,
            count_budget.scope,
            exc,
        )
        return None, None
    return (
        math.ceil(check_wait) if ask_check and used >= check_limit else None,
        math.ceil(count_wait) if amount and hits > count_limit else None,
    )


# --- What this process counted in the current windows (``admit``) ----------------------------

# Requests a process counts itself before it asks the shared cache: a tenth of a limit.
LOCAL_SHARE = 10

_local_lock = threading.Lock()
# Cache key (which names its window) -> [requests counted here, when the window ends].
_local: dict[str, list[float]] = {}
_local_pruned_at = 0.0


def _tally(cache_key: str, now: float | None, wait: float) -> int:
    """Count one request of this window in this process; the count so far."""
    current = time.time() if now is None else now
    with _local_lock:
        _prune(current)
        entry = _local.get(cache_key)
        if entry is None:
            entry = _local[cache_key] = [0, current + wait]
        entry[0] += 1
        return int(entry[0])


def local_counts_clear() -> None:
    """Forget what this process counted (with the shared counters gone, as between tests)."""
    with _local_lock:
        _local.clear()


def _tallied(cache_key: str) -> bool:
    with _local_lock:
        return cache_key in _local


def _prune(current: float) -> None:
    """Forget windows that have ended (at most once a second; the caller holds the lock)."""
    global _local_pruned_at
    if current - _local_pruned_at < 1.0:
        return
    _local_pruned_at = current
    for cache_key in [key for key, (_, ends) in _local.items() if ends <= current]:
        del _local[cache_key]
