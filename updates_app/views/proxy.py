"""Administration > Proxy Settings: the proxy clients use for component updates."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from console.wording import plural
from updates_app.forms.proxy import ProxySettingsForm
from updates_app.forms.singleton import SettingsForm
from updates_app.proxy import PROXY_SETTINGS
from updates_app.settings_save import SaveResult
from updates_app.views.settings_screen import SettingsScreen, settings_screen_view

PROXY_CRUMBS = ["Administration", "Proxy Settings"]


def _page(request: HttpRequest, form: SettingsForm, status: int) -> HttpResponse:
    context = {"form": form, "settings_row": form.instance, "nav": "administration", "breadcrumb": PROXY_CRUMBS}
    return render(request, "updates_app/proxy_settings.html", context, status=status)


def _confirmation(result: SaveResult) -> str:
    changes = plural(len(result.changes), "change")
    return f"Proxy settings saved ({changes}). Clients apply them with their next configuration update."


PROXY_SCREEN = SettingsScreen(
    form=ProxySettingsForm,
    rules=PROXY_SETTINGS,
    permission="updates_app.change_proxysettings",
    subject="The proxy settings",
    page=_page,
    confirmation=_confirmation,
    done_url="updates:proxy-settings",
)


@require_http_methods(["GET", "POST"])
def proxy_settings(request: HttpRequest) -> HttpResponse:
    """Read-only without the change permission; a POST without it is refused (updates_app/views/settings_screen.py)."""
    return settings_screen_view(request, PROXY_SCREEN)
