"""What each console page needs, stated once at the view.

The staff middleware lets only staff in; a page that shows clients (their
hostnames, addresses, delivery histories or counts) also needs a permission.
``permission_required_or_403`` states it at the view: reading needs ``view``,
and a POST needs ``view`` and every permission in ``post``. A refusal raises
PermissionDenied, which the console answers with its friendly 403 page (no
redirect to the login page for someone who is already logged in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

# Reading any page that shows clients.
VIEW_CLIENTS = "agents_app.view_client"
VIEW_AUDIT_LOG = "console.view_auditentry"


def _missing(request: HttpRequest, perms: Iterable[str]) -> list[str]:
    return [perm for perm in perms if not request.user.has_perm(perm)]


def permission_required_or_403(
    view: str, *, post: str | Iterable[str] = ()
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Require ``view`` for every request and, for POSTs, the ``post`` permissions too."""
    post_perms = [post] if isinstance(post, str) else list(post)

    def decorator(view_func: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view_func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if _missing(request, [view]):
                raise PermissionDenied(f"Your account may not view this page: it needs the {view!r} permission.")
            missing = _missing(request, post_perms) if request.method == "POST" else []
            if missing:
                raise PermissionDenied(
                    f"Your account may look at this page but not change anything here (that needs {missing[0]!r})."
                )
            return view_func(request, *args, **kwargs)

        wrapper.required_permissions = {"view": view, "post": post_perms}  # type: ignore[attr-defined]
        return wrapper

    return decorator
