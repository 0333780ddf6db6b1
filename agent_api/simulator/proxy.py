"""Which proxy the reference agent uses, by the original product's rules.

- Automatic update (a notification, a schedule, a restart) and every call of
  the agent's own to the server: the automatic proxy settings first
  (automatic detection, then the automatic configuration script), then the
  internal proxy, else a direct connection.
- "Update Now" by the client user: the automatic proxy settings first, then
  the proxy the user configured, which needs the "Allow client users to
  configure proxy settings" privilege, else a direct connection.
- Downloads from the ActiveUpdate server: the external proxy, else direct.

"Automatically detect settings" stands for WPAD: the agent looks for a proxy
configuration script on its network. The simulated network is the agent's
``AgentSpec.wpad_url`` (None: nothing found there, so detection gives no
answer and the next rule applies). A configuration script (PAC) is fetched
directly and evaluated with pypac; its answer for the target URL decides
("PROXY host:port" or "DIRECT").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pypac.parser import PACFile

AUTOMATIC = "automatic"
UPDATE_NOW = "update_now"


@dataclass(frozen=True)
class UserProxy:
    """The proxy a client user typed into the client console."""

    host: str
    port: int
    username: str = ""
    password: str = ""


@dataclass(frozen=True)
class ProxyChoice:
    """Where a request goes: through ``url`` (with ``auth``), or direct when ``url`` is None."""

    url: str | None
    # "Basic ..." for a proxy that wants a user name and password.
    authorization: str | None
    # Which rule chose it, for the agent's report.
    rule: str

    def describe(self) -> str:
        """For the report: "" for a direct connection, else the proxy and the rule that chose it."""
        return f"{self.url} ({self.rule})" if self.url else ""

    def request_kwargs(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """aiohttp arguments for a request through this choice, with ``headers`` for the target.

        Plain-http requests go to the proxy as they are, so the proxy's
        credentials travel as a Proxy-Authorization header of the request
        itself (aiohttp's proxy_headers only reach a CONNECT tunnel).
        """
        merged = dict(headers or {})
        if not self.url:
            return {"headers": merged}
        if self.authorization:
            merged["Proxy-Authorization"] = self.authorization
        return {"proxy": self.url, "headers": merged}


DIRECT = ProxyChoice(url=None, authorization=None, rule="no proxy")


def _server(entry: dict[str, Any] | None, rule: str) -> ProxyChoice | None:
    if not entry or not entry.get("host") or not entry.get("port"):
        return None
    authorization = (
        aiohttp.encode_basic_auth(entry["username"], entry.get("password") or "") if entry.get("username") else None
    )
    host = f"[{entry['host']}]" if ":" in entry["host"] else entry["host"]
    return ProxyChoice(url=f"http://{host}:{entry['port']}", authorization=authorization, rule=rule)


def _pac_answer(script: str, target_url: str) -> str:
    host = urlsplit(target_url).hostname or ""
    return PACFile(script).find_proxy_for_url(target_url, host)


def _from_pac(answer: str, rule: str) -> ProxyChoice:
    """The first usable entry of a PAC answer such as "PROXY 127.0.0.1:3128; DIRECT"."""
    for entry in answer.split(";"):
        words = entry.split()
        if not words:
            continue
        if words[0].upper() == "DIRECT":
            return ProxyChoice(url=None, authorization=None, rule=rule)
        if words[0].upper() in ("PROXY", "HTTP") and len(words) > 1:
            return ProxyChoice(url=f"http://{words[1]}", authorization=None, rule=rule)
    return ProxyChoice(url=None, authorization=None, rule=rule)


class ProxyResolver:
    """Chooses a proxy per request; fetches each configuration script once (they are small and rarely change)."""

    def __init__(self, session_factory: Any) -> None:
        # A callable returning the aiohttp session to fetch scripts with (direct, no proxy).
        self._session = session_factory
        self._scripts: dict[str, str | None] = {}

    async def _script(self, url: str) -> str | None:
        if url not in self._scripts:
            try:
                async with self._session().get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    self._scripts[url] = await response.text() if response.status == 200 else None
            except (aiohttp.ClientError, TimeoutError):
                self._scripts[url] = None
        return self._scripts[url]

    async def _automatic(self, config: dict[str, Any], wpad_url: str | None, target_url: str) -> ProxyChoice | None:
        automatic = config.get("proxy", {}).get("automatic", {})
        candidates = []
        if automatic.get("detect") and wpad_url:
            candidates.append((wpad_url, "automatically detected settings"))
        if automatic.get("script_url"):
            candidates.append((automatic["script_url"], "automatic configuration script"))
        for url, rule in candidates:
            script = await self._script(url)
            if script is not None:
                return _from_pac(_pac_answer(script, target_url), rule)
        return None

    async def for_server(
        self,
        *,
        config: dict[str, Any] | None,
        kind: str,
        target_url: str,
        wpad_url: str | None = None,
        user_proxy: UserProxy | None = None,
    ) -> ProxyChoice:
        """The proxy for a request to the update server, for an automatic update or for "Update Now"."""
        if not config:
            return DIRECT  # nothing configured yet: the first contact is direct
        automatic = await self._automatic(config, wpad_url, target_url)
        if automatic is not None:
            return automatic
        if kind == UPDATE_NOW:
            allowed = config.get("privileges", {}).get("configure_proxy", False)
            if user_proxy is not None and allowed:
                entry = {
                    "host": user_proxy.host,
                    "port": user_proxy.port,
                    "username": user_proxy.username,
                    "password": user_proxy.password,
                }
                return _server(entry, "client user's proxy settings") or DIRECT
            return DIRECT
        return _server(config.get("proxy", {}).get("internal"), "internal proxy") or DIRECT

    @staticmethod
    def for_activeupdate(config: dict[str, Any] | None) -> ProxyChoice:
        """The proxy for downloads from the ActiveUpdate server: the external proxy, else direct."""
        return _server((config or {}).get("proxy", {}).get("external"), "external proxy") or DIRECT
