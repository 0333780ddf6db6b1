"""The client list's form: filter clients by status, domain, ids, late and search.

Overview cards, the audit log, Late clients and the Update Summary link to the
client list with a query string (``status``, ``domain`` (repeatable,
subdomains included), ``client`` (repeatable ids), ``late``, ``q``: hostname or
the start of an IP address). A bad value is an error on the page, never a
silently wider list. The rows and the CSV export are updates_app/client_list.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Q, QuerySet

from agents_app.models import Client, ConnectionStatus, Domain
from console import wording
from updates_app.late import late_clients

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
