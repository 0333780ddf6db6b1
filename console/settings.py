"""Settings for the update console.

Everything that differs between a laptop and production comes from the
environment through the typed readers in ``console.env``; a bad value stops
startup with a message naming the variable.
"""

from __future__ import annotations

from pathlib import Path

from console.env import (
    env_bool,
    env_database,
    env_int,
    env_list,
    env_networks,
    env_redis_url,
    env_str,
    env_time_zone,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state of a local run: SQLite file, generated secret key, the embedded
# broker's queue folders, the beat schedule, uploaded component files.
VAR_DIR = Path(env_str("CONSOLE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = secret_key("SECRET_KEY", debug=DEBUG, key_file=VAR_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "mptt",
    "crispy_forms",
    "crispy_bootstrap5",
    "rest_framework",
    "drf_spectacular",
    "console",
    "agents_app",
    "updates_app",
    "agent_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every console page is for logged-in staff; see console/middleware.py.
    "console.middleware.StaffRequiredMiddleware",
]

ROOT_URLCONF = "console.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.console",
            ],
        },
    },
]

WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

DATABASES = {"default": env_database("DATABASE_URL", VAR_DIR / "console.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Tests on SQLite use a file, not Django's shared in-memory database: the
    # live server answers the reference agents' concurrent requests from
    # several threads, and one shared in-memory connection cannot take that.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("TEST", {"NAME": str(VAR_DIR / "test-console.sqlite3")})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# The server time zone: Daily/Weekly start times are read in it. Inside, every
# timestamp is aware and stored in UTC.
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"
# Component payloads (full pattern files and cached incrementals).
COMPONENT_STORAGE_DIR = Path(env_str("COMPONENT_STORAGE_DIR", str(VAR_DIR / "components")))
# The simulated vendor: size of a first pattern and of each later release (records).
COMPONENT_PATTERN_INITIAL_RECORDS = env_int("COMPONENT_PATTERN_INITIAL_RECORDS", 20_000, minimum=1)
COMPONENT_PATTERN_RECORDS_ADDED = env_int("COMPONENT_PATTERN_RECORDS_ADDED", 200, minimum=0)
COMPONENT_PATTERN_RECORDS_REMOVED = env_int("COMPONENT_PATTERN_RECORDS_REMOVED", 20, minimum=0)

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Security: production-like values make `manage.py check --deploy` clean.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Delivery engine (SPEC 3.3): resend after 15 minutes, five attempts in all.
NOTIFY_RETRY_INTERVAL_SECONDS = env_int("NOTIFY_RETRY_INTERVAL_SECONDS", 900, minimum=1)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 5, minimum=1, maximum=100)
# A claimed ("sending") delivery whose worker died returns to the queue after
# this long. It must outlast CELERY_TASK_TIME_LIMIT so a live task is never
# overtaken by a re-claim.
NOTIFY_LEASE_SECONDS = env_int("NOTIFY_LEASE_SECONDS", 180, minimum=1)
# Deliveries per send task, and how many claimed batches may wait or run at
# once: the dispatcher claims no more while that many are out, so no claim
# waits in the broker long enough for its lease to run out.
NOTIFY_BATCH_SIZE = env_int("NOTIFY_BATCH_SIZE", 500, minimum=1, maximum=10000)
NOTIFY_MAX_BATCHES_IN_FLIGHT = env_int("NOTIFY_MAX_BATCHES_IN_FLIGHT", 8, minimum=1)
# Concurrent HTTP requests inside one send task, and their time limits (seconds).
NOTIFY_CONCURRENCY = env_int("NOTIFY_CONCURRENCY", 200, minimum=1, maximum=5000)
NOTIFY_CONNECT_TIMEOUT_SECONDS = env_int("NOTIFY_CONNECT_TIMEOUT_SECONDS", 3, minimum=1)
NOTIFY_TIMEOUT_SECONDS = env_int("NOTIFY_TIMEOUT_SECONDS", 5, minimum=1)
# Set by bin/run's demo (a simulated fleet, short retries): the update pages say so.
CONSOLE_DEMO = env_bool("CONSOLE_DEMO", False)
# How often beat runs the dispatcher that claims due deliveries.
NOTIFY_DISPATCH_INTERVAL_SECONDS = env_int("NOTIFY_DISPATCH_INTERVAL_SECONDS", 3, minimum=1)
# Staged roll-out (updates_app.engine.rings): how often beat checks the rings,
# and a soak time in seconds that overrides the screen's minutes (0: use the
# screen's value; tests and the demo use a short one).
ROLLOUT_CHECK_INTERVAL_SECONDS = env_int("ROLLOUT_CHECK_INTERVAL_SECONDS", 15, minimum=1)
ROLLOUT_SOAK_SECONDS = env_int("ROLLOUT_SOAK_SECONDS", 0, minimum=0)
# The reference agents read versions marked bad for the demo from this file
# (written by ``manage.py mark_bad_version``).
SIMULATOR_BAD_VERSIONS_FILE = Path(env_str("SIMULATOR_BAD_VERSIONS_FILE", str(VAR_DIR / "simulator-bad-versions.json")))

# --- Celery. REDIS_URL switches the broker to Redis; without it an embedded
# filesystem broker under var/ needs no server (single machine only).
REDIS_URL = env_redis_url("REDIS_URL")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Exchange bindings; kombu's default is "control" in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
# Nothing reads task results: the database holds the outcome of every send.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# Tasks are short claims of due database rows; a task that runs past these
# limits is stuck, and its rows are re-claimed after their lease expires.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 150, minimum=1)
# One message at a time per worker process: tasks are batches of sends, so a
# prefetched message would sit idle behind a long batch while another worker
# has nothing to do. Late ack puts it back if the worker dies mid-task.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The static beat schedule; later features add their periodic tasks here.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "console-heartbeat": {"task": "console.tasks.heartbeat", "schedule": 60.0},
    "agents-mark-silent-offline": {"task": "agents_app.tasks.mark_silent_clients_offline", "schedule": 60.0},
    # Claims due deliveries (first sends, 15-minute retries, expired leases).
    "updates-dispatch-deliveries": {
        "task": "updates_app.tasks.dispatch_deliveries",
        "schedule": float(NOTIFY_DISPATCH_INTERVAL_SECONDS),
        # A missed round is replaced by the next one; stale ones are dropped.
        "options": {"expires": float(NOTIFY_DISPATCH_INTERVAL_SECONDS) * 2},
    },
    # Opens a Daily/Weekly window when its start time has come (idempotent).
    "schedule-window": {"task": "updates_app.tasks.open_schedule_window", "schedule": 60.0},
    # Staged roll-outs: halt a ring that looks bad, or start the next ring after its soak.
    "updates-advance-rollouts": {
        "task": "updates_app.tasks.advance_rollouts",
        "schedule": float(ROLLOUT_CHECK_INTERVAL_SECONDS),
        "options": {"expires": float(ROLLOUT_CHECK_INTERVAL_SECONDS) * 2},
    },
}

# --- Agent API (docs/agent-protocol.md).
# Only this secret registers agents; it is shown to administrators in the console.
AGENT_ENROLLMENT_SECRET = secret_key(
    "AGENT_ENROLLMENT_SECRET", debug=DEBUG, key_file=VAR_DIR / "agent_enrollment_secret"
)
AGENT_HEARTBEAT_SECONDS = env_int("AGENT_HEARTBEAT_SECONDS", 60, minimum=5)
# A client silent for longer than this is marked offline by a beat task.
AGENT_OFFLINE_AFTER_SECONDS = env_int("AGENT_OFFLINE_AFTER_SECONDS", 180, minimum=10)
# Clients whose IP is in these ranges are behind NAT: never pushed to, they poll.
AGENT_UNREACHABLE_NETWORKS = env_networks("AGENT_UNREACHABLE_NETWORKS", [])
# Notifications go only to registered addresses inside these networks.
AGENT_ALLOWED_NETWORKS = env_networks(
    "AGENT_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
)
AGENT_MAX_BODY_BYTES = env_int("AGENT_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
# Per-client request rate on the agent API (DRF throttle syntax).
AGENT_RATE_LIMIT = env_str("AGENT_RATE_LIMIT", "120/min")
# Registrations per source address (a NAT address may front a whole office).
AGENT_REGISTRATION_RATE_LIMIT = env_str("AGENT_REGISTRATION_RATE_LIMIT", "6000/min")

REST_FRAMEWORK: dict[str, object] = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Update console agent protocol",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "DESCRIPTION": "How agents register, check in, fetch configuration and components, and report. "
    "See docs/agent-protocol.md.",
    "SCHEMA_PATH_PREFIX": "/agent/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
