"""The "Agent enrollment" page: what an administrator needs to install agents."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render


def agent_enrollment(request):
    # The secret registers agents: only those who may add clients see it.
    may_enroll = request.user.has_perm("agents_app.add_client")
    return render(
        request,
        "agents_app/enrollment.html",
        {
            "nav": "clients",
            "breadcrumb": ["Networked Computers", "Agent enrollment"],
            "may_enroll": may_enroll,
            "secret": settings.AGENT_ENROLLMENT_SECRET if may_enroll else "",
            "server_url": request.build_absolute_uri("/").rstrip("/"),
            "heartbeat": settings.AGENT_HEARTBEAT_SECONDS,
            "offline_after": settings.AGENT_OFFLINE_AFTER_SECONDS,
            "unreachable": settings.AGENT_UNREACHABLE_NETWORKS,
            "allowed": settings.AGENT_ALLOWED_NETWORKS,
        },
    )
