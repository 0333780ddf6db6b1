"""Networked Computers > Client Management: the tree and the privileges dialog.

Views are thin: reads come from agents_app.tree, the save from
agents_app.privileges. Seeing the tree and the dialog needs the view (or
change) permission on clients; saving needs the change permission.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from agents_app import tree
from agents_app.forms import TABS, PrivilegesForm
from agents_app.models import Client, ConnectionStatus, Domain
from agents_app.privileges import (
    SCOPE_ALL,
    SCOPE_FUTURE,
    SelectionError,
    StaleSelectionError,
    privileges_impact,
    privileges_save,
    selection_initial_states,
    selection_resolve,
    selection_summary,
    ticked_client_ids,
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
    path = reverse("agents:client-management")
    if query.strip() or status:
        sort = tree.valid_sort(request.GET.get("sort", ""))
        keep = {k: v for k, v in {"q": query, "status": status}.items() if v}
        results = tree.client_search_page(query=query, status=status, page_number=request.GET.get("page"), sort=sort)
        sorted_keep = {**keep, **({"sort": sort} if sort != tree.DEFAULT_SORT else {})}
        context.update(
            searching=True,
            results=results,
            sort=sort,
            query_string=urlencode(sorted_keep),
            results_href=f"{path}?{urlencode({**sorted_keep, 'page': ''})}",
            sort_links=tree.sort_links(path, keep, sort),
            jump_forms=[
                tree.JumpForm(
                    id="jump-results",
                    hidden=list(sorted_keep.items()),
                    page_field="page",
                    max_page=results.paginator.num_pages,
                )
            ]
            if results.paginator.num_pages > 1
            else [],
        )
    else:
        context.update(tree.tree_state(request.GET, path=path))
    return render(request, "agents_app/client_management.html", context)


@require_GET
def domain_children(request: HttpRequest, pk: int) -> HttpResponse:
    """The fragment shown when a domain is expanded: subdomains and a page of its own clients."""
    if not _can_view(request):
        raise PermissionDenied("Viewing clients needs the view permission on clients.")
    domain = get_object_or_404(Domain, pk=pk)
    sort = tree.valid_sort(request.GET.get("sort", ""))
    page = tree.domain_clients_page(domain, request.GET.get("page"), sort)
    # A "next page" request only needs the client rows.
    children = list(tree.subdomains(domain)) if page.number == 1 else []
    path = reverse("agents:client-management")
    query = {"sort": sort} if sort != tree.DEFAULT_SORT else {}
    fragment_url = reverse("agents:domain-children", args=[domain.pk])
    for child in children:
        # Links for a page without JavaScript are never used here: client_tree.js loads fragments.
        child.is_open = False
        child.toggle_url = f"{path}?{urlencode({**query, 'open': child.pk})}#domain-{child.pk}"
        child.page_data = f"{reverse('agents:domain-children', args=[child.pk])}?{urlencode({'sort': sort})}&page="
    domain.page_data = f"{fragment_url}?{urlencode({'sort': sort})}&page="
    domain.page_href = f"{path}?{urlencode({**query, 'open': ''})}{domain.pk}:"
    return render(
        request,
        "agents_app/domain_children.html",
        {
            "domain": domain,
            "subdomains": children,
            "page": page,
            "only_clients": page.number > 1,
            "sort_links": tree.sort_links(path, {}, sort),
            "sort": sort,
        },
    )


def _selection_params(data) -> dict:
    return {
        "root": data.get("root") in ("1", "on", "true"),
        "domain_ids": data.getlist("domain"),
        "client_ids": ticked_client_ids(data),
    }


DESCRIPTION_KEYS = {"on": True, "off": False, "unchanged": None}


def _descriptions() -> dict[str, str]:
    """The explanation for each of the nine combinations (mixed ones included), keyed "privilege-setting"."""
    return {
        f"{p}-{s}": describe_combination(privilege=DESCRIPTION_KEYS[p], setting=DESCRIPTION_KEYS[s])
        for p in DESCRIPTION_KEYS
        for s in DESCRIPTION_KEYS
    }


def _description_for(form: PrivilegesForm) -> str:
    def state(name: str) -> bool | None:
        value = form[name].value()
        return DESCRIPTION_KEYS.get(value) if isinstance(value, str) else None

    return describe_combination(
        privilege=state("scheduled_update_privilege"), setting=state("scheduled_update_setting")
    )


def _back_to_tree(open_domains: str) -> str:
    url = reverse("agents:client-management")
    return f"{url}?{urlencode({'open': open_domains})}" if open_domains else url


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
    # The domains expanded in the tree, so that it opens the same way after Save.
    open_domains = tree.format_open(tree.parse_open(data.get("open", "")))
    params = _selection_params(data)
    try:
        selection = selection_resolve(**params)
    except SelectionError as exc:
        if request.method == "POST":
            messages.error(request, f"{exc} Nothing was saved.")
            return redirect(_back_to_tree(open_domains))
        return render(request, template, {**base, "error": str(exc)})

    summary = selection_summary(selection)
    states = selection_initial_states(selection, summary)
    context = {
        **base,
        "selection": selection,
        "summary": summary,
        "can_change": can_change,
        "open_domains": open_domains,
        "descriptions": _descriptions(),
    }
    if request.method == "GET":
        form = PrivilegesForm(root=selection.root, summary=summary, states=states, readonly=not can_change)
        return render(request, template, {**context, "form": form, "scheduled_description": _description_for(form)})

    form = PrivilegesForm(request.POST, root=selection.root, summary=summary, states=states)
    if not form.is_valid():
        messages.error(request, "The settings were not saved: correct the errors below.")
        return render(
            request,
            "agents_app/privileges_page.html",
            {**context, "form": form, "scheduled_description": _description_for(form)},
            status=400,
        )
    changes = form.changes()
    scope = form.cleaned_data.get("scope") or SCOPE_ALL
    if request.POST.get("confirmed") != "1":
        impact = privileges_impact(selection=selection, changes=changes, scope=scope)
        if impact.clients > settings.CONFIRM_ABOVE_CLIENTS:
            # Ask once more, with the numbers; the same values go back with confirmed=1 (no JavaScript needed).
            resubmit = [(k, v) for k in request.POST for v in request.POST.getlist(k) if k != "csrfmiddlewaretoken"]
            return render(
                request,
                "agents_app/privileges_confirm.html",
                {
                    **context,
                    "impact": impact,
                    "clients_text": f"{impact.clients:,}",
                    "domains_text": f"{impact.domains:,}",
                    "resubmit": resubmit,
                    "changes": _labelled(changes),
                },
            )
    try:
        result = privileges_save(
            actor=request.user,
            selection=selection,
            changes=changes,
            scope=scope,
            fingerprint=form.cleaned_data["fingerprint"],
        )
    except (StaleSelectionError, SelectionError) as exc:
        messages.error(request, str(exc))
        fresh = PrivilegesForm(root=selection.root, summary=summary, states=states)
        return render(
            request,
            "agents_app/privileges_page.html",
            {**context, "form": fresh, "scheduled_description": _description_for(fresh)},
            status=409,
        )
    if selection.root and scope == SCOPE_FUTURE:
        messages.success(request, "Saved: domains created from now on start with these settings.")
    else:
        messages.success(
            request,
            f"Saved for {selection.describe()}: {result.clients_changed:,} of {result.clients_selected:,} "
            f"client{'s' if result.clients_selected != 1 else ''} changed.",
        )
    return redirect(_back_to_tree(open_domains))


def _labelled(changes: dict[str, bool]) -> list[tuple[str, str]]:
    """The settings a save changes, as the dialog labels them, with "On"/"Off"."""

    def label(name: str) -> str:
        field = Client._meta.get_field(name)
        assert isinstance(field, models.Field)
        return str(field.verbose_name)

    where = {
        name: f"{title} tab, {legend}" for _, title, sections in TABS for legend, names in sections for name in names
    }
    return [(f"{label(name)} ({where[name]})", "On" if value else "Off") for name, value in changes.items()]
