"""Proxy for client component updates: saving the settings and the part of the configuration document they make.

Saving follows the Automatic Update screen's rules (updates_app/autoupdate.py):
a save names the revision it was edited from and is refused when someone saved
since; a save that changes something writes one audit entry, field by field,
with passwords masked; a save that changes nothing writes nothing.

Passwords: a blank password field keeps the stored one (the screen never shows
it back); "remove the password" clears it; a new value is stored encrypted
(console/encryption.py). They reach agents only in the authenticated
configuration answer, where the agent needs them to authenticate to the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console.audit import audit_record
from console.encryption import decrypt, encrypt
from updates_app.models import ProxySettings

AUDIT_ACTION = "proxy_settings.save"
AUDIT_TARGET = "Proxy settings"
MASK = "••••••"

PROXY_KINDS = ("internal", "external")
# Everything the screen edits, passwords excepted (they have their own rule).
PLAIN_FIELDS = (
    "auto_detect",
    "use_pac",
    "pac_url",
    "internal_enabled",
    "internal_host",
    "internal_port",
    "internal_username",
    "external_enabled",
    "external_host",
    "external_port",
    "external_username",
)
PASSWORD_FIELDS = ("internal_password", "external_password")

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

KEEP = object()  # a password field left blank: the stored password stays


class StaleProxySettings(Exception):
    def __init__(self, current: ProxySettings):
        super().__init__("The proxy settings changed since you opened them.")
        self.current = current


@dataclass
class ProxySaveResult:
    settings: ProxySettings
    changes: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _display(name: str, value: Any) -> str:
    if name in PASSWORD_FIELDS:
        return MASK if value else "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return "(none)" if value in (None, "") else str(value)


@transaction.atomic
def proxy_settings_save(*, actor: Any, revision: int, values: dict[str, Any]) -> ProxySaveResult:
    """Save validated values: PLAIN_FIELDS, and each password as a new text, "" (remove) or KEEP."""
    unknown = set(values) - set(PLAIN_FIELDS) - set(PASSWORD_FIELDS)
    if unknown:
        raise ValueError(f"Not proxy settings: {', '.join(sorted(unknown))}")
    ProxySettings.load()
    current = ProxySettings.objects.select_for_update().get(pk=1)
    if current.revision != revision:
        raise StaleProxySettings(current)

    updates: dict[str, Any] = {}
    changes: dict[str, dict[str, str]] = {}
    for name in PLAIN_FIELDS:
        new = values.get(name, getattr(current, name))
        old = getattr(current, name)
        if new != old:
            updates[name] = new
            changes[name] = {"label": AUDIT_LABELS[name], "old": _display(name, old), "new": _display(name, new)}
    for name in PASSWORD_FIELDS:
        new_plain = values.get(name, KEEP)
        if new_plain is KEEP:
            continue
        old_plain = decrypt(getattr(current, name))
        if new_plain != old_plain:
            updates[name] = encrypt(new_plain)
            # Masked both ways: the audit log says that it changed, never what it is.
            changes[name] = {
                "label": AUDIT_LABELS[name],
                "old": _display(name, old_plain),
                "new": "changed" if new_plain else "(removed)",
            }
    if not updates:
        return ProxySaveResult(settings=current)
    done = ProxySettings.objects.filter(pk=1, revision=revision).update(
        **updates,
        revision=revision + 1,
        updated_by=actor if getattr(actor, "is_authenticated", False) else None,
        updated_at=timezone.now(),
    )
    if done != 1:
        raise StaleProxySettings(ProxySettings.objects.get(pk=1))
    audit_record(actor=actor, action=AUDIT_ACTION, target=AUDIT_TARGET, changes=changes)
    return ProxySaveResult(settings=ProxySettings.objects.get(pk=1), changes=changes)


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
