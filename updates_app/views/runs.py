"""Manual Update, the Update Summary, a run's page and a client's delivery history.

Thin views: reads come from updates_app.summary, writes from updates_app.engine.runs.
Every page here shows clients, so each needs the view permission on clients;
asking clients to update needs the "add update run" permission and cancelling
a run the "change update run" permission (console/permissions.py).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from agents_app import tree
from agents_app.models import Client, ConnectionStatus
from console import wording
from console.exports import csv_download
from console.permissions import VIEW_CLIENTS, permission_required_or_403
from updates_app.compliance import STATE_LABELS
from updates_app.engine import retry
from updates_app.engine.claim import claims_held
from updates_app.engine.runs import run_cancel, run_create_manual
from updates_app.forms.manual import OUTDATED, SELECTED, ManualUpdateForm
from updates_app.models import DeliveryStatus, UpdateRun
from updates_app.staged import rollouts_for_summary
from updates_app.summary import (
    DELIVERY_CSV_HEADER,
    client_deliveries,
    component_standings,
    delivery_csv_rows,
    progress_attach,
    progress_of,
    runs_with_progress,
)
from updates_app.tasks import dispatch_soon

MANUAL_CRUMBS = ["Updates", "Networked Computers", "Manual Update"]


@permission_required_or_403(VIEW_CLIENTS, post="updates_app.add_updaterun")
def manual_update(request: HttpRequest) -> HttpResponse:
    """List the server's components; ask outdated or selected clients to update now (with a confirmation).

    The client tree may link here with its ticks (?root=1 / ?domain=.. / ?client=..):
    that goes straight to the confirmation.
    """
    preselected = request.method == "GET" and any(k in request.GET for k in ("root", "domain", "client", "client_page"))
    if request.method == "POST":
        form = ManualUpdateForm(request.POST)
    elif preselected:
        data = request.GET.copy()
        data["target"] = SELECTED
        form = ManualUpdateForm(data)
    else:
        form = ManualUpdateForm()
    nothing_outdated = False
    if form.is_bound and form.is_valid():
        clients = form.chosen_clients()
        count = form.chosen_count()
        if count == 0 and form.cleaned_data["target"] == OUTDATED:
            # An ordinary answer, not an error: every client is current (or ahead, or unknown).
            nothing_outdated = True
        elif count == 0:
            form.add_error(None, "No client matches: nothing to notify.")
        elif request.method == "POST" and request.POST.get("confirm") == "yes":
            # The confirmation said how many targets are offline and let the administrator leave them out.
            if request.POST.get("skip_offline") == "1":
                clients = clients.exclude(status=ConnectionStatus.OFFLINE)
                count = clients.count()
                if count == 0:
                    messages.error(request, "Every chosen client is offline and you left them out: nothing was sent.")
                    return redirect("updates:manual-update")
            run = run_create_manual(created_by=request.user, clients=clients)
            dispatch_soon()
            messages.success(request, f"Asked {wording.plural(count, 'client')} to update now.")
            return redirect("updates:run-detail", pk=run.pk)
        else:
            context = {
                "form": form,
                "count": count,
                "offline": clients.filter(status=ConnectionStatus.OFFLINE).count(),
                "selection": form.selection,
                "hidden": form.hidden_selection(),
                "retry_rule": retry.describe(),
                "can_notify": request.user.has_perm("updates_app.add_updaterun"),
                "nav": "updates",
                "breadcrumb": MANUAL_CRUMBS,
            }
            return render(request, "updates_app/manual_confirm.html", context)
    context = {
        "form": form,
        "nothing_outdated": nothing_outdated,
        "standings": component_standings(),
        **tree.tree_state(request.GET, path=reverse("updates:manual-update"), counted=False),
        "can_notify": request.user.has_perm("updates_app.add_updaterun"),
        "can_browse_tree": request.user.has_perm("agents_app.view_client")
        or request.user.has_perm("agents_app.change_client"),
        "retry_rule": retry.describe(),
        "demo": settings.CONSOLE_DEMO,
        "nav": "updates",
        "breadcrumb": MANUAL_CRUMBS,
    }
    return render(request, "updates_app/manual_update.html", context)


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def summary(request: HttpRequest) -> HttpResponseBase:
    """The Update Summary; ?export=csv downloads its component table."""
    if request.GET.get("export") == "csv":
        return _components_csv()
    page = Paginator(runs_with_progress(), 25).get_page(request.GET.get("page"))
    page.object_list = progress_attach(page.object_list)
    context = {
        "standings": component_standings(),
        "rollouts": rollouts_for_summary(),
        "can_change_rollout": request.user.has_perm("updates_app.change_rollout"),
        "can_rollback": request.user.has_perm("updates_app.rollback_component"),
        "page": page,
        "nav": "updates",
        "breadcrumb": ["Updates", "Summary"],
        "progress_url": reverse("updates:run-progress"),
        "retry_rule": retry.describe(),
        "demo": settings.CONSOLE_DEMO,
    }
    return render(request, "updates_app/summary.html", context)


def _components_csv() -> HttpResponseBase:
    """The Update Summary's component table as CSV."""
    header = ["Component", "Server version", "Last updated", "Clients"]
    header += [f"{label} clients" for _state, label in STATE_LABELS.items()]
    rows = (
        [s.name, s.latest_label, s.last_updated, s.clients, *(count for _s, _l, count, _p in s.cells)]
        for s in component_standings().components
    )
    return csv_download(filename="component-compliance", header=header, rows=rows)


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def run_progress(request: HttpRequest) -> JsonResponse:
    """Progress counts for ?run=1&run=2..., polled by the pages to refresh without a reload."""
    ids = [int(v) for v in request.GET.getlist("run")[:100] if v.isdigit()]
    runs = runs_with_progress().filter(pk__in=ids)
    return JsonResponse(
        {"runs": {str(pk): counts for pk, counts in progress_of(runs).items()}, "at": wording.moment(timezone.now())}
    )


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def run_detail(request: HttpRequest, pk: int) -> HttpResponseBase:
    run = get_object_or_404(runs_with_progress(), pk=pk)
    now = timezone.now()
    # What claims hold of this run: in flight, or left by a worker that stopped answering.
    held = claims_held(run_id=run.pk, now=now)
    claims = {"claims": held, "resend_by": held.resend_by(now), "lost_limit": retry.max_lost_leases() + 1}
    if request.GET.get("partial") == "claims":
        return render(request, "updates_app/_run_claims.html", claims)
    progress_attach([run])
    status = request.GET.get("status", "")
    search = request.GET.get("q", "").strip()
    deliveries = run.deliveries.select_related("client").order_by("client__hostname", "pk")
    if status in DeliveryStatus.values:
        deliveries = deliveries.filter(status=status)
    elif status == "updated":
        deliveries = deliveries.filter(update_reported_at__isnull=False)
    else:
        status = ""
    if search:
        deliveries = deliveries.filter(Q(client__hostname__icontains=search) | Q(client__ip_address__startswith=search))
    query_string = urlencode({k: v for k, v in {"status": status, "q": search}.items() if v})
    if request.GET.get("export") == "csv":
        return csv_download(
            filename=f"run-{run.pk}-deliveries", header=DELIVERY_CSV_HEADER, rows=delivery_csv_rows(deliveries)
        )
    page = Paginator(deliveries, 50).get_page(request.GET.get("page"))
    context = {
        "run": run,
        "page": page,
        "status": status,
        "search": search,
        "statuses": DeliveryStatus.choices,
        "query_string": query_string,
        "csv_query": urlencode({k: v for k, v in {"status": status, "q": search, "export": "csv"}.items() if v}),
        "can_cancel": request.user.has_perm("updates_app.change_updaterun") and not run.cancelled_at,
        "retention_days": settings.DELIVERY_RETENTION_DAYS,
        "progress_url": reverse("updates:run-progress"),
        "retry_rule": retry.describe(),
        "demo": settings.CONSOLE_DEMO,
        "nav": "updates",
        "breadcrumb": ["Updates", "Summary", str(run)],
        **claims,
    }
    template = "updates_app/_deliveries.html" if request.GET.get("partial") else "updates_app/run_detail.html"
    return render(request, template, context)


@require_POST
@permission_required_or_403(VIEW_CLIENTS, post="updates_app.change_updaterun")
def run_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(UpdateRun, pk=pk)
    if run.cancelled_at:
        messages.info(request, f"{run} was already cancelled.")
    else:
        stopped = run_cancel(run=run, cancelled_by=request.user)
        messages.success(
            request,
            f"{run} cancelled: {wording.plural(stopped, 'pending or retrying delivery', 'pending or retrying deliveries')} stopped.",
        )
    return redirect("updates:run-detail", pk=run.pk)


@require_GET
@permission_required_or_403(VIEW_CLIENTS)
def client_history(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_object_or_404(Client.objects.select_related("domain"), pk=pk)
    page = Paginator(client_deliveries(client), 50).get_page(request.GET.get("page"))
    context = {
        "client_obj": client,
        "page": page,
        "nav": "updates",
        "breadcrumb": ["Updates", "Delivery history", client.hostname],
    }
    return render(request, "updates_app/client_deliveries.html", context)
