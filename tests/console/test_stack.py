"""The stack an operator runs: gunicorn with DEBUG off, and a worker on its own.

Real processes on a temporary var dir (SQLite, the embedded broker) and a free
loopback port. The PostgreSQL + Redis variant from a runtime-only install is
.ci/stack-smoke, and Ctrl-C on bin/run (web, worker, beat and the demo under
honcho) is .ci/ctrl-c-smoke, a step of it: both boot the whole stack anyway.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "PROMETHEUS_MULTIPROC_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(CONSOLE_VAR_DIR=str(tmp_path / "var"), WEB_BIND="127.0.0.1", WEB_PORT=str(port), **extra)
    return env


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what}")


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: dict | None = None):
    """One request on a new connection, redirects not followed: (status, body, headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        extra = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=data, headers={**extra, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def test_gunicorn_with_debug_off_serves_collected_static_health_and_metrics_of_every_worker(tmp_path):
    port = free_port()
    token = secrets.token_urlsafe(16)
    env = base_env(
        tmp_path, port, DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50),
        AGENT_ENROLLMENT_SECRET="stack-enrollment-secret-of-at-least-32-chars", AGENT_SIGNING_SECRET=secrets.token_urlsafe(40), ALLOWED_HOSTS="127.0.0.1", BEHIND_TLS_PROXY="true",
        AGENT_PLAIN_HTTP="true", METRICS_TOKEN=token, WEB_CONCURRENCY="2", WEB_THREADS="2",
    )  # fmt: skip
    python = str(VENV_BIN / "python")
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        done = subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stderr
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "--config", "deploy/gunicorn.conf.py", "console.wsgi"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(lambda: log.read_text().count("Booting worker") == 2, 60, "two gunicorn workers")
        wait_until(lambda: call(port, "GET", "/health/live")[0] == 200, 30, "/health/live")

        proxied = {"X-Forwarded-Proto": "https"}
        status, page, _ = call(port, "GET", "/login/", proxied)
        assert status == 200
        css = re.search(rb'href="(/static/vendor/bootstrap/bootstrap\.min\.[0-9a-f]{12}\.css)"', page)
        assert css, page[:500]
        status, body, headers = call(port, "GET", css.group(1).decode(), proxied)
        assert status == 200 and headers["Content-Type"].startswith("text/css") and len(body) > 10_000
        assert call(port, "GET", "/login/")[0] == 301  # plain HTTP to the console goes to HTTPS

        status, body, _ = call(port, "GET", "/health/ready", {"Host": "127.1.2.3"})
        checks = json.loads(body)["checks"]
        assert status == 503 and checks["database"]["ok"] and checks["migrations"]["ok"] and checks["broker"]["ok"]
        assert not checks["worker"]["ok"]  # no worker runs in this test

        register = {"enrollment_secret": "stack-enrollment-secret-of-at-least-32-chars", "hostname": "pc-1", "ip_address": "127.0.0.1",
                    "listener_port": 40001, "domain": "Sales", "roaming": False}  # fmt: skip
        status, body, _ = call(port, "POST", "/agent/v1/register", body=register)
        assert status == 201, body
        auth = {"Authorization": f"Bearer {json.loads(body)['token']}"}
        checkin = {
            "event": "heartbeat",
            "component_versions": {},
            "config_version": "",
            "scheduled_update_disabled": False,
        }
        for _ in range(24):  # a new connection each: the workers share them out
            assert call(port, "POST", "/agent/v1/checkin", auth, checkin)[0] == 200

        assert call(port, "GET", "/metrics")[0] == 403
        for _ in range(4):  # whichever worker answers the scrape, it counts every worker's requests
            status, body, _ = call(port, "GET", "/metrics", {"Authorization": f"Bearer {token}"})
            assert status == 200
            text = body.decode()
            assert 'update_console_agent_checkins_total{code="200"} 24.0' in text
            assert 'update_console_agent_registrations_total{code="201"} 1.0' in text
            assert 'update_console_clients{status="online"} 1.0' in text

        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=30) == 0
    finally:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()
    assert "Traceback" not in log.read_text()


def test_a_worker_records_its_heartbeat_as_it_starts_without_waiting_for_beat(tmp_path):
    """No beat runs here: only the worker's start can have written the heartbeat /health/ready reads."""
    env = base_env(tmp_path, free_port())
    python = str(VENV_BIN / "python")
    done = subprocess.run([python, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    probe = "from console.models import ServiceHeartbeat as H; print(H.objects.filter(name='worker').count())"

    def heartbeats() -> str:
        return subprocess.run([python, "manage.py", "shell", "-v", "0", "-c", probe], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60).stdout.strip()  # fmt: skip

    assert heartbeats() == "0"
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([str(VENV_BIN / "celery"), "-A", "console", "worker", "--concurrency", "1"], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_until(lambda: "ready." in log.read_text(), 60, "the worker to be ready")
        wait_until(lambda: heartbeats() == "1", 20, "the worker's heartbeat")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
