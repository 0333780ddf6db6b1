"""Shared by the agent benchmarks: the console under gunicorn on a free loopback port, and its CPU.

    with Served(database_url=None, workers=2) as server:   # None: a temporary SQLite file
        server.url, server.cpu_seconds()

Everything the server writes lives in a temporary folder removed on exit. The
database is migrated first; a PostgreSQL database is used as it is (point it
at a throw-away one). ``redis_url`` serves as deployed, with the shared cache
(the agents' rate limits) and the broker in Redis (a throw-away database
number: tasks the server queues stay there); without it, the embedded
defaults.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-enrollment-secret-not-for-production-0123456789"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(
    var_dir: Path, database_url: str | None, redis_url: str | None = None, **overrides: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "CONSOLE_VAR_DIR": str(var_dir),
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "AGENT_ENROLLMENT_SECRET": SECRET,
        # DEBUG=false wants every secret spelled out, as a deployment would (bench-only values).
        "AGENT_SIGNING_SECRET": "bench-signing-secret-not-for-production-0123456789",
        "FIELD_ENCRYPTION_KEY": "bench-field-encryption-key-not-for-production-0123456789",
        "LOG_LEVEL": "WARNING",
        **overrides,
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        # As deployed: the shared cache (rate limits) and the broker in Redis.
        env["REDIS_URL"] = redis_url
    return env


def redis_cpu_seconds(redis_url: str | None) -> float:
    """CPU time the Redis server has used so far (0 without Redis)."""
    if not redis_url:
        return 0.0
    import redis

    info = redis.Redis.from_url(redis_url).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


# What a benchmark that also imports Django in its own process must share with the server.
SHARED_SETTINGS = (
    "CONSOLE_VAR_DIR",
    "SECRET_KEY",
    "DEBUG",
    "AGENT_ENROLLMENT_SECRET",
    "AGENT_SIGNING_SECRET",
    "FIELD_ENCRYPTION_KEY",
)


def share_settings(env: dict[str, str]) -> None:
    """Give this process the server's settings (its var folder, secrets, database) before django.setup()."""
    os.environ.update({name: env[name] for name in SHARED_SETTINGS})
    if "DATABASE_URL" in env:
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Served:
    """gunicorn with the deployed configuration serving the console; a context manager."""

    def __init__(
        self,
        *,
        database_url: str | None,
        redis_url: str | None = None,
        workers: int = 2,
        env: dict[str, str] | None = None,
        worker_class: str = "gthread",
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.workers = workers
        # "gthread" as deployed; "sync" (one request per process, no keep-alive) for comparison.
        self.worker_class = worker_class
        self.var_dir = Path(tempfile.mkdtemp(prefix="agent-bench-"))
        self.env = server_env(self.var_dir, database_url, redis_url, **(env or {}))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.database = "PostgreSQL" if database_url and database_url.startswith("postgres") else "SQLite"
        if redis_url:
            self.database += " + Redis"

    def manage(self, *args: str) -> None:
        manage(self.env, *args)

    def __enter__(self) -> Served:
        self.manage("migrate", "--no-input")
        return self

    def start(self) -> None:
        # The deployed configuration (deploy/gunicorn.conf.py: gthread workers, threads, metrics
        # shared by the workers), sized by the same variables an operator sets.
        env = {**self.env, "WEB_BIND": "127.0.0.1", "WEB_PORT": str(self.port), "WEB_CONCURRENCY": str(self.workers)}
        if self.worker_class == "sync":
            env["WEB_THREADS"] = "1"  # gunicorn runs "sync" with more than one thread as gthread
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "--config",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
                "--backlog",
                "4096",
                "--worker-class",
                self.worker_class,
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/agent/v1/ping", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the server did not start")

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        if self.process is None:
            return []
        return [self.process.pid, *child_pids(self.process.pid)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the master and the workers now running."""
        return sum(process_cpu_seconds(pid) for pid in self.pids())

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.var_dir, ignore_errors=True)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]
