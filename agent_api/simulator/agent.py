"""One simulated agent: registration, check-ins, configuration, updates, reports, notifications.

An agent lives in a fleet (fleet.py) but does not import it: it asks for what
it shares with the other agents through ``AgentHost``, which the fleet
provides, so the fleet depends on the agent and not the other way round.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from agent_api.simulator.proxy import AUTOMATIC, UPDATE_NOW, ProxyChoice, ProxyResolver, UserProxy
from agents_app.signing import SignatureError, decode_key, key_id, verify
from updates_app.patterns import PatternError, apply_incremental, parse_pattern
from updates_app.version_labels import parse_version_label, reported_number, version_label

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400
# Manifest items that are not components: "Clients can update components but not
# upgrade the client program or deploy hot fixes" skips them.
PROGRAM_KINDS = ("program", "hotfix")
SERVER, ACTIVEUPDATE = "server", "activeupdate"
# A report the server did not acknowledge is sent again after this wait,
# doubled after each failed try up to the most (jittered by up to half again);
# at most this many wait, the oldest dropped first (docs/agent-protocol.md, "Report").
REPORT_RETRY_FIRST_SECONDS = 2.0
REPORT_RETRY_MOST_SECONDS = 300.0
REPORTS_KEPT = 100
# The check-in owed after reporting an update it was notified of (docs/agent-protocol.md).
POST_UPDATE = "post_update"


class AgentError(Exception):
    """A call to the server that did not succeed."""

    def __init__(self, status: int, code: str, message: str = ""):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.retry_after: float | None = None


@dataclass
class AgentSpec:
    """How one simulated agent behaves."""

    hostname: str
    domain: str = "Simulated"
    # The address it sends from (and reports at registration); unreachable agents
    # use one in the server's unreachable ranges and have no listener.
    ip_address: str = "127.0.0.1"
    roaming: bool = False
    offline: bool = False
    unreachable: bool = False
    # None, "error" (the listener answers 503) or "refuse" (no listener at all).
    fail_mode: str | None = None
    scheduled_update_disabled: bool = False
    # What it holds at start: slug -> full file bytes (patterns) or a version label.
    holdings: dict[str, bytes | str] = field(default_factory=dict)
    # What "Automatically detect settings" finds on this agent's network (a PAC
    # script's address), or None when nothing answers there.
    wpad_url: str | None = None
    # The proxy the client user configured for "Update Now" (needs the privilege).
    user_proxy: UserProxy | None = None


@dataclass
class Counters:
    checkins: int = 0
    notifications_received: int = 0
    notifications_duplicate: int = 0
    notifications_rejected: int = 0
    updates_ok: int = 0
    updates_failed: int = 0
    scheduled_updates: int = 0
    scans: int = 0
    config_fetches: int = 0
    bytes_downloaded: int = 0
    incremental_downloads: int = 0
    full_downloads: int = 0
    rollbacks: int = 0
    fell_silent: int = 0
    post_update_checkins: int = 0
    errors: int = 0
    # Reports sent again because a try did not reach the server or got no answer from it.
    reports_resent: int = 0
    # Reports the server refused (an answer of its own saying the report is wrong): never sent again.
    reports_refused: int = 0
    # Reports dropped unsent because REPORTS_KEPT were already waiting.
    reports_dropped: int = 0


class AgentHost(Protocol):
    """What an agent takes from the fleet that runs it: settings, shared sessions and files, the faults it plays."""

    seed: int
    server_url: str
    enrollment_secret: str
    heartbeat_override: float | None
    time_scale: float
    scan_seconds: float
    # Strict (tests): an agent that cannot start raises instead of retrying.
    strict: bool
    clock: Callable[[], float]
    # Full files by sha256, shared by every agent that holds the same content.
    store: dict[str, bytes]

    def session_for(self, address: str, *, through_proxy: bool = False) -> aiohttp.ClientSession: ...

    def store_put(self, data: bytes) -> str: ...

    def fault_for(self, agent: SimAgent, slug: str, label: str) -> str | None: ...

    async def set_fail_mode(self, agent: SimAgent, mode: str | None) -> None: ...


class SimAgent:
    def __init__(self, fleet: AgentHost, spec: AgentSpec, index: int):
        self.fleet = fleet
        self.spec = spec
        self.index = index
        self.rng = random.Random(f"{fleet.seed}:{index}")
        self.port: int = 0
        self.client_id: str | None = None
        self.token: str | None = None
        self.key: bytes | None = None
        # The key held before the last hand-over: a notification signed by a
        # process that has not seen the rotation yet still verifies.
        self.previous_key: bytes | None = None
        self.heartbeat_seconds: float = 60.0
        # The server's bound for the post-update check-in (register and check-in answers).
        self.post_update_checkin_seconds: float | None = None
        self.status: str = "unregistered"
        self.counters = Counters()
        # slug -> (version label, sha256 of the held full file or "")
        self.versions: dict[str, str] = {}
        self.file_hashes: dict[str, str] = {}
        self.config: dict[str, Any] | None = None
        self.config_version = ""
        self.config_fetched_at: float | None = None
        self.config_pending = False
        self.seen_ids: set[str] = set()
        self.notification_log: list[dict] = []
        self.fail_mode = spec.fail_mode
        self._update_lock = asyncio.Lock()
        self.proxies = ProxyResolver(lambda: fleet.session_for(spec.ip_address))
        # The body of the last report sent (or attempted), for tests and the demo.
        self.last_report: dict[str, Any] | None = None
        # Reports not acknowledged yet, oldest first, and the task sending them again.
        self.unsent_reports: deque[dict[str, Any]] = deque()
        self._report_resender: asyncio.Task | None = None
        self.report_retry_first_seconds = REPORT_RETRY_FIRST_SECONDS
        self.report_retry_most_seconds = REPORT_RETRY_MOST_SECONDS
        self._config_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        # The heartbeat and schedule loops, stopped while the agent sleeps.
        self._loops: list[asyncio.Task] = []
        self.asleep = False
        self._load_holdings(spec.holdings)

    # --- state -------------------------------------------------------------------------

    def _load_holdings(self, holdings: dict[str, bytes | str]) -> None:
        for slug, held in holdings.items():
            if isinstance(held, bytes):
                self.versions[slug] = version_label(parse_pattern(held).number)
                self.file_hashes[slug] = self.fleet.store_put(held)
            else:
                self.versions[slug] = held

    @property
    def notifications_received(self) -> int:
        return self.counters.notifications_received

    def held_file(self, slug: str) -> bytes | None:
        digest = self.file_hashes.get(slug)
        return self.fleet.store.get(digest) if digest else None

    def reports_roaming(self) -> bool:
        """Roaming mode only with the roaming privilege (before the first configuration, as the user set it)."""
        if self.config is None:
            return self.spec.roaming
        return self.spec.roaming and bool(self.config.get("privileges", {}).get("roaming"))

    def scheduled_update_on(self) -> bool:
        if not self.config:
            return False
        sched = self.config.get("scheduled_update", {})
        if not sched.get("enabled"):
            return False
        return not (sched.get("user_may_disable") and self.spec.scheduled_update_disabled)

    def schedule_interval_seconds(self) -> float | None:
        """The Minute(s)/Hour(s) interval from the configuration (None for Daily/Weekly)."""
        if not self.config:
            return None
        schedule = self.config.get("schedule", {})
        if schedule.get("frequency") == "minutes":
            return schedule["interval_minutes"] * 60 / self.fleet.time_scale
        if schedule.get("frequency") == "hours":
            return schedule["interval_hours"] * 3600 / self.fleet.time_scale
        return None

    def config_once_per_day(self) -> bool:
        schedule = (self.config or {}).get("schedule", {})
        return schedule.get("frequency") in ("minutes", "hours") and bool(schedule.get("config_once_per_day"))

    # --- HTTP to the server ------------------------------------------------------------

    async def server_route(self, *, kind: str = AUTOMATIC, path: str = "/agent/v1/") -> ProxyChoice:
        """The proxy for a request to the server (automatic update rules unless ``kind`` is Update Now)."""
        return await self.proxies.for_server(
            config=self.config,
            kind=kind,
            target_url=self.fleet.server_url + path,
            wpad_url=self.spec.wpad_url,
            user_proxy=self.spec.user_proxy,
        )

    def _session(self, route: ProxyChoice) -> aiohttp.ClientSession:
        """The session for a request by ``route``: through a proxy, one that never reuses a connection (fleet.py)."""
        return self.fleet.session_for(self.spec.ip_address, through_proxy=route.url is not None)

    async def _call(
        self, method: str, path: str, body: dict | None = None, *, retry: bool = True, route: ProxyChoice | None = None
    ) -> Any:
        for attempt in range(5):
            try:
                return await self._call_once(method, path, body, retry=retry, route=route)
            except AgentError as exc:
                if exc.status != 429 or attempt == 4:
                    raise
                # Rate limited: back off as told, with jitter so the fleet spreads out.
                await asyncio.sleep(min(exc.retry_after or 1.0, 30.0) * self.rng.uniform(1.0, 2.0))
        raise AssertionError("unreachable")

    async def _call_once(
        self, method: str, path: str, body: dict | None, *, retry: bool, route: ProxyChoice | None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = self.fleet.server_url + path
        route = route or await self.server_route(path=path)
        async with self._session(route).request(method, url, json=body, **route.request_kwargs(headers)) as response:
            _refuse_proxy_answer(response, route)
            if response.status == 403 and retry and path != "/agent/v1/register":
                data = await response.json(content_type=None)
                if data.get("code") == "register_again":
                    await self.register()
                    return await self._call(method, path, body, retry=False, route=route)
            if response.status >= 400:
                try:
                    data = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    data = {}
                error = AgentError(response.status, data.get("code", "http_error"), data.get("message", ""))
                retry_after = response.headers.get("Retry-After", "")
                error.retry_after = float(retry_after) if retry_after.isdigit() else None
                raise error
            return await response.json()

    async def _download(self, url: str, *, route: ProxyChoice, base: str | None = None) -> bytes:
        """A file from the server (``url`` is a path there) or from ``base`` (the ActiveUpdate server)."""
        headers = {"Authorization": f"Bearer {self.token}"} if base is None else {}
        target = (base or self.fleet.server_url) + url
        async with self._session(route).get(target, **route.request_kwargs(headers)) as response:
            _refuse_proxy_answer(response, route)
            if response.status != 200:
                raise AgentError(response.status, "download_failed", target)
            data = await response.read()
        self.counters.bytes_downloaded += len(data)
        return data

    async def register(self, *, report_versions: bool = True) -> None:
        """Register, reporting what it holds: the answer is also its restart check-in and its configuration.

        ``report_versions=False``: an agent about to fetch its components first
        (the fleet's probe) registers without them, so it is not told to update.
        """
        body = {
            "enrollment_secret": self.fleet.enrollment_secret,
            "hostname": self.spec.hostname,
            "ip_address": self.spec.ip_address,
            "listener_port": self.port or 1,
            "domain": self.spec.domain,
            "roaming": self.spec.roaming,
            "scheduled_update_disabled": self.spec.scheduled_update_disabled,
        }
        if report_versions:
            body["component_versions"] = self.versions
        answer = await self._call("POST", "/agent/v1/register", body)
        self.client_id = answer["client_id"]
        self.token = answer["token"]
        self.key = decode_key(answer["signing_key"])
        self.previous_key = None
        self.heartbeat_seconds = self.fleet.heartbeat_override or answer["heartbeat_interval_seconds"]
        self.post_update_checkin_seconds = answer.get("post_update_checkin_seconds")
        self.seen_ids.clear()
        self.status = answer["status"]
        self._config_apply(answer)
        for action in answer["actions"]:
            self._spawn(self.act(action, trigger="restart"))

    async def checkin(self, event: str) -> dict:
        answer = await self._call(
            "POST",
            "/agent/v1/checkin",
            {
                "event": event,
                "component_versions": self.versions,
                "config_version": self.config_version,
                "scheduled_update_disabled": self.spec.scheduled_update_disabled,
                "roaming": self.reports_roaming(),
                "signing_key_id": key_id(self.key) if self.key else "",
            },
        )
        self.counters.checkins += 1
        self.post_update_checkin_seconds = answer.get("post_update_checkin_seconds")
        if answer.get("signing_key"):
            # The server rotated its signing secret: adopt the new key.
            new_key = decode_key(answer["signing_key"])
            if new_key != self.key:
                self.previous_key, self.key = self.key, new_key
        self.status = answer["status"]
        if answer["config_changed"]:
            self.config_pending = True
            await self.maybe_fetch_config()
        trigger = "restart" if event == "restart" else "notification"
        for action in answer["actions"]:
            self._spawn(self.act(action, trigger=trigger))
        return answer

    async def maybe_fetch_config(self, *, at_schedule: bool = False) -> bool:
        """Fetch the configuration if it changed, honouring "only once per day"."""
        if not self.config_pending and self.config is not None:
            return False
        now = self.fleet.clock()
        if self.config is not None and self.config_once_per_day() and self.config_fetched_at is not None:
            # Components every interval, configuration files once a day.
            if now - self.config_fetched_at < DAY_SECONDS / self.fleet.time_scale:
                return False
            if not at_schedule and self.scheduled_update_on():
                return False  # the next scheduled update fetches it
        answer = await self._call("GET", "/agent/v1/configuration")
        self.counters.config_fetches += 1
        self._config_apply(answer)
        return True

    def _config_apply(self, answer: dict) -> None:
        """Apply the configuration document of an answer (GET /configuration, or a registration)."""
        self.config = answer["configuration"]
        self.config_version = answer["config_version"]
        self.config_fetched_at = self.fleet.clock()
        self.config_pending = False
        self._config_event.set()

    # --- updating ------------------------------------------------------------------------

    def may_use_activeupdate(self) -> bool:
        config = self.config or {}
        return bool(config.get("activeupdate_url")) and bool(
            config.get("update_settings", {}).get("download_from_activeupdate")
        )

    def components_only(self) -> bool:
        return bool((self.config or {}).get("update_settings", {}).get("components_only"))

    async def update_now(self) -> bool:
        """The client user pressed "Update Now": allowed only with the privilege, and refused (and reported) without."""
        if not (self.config or {}).get("privileges", {}).get("update_now", False):
            self.counters.updates_failed += 1
            await self.report(
                kind="update",
                ok=False,
                trigger=UPDATE_NOW,
                delivery_id=None,
                message='Update Now refused: this client does not have the "Perform Update Now" privilege.',
            )
            return False
        return await self.update(trigger=UPDATE_NOW)

    async def update(self, *, trigger: str, delivery_id: int | None = None) -> bool:
        """Fetch the manifest, download what is newer, verify hashes, report.

        The server is the first source; an agent allowed to download from the
        ActiveUpdate server falls back to it when the server or its copy of a
        file cannot be had. The report says which source and proxy were used.
        """
        async with self._update_lock:
            kind = UPDATE_NOW if trigger == UPDATE_NOW else AUTOMATIC
            route = await self.server_route(kind=kind, path="/agent/v1/manifest")
            used: dict[str, ProxyChoice] = {}
            ok = True
            message = ""
            fault: str | None = None
            try:
                for item, source in await self._manifest(route):
                    if self.components_only() and item.get("kind") in PROGRAM_KINDS:
                        continue  # components only: no client program upgrade, no hot fix
                    if self.versions.get(item["component"]) == item["latest_version"]:
                        continue
                    used_source, used_route = await self._fetch_component(item, source=source, route=route)
                    used[used_source] = used_route
                    # A version marked bad for the simulation (mark_bad_version) hurts some agents.
                    fault = fault or self.fleet.fault_for(self, item["component"], item["latest_version"])
            except (TimeoutError, AgentError, aiohttp.ClientError, PatternError, ValueError) as exc:
                logger.info("agent %s: update failed: %s", self.spec.hostname, exc)
                ok = False
                message = str(exc)[:500]
            if fault == "fail":
                ok = False
                message = "simulated fault: the real-time scan service stopped after loading the new pattern"
            if ok:
                self.counters.updates_ok += 1
                if trigger == "schedule":
                    self.counters.scheduled_updates += 1
            else:
                self.counters.updates_failed += 1
            source = ACTIVEUPDATE if ACTIVEUPDATE in used else SERVER
            used_route = used.get(source, route)
            await self.report(
                kind="update",
                ok=ok,
                trigger=trigger,
                delivery_id=delivery_id,
                message=message,
                source=source,
                proxy=used_route.describe(),
            )
            if fault == "silent":
                # The endpoint crashed after updating: no more heartbeats, nothing listens.
                self._spawn(self.fall_silent())
            elif ok and delivery_id is not None:
                self._spawn(self.post_update_checkin())
            return ok

    async def post_update_checkin(self) -> None:
        """The check-in owed after reporting a notified update: alive with the new version.

        Half-way through the server's bound (it ran the new version a while),
        retried until the bound has passed: an agent that makes none within
        it counts as fallen silent, evidence against the version.
        """
        bound = self.post_update_checkin_seconds
        if not bound:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        await asyncio.sleep(bound / 2)
        while not self.asleep:
            try:
                await self.checkin(POST_UPDATE)
                self.counters.post_update_checkins += 1
                return
            except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
                self.counters.errors += 1
                logger.info("agent %s: post-update check-in failed: %s", self.spec.hostname, exc)
            if loop.time() + bound / 10 >= deadline:
                return
            await asyncio.sleep(bound / 10)

    async def fall_silent(self) -> None:
        self.counters.fell_silent += 1
        self.status = "offline"
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.fleet.set_fail_mode(self, "refuse")

    def _rolling_back(self, item: dict) -> bool:
        """Is the current version offered older than the one held? A rollback withdrew ours."""
        held = reported_number(self.versions.get(item["component"]))
        return held is not None and held > parse_version_label(item["latest_version"])

    async def _manifest(self, route: ProxyChoice) -> list[tuple[dict, str]]:
        """(manifest item, where to download it first): the server's manifest, else the ActiveUpdate server's."""
        try:
            manifest = await self._call("GET", "/agent/v1/manifest", route=route)
            return [(item, SERVER) for item in manifest["components"]]
        except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
            if not self.may_use_activeupdate():
                raise
            logger.info("agent %s: server unavailable (%s); using the ActiveUpdate server", self.spec.hostname, exc)
        feed = await self._activeupdate_json("/manifest")
        return [(item, ACTIVEUPDATE) for item in feed["components"]]

    async def _activeupdate_json(self, path: str) -> Any:
        route = self.proxies.for_activeupdate(self.config)
        base = (self.config or {})["activeupdate_url"].rstrip("/")
        async with self._session(route).get(base + path, **route.request_kwargs()) as response:
            _refuse_proxy_answer(response, route)
            if response.status != 200:
                raise AgentError(response.status, "activeupdate_failed", base + path)
            return await response.json()

    async def _fetch_component(self, item: dict, *, source: str, route: ProxyChoice) -> tuple[str, ProxyChoice]:
        """Download one component (incremental when possible), verify it, hold it; returns the source and proxy used."""
        slug = item["component"]
        data: bytes | None = None
        # The server's current version is older than ours: a rollback withdrew
        # ours. Incrementals only lead forward, so the full file it is.
        rolling_back = self._rolling_back(item)
        used = (source, route)
        if source == SERVER:
            try:
                data = await self._from_server(item, route, rolling_back=rolling_back)
            except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
                if not self.may_use_activeupdate():
                    raise
                logger.info("agent %s: %s from the server failed (%s); ActiveUpdate", self.spec.hostname, slug, exc)
        if data is None:
            external = self.proxies.for_activeupdate(self.config)
            base = (self.config or {})["activeupdate_url"].rstrip("/")
            url = f"/components/{slug}/versions/{item['latest_version']}/full"
            data = await self._download(url, route=external, base=base)
            self.counters.full_downloads += 1
            used = (ACTIVEUPDATE, external)
        # Whatever the source, the file must match the hash the manifest published.
        if hashlib.sha256(data).hexdigest() != item["sha256"]:
            raise ValueError(f"{slug}: the downloaded file does not match the published sha256")
        self.versions[slug] = item["latest_version"]
        self.file_hashes[slug] = self.fleet.store_put(data) if item.get("kind") == "pattern" else ""
        if rolling_back:
            self.counters.rollbacks += 1
        return used

    async def _from_server(self, item: dict, route: ProxyChoice, *, rolling_back: bool = False) -> bytes:
        slug = item["component"]
        # Rolling back: no incremental leads backwards; the full file (checked against its sha256 by the caller).
        incremental = None if rolling_back else item.get("incremental")
        base = self.held_file(slug)
        if incremental and base is not None and incremental.get("from_version") == self.versions.get(slug):
            inc = await self._download(incremental["url"], route=route)
            if hashlib.sha256(inc).hexdigest() == incremental["sha256"]:
                try:
                    data = apply_incremental(base, inc)
                    self.counters.incremental_downloads += 1
                    return data
                except PatternError as exc:
                    logger.info("agent %s: incremental did not apply (%s); full download", self.spec.hostname, exc)
        data = await self._download(item["full"]["url"], route=route)
        self.counters.full_downloads += 1
        return data

    async def scan(self, *, trigger: str, delivery_id: int | None) -> None:
        await asyncio.sleep(self.fleet.scan_seconds)
        self.counters.scans += 1
        await self.report(kind="scan", ok=True, trigger=trigger, delivery_id=delivery_id)

    async def report(
        self,
        *,
        kind: str,
        ok: bool,
        trigger: str,
        delivery_id: int | None,
        message: str = "",
        source: str = "",
        proxy: str = "",
    ) -> None:
        body = {
            "kind": kind,
            "result": "success" if ok else "failure",
            "trigger": trigger,
            "component_versions": self.versions,
            "delivery_id": delivery_id,
            "message": message,
            "download_source": source,
            "proxy": proxy,
        }
        self.last_report = body
        # In order: while older reports wait, this one waits behind them (a
        # report sent late never overwrites what a newer one recorded).
        if not self.unsent_reports and await self._report_once(body):
            return
        if len(self.unsent_reports) >= REPORTS_KEPT:
            self.unsent_reports.popleft()
            self.counters.reports_dropped += 1
        self.unsent_reports.append(body)
        if self._report_resender is None or self._report_resender.done():
            self._report_resender = self._spawn(self._resend_reports())

    async def _report_once(self, body: dict[str, Any]) -> bool:
        """One try at a report: True when it is settled (the server acknowledged or refused it), False to retry.

        Sent again: anything that did not bring the server's own answer (no
        connection, a timeout, a connection a proxy closed, a proxy's error
        page or refusal) and the server's 5xx, 408 and 429. Not sent again: the
        server's own 4xx (``invalid``, ``unknown_delivery``, ...), which the
        same body would only get again. The server records a report once per
        delivery, so a report that did arrive but whose answer was lost does
        no harm when it arrives again.
        """
        try:
            await self._call("POST", "/agent/v1/report", body)
            return True
        except AgentError as exc:
            if _refused_for_good(exc):
                self.counters.reports_refused += 1
                logger.warning("agent %s: the server refused a report: %s", self.spec.hostname, exc)
                return True
            failure: Exception = exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure = exc
        self.counters.errors += 1
        logger.info("agent %s: report not sent (%s); it is kept and sent again", self.spec.hostname, failure)
        return False

    async def _resend_reports(self) -> None:
        """Send the waiting reports, oldest first, with a growing wait between failed tries, until none is left."""
        wait = self.report_retry_first_seconds
        while self.unsent_reports:
            await asyncio.sleep(wait * self.rng.uniform(1.0, 1.5))
            self.counters.reports_resent += 1
            if await self._report_once(self.unsent_reports[0]):
                self.unsent_reports.popleft()
                wait = self.report_retry_first_seconds
            else:
                wait = min(wait * 2, self.report_retry_most_seconds)

    async def act(self, action: dict, *, trigger: str) -> None:
        """Carry out a notification (pushed or handed over at check-in)."""
        if action.get("type") != "update":
            return
        ok = await self.update(trigger=trigger, delivery_id=action.get("delivery_id"))
        if ok and action.get("scan_after"):
            await self.scan(trigger=trigger, delivery_id=action.get("delivery_id"))

    # --- the listener --------------------------------------------------------------------

    async def handle_notify(self, request: web.Request) -> web.Response:
        self.counters.notifications_received += 1
        if self.fail_mode == "error":
            return web.json_response({"code": "unavailable"}, status=503)
        body = await request.read()
        if self.key is None:
            return web.json_response({"code": "not_registered"}, status=503)
        try:
            held = [self.key] if self.previous_key is None else [self.key, self.previous_key]
            # Any signature in the header that a held key verifies will do.
            message_id = verify(held, dict(request.headers), body, now=self.fleet.clock())
        except SignatureError as exc:
            self.counters.notifications_rejected += 1
            return web.json_response({"code": "bad_signature", "message": str(exc)}, status=401)
        if message_id in self.seen_ids:
            self.counters.notifications_duplicate += 1
            return web.json_response({"status": "duplicate"})
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict) or payload.get("type") != "update":
                raise ValueError("not an update notification")
        except ValueError as exc:
            self.counters.notifications_rejected += 1
            return web.json_response({"code": "bad_body", "message": str(exc)}, status=400)
        self.seen_ids.add(message_id)
        self.notification_log.append({"id": message_id, **payload})
        # Answer at once; the work happens in the background.
        self._spawn(self.act(payload, trigger="notification"))
        return web.json_response({"status": "accepted"}, status=202)

    # --- life cycle ----------------------------------------------------------------------

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._forget)
        return task

    def _start_loops(self) -> None:
        self._loops = [self._spawn(self._heartbeat_loop()), self._spawn(self._schedule_loop())]

    def _forget(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters.errors += 1
            logger.info("agent %s: background task failed: %r", self.spec.hostname, task.exception())

    async def start(self) -> None:
        """Register (which is also the first restart check-in), or check in as after a restart; run the loops."""
        while True:
            try:
                if self.token is None:
                    # Its restart check-in and configuration come with the registration's answer.
                    await self.register()
                else:
                    await self.checkin("restart")
                    await self.maybe_fetch_config()
                break
            except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
                if self.fleet.strict:
                    raise
                # A real agent keeps trying until the server answers.
                self.counters.errors += 1
                logger.info("agent %s: start failed (%s); retrying", self.spec.hostname, exc)
                await asyncio.sleep(self.rng.uniform(5, 15))
        if self.spec.offline:
            # An offline agent goes silent after registering: no heartbeat, no listener.
            self.status = "offline"
            return
        self._start_loops()

    async def fall_asleep(self) -> None:
        """The machine sleeps: its listener stops answering and it stops checking in.

        Notifications pushed to it meanwhile fail (connection refused) and are
        retried under the server's rule; nothing hands them over, since it is silent.
        """
        if self.asleep or self.spec.unreachable or self.spec.offline:
            return
        self.asleep = True
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        await self.fleet.set_fail_mode(self, "refuse")

    async def wake(self) -> None:
        """The machine is back: the listener answers again and the agent checks in as after a restart.

        The restart check-in is what lets the server hand over a notification
        still retrying, or, with "Let clients initiate component update when
        they restart" on, tell an outdated agent whose notification gave up to
        update now.
        """
        if not self.asleep:
            return
        await self.fleet.set_fail_mode(self, self.spec.fail_mode)
        self.asleep = False
        try:
            await self.checkin("restart")
        except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
            self.counters.errors += 1
            logger.info("agent %s: restart check-in failed: %s", self.spec.hostname, exc)
        self._start_loops()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _heartbeat_loop(self) -> None:
        event = "poll" if self.spec.unreachable else "heartbeat"
        await asyncio.sleep(self.rng.uniform(0, self.heartbeat_seconds))
        while True:
            try:
                await self.checkin(event)
            except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
                self.counters.errors += 1
                logger.info("agent %s: check-in failed: %s", self.spec.hostname, exc)
            await asyncio.sleep(self.heartbeat_seconds)

    async def _schedule_loop(self) -> None:
        """Minute(s)/Hour(s) schedule from the configuration, at a random phase."""
        while True:
            interval = self.schedule_interval_seconds()
            if interval is None or not self.scheduled_update_on():
                self._config_event.clear()
                await self._config_event.wait()
                continue
            self._config_event.clear()
            delay = self.rng.uniform(0, interval)
            while True:
                try:
                    await asyncio.wait_for(self._config_event.wait(), timeout=delay)
                    break  # the configuration changed: recompute the schedule
                except TimeoutError:
                    pass
                try:
                    await self.maybe_fetch_config(at_schedule=True)
                    await self.update(trigger="schedule")
                except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
                    self.counters.errors += 1
                    logger.info("agent %s: scheduled update failed: %s", self.spec.hostname, exc)
                if self._config_event.is_set():
                    break
                delay = interval


def _refused_for_good(error: AgentError) -> bool:
    """Did the server itself refuse the request, so that sending the same body again is pointless?

    The server answers every error with its own JSON ``code``; a proxy's page
    has none (``http_error``), and a proxy refusing the agent's credentials is
    ``proxy_authentication_failed``: both may pass once the proxy or its
    settings change.
    """
    from_the_server = error.code not in ("http_error", "proxy_authentication_failed")
    return from_the_server and 400 <= error.status < 500 and error.status not in (408, 429)


def _refuse_proxy_answer(response: aiohttp.ClientResponse, route: ProxyChoice) -> None:
    """A proxy that refuses the agent's credentials: a clear error, not a confusing server answer.

    Proxies answer 407, or (tinyproxy, for a wrong password) 401 with a Basic
    challenge; the server's own 401 challenges for a Bearer token instead.
    """
    if not route.url:
        return
    basic_challenge = response.headers.get("WWW-Authenticate", "").lower().startswith("basic")
    if response.status == 407 or (response.status == 401 and basic_challenge):
        raise AgentError(
            response.status,
            "proxy_authentication_failed",
            f"the proxy {route.url} ({route.rule}) refused the credentials (HTTP {response.status})",
        )
