"""The client list behind every number: its rows and its CSV export.

The filter is its form (updates_app/forms/clients.py). The page costs the same
few queries for 20 or 200,000 clients; the CSV export streams the whole
filtered list from one server-side cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from agents_app.models import Client, ConnectionStatus
from agents_app.scheduled_state import ScheduledState
from updates_app.forms.clients import ClientListForm as ClientListForm  # bench/export_bench.py imports it from here
from updates_app.models import Component

ROWS_PER_PAGE = 100


def client_rows(clients: QuerySet[Client]) -> QuerySet[Client]:
    """Only what a row shows: no query per row."""
    return clients.select_related("domain").only(
        "hostname",
        "ip_address",
        "listener_port",
        "status",
        "last_contact_at",
        "component_versions",
        "scheduled_update_privilege",
        "scheduled_update_setting",
        "user_disabled_scheduled_update",
        "revoked_at",
        "domain__name",
    )


CSV_FIELDS = (
    "pk",
    "hostname",
    "domain__name",
    "ip_address",
    "listener_port",
    "status",
    "last_contact_at",
    "component_versions",
    "scheduled_state_code",
    "config_version",
    "revoked_at",
)


def client_csv(clients: QuerySet[Client]) -> tuple[list[str], Iterator[list[Any]]]:
    """(header, rows) of the client list's CSV: one column per component, named as the server names it."""
    components = list(Component.objects.order_by("name").values_list("slug", "name"))
    header = [
        "Client id",
        "Hostname",
        "Domain",
        "IP address",
        "Listener port",
        "Status",
        "Last contact",
        *(f"{name} version" for _, name in components),
        "Scheduled update",
        "Configuration version",
        "Revoked",
    ]
    statuses = dict(ConnectionStatus.choices)
    states = dict(ScheduledState.choices)
    values = clients.with_scheduled_state().values_list(*CSV_FIELDS)  # type: ignore[attr-defined]

    def rows() -> Iterator[list[Any]]:
        for pk, host, domain, ip, port, status, contact, versions, state, config, revoked in values.iterator(
            chunk_size=2000
        ):
            reported = versions if isinstance(versions, dict) else {}
            yield [
                pk,
                host,
                domain,
                ip,
                port,
                statuses.get(status, status),
                contact,
                *(reported.get(slug, "") for slug, _ in components),
                states.get(state, state),
                config,
                revoked,
            ]

    return header, rows()
