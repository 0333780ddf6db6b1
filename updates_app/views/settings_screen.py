"""One view for every singleton settings screen: Automatic Update, Proxy Settings, the staged roll-out policy.

- GET shows the form, read-only (and without its button) to staff without the
  change permission; the console is staff-only, so every staff member sees it.
- POST without the permission is refused (403); a form with errors is shown
  again with what was typed and the errors next to the fields.
- A save from a page that is out of date is refused (409): the screen shows
  the current values, and next to them the administrator's values that were
  not saved (``SettingsForm.unsaved``), so they can make their change again.
- Otherwise the screen's rules save (updates_app/settings_save.py) and the
  browser is sent back to the screen with a confirmation, or "No changes to save".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from updates_app.forms.singleton import SettingsForm
from updates_app.settings_save import SaveResult, SettingsRules, StaleSettings


@dataclass(frozen=True)
class SettingsScreen:
    form: type[SettingsForm]
    rules: SettingsRules[Any]
    # The permission that allows saving, e.g. "updates_app.change_proxysettings".
    permission: str
    # What the messages call the settings: "The proxy settings" (were not saved ...).
    subject: str
    # The screen's page with this form, at this status.
    page: Callable[[HttpRequest, SettingsForm, int], HttpResponse]
    # The confirmation of a save that changed something.
    confirmation: Callable[[SaveResult[Any]], str]
    # Where a save goes back to (a URL name).
    done_url: str
    # A form with errors: 200, or 400 where a screen's tests ask for it.
    invalid_status: int = 200


def settings_screen_view(request: HttpRequest, screen: SettingsScreen) -> HttpResponse:
    """GET or POST of one settings screen (the caller allows only those methods)."""
    can_change = request.user.has_perm(screen.permission)
    current = screen.rules.model.load()
    if request.method != "POST":
        return screen.page(request, screen.form(instance=current, read_only=not can_change), 200)
    if not can_change:
        raise PermissionDenied(
            f"Saving {screen.subject[:1].lower()}{screen.subject[1:]} needs the permission to change them."
        )

    form = screen.form(request.POST, instance=current)
    if not form.is_valid():
        messages.error(request, f"{screen.subject} were not saved: correct the fields marked below.")
        return screen.page(request, form, screen.invalid_status)
    values = form.settings_values()
    try:
        result = screen.rules.save(actor=request.user, revision=form.cleaned_data["revision"], values=values)
    except StaleSettings as stale:
        by = f" (by {stale.current.updated_by})" if stale.current.updated_by else ""
        messages.error(
            request,
            f"{screen.subject} were changed since you opened them{by}. "
            "Nothing was saved: these are the current values, make your change again.",
        )
        fresh = screen.form(instance=stale.current)
        fresh.unsaved = screen.rules.unsaved(values, stale.current)
        return screen.page(request, fresh, 409)
    if result.changed:
        messages.success(request, screen.confirmation(result))
    else:
        messages.info(request, "No changes to save.")
    return redirect(screen.done_url)
