"""Real Celery worker processes for the reliability tests.

Each worker is ``celery -A console worker --pool solo`` (or a prefork pool)
in its own process, pointed at the test database (pytest-django's
test_<name>), the test's Redis and the test's own queue (the
``private_queue`` fixture), with short lease and retry settings. The test
itself plays beat: it enqueues the dispatcher every half second (an embedded
beat would survive a SIGKILL of the worker as an orphan).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

CELERY = str(Path(sys.executable).parent / "celery")
ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    def __init__(self, tmp_path: Path, name: str, *, queue: str, pool: str = "solo", **env: str) -> None:
        self.log = tmp_path / f"{name}.log"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            # The worker signs notifications with the same keys the test's agents hold.
            "AGENT_SIGNING_SECRET": settings.AGENT_SIGNING_SECRET,
            "CONSOLE_VAR_DIR": str(tmp_path / "var"),
            "DEBUG": "true",
            "NOTIFY_LEASE_SECONDS": "3",
            "NOTIFY_RETRY_INTERVAL_SECONDS": "1",
            "CELERY_QUEUE": queue,
            **env,
        }
        # solo: the task runs in the main process (SIGKILL loses the whole worker);
        # prefork with one child: a pool process dies and its parent carries on.
        pool_args = ["--pool", "solo"] if pool == "solo" else ["--pool", "prefork", "--concurrency", "1"]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [CELERY, "-A", "console", "worker", *pool_args, "--loglevel", "INFO", "-n", f"{name}-{queue}@%h"],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 120) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log.read_bytes():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"worker did not start:\n{self.log.read_text()[-3000:]}")

    def pool_processes(self) -> list[int]:
        """The pids of the prefork pool's processes (none with the solo pool)."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no ack, no outcome recorded."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
