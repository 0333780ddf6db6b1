"""The console's front page: the fleet's connection status and the latest update runs."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agents_app.models import Client, ConnectionStatus
from console.permissions import VIEW_CLIENTS
from updates_app.models import UpdateRun


def home(request: HttpRequest) -> HttpResponse:
    """Every staff member lands here; the fleet's counts only for those who may view clients."""
    if not request.user.has_perm(VIEW_CLIENTS):
        return render(request, "updates_app/overview.html", {"can_view_clients": False})
    counts = dict.fromkeys(ConnectionStatus.values, 0)
    for row in Client.objects.values("status").order_by().annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    context = {
        "can_view_clients": True,
        # (status, label, count): each card links to the client list of that status.
        "status_counts": [(value, label, counts[value]) for value, label in ConnectionStatus.choices],
        "total_clients": sum(counts.values()),
        "recent_runs": UpdateRun.objects.select_related("created_by", "component_version__component")[:5],
    }
    return render(request, "updates_app/overview.html", context)
