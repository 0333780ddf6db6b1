"""Real proxies for the tests: Debian's tinyproxy on loopback (bin/test installs it when missing)."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import _unavailable

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
# tinyproxy logs every request it forwards as:
#   CONNECT   Nov 26 05:54:09.095 [32307]: Request (file descriptor 5): GET http://127.0.0.1:9/x HTTP/1.1
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/")


@dataclass
class Proxy:
    host: str
    port: int
    log: Path
    username: str = ""
    password: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def requests(self) -> list[tuple[str, str]]:
        """(method, absolute URL) of every request the proxy forwarded so far."""
        if not self.log.exists():
            return []
        return _REQUEST.findall(self.log.read_text(errors="replace"))

    def paths(self) -> list[str]:
        return [re.sub(r"^https?://[^/]+", "", url) for _method, url in self.requests()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def tinyproxy(tmp_path: Path, *, username: str = "", password: str = "", name: str = "proxy") -> Iterator[Proxy]:
    """A tinyproxy on 127.0.0.1 for the duration of the block, with Basic authentication when a user is given."""
    if not Path(TINYPROXY).exists():
        _unavailable("needs Debian's tinyproxy (bin/test installs it when it can)")
    folder = tmp_path / name
    folder.mkdir()
    folder.chmod(0o777)  # tinyproxy may drop privileges before writing its log
    port = _free_port()
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
    process = subprocess.Popen([TINYPROXY, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None:
                pytest.fail(f"tinyproxy did not start: {process.stderr.read().decode() if process.stderr else ''}")
            time.sleep(0.05)
        else:
            pytest.fail("tinyproxy did not start listening within 10 s")
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
