from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from console import views
from updates_app.views import overview

urlpatterns = [
    path("", overview.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=False), name="login"),
    # Open to every signed-in user: a non-staff account must be able to sign out.
    path("logout/", login_not_required(auth_views.LogoutView.as_view()), name="logout"),
    path("audit/", views.audit_log, name="audit-log"),
    path("clients/", include("agents_app.urls")),
    path("updates/", include("updates_app.urls")),
    # The agent API (token-authenticated, outside the console's login).
    path("agent/", include("agent_api.root_urls")),
    path("admin/", admin.site.urls),
]
