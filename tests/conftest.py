"""Shared test fixtures.

Real parts where users have real parts: a Celery worker in a thread against
Redis (REDIS_URL) or the in-memory broker, the database from DATABASE_URL, and
headless Chromium for the screens. Under CI a test marked ``redis``,
``postgres`` or ``browser`` that cannot get its real part fails instead of
skipping, so a green CI run really exercised them.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started

# Playwright's sync API keeps an event loop in the main thread; Django would
# refuse ORM calls made from the test body while a page is open.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

IN_CI = bool(os.environ.get("CI"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _redis_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def pytest_configure(config):
    # Run in parallel (pytest-xdist's -n, as CI runs the suite), each worker is handed two tests at
    # a time as it finishes (xdist's default hands each a quarter of its share at once, in
    # collection order: every slow test to the first worker).
    if getattr(config.option, "maxschedchunk", "no xdist") is None:
        config.option.maxschedchunk = 2


def pytest_collection_modifyitems(config, items):
    """The slow tests first, otherwise the usual order: in parallel, the long ones start early and
    the short ones fill in around them, instead of one long test finishing alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_runtest_setup(item):
    if item.get_closest_marker("redis"):
        if not settings.REDIS_URL:
            _unavailable("needs Redis: set REDIS_URL")
        elif not _redis_reachable(settings.REDIS_URL):
            _unavailable(f"needs Redis, but {settings.REDIS_URL} does not answer")
    is_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    if item.get_closest_marker("postgres") and not is_postgres:
        _unavailable("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if item.get_closest_marker("browser") and not os.path.exists(CHROMIUM):
        _unavailable(f"needs Debian's chromium at {CHROMIUM} (bin/test installs it when it can)")


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Passwords hashed in a microsecond instead of 0.3 s of CPU (PBKDF2's million rounds).

    Hundreds of tests create a user or log in; at 0.3 s each that was a third of the suite's CPU.
    What the tests prove about logins (the form, throttling, permissions) does not depend on the
    hasher; production keeps Django's default (tests/console/test_settings_env.py checks it).
    """
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session", autouse=True)
def _static_files_from_the_source_folders():
    """Tests link static files by their plain names, as with DEBUG on.

    The product links hashed names from a manifest that bin/setup collects;
    the test server (live_server) serves static files from the source folders
    and knows no hashed names. tests/console/test_stack.py checks the
    collected files under gunicorn.
    """
    from django.test import override_settings

    plain = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    with override_settings(STORAGES=plain):
        yield


@pytest.fixture(autouse=True)
def fresh_body_memo():
    """Every test starts with no request body remembered: its first check-in of a body is validated,
    a repeat of it is not (agent_api/bodies.py)."""
    from agent_api import bodies

    bodies.forget_all()


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Every test starts with full request budgets (they live in the shared cache, Redis under CI).

    Only the rate-limit keys go: the cache may share its Redis database with the broker.
    """
    from django.core.cache import cache, caches

    from console.ratelimit import KEY_PREFIX, local_counts_clear

    local_counts_clear()
    if type(caches["default"]).__name__ == "RedisCache":
        from redis.exceptions import ConnectionError as RedisDown

        redis = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
        try:
            keys = list(redis.scan_iter(match=cache.make_key(f"{KEY_PREFIX}:*"), count=1000))
            if keys:
                redis.delete(*keys)
        except RedisDown:
            pass  # tests that need Redis say so (marker redis); the others run without it
    else:
        cache.clear()


class _RequestsInFlight:
    """How many requests threads other than the test's own are answering (the live server's)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def started(self, **kwargs) -> None:
        if threading.current_thread() is not threading.main_thread():
            with self.changed:
                self.count += 1

    def finished(self, **kwargs) -> None:
        if threading.current_thread() is not threading.main_thread():
            with self.changed:
                self.count -= 1
                self.changed.notify_all()

    def wait_until_none(self, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count <= 0, timeout)


_live_requests = _RequestsInFlight()
request_started.connect(_live_requests.started, dispatch_uid="tests-live-requests-started")
request_finished.connect(_live_requests.finished, dispatch_uid="tests-live-requests-finished")


@pytest.fixture
def live_server(live_server):
    """pytest-django's live server (one for the session); a test ends once it answered every request.

    An agent stopped at the end of a test may have sent a request the server is still answering:
    its transaction holds row locks, and the flush that empties the database after the test
    (TRUNCATE) deadlocks with it ("Database couldn't be flushed"). The fixtures of the test (its
    fleet, its worker) stop first, then this waits, then the database is flushed.
    """
    yield live_server
    if not _live_requests.wait_until_none(timeout=60):
        pytest.fail(f"the live server still answers {_live_requests.count} requests a minute after the test")


@pytest.fixture(scope="session")
def celery_app_for_tests():
    """The project's Celery app, on the in-memory broker when there is no Redis."""
    from console.celery import app

    if not settings.REDIS_URL:
        app.conf.broker_url = "memory://"
        app.conf.broker_transport_options = {}
        # A task enqueued by an earlier test (e.g. a run kicking the
        # dispatcher) opened pooled connections to the old broker: drop them,
        # or producers would keep sending where this worker never looks.
        if app._pool is not None:
            app._pool.force_close_all()
            app._pool = None
        app.amqp._producer_pool = None
    return app


@pytest.fixture
def celery_worker(celery_app_for_tests, transactional_db):
    """A real Celery worker running in a thread, consuming from the real broker."""
    from celery.contrib.testing.worker import start_worker

    # Messages left by earlier tests (dispatcher kicks after downloads, with no
    # worker running) would be worked through first and eat this test's time.
    celery_app_for_tests.control.purge()
    with start_worker(celery_app_for_tests, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("operator", password="correct-horse-battery", is_staff=True)


# What a read-only operator holds: every page that shows clients, the audit log.
VIEWER_PERMISSIONS = (("agents_app", "view_client"), ("console", "view_auditentry"))


@pytest.fixture
def viewer_user(staff_user):
    """The staff user with the view permissions only (no change or add permission)."""
    from django.contrib.auth.models import Permission

    for app_label, codename in VIEWER_PERMISSIONS:
        staff_user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return staff_user


@pytest.fixture
def viewer_client(client, viewer_user):
    client.force_login(viewer_user)
    return client


@pytest.fixture
def admin_user_obj(django_user_model):
    return django_user_model.objects.create_superuser("root", password="correct-horse-battery")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def superuser_client(client, admin_user_obj):
    client.force_login(admin_user_obj)
    return client


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    if not os.path.exists(CHROMIUM):
        _unavailable(f"needs Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def logged_in_page(page, live_server, admin_user_obj):
    """A browser page logged in as a superuser through the real login form."""
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def pytest_report_header(config):
    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = "redis" if settings.REDIS_URL else "in-memory"
    chromium = "yes" if shutil.which("chromium") or os.path.exists(CHROMIUM) else "no"
    return f"console: database={db} broker={broker} chromium={chromium} CI={'yes' if IN_CI else 'no'}"
