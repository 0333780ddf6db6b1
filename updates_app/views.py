from __future__ import annotations

from django.shortcuts import render

# Placeholders until the screens land (issue 6). Automatic Update: updates_app/automatic_views.py.


def _page(request, title: str, crumbs: list[str]):
    return render(request, "updates_app/placeholder.html", {"title": title, "nav": "updates", "breadcrumb": crumbs})


def manual_update(request):
    return _page(request, "Manual Update", ["Updates", "Networked Computers", "Manual Update"])


def summary(request):
    return _page(request, "Update Summary", ["Updates", "Summary"])
