"""The address a request came from, as far as the configured proxies can vouch for it.

``REMOTE_ADDR`` is the peer of the TCP connection. Only when that peer is one
of ``TRUSTED_PROXIES`` does ``X-Forwarded-For`` count, and then only its
right-most entry that is not itself a trusted proxy: everything left of it was
written by the client and may be anything (rotating it must not make a new
client). Rate limits, failed-authentication counts and login throttling key
on this address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    if not networks or not _is_trusted(remote, networks):
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for candidate in reversed(forwarded):
        if not _is_trusted(candidate, networks):
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                # A trusted proxy wrote something that is no address: key on the proxy.
                return remote
    return forwarded[0] if forwarded else remote
