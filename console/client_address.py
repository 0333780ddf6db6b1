"""The client address of a request, in one place.

Registration stores it as the agent's listener address and rate limits key on
it, so both must agree on one rule that a client cannot bend:

- Without a trusted proxy, the address is the TCP peer (``REMOTE_ADDR``).
  ``X-Forwarded-For`` is ignored: anybody can write that header.
- When the peer is a proxy listed in ``TRUSTED_PROXIES`` (CIDRs), the address
  is the right-most ``X-Forwarded-For`` entry that is not itself a trusted
  proxy. Entries to its left were written by the client and prove nothing;
  the right-most untrusted one was appended by our own proxy, which saw the
  connection. If every entry is a trusted proxy, the left-most one is taken;
  an entry that is not an IP address ends the walk at the last trusted hop.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(ranges: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


def _normalized(text: str) -> str | None:
    """The address in its canonical text form, or None when ``text`` is not an IP address.

    An IPv4-mapped IPv6 address (``::ffff:127.1.2.3``, what a server listening
    on a dual-stack socket sees) becomes the IPv4 address it stands for, so it
    matches IPv4 networks such as AGENT_ALLOWED_NETWORKS' 10.0.0.0/8.
    """
    text = text.strip()
    try:
        # Every request asks this: a dotted quad that inet_pton accepts (four decimal parts,
        # no leading zeros) is already the canonical form ipaddress would give.
        socket.inet_pton(socket.AF_INET, text)
        return text
    except OSError:
        pass
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _trusted(address: str) -> bool:
    if not settings.TRUSTED_PROXIES:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest) -> str:
    """Where ``request`` came from, by the rule above (an empty string if the server was not told)."""
    peer = _normalized(request.META.get("REMOTE_ADDR") or "")
    if peer is None:
        return ""
    if not _trusted(peer):
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR") or ""
    address = peer
    for entry in reversed(forwarded.split(",")):
        hop = _normalized(entry)
        if hop is None:
            break
        address = hop
        if not _trusted(hop):
            break
    return address
