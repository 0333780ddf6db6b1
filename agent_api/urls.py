"""Mounted at /agent/v1/ by console/urls.py."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from agent_api import checkin, schema, views  # noqa: F401  (schema registers the bearer scheme)

app_name = "agent-api"

urlpatterns = [
    path("register", views.RegisterView.as_view(), name="register"),
    path("checkin", checkin.checkin, name="checkin"),
    path("configuration", views.ConfigurationView.as_view(), name="configuration"),
    path("manifest", views.ManifestView.as_view(), name="manifest"),
    path(
        "components/<slug:slug>/versions/<str:version>/full",
        views.DownloadView.as_view(),
        name="download-full",
    ),
    path(
        "components/<slug:slug>/versions/<str:version>/incremental/<str:from_version>",
        views.IncrementalDownloadView.as_view(),
        name="download-incremental",
    ),
    path("report", views.ReportView.as_view(), name="report"),
    path("ping", views.PingView.as_view(), name="ping"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Every other path, newlines included ("foo%0A"): "." would skip a newline.
    re_path(r"^[\s\S]*", views.not_found_view),
]
