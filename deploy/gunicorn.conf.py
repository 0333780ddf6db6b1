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
# Several consoles (and tests) may run on one machine: no shared control socket.
control_socket_disable = True
