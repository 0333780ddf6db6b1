"""The client lists behind the compliance counts (Update Summary, Manual Update).

/updates/compliance/clients/?component=<slug>&state=<up_to_date|outdated|inconsistent|unknown>,
or ?state=outdated alone for "clients with outdated components". Read-only,
paginated, and guarded by "Can view client" like every page that shows clients
(403 without it). Without any filter it lists the clients with outdated components.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from console.permissions import VIEW_CLIENTS, permission_required_or_403
from updates_app.compliance import OUTDATED, STATE_LABELS, STATES, clients_in_state, outdated_clients
from updates_app.models import ClientComponent, Component

CLIENTS_PER_PAGE = 100
CRUMBS = ["Updates", "Compliance", "Clients"]


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def compliance_clients(request: HttpRequest) -> HttpResponse:
    component = request.GET.get("component", "").strip()
    # Without a filter: the clients with outdated components, the list an administrator acts on.
    state = request.GET.get("state", "") or (OUTDATED if not component else "")
    error = ""
    if state not in STATES:
        error = f"Choose a state: {', '.join(STATES)}."
    elif not component and state != OUTDATED:
        error = "Choose a component (only “outdated” may stand alone: clients with outdated components)."
    elif component and not (
        Component.objects.filter(slug=component).exists()
        or ClientComponent.objects.filter(component=component).exists()
    ):
        error = f"No component {component!r} is held by the server or reported by a client."
    if error:
        context = {"error": error, "nav": "updates", "breadcrumb": CRUMBS}
        return render(request, "updates_app/compliance_clients.html", context, status=400)
    clients = clients_in_state(component=component, state=state) if component else outdated_clients()
    clients = clients.select_related("domain").only(
        "hostname", "ip_address", "status", "component_versions", "last_contact_at", "domain__name"
    )
    page = Paginator(clients.order_by("hostname", "pk"), CLIENTS_PER_PAGE).get_page(request.GET.get("page"))
    name = Component.objects.filter(slug=component).values_list("name", flat=True).first() or component
    context = {
        "page": page,
        "component": component,
        "component_name": name,
        "state": state,
        "state_label": STATE_LABELS[state],
        "query_string": urlencode({k: v for k, v in {"component": component, "state": state}.items() if v}),
        "nav": "updates",
        "breadcrumb": ["Updates", "Compliance", f"{name or 'Any component'}: {STATE_LABELS[state]}"],
    }
    return render(request, "updates_app/compliance_clients.html", context)
