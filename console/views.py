from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import render

from agents_app.models import Client, ConnectionStatus
from console.models import AuditEntry
from updates_app.models import UpdateRun


def home(request):
    counts = dict.fromkeys(ConnectionStatus.values, 0)
    for row in Client.objects.values("status").order_by().annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    context = {
        "status_counts": [(label, counts[value]) for value, label in ConnectionStatus.choices],
        "total_clients": sum(counts.values()),
        "recent_runs": UpdateRun.objects.select_related("created_by")[:5],
    }
    return render(request, "console/home.html", context)


def audit_log(request):
    """Every audited change, newest first, 50 a page, optionally only one kind of action."""
    actions = list(AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct())
    action = request.GET.get("action", "")
    entries = AuditEntry.objects.select_related("actor")
    if action:
        entries = entries.filter(action=action)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "actions": actions,
        "action": action,
        "query_string": urlencode({"action": action}) if action else "",
        "nav": "audit",
        "breadcrumb": ["Audit log"],
    }
    return render(request, "console/audit_log.html", context)
