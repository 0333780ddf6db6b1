"""Health endpoints for load balancers, and the middleware that serves them and /metrics.

``/health/live`` says the web process answers. ``/health/ready`` says the whole
installation can do its job: the database answers and has every migration,
the broker answers, a worker ran a heartbeat task and beat published lately,
and no claim a lost worker left behind waits to be taken over (it says how
many wait, and since when).
It answers 200 or 503 with a JSON body of check names, yes/no and ages; no
addresses, URLs or error texts (they could carry credentials).

Hand-written rather than django-health-check: the worker and beat checks are
this project's heartbeats (a round-trip task would need a result backend and
enqueue a task per poll), and load balancers call backends by their address,
which must not be refused by ALLOWED_HOSTS nor redirected to HTTPS.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

logger = logging.getLogger(__name__)

_migrations_applied = False


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def check_migrations() -> dict:
    """Every migration applied. Once true it stays true for this process (new code means a new process)."""
    global _migrations_applied
    if not _migrations_applied:
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            return {"ok": False, "unapplied": len(plan)}
        _migrations_applied = True
    return {"ok": True}


def check_broker() -> dict:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return {"ok": True}
    queue = settings.BROKER_DIR / "queue"
    return {"ok": queue.is_dir() and os.access(queue, os.W_OK | os.X_OK)}


def _heartbeat(name: str, limit: int) -> dict:
    from console.models import ServiceHeartbeat

    seen = ServiceHeartbeat.objects.filter(name=name).values_list("seen_at", flat=True).first()
    if seen is None:
        return {"ok": False, "age_seconds": None}
    age = max(0.0, (timezone.now() - seen).total_seconds())
    return {"ok": age <= limit, "age_seconds": round(age, 1), "limit_seconds": limit}


def check_worker() -> dict:
    return _heartbeat("worker", settings.HEALTH_WORKER_MAX_AGE_SECONDS)


def check_beat() -> dict:
    return _heartbeat("beat", settings.HEALTH_BEAT_MAX_AGE_SECONDS)


def check_claims() -> dict:
    """Notifications a lost worker left (lease run out, no outcome): the dispatcher's next round sends them again.

    One still waiting HEALTH_WORKER_MAX_AGE_SECONDS after its lease ran out
    means no worker and beat are taking them over.
    """
    from updates_app.engine.claim import claims_held

    now = timezone.now()
    held = claims_held(now=now)
    waited = max(0.0, (now - held.lost_since).total_seconds()) if held.lost_since else 0.0
    limit = settings.HEALTH_WORKER_MAX_AGE_SECONDS
    return {
        "ok": waited <= limit,
        "lease_expired": held.lost,
        "waited_seconds": round(waited, 1),
        "limit_seconds": limit,
    }


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
    "worker": check_worker,
    "beat": check_beat,
    "claims": check_claims,
}
# Checks that need the database: skipped (failed) when it does not answer.
NEEDS_DATABASE = {"migrations", "worker", "beat", "claims"}


def readiness() -> tuple[bool, dict]:
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        if name in NEEDS_DATABASE and not results["database"]["ok"]:
            results[name] = {"ok": False, "skipped": "database"}
            continue
        started = time.monotonic()
        try:
            result = check()
        except Exception as exc:
            # The class name only: messages may name hosts, users or URLs.
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            result = {"ok": False, "error": type(exc).__name__}
        result["ms"] = round((time.monotonic() - started) * 1000, 1)
        results[name] = result
    return all(r["ok"] for r in results.values()), results


def _json(status: int, body: dict) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def _unlogged(response: HttpResponse) -> HttpResponse:
    """No django.request line per poll: a load balancer asks every few seconds, 503 or not."""
    # Django's own flag: django.utils.log.log_response skips a response that carries it.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def live(request: HttpRequest) -> HttpResponse:
    return _json(200, {"status": "alive"})


def ready(request: HttpRequest) -> HttpResponse:
    ok, checks = readiness()
    return _json(200 if ok else 503, {"status": "ready" if ok else "not ready", "checks": checks})


class OpsEndpointsMiddleware:
    """Serves /health/live, /health/ready and /metrics first, and counts agent check-ins and registrations.

    First in MIDDLEWARE: these answer whatever Host header and scheme the
    caller used (a load balancer or Prometheus calls a backend by its address
    over HTTP), without a session and without the login.
    """

    def __init__(self, get_response):
        from ops import metrics

        self.get_response = get_response
        self.metrics = metrics
        self.routes = {"/health/live": live, "/health/ready": ready, "/metrics": metrics.view}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.routes.get(request.path_info)
        if view is not None:
            if request.method not in ("GET", "HEAD"):
                return _unlogged(HttpResponse(status=405, headers={"Allow": "GET, HEAD"}))
            return _unlogged(view(request))
        response = self.get_response(request)
        self.metrics.count_agent_request(request.path_info, response.status_code)
        return response
