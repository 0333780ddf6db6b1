"""Parallel test workers (pytest-xdist) share one Redis database without seeing each other.

A pytest plugin (``-p tests.worker_isolation`` in pyproject.toml's addopts), loaded before
pytest-django reads the settings: it gives this process its own ``REDIS_KEY_PREFIX``
(``pytest-gw0:``, ``pytest-gw1:``, ... or ``pytest-main:`` without xdist), which the settings put
in front of every key the console keeps in Redis: the broker's queues and bindings, and the
cache. So one worker's purge of the broker queue, its rate-limit reset or its "Redis restarts
empty" never touches another worker's messages or counters. The processes a test starts (Celery
workers, other Django processes) inherit the environment, and so the prefix.

pytest-django already gives each worker its own test database (``test_<name>_gw0``, ...), and
ports are picked free by the system (port 0) everywhere; nothing else is shared.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # xdist's workers inherit the environment of the process that starts them, which ran this too:
    # each builds on the prefix given from outside, not on its parent's.
    given = os.environ.setdefault("PYTEST_GIVEN_REDIS_KEY_PREFIX", os.environ.get("REDIS_KEY_PREFIX", ""))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["REDIS_KEY_PREFIX"] = f"{given}pytest-{worker}:"
