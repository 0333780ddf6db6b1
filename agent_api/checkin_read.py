"""What authenticating a check-in reads, in one statement: the client, the settings rows, whether work waits.

The fleet's heartbeats are this server's most frequent request, and a
heartbeat that reports what is on record and finds nothing waiting costs this
one statement and nothing else (agent_api/checkin.py). It looks the client up
by its token digest and reads with it:

- each settings row's version (Automatic Update: the schedule and the restart
  rule; proxy settings: the configuration version). The rows change when an
  administrator saves a screen and are read all the time, so each process
  keeps them, under the version they were read at, and reads a row again only
  when the version the statement read is another (``console.compiled.RowVersion``:
  even two changes in one transaction differ). A registration reads the rows
  the same way (``settings_current``);
- whether deliveries wait to be handed over (``engine.handover.handover_probe``,
  the engine's rule, asked without the time so the statement keeps one plan).

The statements are compiled once per connection and prepared on PostgreSQL
(console/compiled.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model, OuterRef, Subquery

from agents_app.models import Client
from console.compiled import CompiledQuery, RowVersion
from updates_app.engine.handover import handover_due, handover_probe
from updates_app.models import AutoUpdateSettings, ProxySettings

# The singleton settings rows, by the name their version is read under.
_SETTINGS_MODELS: dict[str, type[AutoUpdateSettings] | type[ProxySettings]] = {
    "settings_version": AutoUpdateSettings,
    "proxy_version": ProxySettings,
}


def _settings_versions() -> dict[str, Subquery]:
    """Each settings row's version, as subqueries to annotate."""
    return {
        alias: Subquery(model.objects.filter(pk=1).values(version=RowVersion(model)))
        for alias, model in _SETTINGS_MODELS.items()
    }


S = TypeVar("S", AutoUpdateSettings, ProxySettings)

# Per process and database: each settings row as last read, under the version it was read at.
_settings_held: dict[tuple[str, type[Model]], tuple[str, Model]] = {}


def _settings_row(model: type[S], version: str | None, db: str) -> S | None:
    """The settings row at ``version`` (None: no row yet), from this process's copy when it is current."""
    if version is None:
        return None
    held = _settings_held.get((db, model))
    if held is not None and held[0] == version:
        return cast(S, held[1])
    found = model.objects.using(db).filter(pk=1).annotate(version=RowVersion(model)).first()
    if found is None:  # removed since the statement ran
        return None
    # Held under the version read with it, which may be newer than the one asked for.
    _settings_held[(db, model)] = (cast(Any, found).version, found)
    return found


def _settings_at(versions: dict[str, Any], db: str) -> tuple[AutoUpdateSettings, ProxySettings]:
    """Both settings rows at the versions a statement read; a new server creates them on first use
    (until then the defaults apply)."""
    auto = _settings_row(AutoUpdateSettings, versions["settings_version"], db) or AutoUpdateSettings.load()
    proxy = _settings_row(ProxySettings, versions["proxy_version"], db) or ProxySettings(pk=1)
    return auto, proxy


_SETTINGS_VERSIONS = CompiledQuery(
    AutoUpdateSettings,
    build=lambda: AutoUpdateSettings.objects.filter(pk=1).only("pk").annotate(**_settings_versions()),
)


def settings_current() -> tuple[AutoUpdateSettings, ProxySettings]:
    """Both settings rows (Automatic Update, proxy), from this process's copies while current: one query."""
    found = _SETTINGS_VERSIONS.first_annotated()
    if found is None:  # a new server: the rows are created on first use
        return AutoUpdateSettings.load(), ProxySettings.load()
    row, versions = found
    return _settings_at(versions, row._state.db or DEFAULT_DB_ALIAS)


@dataclass(frozen=True)
class CheckinRead:
    """What a check-in needs, read in one statement: the client, the settings rows, whether work waits."""

    client: Client
    auto: AutoUpdateSettings
    proxy: ProxySettings
    handover_due: bool


_CLIENT_FOR_CHECKIN = CompiledQuery(
    Client,
    build=lambda digest: (
        Client.objects.filter(token_hash=digest)
        .annotate(**handover_probe(OuterRef("pk")), **_settings_versions())
        .order_by("pk")[:1]
    ),
)


def checkin_client(*, digest: str, now: dt.datetime) -> CheckinRead | None:
    """The client holding this token digest, the settings and whether it has work waiting at ``now``: one query."""
    found = _CLIENT_FOR_CHECKIN.first_annotated(digest=digest)
    if found is None:
        return None
    client, annotations = found
    auto, proxy = _settings_at(annotations, client._state.db or DEFAULT_DB_ALIAS)
    return CheckinRead(client=client, auto=auto, proxy=proxy, handover_due=handover_due(annotations, now))
