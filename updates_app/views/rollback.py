"""Updates > Rollback: take a component back to one of its kept earlier versions.

Staff with "Can view client" may look; rolling back needs the "Can roll back
components" permission (updates_app.rollback_component) too. The work is done by updates_app.rollback.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from console.permissions import VIEW_CLIENTS, permission_required_or_403
from console.wording import plural
from updates_app.engine import retry
from updates_app.models import Component
from updates_app.rollback import RollbackError, component_rollback, rollback_choices
from updates_app.tasks import dispatch_soon

ROLLBACK_PERMISSION = "updates_app.rollback_component"
CRUMBS = ["Updates", "Rollback"]


def require_perm(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied("Your account may look at this page but not roll components back.")


@permission_required_or_403(VIEW_CLIENTS, post=ROLLBACK_PERMISSION)
def rollback(request: HttpRequest) -> HttpResponse:
    error = ""
    chosen_slug = ""
    if request.method == "POST":
        require_perm(request, ROLLBACK_PERMISSION)
        chosen_slug = request.POST.get("component", "")
        component = Component.objects.filter(slug=chosen_slug).first()
        label = request.POST.get("version", "")
        if component is None:
            error = "Choose a component to roll back."
        elif not label:
            error = f"Choose the {component.name} version to roll back to."
        else:
            try:
                run = component_rollback(component=component, version_label_text=label, actor=request.user)
            except RollbackError as exc:
                error = str(exc)
            else:
                dispatch_soon()
                count = run.deliveries.count()
                messages.success(
                    request,
                    f"{component.name} rolled back to {run.component_version.label if run.component_version else label}: "
                    f"the rollback run notifies {plural(count, 'client')} holding a withdrawn version.",
                )
                return redirect("updates:run-detail", pk=run.pk)
    context = {
        "choices": rollback_choices(),
        "error": error,
        "chosen_slug": chosen_slug,
        "can_rollback": request.user.has_perm(ROLLBACK_PERMISSION),
        "retry_rule": retry.describe(),
        "demo": settings.CONSOLE_DEMO,
        "nav": "updates",
        "breadcrumb": CRUMBS,
    }
    return render(request, "updates_app/rollback.html", context, status=400 if error else 200)
