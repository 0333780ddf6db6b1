from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import views
from updates_app.views import overview

urlpatterns = [
    path("", overview.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=False), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", views.audit_log, name="audit-log"),
    path("clients/", include("agents_app.urls")),
    path("updates/", include("updates_app.urls")),
    # The agent API (token-authenticated, outside the console's login).
    path("agent/", include([path("v1/", include("agent_api.urls"))])),
    path("admin/", admin.site.urls),
]
