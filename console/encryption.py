"""Secrets stored in the database (proxy passwords), encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package) under
a key of its own, FIELD_ENCRYPTION_KEY, never SECRET_KEY: rotating the session
key must not make stored passwords unreadable, and a database dump without the
key reveals nothing. Any text works as the key; it is stretched with SHA-256
into Fernet's 32 bytes. Outside DEBUG the key must come from the environment;
``check --deploy`` says so (console.E101).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


class EncryptionUnavailable(Exception):
    """No FIELD_ENCRYPTION_KEY is configured, so nothing secret can be stored."""


class UnreadableSecret(Exception):
    """A stored secret that the configured key cannot decrypt (the key changed)."""


def _fernet() -> Fernet:
    key = settings.FIELD_ENCRYPTION_KEY
    if not key:
        raise EncryptionUnavailable("FIELD_ENCRYPTION_KEY is not set, so the server cannot store passwords.")
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def encryption_available() -> bool:
    return bool(settings.FIELD_ENCRYPTION_KEY)


def encrypt(plain: str) -> str:
    """The stored form of ``plain``; "" stays "" (no secret)."""
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken:
        raise UnreadableSecret("A stored password cannot be decrypted with the current FIELD_ENCRYPTION_KEY.") from None


@register(Tags.security, deploy=True)
def check_encryption_key(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    if settings.FIELD_ENCRYPTION_KEY:
        return []
    return [
        Error(
            "FIELD_ENCRYPTION_KEY is not set.",
            hint="Set it to a long random value (e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'); "
            "proxy passwords are stored encrypted with it.",
            id="console.E101",
        )
    ]
