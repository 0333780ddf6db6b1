"""The client list behind every number: filter, page and export clients.

Overview cards, the audit log, Late clients and the Update Summary link here
with a query string (``status``, ``domain`` (repeatable, subdomains included),
``client`` (repeatable ids), ``late``, ``q``: hostname or the start of an IP
address). A bad value is an error on the page, never a silently wider list.
The page costs the same few queries for 20 or 200,000 clients; the CSV export
streams the whole filtered list from one server-side cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Q, QuerySet

from agents_app.models import Client, ConnectionStatus, Domain
from agents_app.scheduled_state import ScheduledState
from console import wording
from updates_app.late import late_clients
from updates_app.models import Component

ROWS_PER_PAGE = 100
MAX_IDS = 1000


class ClientIdsField(forms.TypedMultipleChoiceField):
    """Client ids from the query string: whole numbers of clients that exist (checked in one query)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(coerce=int, required=False, **kwargs)

    def valid_value(self, value: Any) -> bool:
        return True  # checked against the database in ClientListForm.clean_client

    def to_python(self, value: Any) -> list[str]:
        values = super().to_python(value)
        if len(values) > MAX_IDS:
            raise forms.ValidationError(f"At most {MAX_IDS:,} clients can be listed by id.")
        for v in values:
            if not str(v).isdigit():
                raise forms.ValidationError(f"{str(v)[:20]!r} is not a client id.")
        return values


class ClientListForm(forms.Form):
    q = forms.CharField(label="Hostname or IP address", required=False, max_length=100, strip=True)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *ConnectionStatus.choices])
    domain: forms.ModelMultipleChoiceField = forms.ModelMultipleChoiceField(
        label="Domain",
        required=False,
        queryset=Domain.objects.all(),
        error_messages={
            "invalid_choice": "No domain with id %(value)s: it may have been removed.",
            "invalid_pk_value": "“%(pk)s” is not a domain id.",
        },
    )
    client = ClientIdsField(label="Clients")
    late = forms.BooleanField(label="Late for their scheduled update", required=False)

    def clean_client(self) -> list[int]:
        ids = sorted(set(self.cleaned_data.get("client") or []))
        if ids:
            found = set(Client.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = [i for i in ids if i not in found]
            if missing:
                raise forms.ValidationError(
                    f"No client with id {', '.join(map(str, missing[:10]))}: it may have been removed."
                )
        return ids

    def clients(self) -> QuerySet[Client]:
        """The filtered clients (call after is_valid()), by hostname."""
        data = self.cleaned_data
        clients = Client.objects.all()
        if data.get("q"):
            query = data["q"]
            clients = clients.filter(Q(hostname__icontains=query) | Q(ip_address__startswith=query))
        if data.get("status"):
            clients = clients.filter(status=data["status"])
        if data.get("domain"):
            clients = clients.in_domains(data["domain"])
        if data.get("client"):
            clients = clients.filter(pk__in=data["client"])
        if data.get("late"):
            clients = clients.filter(pk__in=late_clients().values("pk"))
        return clients.order_by("hostname", "pk")

    def describe(self) -> str:
        """The filter in words, for the heading: "Online clients in Headquarters matching “ws”"."""
        data = self.cleaned_data
        words = "clients"
        if data.get("status"):
            words = f"{ConnectionStatus(data['status']).label} clients"
        if data.get("late"):
            words = f"late {words}" if words == "clients" else f"{words}, late"
        if data.get("client"):
            words += f" (the {wording.plural(len(data['client']), 'client')} chosen)"
        if data.get("domain"):
            names = sorted(d.name for d in data["domain"])
            words += f" in {', '.join(names[:3])}" + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        if data.get("q"):
            words += f" matching “{data['q']}”"
        return words[:1].upper() + words[1:]

    def query_string(self, **extra: str) -> str:
        """The filter as a query string (for paging and the CSV link)."""
        data = self.cleaned_data
        pairs: list[tuple[str, Any]] = []
        for name in ("q", "status"):
            if data.get(name):
                pairs.append((name, data[name]))
        pairs += [("domain", d.pk) for d in data.get("domain") or []]
        pairs += [("client", c) for c in data.get("client") or []]
        if data.get("late"):
            pairs.append(("late", "1"))
        pairs += list(extra.items())
        return urlencode(pairs)


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
