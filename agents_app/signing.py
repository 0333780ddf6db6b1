"""Signing of server-to-agent notifications, in the Standard Webhooks manner.

Headers: ``webhook-id`` (a unique message id the agent uses to ignore
duplicates), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, several of them
separated by spaces during a key rotation).

The per-client signing key is derived from the client id under
``AGENT_SIGNING_SECRET``, a secret of its own (not SECRET_KEY: rotating the
session secret must not break notifications, and whoever learns it must not
be able to forge them), so nothing secret is stored per client: the server
recomputes it.

Rotation: set a new ``AGENT_SIGNING_SECRET`` and move the old one to
``AGENT_SIGNING_SECRET_FALLBACKS``. While a fallback is configured every
notification carries one signature per key (current first), so agents holding
either key accept it. Agents learn their new key at check-in: they report the
id of the key they hold (``signing_key_id``, see ``key_id``) and the answer
carries the current key whenever that id is not the current one's. Remove the
fallback once every agent has checked in (a heartbeat is a minute).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

from django.conf import settings

# Agents reject notifications older (or further in the future) than this.
TIMESTAMP_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A notification whose signature, timestamp or headers do not check out."""


def client_signing_key(client_guid: str, *, secret: str | None = None) -> bytes:
    """The client's current key (or the one ``secret`` derives)."""
    key = (secret if secret is not None else settings.AGENT_SIGNING_SECRET).encode()
    return hmac.new(key, f"notification-signing:{client_guid}".encode(), hashlib.sha256).digest()


def client_signing_keys(client_guid: str) -> list[bytes]:
    """Every key a notification to this client is signed with: the current one first, then the fallbacks'."""
    keys: list[bytes] = []
    for secret in [settings.AGENT_SIGNING_SECRET, *settings.AGENT_SIGNING_SECRET_FALLBACKS]:
        key = client_signing_key(client_guid, secret=secret)
        if key not in keys:
            keys.append(key)
    return keys


def key_id(key: bytes) -> str:
    """Names a key without giving it away: ``sk_`` and the first 16 hex digits of SHA-256 of its raw bytes."""
    return "sk_" + hashlib.sha256(key).hexdigest()[:16]


def encode_key(key: bytes) -> str:
    """How the key travels to the agent (Standard Webhooks ``whsec_`` form)."""
    return "whsec_" + base64.b64encode(key).decode()


def signing_key_for(client_guid: str, *, held_key_id: str) -> str | None:
    """The client's current key as it travels (``encode_key``), or None when ``held_key_id`` names it.

    How an agent learns its key: at registration (it holds none) and at a
    check-in after a rotation (it names the key it holds, see the module's
    docstring).
    """
    key = client_signing_key(client_guid)
    return None if held_key_id == key_id(key) else encode_key(key)


def decode_key(text: str) -> bytes:
    if not text.startswith("whsec_"):
        raise SignatureError("signing key must start with whsec_")
    return base64.b64decode(text.removeprefix("whsec_"))


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _keys(keys: bytes | Sequence[bytes]) -> list[bytes]:
    return [keys] if isinstance(keys, bytes) else list(keys)


def signature_headers(
    keys: bytes | Sequence[bytes], message_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers, with one signature per key (space-separated)."""
    timestamp = int(now if now is not None else time.time())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, message_id, timestamp, body) for key in _keys(keys)),
        "content-type": "application/json",
    }


def verify(keys: bytes | Sequence[bytes], headers: dict[str, str], body: bytes, *, now: float | None = None) -> str:
    """Check a notification against any of the keys held; returns its message id or raises SignatureError."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and timestamp_text and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a whole number") from None
    current = now if now is not None else time.time()
    if abs(current - timestamp) > TIMESTAMP_TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is too old or too far in the future")
    # The header may carry several space-separated signatures (key rotation):
    # one that any held key verifies is enough.
    candidates = signatures.split()
    for key in _keys(keys):
        expected = sign(key, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return message_id
    raise SignatureError("signature does not match")
    return message_id
