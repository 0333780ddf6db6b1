"""The client list (every number on the console leads here) and the page for one client.

Both show clients, so both need "Can view client" (or "Can change client"),
like the client tree; staff without it get 403.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from agents_app.models import Client, ClientSettings
from console.exports import csv_download
from console.permissions import VIEW_CLIENTS, permission_required_or_403
from updates_app.client_list import ROWS_PER_PAGE, client_csv, client_rows
from updates_app.compliance import latest_version_numbers
from updates_app.configuration import ConfigurationBuilder
from updates_app.forms.clients import ClientListForm
from updates_app.models import AutoUpdateSettings, Component
from updates_app.summary import client_deliveries
from updates_app.version_labels import reported_number, version_label

HISTORY_ON_CLIENT_PAGE = 10


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def client_list(request: HttpRequest) -> HttpResponseBase:
    """Clients filtered by status, domain, ids, late and search; ?export=csv streams the whole list."""
    form = ClientListForm(request.GET)
    context: dict = {"form": form, "nav": "clients", "breadcrumb": ["Networked Computers", "Clients"]}
    if not form.is_valid():
        return render(request, "updates_app/client_list.html", context, status=400)
    clients = form.clients()
    if request.GET.get("export") == "csv":
        header, rows = client_csv(clients)
        return csv_download(filename="clients", header=header, rows=rows)
    page = Paginator(client_rows(clients), ROWS_PER_PAGE).get_page(request.GET.get("page"))
    context.update(
        page=page,
        heading=form.describe(),
        query_string=form.query_string(),
        csv_query=form.query_string(export="csv"),
        update_now_query=form.query_string() if form.cleaned_data.get("client") else "",
        can_notify=request.user.has_perm("updates_app.add_updaterun"),
    )
    return render(request, "updates_app/client_list.html", context)


# The dialog's Other Settings tab; every other setting is on the Privileges tab.
OTHER_SETTINGS_TAB = ("download_from_activeupdate", "scheduled_update_setting", "components_only")


def _setting_rows(client: Client) -> list[tuple[str, str, bool]]:
    """(tab, label, on) for every setting of the dialog, the Privileges tab first, as the dialog lists them."""
    rows = []
    for name in ClientSettings.SETTING_FIELDS:
        label = str(ClientSettings._meta.get_field(name).verbose_name)  # type: ignore[union-attr]
        tab = "Other Settings" if name in OTHER_SETTINGS_TAB else "Privileges"
        rows.append((tab, label, getattr(client, name)))
    return sorted(rows, key=lambda row: row[0] != "Privileges")


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def client_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One client: address, status, versions against the server's, settings, configuration, history."""
    client = get_object_or_404(Client.objects.select_related("domain"), pk=pk)
    latest = latest_version_numbers()
    reported = client.component_versions if isinstance(client.component_versions, dict) else {}
    components = []
    for component in Component.objects.order_by("name"):
        server = latest.get(component.slug)
        have = reported_number(reported.get(component.slug))
        if component.slug not in reported:
            state = "not reported"
        elif have is None:
            state = "unreadable"
        elif server is None:
            state = "no version on the server"
        elif have < server:
            state = "outdated"
        elif have > server:
            state = "ahead of the server"
        else:
            state = "up to date"
        components.append(
            {
                "name": component.name,
                "server": version_label(server) if server is not None else "",
                "client": reported.get(component.slug, ""),
                "state": state,
            }
        )
    current_config = ConfigurationBuilder(AutoUpdateSettings.load()).version_for(client)
    history = list(client_deliveries(client)[: HISTORY_ON_CLIENT_PAGE + 1])
    context = {
        "client_obj": client,
        "components": components,
        "settings_rows": _setting_rows(client),
        "scheduled_state": client.scheduled_state,
        "current_config": current_config,
        "config_current": client.config_version == current_config,
        "history": history[:HISTORY_ON_CLIENT_PAGE],
        "more_history": len(history) > HISTORY_ON_CLIENT_PAGE,
        "can_notify": request.user.has_perm("updates_app.add_updaterun"),
        "nav": "clients",
        "breadcrumb": ["Networked Computers", "Clients", client.hostname],
    }
    return render(request, "updates_app/client_detail.html", context)
