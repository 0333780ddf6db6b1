"""Real proxies for the tests, on loopback: Debian's tinyproxy and squid (bin/test installs them when missing).

Each runs as its own process for the duration of a ``with`` block, on a free
port of 127.0.0.1, with a configuration the test writes into its tmp folder
(no system configuration, nothing on disk outside that folder), so proxy tests
may run in parallel with any others.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import _unavailable

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
SQUID = shutil.which("squid") or "/usr/sbin/squid"
# tinyproxy logs every request it forwards as:
#   CONNECT   Nov 26 05:54:09.095 [32307]: Request (file descriptor 5): GET http://127.0.0.1:9/x HTTP/1.1
_TINYPROXY_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/")
# squid's native access log: time elapsed client code/status bytes method URL user hierarchy type
#   1796606175.908      1 127.0.0.1 TCP_MISS/200 3401 POST http://127.0.0.1:8001/agent/v1/report - HIER_DIRECT/...
# (A connection that sends no request, such as the readiness probe's, is logged with the URL
# "error:transaction-end-before-headers": not a request.)
_SQUID_REQUEST = re.compile(r"^\S+\s+\d+ \S+ \S+/\d+ \d+ (\S+) (https?://\S+) ", re.MULTILINE)


@dataclass
class Proxy:
    host: str
    port: int
    log: Path
    username: str = ""
    password: str = ""
    # How a forwarded request appears in ``log``: (method, absolute URL) groups.
    request_line: re.Pattern[str] = _TINYPROXY_REQUEST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def requests(self) -> list[tuple[str, str]]:
        """(method, absolute URL) of every request the proxy forwarded so far."""
        if not self.log.exists():
            return []
        return self.request_line.findall(self.log.read_text(errors="replace"))

    def paths(self) -> list[str]:
        return [re.sub(r"^https?://[^/]+", "", url) for _method, url in self.requests()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    folder.chmod(0o777)  # the proxy may drop privileges (started as root) before writing its logs
    return folder


@contextlib.contextmanager
def _running(command: list[str], port: int, what: str) -> Iterator[None]:
    """Run ``command`` until the block ends; wait until it accepts connections on ``port`` (10 s at most)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None:
                pytest.fail(f"{what} did not start: {process.stderr.read().decode() if process.stderr else ''}")
            time.sleep(0.05)
        else:
            pytest.fail(f"{what} did not start listening within 10 s")
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def tinyproxy(
    tmp_path: Path, *, username: str = "", password: str = "", name: str = "proxy", port: int = 0
) -> Iterator[Proxy]:
    """A tinyproxy on 127.0.0.1 (on ``port``, or a free one) for the block, with Basic authentication when a user is given.

    tinyproxy serves one request per connection and closes it after the
    answer, without saying so (no ``Connection: close``).
    """
    if not Path(TINYPROXY).exists():
        _unavailable("needs Debian's tinyproxy (bin/test installs it when it can)")
    folder = _folder(tmp_path, name)
    port = port or free_port()
    proxy = Proxy(host="127.0.0.1", port=port, log=folder / "tinyproxy.log", username=username, password=password)
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        f'LogFile "{proxy.log}"',
        "LogLevel Info",
        "MaxClients 100",
        "Allow 127.0.0.1",
        "DisableViaHeader Yes",
    ]
    if username:
        lines.append(f"BasicAuth {username} {password}")
    config = folder / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    with _running([TINYPROXY, "-d", "-c", str(config)], port, "tinyproxy"):
        yield proxy


@contextlib.contextmanager
def squid(*, name: str = "squid", port: int = 0) -> Iterator[Proxy]:
    """A squid on 127.0.0.1 for the duration of the block: in the foreground, no cache on disk, small and bounded.

    Started as root it runs as Debian's ``proxy`` user (cache_effective_user),
    otherwise as whoever started it. Everything it writes (logs, pid file)
    goes to a temporary folder removed afterwards; it caches nothing (``cache deny all``, 8 MB
    of memory at most), asks no DNS server but loopback's, and serves only
    127.0.0.1. It keeps a client's connection open between requests, but
    closes it after one idle second (``client_idle_pconn_timeout``, two minutes
    by default): a proxy may close an idle connection whenever it likes, and
    the agent must not lose a request to that.
    """
    if not Path(SQUID).exists():
        _unavailable("needs Debian's squid (bin/test installs it when it can)")
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as where:
        # Not under tmp_path: pytest keeps that private to its user, and
        # squid started as root writes its logs as ``proxy``.
        Path(where).chmod(0o755)
        with _squid_in(_folder(Path(where), name), port) as proxy:
            yield proxy


@contextlib.contextmanager
def _squid_in(folder: Path, port: int) -> Iterator[Proxy]:
    port = port or free_port()
    proxy = Proxy(host="127.0.0.1", port=port, log=folder / "access.log", request_line=_SQUID_REQUEST)
    lines = [
        f"http_port 127.0.0.1:{port}",
        f"pid_filename {folder / 'squid.pid'}",
        f"cache_log {folder / 'cache.log'}",
        f"access_log stdio:{proxy.log} squid",
        f"coredump_dir {folder}",
        "cache_store_log none",
        "cache deny all",
        "cache_mem 8 MB",
        "max_filedescriptors 1024",
        "workers 1",
        "netdb_filename none",
        "pinger_enable off",
        "digest_generation off",
        "dns_nameservers 127.0.0.1",
        "logfile_rotate 0",
        "shutdown_lifetime 0 seconds",
        "client_idle_pconn_timeout 1 second",
        "via off",
        "forwarded_for delete",
        "acl loopback_clients src 127.0.0.1/32",
        "http_access allow loopback_clients",
        "http_access deny all",
    ]
    if os.geteuid() == 0:
        lines.append("cache_effective_user proxy")
    config = folder / "squid.conf"
    config.write_text("\n".join(lines) + "\n")
    with _running([SQUID, "-N", "-f", str(config)], port, "squid"):
        yield proxy
