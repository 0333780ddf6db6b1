"""Everything under /agent/ (mounted by console/urls.py): version 1, and JSON 404 for any other path."""

from django.urls import include, path, re_path

from agent_api import views

urlpatterns = [
    path("v1/", include("agent_api.urls")),
    # [\s\S], not ".": "." skips a newline, and "/agent/foo%0A" is no exception.
    re_path(r"^[\s\S]*", views.not_found_view),
]
