from django.urls import path

from updates_app import automatic_views, views

app_name = "updates"

urlpatterns = [
    path("automatic/", automatic_views.automatic_update, name="automatic-update"),
    path("manual/", views.manual_update, name="manual-update"),
    path("summary/", views.summary, name="summary"),
]
