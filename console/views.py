from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console.models import AuditEntry, action_label
from console.permissions import VIEW_AUDIT_LOG, permission_required_or_403


@permission_required_or_403(VIEW_AUDIT_LOG)
def audit_log(request: HttpRequest) -> HttpResponse:
    """Every audited change, newest first, 50 a page, optionally only one kind of action."""
    recorded = AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct()
    actions = sorted(((value, action_label(value)) for value in recorded), key=lambda pair: pair[1])
    action = request.GET.get("action", "")
    entries = AuditEntry.objects.select_related("actor")
    if action:
        entries = entries.filter(action=action)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "actions": actions,
        "action": action,
        "action_label": action_label(action) if action else "",
        "query_string": urlencode({"action": action}) if action else "",
        "nav": "audit",
        "breadcrumb": ["Audit log"],
    }
    return render(request, "console/audit_log.html", context)
