"""The configuration document a client applies (SPEC 3.5).

Every console change that clients must apply (the Automatic Update settings,
the privileges dialog) changes this document; its content hash is the client's
configuration version, so "is there a newer configuration?" is a comparison of
hashes and a save that changes nothing produces no new version.

The document (schema 1)::

    {
      "schema": 1,
      "schedule": {                      # only what applies to the frequency
        "frequency": "minutes" | "hours" | "daily" | "weekly",
        "interval_minutes": int,         # minutes (ranges: updates_app/models/settings.py)
        "interval_hours": int,           # hours
        "config_once_per_day": bool,     # minutes, hours: components every interval, configuration once a day
        "start_time": "HH:MM",           # daily, weekly: wall-clock time in "time_zone"
        "time_zone": "Europe/Berlin",    # daily, weekly: the server's TIME_ZONE
        "period_hours": int,             # daily, weekly
        "weekday": 0..6                  # weekly: 0 = Monday
      },
      "event_triggered": {
        "notify_on_download": bool,      # the server notifies right after a download
        "include_roaming_offline": bool,
        "scan_after_update": bool        # roaming clients excluded
      },
      "update_on_restart": bool,         # update when restarting and connecting (not while roaming)
      "proxy": {                         # Administration > Proxy Settings
        "automatic": {"detect": bool, "script_url": "http://..." | null},
        "internal": {"host": str, "port": int, "username": str, "password": str} | null,
        "external": {"host": str, "port": int, "username": str, "password": str} | null
      },
      "activeupdate_url": "http://..." | null,  # the ActiveUpdate server, for clients allowed to use it
      "privileges": {"roaming": bool, "update_now": bool, "scheduled_update": bool, "configure_proxy": bool},
      "update_settings": {"download_from_activeupdate": bool, "scheduled_update": bool, "components_only": bool},
      "scheduled_update": {"enabled": bool, "user_may_disable": bool}
    }

The last part is the client's effective scheduled-update state as configured
(agents_app/scheduled_state.py); the client user's own on/off choice is
reported by the agent, not configured, so it is left out and flipping it does
not make a new version.

The document depends on the shared settings and on a client's dialog
settings only, so ``ConfigurationBuilder`` computes the shared part once and
each distinct combination of client settings (at most 128) once: building the
versions of a whole fleet costs a few dozen hashes, not one per client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from agents_app.models import Client, ClientSettings
from updates_app.models import FREQUENCY_FIELDS, AutoUpdateSettings, ProxySettings
from updates_app.proxy import activeupdate_url, proxy_document

CONFIG_SCHEMA_VERSION = 1

# The columns the document reads from a client: enough for .only()/.values().
CLIENT_CONFIGURATION_FIELDS = ClientSettings.SETTING_FIELDS


def schedule_document(auto: AutoUpdateSettings) -> dict[str, Any]:
    """The schedule part, identical for every client: only the fields that apply."""
    schedule: dict[str, Any] = {"frequency": auto.frequency}
    for name in FREQUENCY_FIELDS[auto.frequency]:
        value = getattr(auto, name)
        schedule[name] = value.strftime("%H:%M") if isinstance(value, dt.time) else value
    if "start_time" in schedule:
        # A wall-clock time: the agent needs the zone it is read in.
        schedule["time_zone"] = settings.TIME_ZONE
    return schedule


def shared_document(auto: AutoUpdateSettings, proxy: ProxySettings | None = None) -> dict[str, Any]:
    """The part of the document that is the same for every client."""
    return {
        "proxy": proxy_document(proxy or ProxySettings.load()),
        "activeupdate_url": activeupdate_url(),
        "schema": CONFIG_SCHEMA_VERSION,
        "schedule": schedule_document(auto),
        "event_triggered": {
            "notify_on_download": auto.notify_on_download,
            "include_roaming_offline": auto.include_roaming_offline,
            "scan_after_update": auto.scan_after_update,
        },
        "update_on_restart": auto.update_on_restart,
    }


def client_document(values: dict[str, bool]) -> dict[str, Any]:
    """The per-client part, from the dialog's settings (CLIENT_CONFIGURATION_FIELDS)."""
    privilege = values["scheduled_update_privilege"]
    return {
        "privileges": {
            "roaming": values["roaming_privilege"],
            "update_now": values["update_now_privilege"],
            "scheduled_update": privilege,
            "configure_proxy": values["proxy_privilege"],
        },
        "update_settings": {
            "download_from_activeupdate": values["download_from_activeupdate"],
            "scheduled_update": values["scheduled_update_setting"],
            "components_only": values["components_only"],
        },
        "scheduled_update": {
            "enabled": privilege,
            "user_may_disable": privilege and values["scheduled_update_setting"],
        },
    }


def client_configuration(
    client: Client, auto: AutoUpdateSettings | None = None, proxy: ProxySettings | None = None
) -> dict[str, Any]:
    """The whole document for one client (without its version); the settings rows read when not given."""
    auto = auto or AutoUpdateSettings.load()
    return {**shared_document(auto, proxy), **client_document(client.settings_dict())}


# Columns of the settings row that are bookkeeping, not configuration.
_NOT_CONFIGURATION = frozenset({"id", "revision", "updated_at", "updated_by"})
_VERSION_CACHE_SIZE = 4096
_version_cache: dict[tuple[Any, ...], str] = {}


def _shared_key(auto: AutoUpdateSettings) -> tuple[Any, ...]:
    """Everything the shared part of the document can depend on.

    Every configuration column of the settings row (not only those the
    document reads today, so a new field cannot be forgotten here), the
    server's TIME_ZONE and the schema version. Keyed by content rather than by
    ``revision``: a row written without bumping the revision still gets the
    right version.
    """
    values = tuple(
        getattr(auto, field.attname) for field in auto._meta.concrete_fields if field.name not in _NOT_CONFIGURATION
    )
    return (CONFIG_SCHEMA_VERSION, settings.TIME_ZONE, *values)


_PROXY_COLUMNS = [f.attname for f in ProxySettings._meta.concrete_fields if f.name not in _NOT_CONFIGURATION]


def _proxy_key(proxy: ProxySettings | None) -> tuple[Any, ...]:
    """The proxy settings' content and the ActiveUpdate address: the rest of the shared part.

    ``proxy`` is the row when the caller read it already (a check-in reads it
    with the client); else one primary-key look-up here.
    """
    if proxy is None:
        # No row yet: the document is built from the defaults.
        proxy = ProxySettings.objects.filter(pk=1).first() or ProxySettings(pk=1)
    return (settings.ACTIVEUPDATE_URL, *(getattr(proxy, name) for name in _PROXY_COLUMNS))


def configuration_version(client: Client, auto: AutoUpdateSettings, proxy: ProxySettings | None = None) -> str:
    """The client's configuration version without building and hashing its document each time.

    The version depends on the shared settings (Automatic Update, proxy) and
    the client's dialog settings only, so it is cached per process under those
    inputs; a check-in costs a dictionary look-up instead of a JSON dump and a
    SHA-256 (and, when the caller has not read the proxy row, its primary-key read).
    """
    key = (
        _shared_key(auto),
        _proxy_key(proxy),
        tuple(bool(getattr(client, name)) for name in CLIENT_CONFIGURATION_FIELDS),
    )
    version = _version_cache.get(key)
    if version is None:
        version = configuration_hash(client_configuration(client, auto, proxy))
        if len(_version_cache) >= _VERSION_CACHE_SIZE:
            _version_cache.clear()
        _version_cache[key] = version
    return version


def configuration_hash(document: dict[str, Any]) -> str:
    """The configuration version: SHA-256 of the canonical JSON of the document."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


class ConfigurationBuilder:
    """Documents and versions for many clients, reading the settings once.

    Build one per request or task: it caches by the settings it read at
    creation, so it must not outlive a change of the Automatic Update settings.
    """

    def __init__(self, auto: AutoUpdateSettings | None = None) -> None:
        self._shared = shared_document(auto or AutoUpdateSettings.load())
        self._cache: dict[tuple[bool, ...], tuple[dict[str, Any], str]] = {}

    def for_values(self, values: dict[str, bool]) -> tuple[dict[str, Any], str]:
        key = tuple(bool(values[name]) for name in CLIENT_CONFIGURATION_FIELDS)
        cached = self._cache.get(key)
        if cached is None:
            document = {**self._shared, **client_document(dict(zip(CLIENT_CONFIGURATION_FIELDS, key, strict=True)))}
            cached = (document, configuration_hash(document))
            self._cache[key] = cached
        # A copy each time: callers may add to their document without touching the cache.
        return json.loads(json.dumps(cached[0])), cached[1]

    def for_client(self, client: Client) -> tuple[dict[str, Any], str]:
        """(document, version) for one client."""
        return self.for_values(client.settings_dict())

    def version_for(self, client: Client) -> str:
        return self.for_client(client)[1]

    def versions(self, clients: Iterable[Client] | None = None) -> dict[int, str]:
        """{client id: version}; by default for every client, in one query over the needed columns."""
        if clients is None:
            rows = Client.objects.values("pk", *CLIENT_CONFIGURATION_FIELDS).iterator(chunk_size=2000)
            return {row["pk"]: self.version_of_values(row) for row in rows}
        return {client.pk: self.version_of_values(client.settings_dict()) for client in clients}

    def version_of_values(self, values: dict[str, bool]) -> str:
        """The version for one set of the dialog settings (a row of .values())."""
        key = tuple(bool(values[name]) for name in CLIENT_CONFIGURATION_FIELDS)
        cached = self._cache.get(key)
        return cached[1] if cached is not None else self.for_values(values)[1]


def client_configuration_and_version(
    client: Client, *, auto: AutoUpdateSettings | None = None
) -> tuple[dict[str, Any], str]:
    """What the agent API serves: the client's document and its version (content hash)."""
    return ConfigurationBuilder(auto).for_client(client)


def configuration_versions(clients: Iterable[Client] | None = None) -> dict[int, str]:
    """{client id: current configuration version} for the given clients (default: all)."""
    return ConfigurationBuilder().versions(clients)


def clients_with_new_configuration() -> list[int]:
    """Ids of clients whose applied version (``Client.config_version``) differs from the current one."""
    builder = ConfigurationBuilder()
    rows = Client.objects.values("pk", "config_version", *CLIENT_CONFIGURATION_FIELDS).iterator(chunk_size=2000)
    return [row["pk"] for row in rows if row["config_version"] != builder.version_of_values(row)]
