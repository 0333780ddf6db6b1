"""Signing of server-to-agent notifications, in the Standard Webhooks manner.

Headers: ``webhook-id`` (a unique message id the agent uses to ignore
duplicates), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``).

The per-client signing key is derived from the client id under the server's
SECRET_KEY, so nothing secret is stored in clear: the server recomputes it, and
the agent receives it once at registration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from django.conf import settings

# Agents reject notifications older (or further in the future) than this.
TIMESTAMP_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A notification whose signature, timestamp or headers do not check out."""


def client_signing_key(client_guid: str, *, server_key: str | None = None) -> bytes:
    key = (server_key or settings.SECRET_KEY).encode()
    return hmac.new(key, f"notification-signing:{client_guid}".encode(), hashlib.sha256).digest()


def encode_key(key: bytes) -> str:
    """How the key travels to the agent (Standard Webhooks ``whsec_`` form)."""
    return "whsec_" + base64.b64encode(key).decode()


def decode_key(text: str) -> bytes:
    if not text.startswith("whsec_"):
        raise SignatureError("signing key must start with whsec_")
    return base64.b64decode(text.removeprefix("whsec_"))


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(key: bytes, message_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(key: bytes, headers: dict[str, str], body: bytes, *, now: float | None = None) -> str:
    """Check a notification; returns its message id or raises SignatureError."""
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
    expected = sign(key, message_id, timestamp, body)
    # The header may carry several space-separated signatures (key rotation).
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split()):
        raise SignatureError("signature does not match")
    return message_id
