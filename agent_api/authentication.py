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
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from agent_api.errors import RegisterAgain
from agents_app.models import Client
from console.client_address import client_ip
from console.compiled import CompiledQuery
from console.ratelimit import Budget, admit
from updates_app.engine.handover import CheckinRead, checkin_client


def token_generate() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Every agent request starts with this look-up: compiled once, one query.
_CLIENT_BY_TOKEN_HASH = CompiledQuery(
    Client, build=lambda digest: Client.objects.filter(token_hash=digest).order_by("pk")[:1]
)


@dataclass
class AgentPrincipal:
    """What ``request.user`` is on the agent API: the authenticated client."""

    client: Client
    is_authenticated: bool = True
    # Check-ins only (a view with ``reads_checkin_probe``): the settings rows and "work waiting?" read with the client.
    checkin_probe: CheckinRead | None = None


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


def agent_principal(request, token: str, *, with_checkin_probe: bool) -> AgentPrincipal:
    """The client holding ``token``, its request counted against the client's budget first.

    429 for an address over its failed authentications or a client over its
    rate (before any query); RegisterAgain, counted as a failed
    authentication, for a token that names no client or a revoked one.
    ``request`` is Django's or DRF's (only its ``META`` is read).
    """
    digest = token_digest(token)
    _admit(request, budget=Budget("agent", settings.AGENT_RATE_LIMIT), key=f"token-{digest}")
    principal = _principal(digest, with_checkin_probe=with_checkin_probe)
    if principal is None:
        auth_failure_record(request)
        raise RegisterAgain()
    client = principal.client
    if not hmac.compare_digest(client.token_hash, digest) or client.revoked_at:
        auth_failure_record(request)
        raise RegisterAgain()
    return principal


def _principal(digest: str, *, with_checkin_probe: bool) -> AgentPrincipal | None:
    if not with_checkin_probe:
        client = _CLIENT_BY_TOKEN_HASH.first(digest=digest)
        return AgentPrincipal(client=client) if client is not None else None
    # A check-in: the same statement reads the settings and probes for waiting work.
    found = checkin_client(digest=digest, now=timezone.now())
    if found is None:
        return None
    return AgentPrincipal(client=found.client, checkin_probe=found)


class AgentTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            auth_failures_refuse_if_over(request)
            auth_failure_record(request)
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <token>'.")
        view = (request.parser_context or {}).get("view")
        with_checkin_probe = getattr(view, "reads_checkin_probe", False)
        return agent_principal(request, token, with_checkin_probe=with_checkin_probe), token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated calls.
        return 'Bearer realm="agent"'


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
