"""Networked Computers > Client Management: the tree and the privileges dialog.

Views are thin: reads come from agents_app.tree, the save from
agents_app.privileges. Seeing the tree and the dialog needs the view (or
change) permission on clients; saving needs the change permission.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from agents_app import tree
from agents_app.forms import PrivilegesForm
from agents_app.models import ConnectionStatus, Domain
from agents_app.privileges import (
    SelectionError,
    StaleSelectionError,
    privileges_save,
    selection_initial_states,
    selection_resolve,
    selection_summary,
)
from agents_app.scheduled_state import describe_combination

BREADCRUMB = ["Networked Computers", "Client Management"]


def _can_view(request: HttpRequest) -> bool:
    return request.user.has_perm("agents_app.view_client") or request.user.has_perm("agents_app.change_client")


def _can_change(request: HttpRequest) -> bool:
    return request.user.has_perm("agents_app.change_client")


@require_GET
def client_management(request: HttpRequest) -> HttpResponse:
    context: dict = {"nav": "clients", "breadcrumb": BREADCRUMB, "can_view": _can_view(request)}
    if not context["can_view"]:
        return render(request, "agents_app/client_management.html", context)
    query = request.GET.get("q", "")[:100]
    status = tree.valid_status(request.GET.get("status", ""))
    context.update(
        query=query,
        status=status,
        statuses=ConnectionStatus.choices,
        can_change=_can_change(request),
    )
    if query.strip() or status:
        context["searching"] = True
        context["results"] = tree.client_search_page(query=query, status=status, page_number=request.GET.get("page"))
        context["query_string"] = urlencode({"q": query, "status": status})
    else:
        domains = list(tree.top_level_domains())
        context["domains"] = domains
        context["total_clients"] = sum(d.client_count for d in domains)
    return render(request, "agents_app/client_management.html", context)


@require_GET
def domain_children(request: HttpRequest, pk: int) -> HttpResponse:
    """The fragment shown when a domain is expanded: subdomains and a page of its own clients."""
    if not _can_view(request):
        raise PermissionDenied("Viewing clients needs the view permission on clients.")
    domain = get_object_or_404(Domain, pk=pk)
    page = tree.domain_clients_page(domain, request.GET.get("page"))
    # A "next page" request only needs the client rows.
    children = list(tree.subdomains(domain)) if page.number == 1 else []
    return render(
        request,
        "agents_app/domain_children.html",
        {"domain": domain, "subdomains": children, "page": page, "only_clients": page.number > 1},
    )


def _selection_params(data) -> dict:
    return {
        "root": data.get("root") in ("1", "on", "true"),
        "domain_ids": data.getlist("domain"),
        "client_ids": data.getlist("client"),
    }


@require_http_methods(["GET", "POST"])
def privileges(request: HttpRequest) -> HttpResponse:
    """Settings > Privileges and Other Settings, as a page or (``?partial=1``) as the modal's body."""
    partial = request.GET.get("partial") == "1"
    template = "agents_app/privileges_dialog.html" if partial else "agents_app/privileges_page.html"
    base = {"nav": "clients", "breadcrumb": [*BREADCRUMB, "Privileges and Other Settings"]}
    if not _can_view(request):
        if request.method == "POST":
            raise PermissionDenied("Saving settings needs the change permission on clients.")
        return render(request, template, {**base, "error": "Your account may not view client settings."})
    can_change = _can_change(request)
    if request.method == "POST" and not can_change:
        raise PermissionDenied("Saving settings needs the change permission on clients.")

    data = request.POST if request.method == "POST" else request.GET
    params = _selection_params(data)
    try:
        selection = selection_resolve(**params)
    except SelectionError as exc:
        if request.method == "POST":
            messages.error(request, f"{exc} Nothing was saved.")
            return redirect("agents:client-management")
        return render(request, template, {**base, "error": str(exc)})

    summary = selection_summary(selection)
    context = {
        **base,
        "selection": selection,
        "summary": summary,
        "can_change": can_change,
        "descriptions": {
            f"{p}-{s}": describe_combination(privilege=p == "on", setting=s == "on")
            for p in ("on", "off")
            for s in ("on", "off")
        },
    }
    if request.method == "GET":
        states = selection_initial_states(selection, summary)
        form = PrivilegesForm(root=selection.root, summary=summary, states=states, readonly=not can_change)
        return render(request, template, {**context, "form": form})

    form = PrivilegesForm(request.POST, root=selection.root)
    if not form.is_valid():
        messages.error(request, "The settings were not saved: correct the errors below.")
        return render(request, "agents_app/privileges_page.html", {**context, "form": form}, status=400)
    try:
        result = privileges_save(
            actor=request.user,
            selection=selection,
            changes=form.changes(),
            scope=form.cleaned_data.get("scope") or "all",
            fingerprint=form.cleaned_data["fingerprint"],
        )
    except (StaleSelectionError, SelectionError) as exc:
        messages.error(request, str(exc))
        return render(
            request,
            "agents_app/privileges_page.html",
            {
                **context,
                "form": PrivilegesForm(
                    root=selection.root, summary=summary, states=selection_initial_states(selection, summary)
                ),
            },
            status=409,
        )
    if selection.root and form.cleaned_data.get("scope") == "future":
        messages.success(request, "Saved: domains created from now on start with these settings.")
    else:
        messages.success(
            request,
            f"Saved for {selection.describe()}: {result.clients_changed} of {result.clients_selected} "
            f"client{'s' if result.clients_selected != 1 else ''} changed.",
        )
    return redirect(reverse("agents:client-management"))
