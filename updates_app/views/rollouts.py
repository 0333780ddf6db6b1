"""Staged roll-out: saving its policy (Automatic Update screen) and the one-click actions on a roll-out.

Saving the policy is a settings screen (updates_app/views/settings_screen.py)
with the Automatic Update change permission; resuming or stopping a roll-out
needs "Can view client" and "Can change roll-out"; rolling back needs "Can
view client" and "Can roll back components". Every action is a POST that
redirects back.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST

from console.permissions import VIEW_CLIENTS, permission_required_or_403
from console.wording import plural
from updates_app.engine.rings import RolloutSuperseded, rollout_resume, rollout_stop
from updates_app.forms.rollouts import RolloutPolicyForm
from updates_app.models import Rollout
from updates_app.rollback import RollbackError, rollout_roll_back
from updates_app.settings_save import SaveResult
from updates_app.staged import ROLLOUT_POLICY
from updates_app.tasks import dispatch_soon
from updates_app.views.automatic import CHANGE_PERMISSION, automatic_update_page
from updates_app.views.rollback import ROLLBACK_PERMISSION
from updates_app.views.settings_screen import SettingsScreen, settings_screen_view

ROLLOUT_PERMISSION = "updates_app.change_rollout"


def _require(request: HttpRequest, perm: str, what: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"Your account may look at this page but not {what}.")


def _confirmation(result: SaveResult) -> str:
    state = "on" if result.settings.enabled else "off"
    return f"Staged roll-out saved ({plural(len(result.changes), 'change')}); it is {state}."


# The policy is a section of the Automatic Update screen, saved by its own form with that screen's permission.
ROLLOUT_POLICY_SCREEN = SettingsScreen(
    form=RolloutPolicyForm,
    rules=ROLLOUT_POLICY,
    permission=CHANGE_PERMISSION,
    subject="The staged roll-out settings",
    page=lambda request, form, status: automatic_update_page(request, rollout_form=form, status=status),
    confirmation=_confirmation,
    done_url="updates:automatic-update",
    invalid_status=400,
)


@require_http_methods(["GET", "POST"])
def rollout_policy_save_view(request: HttpRequest) -> HttpResponse:
    return settings_screen_view(request, ROLLOUT_POLICY_SCREEN)


@require_POST
@permission_required_or_403(VIEW_CLIENTS)
def rollout_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    rollout = get_object_or_404(Rollout.objects.select_related("version__component"), pk=pk)
    if action == "resume":
        _require(request, ROLLOUT_PERMISSION, "resume a roll-out")
        try:
            resumed = rollout_resume(rollout=rollout, actor=request.user)
        except RolloutSuperseded as exc:
            messages.error(request, str(exc))
        else:
            if resumed:
                dispatch_soon()
                messages.success(request, f"{rollout} resumed: its next ring is notified now.")
            else:
                messages.info(request, f"{rollout} is not halted: nothing to resume.")
    elif action == "stop":
        _require(request, ROLLOUT_PERMISSION, "stop a roll-out")
        if rollout_stop(rollout=rollout, actor=request.user):
            messages.success(request, f"{rollout} stopped: no further ring, the version goes to nobody else.")
        else:
            messages.info(request, f"{rollout} is not rolling out or halted: nothing to stop.")
    elif action == "rollback":
        _require(request, ROLLBACK_PERMISSION, "roll components back")
        try:
            run = rollout_roll_back(rollout=rollout, actor=request.user)
        except RollbackError as exc:
            messages.error(request, str(exc))
        else:
            dispatch_soon()
            messages.success(
                request,
                f"{rollout.version.component.name} rolled back: the rollback run notifies "
                f"{plural(run.deliveries.count(), 'client')} holding {rollout.version.label}.",
            )
            return redirect("updates:run-detail", pk=run.pk)
    else:
        messages.error(request, f"Unknown action {action!r}.")
    return redirect("updates:summary")
