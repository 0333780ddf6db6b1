"""Rate limits that mean something: keyed on the address the proxies vouch for, shared by processes."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.test import RequestFactory

from console.client_address import client_ip
from console.ratelimit import Budget, admit, parse_rate

ROOT = Path(__file__).resolve().parents[2]
# Mid-minute, so a fixed one-minute window cannot roll over during a test.
MID_MINUTE = dt.datetime(2026, 6, 1, 12, 0, 30, tzinfo=dt.UTC)


@pytest.fixture
def frozen_clock():
    with time_machine.travel(MID_MINUTE, tick=False):
        yield


def request_from(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def register_empty(client, **extra):
    # An empty body is refused with 400 after the throttle has counted it.
    return client.post("/agent/v1/register", {}, content_type="application/json", **extra)


# --- The client address -------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request_from("127.0.0.7", "127.9.9.9")) == "127.0.0.7"


def test_forwarded_for_from_a_peer_that_is_no_trusted_proxy_is_ignored(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    assert client_ip(request_from("127.0.0.7", "127.9.9.9")) == "127.0.0.7"


def test_behind_trusted_proxies_the_right_most_untrusted_entry_is_the_client(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32", "127.0.1.0/24"]
    # The client wrote "127.6.6.6" itself; the proxies appended what they saw.
    request = request_from("127.0.0.1", "127.6.6.6, 127.0.3.4, 127.0.1.20")
    assert client_ip(request) == "127.0.3.4"
    assert client_ip(request_from("127.0.0.1", "::1")) == "::1"
    # Garbage where the proxy should have written an address: key on the proxy.
    assert client_ip(request_from("127.0.0.1", "127.0.3.4, not-an-address")) == "127.0.0.1"
    assert client_ip(request_from("127.0.0.1")) == "127.0.0.1"


def test_rates_parse_and_bad_ones_are_refused():
    assert parse_rate("120/min") == (120, 60)
    assert parse_rate("5/hour") == (5, 3600)
    for bad in ("0/min", "x/min", "5/fortnight", "5"):
        with pytest.raises(ValueError):
            parse_rate(bad)


# --- Registration limit ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_rotated_x_forwarded_for_does_not_escape_the_registration_limit(client, settings, frozen_clock):
    settings.AGENT_REGISTRATION_RATE_LIMIT = "3/min"
    settings.TRUSTED_PROXIES = []
    codes = [
        register_empty(client, REMOTE_ADDR="127.0.0.5", HTTP_X_FORWARDED_FOR=f"127.50.0.{n}").status_code
        for n in range(5)
    ]
    assert codes == [400, 400, 400, 429, 429]
    # Another address has its own budget.
    assert register_empty(client, REMOTE_ADDR="127.0.0.6").status_code == 400


@pytest.mark.django_db
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(client, settings, frozen_clock):
    settings.AGENT_REGISTRATION_RATE_LIMIT = "2/min"
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    first = [register_empty(client, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.60.0.1") for _ in range(3)]
    assert [r.status_code for r in first] == [400, 400, 429]
    assert int(first[-1]["Retry-After"]) == 31
    # Prepending a forged entry changes nothing: the proxy's entry is the right-most.
    forged = register_empty(client, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.99.0.1, 127.60.0.1")
    assert forged.status_code == 429
    assert register_empty(client, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.60.0.2").status_code == 400


# --- Failed authentications -------------------------------------------------------------


@pytest.mark.django_db
def test_wrong_tokens_are_limited_per_address(client, register, settings, frozen_clock):
    _, auth = register()
    settings.AGENT_AUTH_FAILURE_RATE_LIMIT = "3/min"
    wrong = {"HTTP_AUTHORIZATION": "Bearer not-a-real-token"}

    def checkin(headers, address):
        return client.post(
            "/agent/v1/checkin", {"event": "heartbeat"}, content_type="application/json", REMOTE_ADDR=address, **headers
        )

    codes = [checkin(wrong, "127.0.0.8").status_code for _ in range(3)]
    assert codes == [403, 403, 403]
    refused = checkin(wrong, "127.0.0.8")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) == 31
    # Refused before the token is looked at: a right token from there says nothing either.
    assert checkin(auth, "127.0.0.8").status_code == 429
    # Other addresses are not punished.
    assert checkin(auth, "127.0.0.9").status_code == 200


@pytest.mark.django_db
def test_wrong_enrollment_secrets_count_as_failed_authentications(client, enrollment, settings, frozen_clock):
    settings.AGENT_AUTH_FAILURE_RATE_LIMIT = "2/min"
    body = {
        "enrollment_secret": "guess",
        "hostname": "pc-1",
        "ip_address": "127.0.0.1",
        "listener_port": 40001,
        "domain": "",
        "roaming": False,
    }

    def attempt(secret):
        return client.post(
            "/agent/v1/register", {**body, "enrollment_secret": secret}, content_type="application/json"
        ).status_code

    assert [attempt("guess-1"), attempt("guess-2")] == [401, 401]
    assert attempt(enrollment) == 429


# --- Shared between processes ---------------------------------------------------------

SUBPROCESS = """
import os, sys
import django
import time_machine
# Every process on the same frozen clock: their requests fall in one window.
time_machine.travel(float(sys.argv[3]), tick=False).start()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django.setup()
from django.test import Client
client = Client(REMOTE_ADDR=sys.argv[1], HTTP_HOST="127.0.0.1")
codes = [
    client.post("/agent/v1/register", {}, content_type="application/json").status_code
    for _ in range(int(sys.argv[2]))
]
print(" ".join(str(code) for code in codes))
"""


def _registrations_in_another_process(address: str, count: int) -> list[int]:
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environment["AGENT_REGISTRATION_RATE_LIMIT"] = "5/day"
    result = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, address, str(count), str(MID_MINUTE.timestamp())],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [int(code) for code in result.stdout.split()]


@pytest.mark.redis
def test_two_processes_share_one_limit():
    # A daily window: both processes count in the same one, on the same frozen clock.
    address = f"127.{random.randrange(100, 250)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    assert _registrations_in_another_process(address, 3) == [400, 400, 400]
    # Per-process counting would give this one three more; the shared budget has two.
    assert _registrations_in_another_process(address, 3) == [400, 400, 429]


@pytest.mark.redis
def test_the_budget_lives_in_redis(settings, frozen_clock):
    from django.core.cache import caches

    assert type(caches["default"]).__name__ == "RedisCache"
    budget = Budget("test", "2/min")
    assert [budget.hit("k"), budget.hit("k"), budget.hit("k")] == [None, None, 30]
    assert budget.exhausted("k") == 30
    assert budget.exhausted("other") is None
    # The counter goes when its window has passed.
    backend = caches["default"]
    redis = backend._cache.get_client(write=True)
    keys = list(redis.scan_iter(match=backend.make_key("rl:test:k:*")))
    assert len(keys) == 1 and 0 < redis.ttl(keys[0]) <= 61


def _admit_answers(scope: str) -> None:
    # Limits under LOCAL_SHARE requests: every request is counted in the shared cache.
    failures, requests = Budget(f"{scope}-failures", "2/min"), Budget(f"{scope}-requests", "3/min")
    failures.hit("addr")
    # One failure of two allowed: not refused; requests counted 1, 2, 3, then over.
    answers = [admit((failures, "addr"), (requests, "token")) for _ in range(4)]
    assert answers == [(None, None), (None, None), (None, None), (None, 30)]
    failures.hit("addr")
    assert admit((failures, "addr"), (requests, "other")) == (30, None)
    # Another address and another token have budgets of their own.
    assert admit((failures, "elsewhere"), (requests, "fresh")) == (None, None)


def test_admit_asks_one_budget_and_counts_against_another_in_the_process_cache(frozen_clock):
    _admit_answers(f"local-{random.randrange(10**9)}")


@pytest.fixture
def redis_sends(monkeypatch):
    """What the process sends to Redis: one entry per round trip (a pipeline is one)."""
    from django.core.cache import caches
    from redis.connection import AbstractConnection

    assert type(caches["default"]).__name__ == "RedisCache"
    sends: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def counted(self, command, *args, **kwargs):
        sends.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sends


@pytest.mark.redis
def test_admit_answers_the_same_on_redis(frozen_clock):
    _admit_answers(f"redis-{random.randrange(10**9)}")


@pytest.mark.redis
def test_light_traffic_asks_redis_nothing_and_heavier_one_round_trip(frozen_clock, redis_sends):
    from django.core.cache import cache

    scope = f"share-{random.randrange(10**9)}"
    failures, requests = Budget(f"{scope}-failures", "2/min"), Budget(f"{scope}-requests", "100/min")
    # Up to a tenth of the limit, counted in this process only.
    assert [admit((failures, "addr"), (requests, "token")) for _ in range(10)] == [(None, None)] * 10
    assert redis_sends == []
    # Past it: what this process counted goes to the shared counter in one round trip, then one per request.
    admit((failures, "addr"), (requests, "token"))
    assert len(redis_sends) == 1
    shared = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    (key,) = shared.keys(cache.make_key(f"rl:{scope}-requests:token:*"))
    assert int(shared.get(key)) == 11
    admit((failures, "addr"), (requests, "token"))
    assert int(shared.get(key)) == 12
    # An address that failed here is asked about, in the same round trip as the count.
    failures.hit("addr")
    redis_sends.clear()
    assert admit((failures, "addr"), (requests, "token")) == (None, None)
    assert len(redis_sends) == 1


def test_every_process_counts_a_tenth_of_a_limit_before_sharing(frozen_clock):
    from console import ratelimit

    requests = Budget(f"spread-{random.randrange(10**9)}", "100/min")
    failures = Budget(f"spread-failures-{random.randrange(10**9)}", "1/min")
    # Three processes, each seeing 40 requests of one client: 120 of a limit of 100.
    refused = 0
    for _ in range(3):
        ratelimit.local_counts_clear()  # a process of its own
        refused += sum(admit((failures, "addr"), (requests, "token"))[1] is not None for _ in range(40))
    # Counted in the shared cache past each process's first 10, carried over: all 120, 20 over.
    assert refused == 20


def test_an_address_refused_elsewhere_is_refused_here_after_its_first_failure(frozen_clock):
    from console import ratelimit

    failures = Budget(f"elsewhere-{random.randrange(10**9)}", "2/min")
    requests = Budget(f"elsewhere-requests-{random.randrange(10**9)}", "100/min")
    failures.hit("addr")
    failures.hit("addr")  # another process used the whole budget up
    ratelimit.local_counts_clear()  # this process never saw the address fail
    assert admit((failures, "addr"), (requests, "token"))[0] is None
    failures.hit("addr")  # its first failure here
    assert admit((failures, "addr"), (requests, "token"))[0] == 30


@pytest.mark.django_db
def test_a_client_over_its_rate_is_refused_before_its_token_is_looked_up(
    client, register, settings, django_assert_num_queries
):
    _, auth = register()
    settings.AGENT_RATE_LIMIT = "1/min"
    body = {"event": "heartbeat"}
    assert client.post("/agent/v1/checkin", body, content_type="application/json", **auth).status_code == 200
    with django_assert_num_queries(0):
        refused = client.post("/agent/v1/checkin", body, content_type="application/json", **auth)
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"


def test_an_unreachable_redis_does_not_take_the_agent_api_down(monkeypatch, caplog):
    import socket

    from django.core.cache.backends.redis import RedisCache

    from console import ratelimit

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    unreachable = RedisCache(f"redis://127.0.0.1:{closed}/0", {"OPTIONS": {"socket_connect_timeout": 1}})
    monkeypatch.setattr(ratelimit, "_backend", lambda: unreachable)
    # A Celery worker started by an earlier test may have disabled the existing loggers.
    monkeypatch.setattr(ratelimit.logger, "disabled", False)
    caplog.set_level("WARNING", logger="console.ratelimit")
    budget = Budget("down", "1/min")
    assert [budget.hit("k"), budget.hit("k")] == [None, None]
    assert budget.exhausted("k") is None
    assert ratelimit.admit((budget, "k"), (budget, "k")) == (None, None)
    assert "not enforced" in caplog.text
