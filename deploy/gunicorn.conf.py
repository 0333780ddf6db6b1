"""Gunicorn settings for the console, the same in the demo (bin/run) and in production.

    .venv/bin/gunicorn --config deploy/gunicorn.conf.py console.wsgi

Environment:
  WEB_BIND / WEB_PORT      listen address (default 127.0.0.1:8000)
  WEB_CONCURRENCY          worker processes (default 2; see README "Deploying")
  WEB_THREADS              threads per worker (default 4)
  WEB_ACCESS_LOG           1: one line per HTTP request on stdout (default off)
"""

from __future__ import annotations

import os
import shutil
import tempfile

from django.core.exceptions import ImproperlyConfigured


def _int(name: str, default: int, minimum: int = 1) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    return number


wsgi_app = "console.wsgi:application"
bind = [f"{os.environ.get('WEB_BIND', '127.0.0.1')}:{_int('WEB_PORT', 8000)}"]
# Requests are short (check-ins, pages) except component downloads, which
# stream a file: threads keep a download from holding a whole process.
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("WEB_THREADS", 4)
timeout = 60
graceful_timeout = 20
keepalive = 5
# The agents' check-ins would print a line each: access logs only on request.
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "").strip().lower() in {"1", "true", "yes", "on"} else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    # gunicorn's own lines as JSON too, like the console's (console/logging.py).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "console.logging.JsonFormatter"}},
        "handlers": {
            "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }
# Several consoles (and tests) may run on one machine: no shared control socket.
control_socket_disable = True

# Request counters (check-ins, registrations) live in files shared by the
# worker processes (prometheus-client's multiprocess mode), one set per server
# start, so /metrics counts the requests of every worker and not one's.
_metrics_dir_owned = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _metrics_dir_owned:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="console-metrics-")


def on_starting(server) -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _metrics_dir_owned:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
