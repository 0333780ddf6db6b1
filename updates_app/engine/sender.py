"""Posting signed notifications to agents' listeners with aiohttp.

One send task posts one batch: at most NOTIFY_CONCURRENCY requests in flight,
each bounded by short timeouts, so an unreachable client costs seconds, not
minutes, and never blocks the rest of the batch. Only a 2xx answer counts as
delivered; everything else comes back as a short error text for last_error.
A redirect is never followed (the notification goes only to the address the
server checked), so a 3xx is a failed attempt too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp
from django.conf import settings

from agents_app.signing import client_signing_keys, signature_headers
from updates_app.models import Delivery


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]


def payload_for(*, delivery_id: int, run_id: int, scan_after: bool) -> dict:
    """The one format of an update action, pushed or handed over at check-in."""
    return {"type": "update", "delivery_id": delivery_id, "run_id": run_id, "scan_after": scan_after}


def scan_after_for(*, run_scan_after: bool, no_scan: bool) -> bool:
    """Roaming clients (``no_scan``) are never asked to scan, whatever their run asks (SPEC 3.2)."""
    return run_scan_after and not no_scan


def notification_payload(delivery: Delivery) -> dict:
    """The body of a delivery's notification."""
    scan_after = scan_after_for(run_scan_after=delivery.run.scan_after, no_scan=delivery.no_scan)
    return payload_for(delivery_id=delivery.pk, run_id=delivery.run_id, scan_after=scan_after)


def message_id(delivery_id: int) -> str:
    # The same id on every attempt: the agent ignores a duplicate it already acted on.
    return f"dlv_{delivery_id}"


def listener_url(ip_address: str, port: int) -> str:
    host = f"[{ip_address}]" if ":" in ip_address else ip_address
    return f"http://{host}:{port}/notify"


def outgoing_for(
    *, delivery_id: int, run_id: int, scan_after: bool, client_guid: str, ip_address: str, port: int
) -> Outgoing:
    body = json.dumps(payload_for(delivery_id=delivery_id, run_id=run_id, scan_after=scan_after)).encode()
    # Signed with every configured key: during a rotation agents holding either accept it.
    headers = signature_headers(client_signing_keys(str(client_guid)), message_id(delivery_id), body)
    return Outgoing(delivery_id=delivery_id, url=listener_url(ip_address, port), body=body, headers=headers)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out (limit {settings.NOTIFY_TIMEOUT_SECONDS} s)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else "connection failed"
        return f"could not connect: {reason}"
    return f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__


def _answer_error(status: int) -> str | None:
    """None for a 2xx answer (delivered); otherwise the failed attempt's error."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed"
    return f"HTTP {status}"


async def _post_all(items: list[Outgoing], *, concurrency: int) -> dict[int, str | None]:
    timeout = aiohttp.ClientTimeout(
        total=settings.NOTIFY_TIMEOUT_SECONDS, sock_connect=settings.NOTIFY_CONNECT_TIMEOUT_SECONDS
    )
    # Every agent is its own host:port, so pooled keep-alive buys nothing and
    # would hold thousands of idle sockets.
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    outcomes: dict[int, str | None] = {}
    gate = asyncio.Semaphore(concurrency)

    async def post(session: aiohttp.ClientSession, item: Outgoing) -> None:
        async with gate:
            try:
                # Never follow a redirect: the listener could otherwise send the
                # signed POST to any address, outside AGENT_ALLOWED_NETWORKS.
                async with session.post(
                    item.url, data=item.body, headers=item.headers, allow_redirects=False
                ) as response:
                    await response.read()
                    outcomes[item.delivery_id] = _answer_error(response.status)
            except Exception as exc:
                outcomes[item.delivery_id] = _describe(exc)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(post(session, item) for item in items))
    return outcomes


def notifications_send(items: Iterable[Outgoing], *, concurrency: int | None = None) -> dict[int, str | None]:
    """Post every notification; returns {delivery id: None if delivered, else the error}."""
    batch = list(items)
    if not batch:
        return {}
    job = _post_all(batch, concurrency=concurrency or settings.NOTIFY_CONCURRENCY)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    # Called from code that already runs an event loop in this thread (an
    # async caller, a browser-driving test): use a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, job).result()
