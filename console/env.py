"""Typed readers for environment variables.

Every setting that comes from the environment goes through one of these, so a
bad value stops startup with a message that names the variable instead of
surfacing later as a confusing error deep inside Django or Celery.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}.")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value in (None, ""):
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of IP networks (CIDR), e.g. ``10.8.0.0/16,192.168.5.0/24``."""
    values = env_list(name, default)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must list IP networks such as 10.0.0.0/8, got {value!r}.") from None
    return values


def env_rate(name: str, default: str) -> str:
    """A request rate such as ``120/min`` (a positive count per s, min, hour or day)."""
    from console.ratelimit import parse_rate

    value = env_str(name, default)
    try:
        parse_rate(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 120/min (per s, min, hour or day), got {value!r}."
        ) from None
    return value


def env_time_zone(name: str, default: str) -> str:
    value = env_str(name, default)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name} must be an IANA time zone such as 'Europe/Berlin', got {value!r}."
        ) from None
    return value


def env_database(name: str, default_sqlite_path: Path) -> dict:
    """Parse DATABASE_URL; only PostgreSQL and SQLite are supported."""
    value = _raw(name)
    if value in (None, ""):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite_path),
            # A generous busy timeout: web, worker and beat share one file.
            # WAL lets the web process read while a worker writes.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    try:
        config = dj_database_url.parse(value, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types for bad URLs
        raise ImproperlyConfigured(f"{name} is not a valid database URL ({exc}): {value!r}.") from None
    engine = config.get("ENGINE", "")
    if engine not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
        raise ImproperlyConfigured(
            f"{name} must point at PostgreSQL (postgres://...) or SQLite (sqlite:///...), got {value!r}."
        )
    if engine == "django.db.backends.postgresql" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} must name a database, got {value!r}.")
    return dict(config)


def env_redis_url(name: str) -> str | None:
    value = _raw(name)
    if value in (None, ""):
        return None
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{name} must be a redis:// or rediss:// URL, got {value!r}.")
    return value


def optional_secret(name: str, *, debug: bool, key_file: Path) -> str:
    """A secret from the environment; generated once for local runs; "" outside DEBUG when unset.

    For secrets that only some features need: their absence is reported by a
    deploy check and by the feature itself, not by refusing to start.
    """
    value = _raw(name)
    if value:
        return value
    if not debug:
        return ""
    return secret_key(name, debug=debug, key_file=key_file)


def secret_key(name: str, *, debug: bool, key_file: Path) -> str:
    """The SECRET_KEY from the environment, or one generated once for local runs.

    Outside DEBUG the key must come from the environment: a key generated on one
    machine would differ on the next and silently log everybody out.
    """
    value = _raw(name)
    if value:
        return value
    if not debug:
        raise ImproperlyConfigured(f"{name} must be set when DEBUG is off.")
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key
