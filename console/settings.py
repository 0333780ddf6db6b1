"""Settings for the update console.

Everything that differs between a laptop and production comes from the
environment through the typed readers in ``console.env``; a bad value stops
startup with a message naming the variable.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from console.env import (
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_networks,
    env_rate,
    env_redis_url,
    env_str,
    env_time_zone,
    optional_secret,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state of a local run: SQLite file, generated secret key, the embedded
# broker's queue folders, the beat schedule, uploaded component files.
VAR_DIR = Path(env_str("CONSOLE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = secret_key("SECRET_KEY", debug=DEBUG, key_file=VAR_DIR / "secret_key")
# Encrypts secrets stored in the database (proxy passwords); see console/encryption.py.
FIELD_ENCRYPTION_KEY = optional_secret("FIELD_ENCRYPTION_KEY", debug=DEBUG, key_file=VAR_DIR / "field_encryption_key")
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
    "axes",
    "csp",
    "console",
    "agents_app",
    "updates_app",
    "agent_api",
]

MIDDLEWARE = [
    # /health/* and /metrics answer before host validation and the HTTPS
    # redirect: load balancers and scrapers call backends by address over HTTP.
    "ops.health.OpsEndpointsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Every console page is for logged-in staff; see console/middleware.py.
    "console.middleware.StaffRequiredMiddleware",
    # Login throttling (console and admin login); must come last.
    "axes.middleware.AxesMiddleware",
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
                "updates_app.context_processors.components",
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
# The hottest statements (console/compiled.py) are prepared on PostgreSQL (Django's own
# queries bind on the client and are never prepared); false behind a connection pooler
# in transaction mode that does not track prepared statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 1

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out user+address before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes) for the console and the admin login: after
# LOGIN_FAILURE_LIMIT failures for one username from one address, that pair is
# refused for LOGIN_LOCKOUT_MINUTES with a friendly page (429). The address is
# the one the trusted proxies vouch for.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "console.client_address.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# The server time zone: Daily/Weekly start times are read in it. Inside, every
# timestamp is aware and stored in UTC.
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = True
# One date-time form everywhere, Django's own renderings (the admin) included: console/formats/en/formats.py.
FORMAT_MODULE_PATH = ["console.formats"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# bin/setup collects the files (hashed names, a manifest, compressed copies)
# whatever DEBUG says, so one collection serves DEBUG on and off: with DEBUG on
# the pages link the plain names, which WhiteNoise finds in the source folders.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"
# Component payloads (full pattern files and cached incrementals).
COMPONENT_STORAGE_DIR = Path(env_str("COMPONENT_STORAGE_DIR", str(VAR_DIR / "components")))
# The ActiveUpdate server (the vendor's feed) that clients with "Clients download
# updates from the ActiveUpdate server" fall back to; the demo and the tests run a
# stand-in (manage.py activeupdate_feed). Empty: no fallback source.
ACTIVEUPDATE_URL = env_str("ACTIVEUPDATE_URL", "")
# The simulated vendor: size of a first pattern and of each later release (records).
COMPONENT_PATTERN_INITIAL_RECORDS = env_int("COMPONENT_PATTERN_INITIAL_RECORDS", 20_000, minimum=1)
COMPONENT_PATTERN_RECORDS_ADDED = env_int("COMPONENT_PATTERN_RECORDS_ADDED", 200, minimum=0)
COMPONENT_PATTERN_RECORDS_REMOVED = env_int("COMPONENT_PATTERN_RECORDS_REMOVED", 20, minimum=0)

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Security: production-like values make `manage.py check --deploy` clean.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Agents that speak plain HTTP (no TLS in front of /agent/) would get the
# HTTPS redirect, which they do not follow; this lets them through. Their
# bearer tokens then cross the network in clear: see README "Deploying".
AGENT_PLAIN_HTTP = env_bool("AGENT_PLAIN_HTTP", False)
SECURE_REDIRECT_EXEMPT = [r"^agent/"] if AGENT_PLAIN_HTTP else []
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles, fonts and images from
# this server only; no inline script or on* handler runs (the pages' scripts
# live in static/<app>/), and no inline style either (style attributes and
# <style> elements; sizes are classes in static/console/console.css, scripts
# set styles through the CSSOM, which the policy allows). Bootstrap's CSS
# draws some icons from data: URIs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Client tree: a Privileges save (or a Manual Update) that would change
# more clients than this shows the numbers and asks once more.
CONFIRM_ABOVE_CLIENTS = env_int("CONFIRM_ABOVE_CLIENTS", 1000, minimum=0)

# --- Delivery engine (SPEC 3.3): resend after 15 minutes, five attempts in all.
NOTIFY_RETRY_INTERVAL_SECONDS = env_int("NOTIFY_RETRY_INTERVAL_SECONDS", 900, minimum=1)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 5, minimum=1, maximum=100)
# A claimed ("sending") delivery whose worker died returns to the queue after
# this long. It must outlast CELERY_TASK_TIME_LIMIT so a live task is never
# overtaken by a re-claim.
NOTIFY_LEASE_SECONDS = env_int("NOTIFY_LEASE_SECONDS", 180, minimum=1)
# A delivery whose worker was lost (its lease ran out, no outcome recorded) is
# sent again as the same attempt, at most this many times in its life; the
# next loss gives it up, so a batch that kills its worker every time ends
# (updates_app/engine/retry.py states the whole rule).
NOTIFY_MAX_LOST_LEASES = env_int("NOTIFY_MAX_LOST_LEASES", 3, minimum=0, maximum=100)
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

# --- Health and metrics (ops/health.py, ops/metrics.py).
# Beat sends a heartbeat task this often; the worker that runs it records it.
HEARTBEAT_SECONDS = env_int("HEARTBEAT_SECONDS", 30, minimum=5)
# /health/ready answers 503 when the worker's or beat's last sign of life is older.
HEALTH_WORKER_MAX_AGE_SECONDS = env_int("HEALTH_WORKER_MAX_AGE_SECONDS", 120, minimum=10)
HEALTH_BEAT_MAX_AGE_SECONDS = env_int("HEALTH_BEAT_MAX_AGE_SECONDS", 120, minimum=10)
# /metrics answers callers that send "Authorization: Bearer <METRICS_TOKEN>" or
# whose address (REMOTE_ADDR) lies in METRICS_ALLOWED_NETWORKS; nobody by default.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS", [])

# --- Celery. REDIS_URL switches the broker to Redis; without it an embedded
# filesystem broker under var/ needs no server (single machine only).
REDIS_URL = env_redis_url("REDIS_URL")
# Put in front of every key the console keeps in Redis (the broker's queues and
# bindings, the cache), so that several consoles, or parallel test workers,
# can share one Redis database without seeing each other's messages.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
    if REDIS_KEY_PREFIX:
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = REDIS_KEY_PREFIX
else:
    # A host in the URL keeps kombu from warning "No hostname was supplied";
    # the filesystem transport ignores it.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Exchange bindings; kombu's default is "control" in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
# The cache holds the rate limits' counters: on Redis (same server as the
# broker, keys under their own prefix) they are shared by every process and
# host; without Redis each process counts for itself.
if REDIS_URL:
    CACHES: dict[str, dict[str, object]] = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_KEY_PREFIX}console-cache",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "console"}}
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
# has nothing to do. Acked once done; but a pool process that dies mid-task
# (killed, out of memory) has its message acked, not put back: its rows come
# back through their lease, where the retry rule counts and caps such losses
# (updates_app/engine/retry.py). Put back, a batch that kills its process
# would be run again at once, for ever.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
# The broker queue the console's tasks go through (worker and beat of one
# installation use the same; two installations sharing a Redis database need two).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers and beat log through LOGGING below (console/celery.py), like the web.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The static beat schedule; later features add their periodic tasks here.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # Proves worker and beat alive (the footer, /health/ready).
    "console-heartbeat": {"task": "console.tasks.heartbeat", "schedule": float(HEARTBEAT_SECONDS)},
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
    # Removes finished runs' per-delivery detail after DELIVERY_RETENTION_DAYS,
    # in short batches; revokes clients silent past INACTIVE_CLIENT_DAYS.
    "retention-prune": {
        "task": "updates_app.tasks.prune_retained_data",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
    # Staged roll-outs: halt a ring that looks bad, or start the next ring after its soak.
    "updates-advance-rollouts": {
        "task": "updates_app.tasks.advance_rollouts",
        "schedule": float(ROLLOUT_CHECK_INTERVAL_SECONDS),
        "options": {"expires": float(ROLLOUT_CHECK_INTERVAL_SECONDS) * 2},
    },
}

# --- Retention (updates_app/retention.py).
# Per-delivery detail of finished runs is kept this long (the runs' counts forever).
DELIVERY_RETENTION_DAYS = env_int("DELIVERY_RETENTION_DAYS", 30, minimum=1)
# Rows removed per statement, and statements per beat round: short transactions, no long locks.
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000, minimum=100, maximum=100_000)
RETENTION_MAX_BATCHES = env_int("RETENTION_MAX_BATCHES", 500, minimum=1)
# Clients silent for longer than this leave the tree (revoked; 0 turns it off).
INACTIVE_CLIENT_DAYS = env_int("INACTIVE_CLIENT_DAYS", 30, minimum=0)

# --- Agent API (docs/agent-protocol.md).
# Only this secret registers agents; it is shown to administrators in the console.
AGENT_ENROLLMENT_SECRET = secret_key(
    "AGENT_ENROLLMENT_SECRET", debug=DEBUG, key_file=VAR_DIR / "agent_enrollment_secret"
)
# Signs notifications to agents (each agent's key is derived from it and its
# id; agents_app/signing.py). Its own secret, not SECRET_KEY. To rotate it, set
# a new one and list the old one in the fallbacks until every agent has
# checked in and learnt its new key.
AGENT_SIGNING_SECRET = secret_key("AGENT_SIGNING_SECRET", debug=DEBUG, key_file=VAR_DIR / "agent_signing_secret")
AGENT_SIGNING_SECRET_FALLBACKS = env_list("AGENT_SIGNING_SECRET_FALLBACKS", [])
# Sized for the fleet (README, "Sizing"): check-ins per second = agents / heartbeat,
# so 100,000 agents at 1,800 s make 56 check-ins/s, well within one 2-core server.
AGENT_HEARTBEAT_SECONDS = env_int("AGENT_HEARTBEAT_SECONDS", 1800, minimum=5)
# A check-in that changes nothing writes the client's last-contact stamp only
# once it is this old: the stamp is a coarse signal, and a skipped write saves
# the UPDATE (and its commit) on the hottest path.
AGENT_CONTACT_REFRESH_SECONDS = env_int(
    "AGENT_CONTACT_REFRESH_SECONDS", max(1, AGENT_HEARTBEAT_SECONDS // 4), minimum=0
)
# A client silent for longer than this is marked offline by a beat task: three
# missed heartbeats by default.
AGENT_OFFLINE_AFTER_SECONDS = env_int("AGENT_OFFLINE_AFTER_SECONDS", 3 * AGENT_HEARTBEAT_SECONDS, minimum=10)
if AGENT_OFFLINE_AFTER_SECONDS <= AGENT_HEARTBEAT_SECONDS + AGENT_CONTACT_REFRESH_SECONDS:
    # The stored stamp may lag a live client by a heartbeat plus the refresh age.
    raise ImproperlyConfigured(
        f"AGENT_OFFLINE_AFTER_SECONDS ({AGENT_OFFLINE_AFTER_SECONDS}) must be longer than "
        f"AGENT_HEARTBEAT_SECONDS + AGENT_CONTACT_REFRESH_SECONDS ({AGENT_HEARTBEAT_SECONDS} + "
        f"{AGENT_CONTACT_REFRESH_SECONDS}), or live clients would be marked offline."
    )
# An agent that reported an update it was notified of checks in again (event
# "post_update") within this bound: one that does not is silent evidence against
# the version in a staged roll-out (updates_app.engine.rings), long before the
# offline timer above would say so. Agents learn it from every register and
# check-in answer; the soak time may not be shorter (updates_app/forms/rollouts.py).
AGENT_POST_UPDATE_CHECKIN_SECONDS = env_int("AGENT_POST_UPDATE_CHECKIN_SECONDS", 300, minimum=2)
if 0 < ROLLOUT_SOAK_SECONDS < AGENT_POST_UPDATE_CHECKIN_SECONDS:
    # The screen refuses such a soak too: the next ring would start before silence could be judged.
    raise ImproperlyConfigured(
        f"ROLLOUT_SOAK_SECONDS ({ROLLOUT_SOAK_SECONDS}) must be at least AGENT_POST_UPDATE_CHECKIN_SECONDS "
        f"({AGENT_POST_UPDATE_CHECKIN_SECONDS}): silence after an update is judged only once that bound has passed."
    )
# Clients whose IP is in these ranges are behind NAT: never pushed to, they poll.
AGENT_UNREACHABLE_NETWORKS = env_networks("AGENT_UNREACHABLE_NETWORKS", [])
# Notifications go only to registered addresses inside these networks.
AGENT_ALLOWED_NETWORKS = env_networks(
    "AGENT_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
)
# The listener address is where the registration came from (console/client_address.py):
# behind a reverse proxy, list its addresses here so its X-Forwarded-For is read.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES", [])
# Take the ip_address an agent reports at registration instead of its source
# address (still only inside AGENT_ALLOWED_NETWORKS). Off: a holder of the
# enrollment secret could otherwise aim notifications at any internal address.
AGENT_TRUST_REPORTED_ADDRESS = env_bool("AGENT_TRUST_REPORTED_ADDRESS", False)
# Top-level domains agents may create through their domain hint; past it a new
# name lands in the default domain.
AGENT_MAX_HINTED_DOMAINS = env_int("AGENT_MAX_HINTED_DOMAINS", 100, minimum=0)
AGENT_MAX_BODY_BYTES = env_int("AGENT_MAX_BODY_BYTES", 64 * 1024, minimum=1024)
# Per-client request rate on the agent API (e.g. 120/min). Budgets are kept in
# the default cache, shared by every process and host when REDIS_URL is set.
AGENT_RATE_LIMIT = env_rate("AGENT_RATE_LIMIT", "120/min")
# Registrations per source address (a NAT address may front a whole office).
AGENT_REGISTRATION_RATE_LIMIT = env_rate("AGENT_REGISTRATION_RATE_LIMIT", "6000/min")
# Failed authentications (wrong token, wrong enrollment secret) per source
# address; past it the address is answered 429 until the window ends.
AGENT_AUTH_FAILURE_RATE_LIMIT = env_rate("AGENT_AUTH_FAILURE_RATE_LIMIT", "60/min")

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
    # 3.1 for "webhooks": the notification the server sends to agents.
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": ["agent_api.schema.notification"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agent_api.schema.notification_headers",
    ],
}

# One line per event an operator acts on (a claim, a new run, a give-up, a
# settings change), none per check-in or idle dispatcher round. LOG_FORMAT=json
# writes one JSON object per line for log shippers (console/logging.py).
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
# Celery's per-task chatter ("received", "succeeded", "Sending due task") every
# few seconds: shown only at LOG_LEVEL=debug. Failures are warnings or errors.
_CHATTY = "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "console.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery.app.trace": {"level": _CHATTY},
        "celery.worker.strategy": {"level": _CHATTY},
        "celery.beat": {"level": _CHATTY},
    },
}
