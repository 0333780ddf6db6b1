"""The Automatic Update screen (Updates > Networked Computers > Automatic Update), with its staged roll-out section."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from agents_app.models import Client
from console import wording
from updates_app.autoupdate import AUTOMATIC_UPDATE
from updates_app.forms.automatic import AutoUpdateSettingsForm
from updates_app.forms.rollouts import RolloutPolicyForm
from updates_app.forms.singleton import SettingsForm
from updates_app.models import AutoUpdateSettings, Frequency, RolloutPolicy
from updates_app.settings_save import SaveResult
from updates_app.views.settings_screen import SettingsScreen, settings_screen_view

CHANGE_PERMISSION = "updates_app.change_autoupdatesettings"
AUTOMATIC_UPDATE_CRUMBS = ["Updates", "Networked Computers", "Automatic Update"]


def automatic_update_page(
    request: HttpRequest,
    *,
    form: SettingsForm | None = None,
    rollout_form: SettingsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The screen; each of its two forms is the stored settings' unless given (one being saved)."""
    read_only = not request.user.has_perm(CHANGE_PERMISSION)
    form = form or AutoUpdateSettingsForm(instance=AutoUpdateSettings.load(), read_only=read_only)
    context = {
        "form": form,
        # The staged roll-out (an improvement over the original) has its own form and save.
        "rollout_form": rollout_form or RolloutPolicyForm(instance=RolloutPolicy.load(), read_only=read_only),
        "settings_row": form.instance,
        "nav": "updates",
        "breadcrumb": AUTOMATIC_UPDATE_CRUMBS,
    }
    return render(request, "updates_app/automatic_update.html", context, status=status)


def _confirmation(result: SaveResult) -> str:
    saved = result.settings
    once_a_day = saved.config_once_per_day and saved.frequency in (Frequency.MINUTES, Frequency.HOURS)
    when = "within a day (configurations are updated only once per day)" if once_a_day else "with their next update"
    return (
        f"Automatic Update settings saved ({wording.plural(len(result.changes), 'change')}). "
        f"{wording.plural(Client.objects.count(), 'client')} will apply the new configuration {when}."
    )


AUTOMATIC_UPDATE_SCREEN = SettingsScreen(
    form=AutoUpdateSettingsForm,
    rules=AUTOMATIC_UPDATE,
    permission=CHANGE_PERMISSION,
    subject="The Automatic Update settings",
    page=lambda request, form, status: automatic_update_page(request, form=form, status=status),
    confirmation=_confirmation,
    done_url="updates:automatic-update",
)


@require_http_methods(["GET", "POST"])
def automatic_update(request: HttpRequest) -> HttpResponse:
    """Updates > Networked Computers > Automatic Update (updates_app/views/settings_screen.py)."""
    return settings_screen_view(request, AUTOMATIC_UPDATE_SCREEN)
