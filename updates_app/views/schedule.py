"""Schedule-based update pages: the load preview fragment and the late clients list (read-only)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from agents_app.models import ConnectionStatus
from console.permissions import VIEW_CLIENTS, permission_required_or_403
from updates_app.forms.schedule import preview_form_for
from updates_app.late import MISSED_INTERVALS, late_clients, schedule_interval
from updates_app.models import AutoUpdateSettings
from updates_app.preview import schedule_preview


@require_GET
def schedule_preview_fragment(request):
    """An HTML fragment for the Automatic Update screen; the schedule comes from the query string."""
    form = preview_form_for(request.GET)
    # Without JavaScript the screen's "Show the load preview" button asks for it as a page of its own.
    template = "updates_app/schedule_preview_page.html" if request.GET.get("as_page") == "1" else None
    context = {"form": form, "nav": "updates", "breadcrumb": ["Updates", "Networked Computers", "Load preview"]}
    if not form.is_valid():
        return render(request, template or "updates_app/schedule_preview.html", context, status=400)
    preview = schedule_preview(**form.cleaned_data)
    return render(request, template or "updates_app/schedule_preview.html", {**context, "preview": preview})


OFFLINE_SHOWN = 20


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def late_clients_page(request):
    """Late clients, most overdue first; offline ones apart (they cannot update until they are back)."""
    config = AutoUpdateSettings.load()
    late = late_clients(config=config)
    page = Paginator(late.exclude(status=ConnectionStatus.OFFLINE), 50).get_page(request.GET.get("page"))
    offline = late.filter(status=ConnectionStatus.OFFLINE)
    offline_shown = list(offline[: OFFLINE_SHOWN + 1])
    offline_count = len(offline_shown) if len(offline_shown) <= OFFLINE_SHOWN else offline.count()
    return render(
        request,
        "updates_app/late_clients.html",
        {
            "page": page,
            # Manual Update with this page's late clients ticked (it asks for confirmation first).
            "update_now_query": urlencode([("client", c.pk) for c in page.object_list]),
            "offline": offline_shown[:OFFLINE_SHOWN],
            "offline_count": offline_count,
            "interval": schedule_interval(config),
            "missed": MISSED_INTERVALS,
            "config": config,
            "can_notify": request.user.has_perm("updates_app.add_updaterun"),
            "can_view_clients": request.user.has_perm("agents_app.view_client")
            or request.user.has_perm("agents_app.change_client"),
            "nav": "updates",
            "breadcrumb": ["Updates", "Networked Computers", "Late clients"],
        },
    )
