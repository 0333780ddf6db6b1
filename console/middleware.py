"""Every console page is for logged-in staff.

Guarding in one middleware (instead of a decorator on each view) means a new
page cannot be forgotten. Views that must stay public are marked with Django's
``login_not_required`` decorator; whole areas with their own authentication
(the agent API, the Django admin, static files) are exempt by prefix.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

EXEMPT_PREFIXES = ("/agent/", "/admin/", "/" + settings.STATIC_URL.lstrip("/"))


class StaffRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True):
            return None
        if request.path.startswith(EXEMPT_PREFIXES):
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("The console is for staff accounts only.")
        return None
