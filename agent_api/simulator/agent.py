"""One simulated agent: registration, check-ins, configuration, updates, reports, notifications."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from agents_app.signing import SignatureError, decode_key, verify
from updates_app.patterns import PatternError, apply_incremental, parse_pattern
from updates_app.version_labels import parse_version_label, reported_number, version_label

if TYPE_CHECKING:
    from agent_api.simulator.fleet import Fleet

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400


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
    # The address it reports at registration; unreachable agents report one in
    # the server's unreachable ranges and have no listener.
    ip_address: str = "127.0.0.1"
    roaming: bool = False
    offline: bool = False
    unreachable: bool = False
    # None, "error" (the listener answers 503) or "refuse" (no listener at all).
    fail_mode: str | None = None
    scheduled_update_disabled: bool = False
    # What it holds at start: slug -> full file bytes (patterns) or a version label.
    holdings: dict[str, bytes | str] = field(default_factory=dict)


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
    errors: int = 0


class SimAgent:
    def __init__(self, fleet: Fleet, spec: AgentSpec, index: int):
        self.fleet = fleet
        self.spec = spec
        self.index = index
        self.rng = random.Random(f"{fleet.seed}:{index}")
        self.port: int = 0
        self.client_id: str | None = None
        self.token: str | None = None
        self.key: bytes | None = None
        self.heartbeat_seconds: float = 60.0
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
        self._config_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
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

    async def _call(self, method: str, path: str, body: dict | None = None, *, retry: bool = True) -> Any:
        for attempt in range(5):
            try:
                return await self._call_once(method, path, body, retry=retry)
            except AgentError as exc:
                if exc.status != 429 or attempt == 4:
                    raise
                # Rate limited: back off as told, with jitter so the fleet spreads out.
                await asyncio.sleep(min(exc.retry_after or 1.0, 30.0) * self.rng.uniform(1.0, 2.0))
        raise AssertionError("unreachable")

    async def _call_once(self, method: str, path: str, body: dict | None, *, retry: bool) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = self.fleet.server_url + path
        assert self.fleet.session is not None, "the fleet was started"
        async with self.fleet.session.request(method, url, json=body, headers=headers) as response:
            if response.status == 403 and retry and path != "/agent/v1/register":
                data = await response.json(content_type=None)
                if data.get("code") == "register_again":
                    await self.register()
                    return await self._call(method, path, body, retry=False)
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

    async def _download(self, url: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"}
        assert self.fleet.session is not None, "the fleet was started"
        async with self.fleet.session.get(self.fleet.server_url + url, headers=headers) as response:
            if response.status != 200:
                raise AgentError(response.status, "download_failed", url)
            data = await response.read()
        self.counters.bytes_downloaded += len(data)
        return data

    async def register(self) -> None:
        answer = await self._call(
            "POST",
            "/agent/v1/register",
            {
                "enrollment_secret": self.fleet.enrollment_secret,
                "hostname": self.spec.hostname,
                "ip_address": self.spec.ip_address,
                "listener_port": self.port or 1,
                "domain": self.spec.domain,
                "roaming": self.spec.roaming,
            },
        )
        self.client_id = answer["client_id"]
        self.token = answer["token"]
        self.key = decode_key(answer["signing_key"])
        self.heartbeat_seconds = self.fleet.heartbeat_override or answer["heartbeat_interval_seconds"]
        self.seen_ids.clear()

    async def checkin(self, event: str) -> dict:
        answer = await self._call(
            "POST",
            "/agent/v1/checkin",
            {
                "event": event,
                "component_versions": self.versions,
                "config_version": self.config_version,
                "scheduled_update_disabled": self.spec.scheduled_update_disabled,
                "roaming": self.spec.roaming,
            },
        )
        self.counters.checkins += 1
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
        self.config = answer["configuration"]
        self.config_version = answer["config_version"]
        self.config_fetched_at = now
        self.config_pending = False
        self._config_event.set()
        return True

    # --- updating ------------------------------------------------------------------------

    async def update(self, *, trigger: str, delivery_id: int | None = None) -> bool:
        """Fetch the manifest, download what is newer, verify hashes, report."""
        async with self._update_lock:
            ok = True
            message = ""
            fault: str | None = None
            try:
                manifest = await self._call("GET", "/agent/v1/manifest")
                for item in manifest["components"]:
                    if self.versions.get(item["component"]) == item["latest_version"]:
                        continue
                    await self._fetch_component(item)
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
            await self.report(kind="update", ok=ok, trigger=trigger, delivery_id=delivery_id, message=message)
            if fault == "silent":
                # The endpoint crashed after updating: no more heartbeats, nothing listens.
                self._spawn(self.fall_silent())
            return ok

    async def fall_silent(self) -> None:
        self.counters.fell_silent += 1
        self.status = "offline"
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.fleet.set_fail_mode(self, "refuse")

    async def _fetch_component(self, item: dict) -> None:
        slug = item["component"]
        incremental = item.get("incremental")
        base = self.held_file(slug)
        data: bytes | None = None
        held = reported_number(self.versions.get(slug))
        # The server's current version is older than ours: a rollback withdrew
        # ours. Incrementals only lead forward, so the full file it is.
        rolling_back = held is not None and held > parse_version_label(item["latest_version"])
        if rolling_back:
            incremental = None
        if incremental and base is not None and incremental.get("from_version") == self.versions.get(slug):
            inc = await self._download(incremental["url"])
            if hashlib.sha256(inc).hexdigest() == incremental["sha256"]:
                try:
                    data = apply_incremental(base, inc)
                    self.counters.incremental_downloads += 1
                except PatternError as exc:
                    logger.info("agent %s: incremental did not apply (%s); full download", self.spec.hostname, exc)
        if data is None:
            data = await self._download(item["full"]["url"])
            self.counters.full_downloads += 1
        if hashlib.sha256(data).hexdigest() != item["sha256"]:
            raise ValueError(f"{slug}: the downloaded file does not match the published sha256")
        self.versions[slug] = item["latest_version"]
        self.file_hashes[slug] = self.fleet.store_put(data) if item.get("kind") == "pattern" else ""
        if rolling_back:
            self.counters.rollbacks += 1

    async def scan(self, *, trigger: str, delivery_id: int | None) -> None:
        await asyncio.sleep(self.fleet.scan_seconds)
        self.counters.scans += 1
        await self.report(kind="scan", ok=True, trigger=trigger, delivery_id=delivery_id)

    async def report(self, *, kind: str, ok: bool, trigger: str, delivery_id: int | None, message: str = "") -> None:
        body = {
            "kind": kind,
            "result": "success" if ok else "failure",
            "trigger": trigger,
            "component_versions": self.versions,
            "delivery_id": delivery_id,
            "message": message,
        }
        try:
            await self._call("POST", "/agent/v1/report", body)
        except (TimeoutError, AgentError, aiohttp.ClientError) as exc:
            self.counters.errors += 1
            logger.info("agent %s: report failed: %s", self.spec.hostname, exc)

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
            message_id = verify(self.key, dict(request.headers), body, now=self.fleet.clock())
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

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters.errors += 1
            logger.info("agent %s: background task failed: %r", self.spec.hostname, task.exception())

    async def start(self) -> None:
        """Register, check in as after a restart, fetch configuration, then run the loops."""
        while True:
            try:
                await self.register()
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
        self._spawn(self._heartbeat_loop())
        self._spawn(self._schedule_loop())

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
