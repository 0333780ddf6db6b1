"""Administration > Proxy Settings: the proxy clients use for component updates."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from updates_app.forms import ProxySettingsForm
from updates_app.models import ProxySettings
from updates_app.proxy import StaleProxySettings, proxy_settings_save

CHANGE_PERMISSION = "updates_app.change_proxysettings"
PROXY_CRUMBS = ["Administration", "Proxy Settings"]


@require_http_methods(["GET", "POST"])
def proxy_settings(request: HttpRequest) -> HttpResponse:
    """Read-only without the change permission; a POST without it is refused."""
    can_change = request.user.has_perm(CHANGE_PERMISSION)
    current = ProxySettings.load()
    if request.method == "GET":
        return _page(request, ProxySettingsForm(instance=current, read_only=not can_change))
    if not can_change:
        raise PermissionDenied("Saving the proxy settings needs the permission to change them.")
    form = ProxySettingsForm(request.POST, instance=current)
    if not form.is_valid():
        messages.error(request, "The proxy settings were not saved: correct the fields marked below.")
        return _page(request, form)
    try:
        result = proxy_settings_save(
            actor=request.user, revision=form.cleaned_data["revision"], values=form.settings_values()
        )
    except StaleProxySettings as stale:
        messages.error(
            request,
            "The proxy settings were changed since you opened them. Nothing was saved: these are the current "
            "values, make your change again.",
        )
        return _page(request, ProxySettingsForm(instance=stale.current), status=409)
    if result.changed:
        count = len(result.changes)
        messages.success(
            request,
            f"Proxy settings saved ({count} {'change' if count == 1 else 'changes'}). "
            "Clients apply them with their next configuration update.",
        )
    else:
        messages.info(request, "No changes to save.")
    return redirect("updates:proxy-settings")


def _page(request: HttpRequest, form: ProxySettingsForm, *, status: int = 200) -> HttpResponse:
    context = {"form": form, "settings_row": form.instance, "nav": "administration", "breadcrumb": PROXY_CRUMBS}
    return render(request, "updates_app/proxy_settings.html", context, status=status)
