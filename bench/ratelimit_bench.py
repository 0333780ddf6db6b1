"""What a shared rate limit costs per agent request: the Redis budget against an in-process one.

Usage (from the project folder; needs a Redis server):

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/ratelimit_bench.py [--hits 20000]

Counts ``--hits`` requests through ``console.ratelimit.Budget`` (the code every
agent request runs: one ``add`` and one ``incr``, plus one ``get`` for the
failed-authentication check) on Django's LocMemCache, the per-process baseline
measured in the same run, and on RedisCache at REDIS_URL, which every process
and host shares. It prints microseconds per request, the ratio, and a bare
Redis PING round trip for scale (two round trips per request are the floor). Its keys
carry their own scope and expire within a minute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.cache.backends.locmem import LocMemCache  # noqa: E402
from django.core.cache.backends.redis import RedisCache  # noqa: E402

from console import ratelimit  # noqa: E402


def per_request_microseconds(backend, hits: int, rounds: int) -> float:
    ratelimit._backend = lambda: backend  # the cache, swapped for this measurement only
    budget = ratelimit.Budget(f"bench-{uuid.uuid4().hex[:8]}", "1000000000/min")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for n in range(hits):
            budget.exhausted(f"addr-{n % 100}")
            budget.hit(f"client-{n % 1000}")
        times.append((time.perf_counter() - started) / hits * 1e6)
    return statistics.median(times)


def ping_microseconds(backend: RedisCache, hits: int) -> float:
    client = backend._cache.get_client(write=True)
    started = time.perf_counter()
    for _ in range(hits):
        client.ping()
    return (time.perf_counter() - started) / hits * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not settings.REDIS_URL:
        sys.exit("Set REDIS_URL: the shared budget lives in Redis.")
    local = LocMemCache("bench", {})
    shared = RedisCache(settings.REDIS_URL, {"KEY_PREFIX": "console-cache-bench"})
    baseline = per_request_microseconds(local, args.hits, args.rounds)
    redis = per_request_microseconds(shared, args.hits, args.rounds)
    ping = ping_microseconds(shared, args.hits)
    print(f"requests counted: {args.hits} x {args.rounds} rounds (median round)")
    print(f"in-process (LocMemCache): {baseline:8.1f} us per request")
    print(f"shared (Redis):           {redis:8.1f} us per request  ({redis / baseline:.1f}x the in-process budget)")
    print(f"Redis PING round trip:    {ping:8.1f} us  (a request costs {redis / ping:.1f} round trips' time)")


if __name__ == "__main__":
    main()
