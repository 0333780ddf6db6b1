"""Bearer-token authentication of agents.

The server stores only sha256(token). The lookup is by that digest (so the
token itself is never compared byte by byte against a stored secret) and the
match is confirmed with ``hmac.compare_digest``.

Failed authentications (a wrong or unknown token, a wrong enrollment secret)
are counted per client address; past ``AGENT_AUTH_FAILURE_RATE_LIMIT`` that
address is answered 429 before any token is looked at, so guessing cannot go
on at full speed and a refusal says nothing about the token. Budgets live in
the shared cache (console/ratelimit.py), keyed on the address the trusted
proxies vouch for (console/client_address.py).

Each request is also counted against its own budget (``AGENT_RATE_LIMIT`` per
token, which is per client; registrations: ``AGENT_REGISTRATION_RATE_LIMIT``
per address). That count and the failed-authentication check come before
the token is looked up, so a client over its rate costs no database query
either. Both are ``ratelimit.admit``: a process counts a client's first tenth
of its budget itself and asks about an address only once it has failed
there, so a fleet's heartbeats cost the shared cache nothing, and an address
refused elsewhere gets at most one more attempt per process and window; when
the cache is asked, it is one round trip.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from agent_api.checkin_read import CheckinRead, checkin_client
from agent_api.errors import RegisterAgain
from agents_app.models import Client
from console.client_address import client_ip
from console.compiled import CompiledQuery
from console.ratelimit import Budget, admit

# What a 401 names in WWW-Authenticate (and what makes DRF answer 401, not 403).
AUTHENTICATE_HEADER = 'Bearer realm="agent"'


def token_generate() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Every agent request but the check-in starts with this look-up: compiled once, one query.
_CLIENT_BY_TOKEN_HASH = CompiledQuery(
    Client, build=lambda digest: Client.objects.filter(token_hash=digest).order_by("pk")[:1]
)


@dataclass
class AgentPrincipal:
    """What ``request.user`` is on the agent API's DRF views: the authenticated client."""

    client: Client
    is_authenticated: bool = True


def _failures() -> Budget:
    return Budget("agent-auth-failures", settings.AGENT_AUTH_FAILURE_RATE_LIMIT)


def auth_failures_refuse_if_over(request) -> None:
    """429 for an address that failed to authenticate too often in this window."""
    wait = _failures().exhausted(client_ip(request))
    if wait is not None:
        raise exceptions.Throttled(wait, detail="Too many failed authentications from this address; try again later.")


def auth_failure_record(request) -> None:
    _failures().hit(client_ip(request))


def _admit(request, *, budget: Budget, key: str) -> None:
    """429 for an address over its failed authentications, or a request over ``budget``: one round trip."""
    refused, throttled = admit((_failures(), client_ip(request)), (budget, key))
    if refused is not None:
        raise exceptions.Throttled(
            refused, detail="Too many failed authentications from this address; try again later."
        )
    if throttled is not None:
        raise exceptions.Throttled(throttled)


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when the header is not one."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        return None
    return token


def request_token(request) -> str | None:
    """The request's bearer token; None without an ``Authorization`` header.

    A header that is not a bearer token is a failed authentication: 429 for an
    address over its failures, else counted and 401. ``request`` is Django's
    or DRF's (only its ``META`` is read).
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    token = bearer_token(header)
    if token is None:
        auth_failures_refuse_if_over(request)
        auth_failure_record(request)
        raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
    return token


class _FindsClient(Protocol):
    @property
    def client(self) -> Client: ...


R = TypeVar("R", bound=_FindsClient)


def _authenticated(request, token: str, read: Callable[[str], R | None]) -> R:
    """What ``read`` finds for the client holding ``token``, its request counted against the client's budget first.

    429 for an address over its failed authentications or a client over its
    rate (before any query); RegisterAgain, counted as a failed
    authentication, for a token that names no client or a revoked one.
    """
    digest = token_digest(token)
    _admit(request, budget=Budget("agent", settings.AGENT_RATE_LIMIT), key=f"token-{digest}")
    found = read(digest)
    if found is None or not hmac.compare_digest(found.client.token_hash, digest) or found.client.revoked_at:
        auth_failure_record(request)
        raise RegisterAgain()
    return found


def _principal(digest: str) -> AgentPrincipal | None:
    client = _CLIENT_BY_TOKEN_HASH.first(digest=digest)
    return AgentPrincipal(client=client) if client is not None else None


def agent_principal(request, token: str) -> AgentPrincipal:
    """The client holding ``token`` (the DRF views' authentication)."""
    return _authenticated(request, token, _principal)


def checkin_authenticated(request) -> CheckinRead:
    """The client holding the request's token, read with what its check-in needs (``checkin_read``): one query.

    401 without a token, and as ``request_token`` and ``_authenticated`` refuse.
    """
    token = request_token(request)
    if token is None:
        raise exceptions.NotAuthenticated()
    return _authenticated(request, token, lambda digest: checkin_client(digest=digest, now=timezone.now()))


class AgentTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = request_token(request)
        if token is None:
            return None
        return agent_principal(request, token), token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated calls.
        return AUTHENTICATE_HEADER


class IsAgent(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, AgentPrincipal)


class AgentRateThrottle(throttling.BaseThrottle):
    """Registrations per client address, with the address's failed authentications.

    An authenticated request was counted against its client's budget when its
    token was read (``AgentTokenAuthentication``). Registrations get their own,
    larger budget: a whole office behind one NAT address registers from that
    address.
    """

    def allow_request(self, request, view) -> bool:
        if not isinstance(request.user, AgentPrincipal):
            address = client_ip(request)
            _admit(
                request, budget=Budget("agent-register", settings.AGENT_REGISTRATION_RATE_LIMIT), key=f"addr-{address}"
            )
        return True
