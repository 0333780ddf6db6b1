"""What every page may need from updates_app, read only when a template uses it."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from updates_app.models import Component


def components(request: HttpRequest) -> dict[str, object]:
    """``component_names``: slug -> the name the server gives the component ("Virus Pattern").

    Clients report versions by slug; pages that list them (the client tree,
    a client's page) show the name instead. One small query, on first use.
    """
    return {"component_names": SimpleLazyObject(lambda: dict(Component.objects.values_list("slug", "name")))}
