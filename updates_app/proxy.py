"""Proxy for client component updates: the save rules of the settings and the part of the configuration document they make.

Saving follows every settings screen's rule (updates_app/settings_save.py): a
save names the revision it was edited from and is refused when someone saved
since; a save that changes something writes one audit entry, field by field,
with passwords masked; a save that changes nothing writes nothing.

Passwords: a blank password field keeps the stored one (the screen never shows
it back, and the form leaves it out of the values); "remove the password"
clears it; a new value is stored encrypted (console/encryption.py). They reach
agents only in the authenticated configuration answer, where the agent needs
them to authenticate to the proxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from console.encryption import decrypt
from updates_app.models import ProxySettings
from updates_app.settings_save import SaveResult, SettingsRules

PROXY_KINDS = ("internal", "external")

# Every editable field with its name in the audit log, passwords included.
AUDIT_LABELS = {
    "auto_detect": "Automatically detect settings",
    "use_pac": "Use automatic configuration script",
    "pac_url": "Automatic configuration script address",
    "internal_enabled": "Internal proxy: use a proxy when clients connect to the server",
    "internal_host": "Internal proxy: proxy server",
    "internal_port": "Internal proxy: port",
    "internal_username": "Internal proxy: user name",
    "internal_password": "Internal proxy: password",
    "external_enabled": "External proxy: use a proxy for the ActiveUpdate server",
    "external_host": "External proxy: proxy server",
    "external_port": "External proxy: port",
    "external_username": "External proxy: user name",
    "external_password": "External proxy: password",
}
PASSWORD_FIELDS = frozenset(f"{kind}_password" for kind in PROXY_KINDS)
# Everything the screen edits as it is stored (the passwords have their own rule).
PLAIN_FIELDS = tuple(name for name in AUDIT_LABELS if name not in PASSWORD_FIELDS)

PROXY_SETTINGS = SettingsRules(
    model=ProxySettings, action="proxy_settings.save", labels=AUDIT_LABELS, secrets=PASSWORD_FIELDS
)


def proxy_settings_save(*, actor: Any, revision: int, values: Mapping[str, Any]) -> SaveResult[ProxySettings]:
    """Save validated values: PLAIN_FIELDS, and each password as a new text or "" (remove); left out, it stays."""
    return PROXY_SETTINGS.save(actor=actor, revision=revision, values=values)


def _proxy_server(proxy: ProxySettings, kind: str) -> dict[str, Any] | None:
    if not getattr(proxy, f"{kind}_enabled"):
        return None
    return {
        "host": getattr(proxy, f"{kind}_host"),
        "port": getattr(proxy, f"{kind}_port"),
        "username": getattr(proxy, f"{kind}_username"),
        "password": decrypt(getattr(proxy, f"{kind}_password")),
    }


def proxy_document(proxy: ProxySettings) -> dict[str, Any]:
    """The proxy part of the configuration document (the same for every client)."""
    return {
        "automatic": {"detect": proxy.auto_detect, "script_url": proxy.pac_url if proxy.use_pac else None},
        "internal": _proxy_server(proxy, "internal"),
        "external": _proxy_server(proxy, "external"),
    }


def activeupdate_url() -> str | None:
    """Where clients that may download from the ActiveUpdate server find it (the vendor feed)."""
    return settings.ACTIVEUPDATE_URL or None
