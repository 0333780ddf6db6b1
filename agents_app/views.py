from __future__ import annotations

from django.shortcuts import render


def client_management(request):
    # Placeholder until the client tree lands (issue 3).
    return render(
        request,
        "agents_app/client_management.html",
        {"nav": "clients", "breadcrumb": ["Networked Computers", "Client Management"]},
    )
