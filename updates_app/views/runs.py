"""Manual Update, the Update Summary, a run's page and a client's delivery history.

Thin views: reads come from updates_app.summary, writes from updates_app.engine.runs.
Staff may look; asking clients to update needs the "add update run"
permission and cancelling a run the "change update run" permission.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from agents_app import tree
from agents_app.models import Client
from updates_app.engine import retry
from updates_app.engine.runs import run_cancel, run_create_manual
from updates_app.forms import SELECTED, ManualUpdateForm
from updates_app.models import DeliveryStatus, UpdateRun
from updates_app.staged import rollouts_for_summary
from updates_app.summary import client_deliveries, component_standings, progress_of, runs_with_progress
from updates_app.tasks import dispatch_soon

MANUAL_CRUMBS = ["Updates", "Networked Computers", "Manual Update"]


def _require(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied("Your account may look at this page but not change anything here.")


def manual_update(request: HttpRequest) -> HttpResponse:
    """List the server's components; ask outdated or selected clients to update now (with a confirmation).

    The client tree may link here with its ticks (?root=1 / ?domain=.. / ?client=..):
    that goes straight to the confirmation.
    """
    preselected = request.method == "GET" and any(k in request.GET for k in ("root", "domain", "client"))
    if request.method == "POST":
        _require(request, "updates_app.add_updaterun")
        form = ManualUpdateForm(request.POST)
    elif preselected:
        data = request.GET.copy()
        data["target"] = SELECTED
        form = ManualUpdateForm(data)
    else:
        form = ManualUpdateForm()
    if form.is_bound and form.is_valid():
        clients = form.chosen_clients()
        count = clients.count()
        if count == 0:
            form.add_error(None, "No client matches: nothing to notify.")
        elif request.method == "POST" and request.POST.get("confirm") == "yes":
            run = run_create_manual(created_by=request.user, clients=clients)
            dispatch_soon()
            messages.success(request, f"Asked {count} client(s) to update now.")
            return redirect("updates:run-detail", pk=run.pk)
        else:
            context = {
                "form": form,
                "count": count,
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
        "standings": component_standings(),
        "domains": list(tree.top_level_domains()),
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
def summary(request: HttpRequest) -> HttpResponse:
    page = Paginator(runs_with_progress(), 25).get_page(request.GET.get("page"))
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


@require_GET
def run_progress(request: HttpRequest) -> JsonResponse:
    """Progress counts for ?run=1&run=2..., polled by the pages to refresh without a reload."""
    ids = [int(v) for v in request.GET.getlist("run")[:100] if v.isdigit()]
    runs = runs_with_progress().filter(pk__in=ids)
    return JsonResponse({"runs": {str(pk): counts for pk, counts in progress_of(runs).items()}})


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(runs_with_progress(), pk=pk)
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
    page = Paginator(deliveries, 50).get_page(request.GET.get("page"))
    context = {
        "run": run,
        "page": page,
        "status": status,
        "search": search,
        "statuses": DeliveryStatus.choices,
        "query_string": urlencode({k: v for k, v in {"status": status, "q": search}.items() if v}),
        "can_cancel": request.user.has_perm("updates_app.change_updaterun") and not run.cancelled_at,
        "progress_url": reverse("updates:run-progress"),
        "retry_rule": retry.describe(),
        "demo": settings.CONSOLE_DEMO,
        "nav": "updates",
        "breadcrumb": ["Updates", "Summary", str(run)],
    }
    template = "updates_app/_deliveries.html" if request.GET.get("partial") else "updates_app/run_detail.html"
    return render(request, template, context)


@require_POST
def run_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    _require(request, "updates_app.change_updaterun")
    run = get_object_or_404(UpdateRun, pk=pk)
    if run.cancelled_at:
        messages.info(request, f"{run} was already cancelled.")
    else:
        stopped = run_cancel(run=run, cancelled_by=request.user)
        messages.success(request, f"{run} cancelled: {stopped} pending or retrying delivery(ies) stopped.")
    return redirect("updates:run-detail", pk=run.pk)


@require_GET
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
