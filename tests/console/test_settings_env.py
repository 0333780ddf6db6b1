"""Configuration from the environment: good values work, bad ones stop startup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from console import env

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    environment.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_env_int_names_the_variable_on_a_non_integer(monkeypatch):
    monkeypatch.setenv("NOTIFY_MAX_ATTEMPTS", "five")
    with pytest.raises(ImproperlyConfigured, match="NOTIFY_MAX_ATTEMPTS must be a whole number"):
        env.env_int("NOTIFY_MAX_ATTEMPTS", 5)


def test_env_int_enforces_bounds(monkeypatch):
    monkeypatch.setenv("NOTIFY_MAX_ATTEMPTS", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env.env_int("NOTIFY_MAX_ATTEMPTS", 5, minimum=1)


def test_env_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be a boolean"):
        env.env_bool("DEBUG", True)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url at all", "postgres://127.0.0.1:5432/"])
def test_env_database_rejects_unsupported_or_unparsable_urls(monkeypatch, url, tmp_path):
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.env_database("DATABASE_URL", tmp_path / "x.sqlite3")


def test_env_database_reads_postgres(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    config = env.env_database("DATABASE_URL", tmp_path / "x.sqlite3")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "test"


def test_env_database_defaults_to_sqlite_under_var(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = env.env_database("DATABASE_URL", tmp_path / "x.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "x.sqlite3")


def test_env_redis_url_rejects_other_schemes(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "http://127.0.0.1:6379")
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        env.env_redis_url("REDIS_URL")


def test_env_time_zone_rejects_unknown_zone(monkeypatch):
    monkeypatch.setenv("TIME_ZONE", "Mars/Olympus")
    with pytest.raises(ImproperlyConfigured, match="TIME_ZONE"):
        env.env_time_zone("TIME_ZONE", "UTC")


def test_secret_key_is_required_without_debug(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        env.secret_key("SECRET_KEY", debug=False, key_file=tmp_path / "key")


def test_secret_key_is_generated_once_for_local_runs(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = env.secret_key("SECRET_KEY", debug=True, key_file=tmp_path / "key")
    second = env.secret_key("SECRET_KEY", debug=True, key_file=tmp_path / "key")
    assert first == second and len(first) >= 50
    assert (tmp_path / "key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DATABASE_URL", "nonsense://what"), ("NOTIFY_MAX_ATTEMPTS", "lots"), ("NOTIFY_RETRY_INTERVAL_SECONDS", "-5")],
)
def test_bad_configuration_stops_startup_naming_the_variable(variable, value):
    result = run_manage("check", **{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr


def test_an_offline_timeout_shorter_than_a_heartbeat_stops_startup():
    result = run_manage("check", AGENT_HEARTBEAT_SECONDS="600", AGENT_OFFLINE_AFTER_SECONDS="700")
    assert result.returncode != 0
    assert "AGENT_OFFLINE_AFTER_SECONDS (700) must be longer than" in result.stderr


def test_a_soak_override_shorter_than_the_post_update_bound_stops_startup():
    result = run_manage("check", ROLLOUT_SOAK_SECONDS="30", AGENT_POST_UPDATE_CHECKIN_SECONDS="60")
    assert result.returncode != 0
    assert "ROLLOUT_SOAK_SECONDS (30) must be at least AGENT_POST_UPDATE_CHECKIN_SECONDS (60)" in result.stderr
    # The demo's pair (bin/run) is accepted.
    demo = run_manage("check", ROLLOUT_SOAK_SECONDS="30", AGENT_POST_UPDATE_CHECKIN_SECONDS="20")
    assert demo.returncode == 0, demo.stderr


def test_the_offline_timeout_and_the_stamp_refresh_follow_the_heartbeat():
    shown = (
        "from django.conf import settings as s; print(s.AGENT_OFFLINE_AFTER_SECONDS, s.AGENT_CONTACT_REFRESH_SECONDS)"
    )
    result = run_manage("shell", "-c", shown, AGENT_HEARTBEAT_SECONDS="15")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["45", "3"]


def test_the_enrollment_secret_is_required_when_debug_is_off(tmp_path):
    result = run_manage(
        "check",
        DEBUG="0",
        SECRET_KEY="x" * 20 + "-production-like-secret-key-with-enough-entropy-4f9a",
        ALLOWED_HOSTS="console.example.com",
        CONSOLE_VAR_DIR=str(tmp_path),
    )
    assert result.returncode != 0
    assert "AGENT_ENROLLMENT_SECRET must be set" in result.stderr


def test_check_deploy_is_clean_with_production_like_values(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="x" * 20 + "-production-like-secret-key-with-enough-entropy-4f9a",
        AGENT_ENROLLMENT_SECRET="production-like-enrollment-secret",
        FIELD_ENCRYPTION_KEY="production-like-field-encryption-key-5c1e",
        AGENT_SIGNING_SECRET="production-like-signing-secret-0123456789",
        ALLOWED_HOSTS="console.example.com",
        CONSOLE_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_env_rate_names_the_variable_on_a_bad_rate(monkeypatch):
    monkeypatch.setenv("AGENT_RATE_LIMIT", "lots/min")
    with pytest.raises(ImproperlyConfigured, match="AGENT_RATE_LIMIT must be a rate"):
        env.env_rate("AGENT_RATE_LIMIT", "120/min")
    monkeypatch.setenv("AGENT_RATE_LIMIT", "10/fortnight")
    with pytest.raises(ImproperlyConfigured, match="AGENT_RATE_LIMIT"):
        env.env_rate("AGENT_RATE_LIMIT", "120/min")


def test_check_deploy_refuses_a_short_enrollment_secret_when_debug_is_off(tmp_path):
    production = {
        "DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "-production-like-secret-key-with-enough-entropy-4f9a",
        "AGENT_SIGNING_SECRET": "production-like-signing-secret-0123456789",
        "ALLOWED_HOSTS": "console.example.com",
        "CONSOLE_VAR_DIR": str(tmp_path),
    }
    short = run_manage("check", "--deploy", AGENT_ENROLLMENT_SECRET="x" * 31, **production)
    assert short.returncode != 0
    assert "console.E001" in short.stderr and "AGENT_ENROLLMENT_SECRET is shorter than 32" in short.stderr
    # An error, not a warning: it stops every command, not just check --deploy.
    assert "ERRORS" in short.stderr
    long_enough = run_manage("check", "--deploy", AGENT_ENROLLMENT_SECRET="x" * 32, **production)
    assert "console.E001" not in long_enough.stdout + long_enough.stderr
    # With DEBUG on, a short secret is a developer's business.
    debug = run_manage("check", AGENT_ENROLLMENT_SECRET="short", CONSOLE_VAR_DIR=str(tmp_path))
    assert debug.returncode == 0, debug.stderr


def test_the_signing_secret_is_required_when_debug_is_off_and_checked_for_length(tmp_path):
    production = {
        "DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "-production-like-secret-key-with-enough-entropy-4f9a",
        "AGENT_ENROLLMENT_SECRET": "production-like-enrollment-secret",
        "ALLOWED_HOSTS": "console.example.com",
        "CONSOLE_VAR_DIR": str(tmp_path),
    }
    missing = run_manage("check", **production)
    assert missing.returncode != 0
    assert "AGENT_SIGNING_SECRET must be set" in missing.stderr
    short = run_manage("check", AGENT_SIGNING_SECRET="too-short", **production)
    assert short.returncode != 0 and "console.E002" in short.stderr


def test_passwords_are_hashed_with_djangos_default_outside_the_tests(settings):
    """The tests hash with MD5 for speed (tests/conftest.py); the console itself keeps Django's PBKDF2."""
    from django.conf import global_settings

    import console.settings as console_settings

    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
    hashers = getattr(console_settings, "PASSWORD_HASHERS", global_settings.PASSWORD_HASHERS)
    assert hashers[0] == "django.contrib.auth.hashers.PBKDF2PasswordHasher"
