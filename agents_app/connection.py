"""Connection status of clients (SPEC 3.7).

- A check-in (heartbeat, restart or poll) makes a client online.
- A client that says it is in roaming mode is roaming only if it has the
  roaming privilege; without it, it is treated as online.
- A client whose IP is in the unreachable ranges (behind NAT) is unreachable:
  the server never pushes to it and hands its pending actions over when it polls.
- A client silent for longer than AGENT_OFFLINE_AFTER_SECONDS is offline; a
  beat task marks all of them in one UPDATE.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(ranges: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


@lru_cache(maxsize=16)
def _spans(ranges: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    """The networks as (IP version, first address, last address): every check-in compares its address."""
    return tuple((n.version, int(n.network_address), int(n.broadcast_address)) for n in _networks(ranges))


def _as_number(ip: str) -> tuple[int, int] | None:
    """(IP version, the address as a number), or None when ``ip`` is not an address."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")  # the common case, in C
    except OSError:
        pass
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return address.version, int(address)


def _in_any(ip: str, ranges: list[str]) -> bool:
    found = _as_number(ip)
    if found is None:
        return False
    version, number = found
    return any(v == version and first <= number <= last for v, first, last in _spans(tuple(ranges)))


def ip_unreachable(ip: str) -> bool:
    """The server cannot reach this address (it is in AGENT_UNREACHABLE_NETWORKS)."""
    return _in_any(ip, settings.AGENT_UNREACHABLE_NETWORKS)


def ip_allowed(ip: str) -> bool:
    """Notifications may only go to addresses inside AGENT_ALLOWED_NETWORKS."""
    return _in_any(ip, settings.AGENT_ALLOWED_NETWORKS)


def listener_address(*, source_address: str, reported_address: str | None) -> str:
    """The address notifications to a registering agent will go to.

    The registration's source address (console.client_address) by default: an
    agent cannot name another host for the server to post to. The address it
    reports is taken instead only when AGENT_TRUST_REPORTED_ADDRESS is on and
    the address lies inside AGENT_ALLOWED_NETWORKS; otherwise it is ignored.
    Every push checks the address again (``push_allowed``).
    """
    if reported_address and settings.AGENT_TRUST_REPORTED_ADDRESS and ip_allowed(reported_address):
        return reported_address
    return source_address


class PushTarget(Protocol):
    """What deciding a push needs: a Client, or a claimed delivery row carrying its client's fields."""

    @property
    def ip_address(self) -> str: ...
    @property
    def listener_port(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def revoked_at(self) -> dt.datetime | None: ...


def push_allowed(client: PushTarget) -> bool:
    """May the server POST a notification to this client's registered listener?

    The delivery engine calls this before every push: only the address and port
    the client registered, never an unreachable one, never outside the allowed
    networks.
    """
    return (
        client.revoked_at is None
        and client.status != ConnectionStatus.UNREACHABLE
        and not ip_unreachable(client.ip_address)
        and ip_allowed(client.ip_address)
        and 0 < client.listener_port < 65536
    )


def status_on_checkin(*, ip_address: str, reports_roaming: bool, roaming_privilege: bool) -> ConnectionStatus:
    if ip_unreachable(ip_address) or not ip_allowed(ip_address):
        return ConnectionStatus.UNREACHABLE
    if reports_roaming and roaming_privilege:
        return ConnectionStatus.ROAMING
    return ConnectionStatus.ONLINE


def clients_mark_offline(*, now: dt.datetime | None = None) -> int:
    """Mark every client silent past the offline timeout offline, in one query."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.AGENT_OFFLINE_AFTER_SECONDS)
    return (
        Client.objects.filter(last_contact_at__lt=cutoff)
        .exclude(status=ConnectionStatus.OFFLINE)
        .update(status=ConnectionStatus.OFFLINE)
    )
