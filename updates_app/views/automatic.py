"""The Automatic Update screen (Updates > Networked Computers > Automatic Update)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from agents_app.models import Client
from console import wording
from updates_app.autoupdate import StaleSettings, autoupdate_settings_save, settings_differences
from updates_app.forms import AutoUpdateSettingsForm
from updates_app.models import AutoUpdateSettings, Frequency, RolloutPolicy
from updates_app.staged import RolloutPolicyForm

CHANGE_PERMISSION = "updates_app.change_autoupdatesettings"
AUTOMATIC_UPDATE_CRUMBS = ["Updates", "Networked Computers", "Automatic Update"]


@require_http_methods(["GET", "POST"])
def automatic_update(request: HttpRequest) -> HttpResponse:
    """Updates > Networked Computers > Automatic Update.

    Every staff member sees the settings (the console is staff-only); without
    the change permission they are shown read-only and a POST is refused.
    """
    can_change = request.user.has_perm(CHANGE_PERMISSION)
    current = AutoUpdateSettings.load()
    if request.method == "GET":
        return _automatic_update_page(request, AutoUpdateSettingsForm(instance=current, read_only=not can_change))

    if not can_change:
        raise PermissionDenied("Saving the Automatic Update settings needs the permission to change them.")
    form = AutoUpdateSettingsForm(request.POST, instance=current)
    if not form.is_valid():
        messages.error(request, "The settings were not saved: correct the fields marked below.")
        return _automatic_update_page(request, form)
    try:
        result = autoupdate_settings_save(
            actor=request.user, revision=form.cleaned_data["revision"], values=form.settings_values()
        )
    except StaleSettings as stale:
        messages.error(
            request,
            "The settings were changed since you opened them"
            + (f" (by {stale.current.updated_by})" if stale.current.updated_by else "")
            + ". Nothing was saved: these are the current values, make your change again.",
        )
        fresh = AutoUpdateSettingsForm(instance=stale.current)
        unsaved = settings_differences(form.settings_values(), stale.current)
        return _automatic_update_page(request, fresh, status=409, unsaved=unsaved)
    if result.changed:
        clients = Client.objects.count()
        saved = result.settings
        once_a_day = saved.config_once_per_day and saved.frequency in (Frequency.MINUTES, Frequency.HOURS)
        when = "within a day (configurations are updated only once per day)" if once_a_day else "with their next update"
        messages.success(
            request,
            f"Automatic Update settings saved ({wording.plural(len(result.changes), 'change')}). "
            f"{wording.plural(clients, 'client')} will apply the new configuration {when}.",
        )
    else:
        messages.info(request, "No changes to save.")
    return redirect("updates:automatic-update")


def automatic_update_page(request: HttpRequest, *, rollout_form: RolloutPolicyForm, status: int) -> HttpResponse:
    """The screen with a staged roll-out form that did not validate (updates_app.views.rollouts)."""
    can_change = request.user.has_perm(CHANGE_PERMISSION)
    form = AutoUpdateSettingsForm(instance=AutoUpdateSettings.load(), read_only=not can_change)
    return _automatic_update_page(request, form, status=status, rollout_form=rollout_form)


def _automatic_update_page(
    request: HttpRequest,
    form: AutoUpdateSettingsForm,
    *,
    status: int = 200,
    unsaved: list | None = None,
    rollout_form: RolloutPolicyForm | None = None,
) -> HttpResponse:
    read_only = not request.user.has_perm(CHANGE_PERMISSION)
    context = {
        # The staged roll-out (an improvement over the original) has its own form and save.
        "rollout_form": rollout_form or RolloutPolicyForm(instance=RolloutPolicy.load(), read_only=read_only),
        "unsaved": unsaved or [],
        "form": form,
        "settings_row": form.instance,
        "nav": "updates",
        "breadcrumb": AUTOMATIC_UPDATE_CRUMBS,
    }
    return render(request, "updates_app/automatic_update.html", context, status=status)
