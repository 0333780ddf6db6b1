"""Schedule-based update pages: the load preview fragment and the late clients list (read-only)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.permissions import VIEW_CLIENTS, permission_required_or_403
from updates_app.late import MISSED_INTERVALS, late_clients, schedule_interval
from updates_app.models import AutoUpdateSettings
from updates_app.preview import preview_form_for, schedule_preview


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


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def late_clients_page(request):
    config = AutoUpdateSettings.load()
    page = Paginator(late_clients(config=config), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "updates_app/late_clients.html",
        {
            "page": page,
            "interval": schedule_interval(config),
            "missed": MISSED_INTERVALS,
            "config": config,
            "nav": "updates",
            "breadcrumb": ["Updates", "Networked Computers", "Late clients"],
        },
    )
